/* Defines a function with the name of a kmem export (dump_stack) and calls it: inside a
 * module, as inside a kernel module, its own definition is the one called. */
#include <linux/module.h>

void dump_stack(void)
{
	pr_info("the module's own dump_stack\n");
}

static int __init own_init(void)
{
	dump_stack();
	return 0;
}

module_init(own_init);
MODULE_LICENSE("GPL");
