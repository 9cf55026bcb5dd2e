/* A module whose init dies after logging: by BUG_ON (bug=1), a SLAB_PANIC cache that cannot be
 * made (panic=1) or a write to a bad address (fault=<address>); with none it loads and unloads
 * quietly. */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>

MODULE_LICENSE("GPL");

static bool bug;
module_param(bug, bool, 0);
static bool panic;
module_param(panic, bool, 0);
static unsigned long fault;
module_param(fault, ulong, 0);

static int __init oops_init(void)
{
	void *p = kmalloc(64, GFP_KERNEL);

	printk(KERN_INFO "oops: before the end\n");
	BUG_ON(bug && p);
	if (panic)
		kmem_cache_create("oops_cache", 0, 0, SLAB_PANIC, NULL);
	if (fault)
		*(volatile int *)fault = 1;
	kfree(p);
	return 0;
}

static void __exit oops_exit(void)
{
	printk(KERN_INFO "oops: exit\n");
}

module_init(oops_init);
module_exit(oops_exit);
