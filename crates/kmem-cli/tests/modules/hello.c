/* A module with parameters of several types; its init can be told to fail (fail=1) or to
 * return a positive value (positive=1), and it allocates pages as basicmem.c does. */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/gfp.h>
#include <asm/page.h>

static int order = 5;
module_param(order, int, 0444);
MODULE_PARM_DESC(order, "order of the block to allocate");
static char *who = "world";
module_param(who, charp, 0);
static bool fail;
module_param(fail, bool, 0);
static bool positive;
module_param(positive, bool, 0);
static unsigned int mask = 0x10;
module_param_named(flags_mask, mask, hexint, 0);
static long delta = -1;
module_param(delta, long, 0);

static int __init hello_init(void)
{
	char *buff;

	printk(KERN_INFO "hello %s: order=%d mask=%#x delta=%ld\n", who, order, mask, delta);
	buff = (char *)__get_free_pages(GFP_KERNEL, order);
	if (buff == NULL)
		return -ENOMEM;
	sprintf(buff, "__get_free_pages test ok [%d]\n", order);
	printk(buff);
	free_pages((unsigned long)buff, order);
	if (fail) {
		printk(KERN_ERR "hello: failing on request\n");
		return -ENOMEM;
	}
	return positive ? 1 : 0;
}

static void __exit hello_exit(void)
{
	printk(KERN_INFO "goodbye %s\n", who);
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("Dual BSD/GPL");
MODULE_AUTHOR("kmem tests");
MODULE_DESCRIPTION("insmod test module");
