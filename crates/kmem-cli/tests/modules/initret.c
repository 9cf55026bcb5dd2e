/* A module whose init returns its parameter `ret` (0 by default), whatever it is. */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>

MODULE_LICENSE("GPL");

static int ret;
module_param(ret, int, 0);

static int __init initret_init(void)
{
	printk(KERN_INFO "initret: returning %d\n", ret);
	return ret;
}

static void __exit initret_exit(void)
{
	printk(KERN_INFO "initret: exit\n");
}

module_init(initret_init);
module_exit(initret_exit);
