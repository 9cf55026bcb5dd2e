/* A module with no exit (it stays loaded) that keeps a two-object list in its data and loses
 * a buffer: kmemleak scans its data at kmem's exit and reports the buffer only. */
#include <linux/module.h>
#include <linux/slab.h>

struct item {
	struct item *next;
	int value;
};

struct item *keeper_list; /* Not static: a static never read may be optimised away. */

static noinline void lose_one(void)
{
	char *buffer = kmalloc(900, GFP_KERNEL);

	if (buffer)
		buffer[0] = 'x';
}

static int __init keeper_init(void)
{
	keeper_list = kzalloc(sizeof(*keeper_list), GFP_KERNEL);
	if (!keeper_list)
		return -ENOMEM;
	keeper_list->next = kzalloc(sizeof(*keeper_list), GFP_KERNEL);
	lose_one();
	pr_info("keeper loaded\n");
	return 0;
}

module_init(keeper_init);
MODULE_LICENSE("GPL");
