/* The book's 2.4 style: init_module/cleanup_module defined by hand, no license. */
#define MODULE
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/spinlock.h>
#include <linux/gfp.h>

static spinlock_t lock;

int init_module(void)
{
	unsigned long flags, page;

	printk("Module Memory Test\n");
	spin_lock_init(&lock);
	spin_lock_irqsave(&lock, flags);
	page = __get_free_pages(GFP_KERNEL, 0);	/* sleeping allocation under a spin lock */
	spin_unlock_irqrestore(&lock, flags);
	free_pages(page, 0);
	return 0;
}

void cleanup_module(void)
{
	printk("Module Memory Test End\n");
}
