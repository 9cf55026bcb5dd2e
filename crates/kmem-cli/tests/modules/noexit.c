/* A module with an init and no exit: the kernel refuses to remove it. */
#include <linux/module.h>

static int __init noexit_init(void)
{
	pr_info("noexit loaded\n");
	return 0;
}

module_init(noexit_init);
MODULE_LICENSE("GPL");
