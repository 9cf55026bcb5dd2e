/* A module that hands two objects to call_rcu in its init; its exit calls rcu_barrier() only
 * with barrier=1, as a kernel module's exit must (without it, the kernel runs the callbacks
 * after the module's code is gone). */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/rcupdate.h>

struct item {
	int id;
	struct rcu_head rcu;
};

static bool barrier;
module_param(barrier, bool, 0);

static void item_free(struct rcu_head *head)
{
	struct item *it = container_of(head, struct item, rcu);

	printk(KERN_INFO "rcu_leftover: callback %d\n", it->id);
	kfree(it);
}

static int __init rcu_leftover_init(void)
{
	for (int i = 1; i <= 2; i++) {
		struct item *it = kmalloc(sizeof(*it), GFP_KERNEL);

		if (!it)
			return -ENOMEM;
		it->id = i;
		call_rcu(&it->rcu, item_free);
	}
	printk(KERN_INFO "rcu_leftover: queued\n");
	return 0;
}

static void __exit rcu_leftover_exit(void)
{
	if (barrier)
		rcu_barrier();
	printk(KERN_INFO "rcu_leftover: exit\n");
}

module_init(rcu_leftover_init);
module_exit(rcu_leftover_exit);
MODULE_LICENSE("GPL");
