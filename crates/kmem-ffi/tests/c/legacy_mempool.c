/* The book's mempool.c shapes (compile-only): its own mempool_init/mempool_exit module
 * functions, an allocation callback taking `int gfp_mask`, memset without <linux/string.h>. */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mempool.h>

typedef struct {
	int number;
	char string[128];
} TMemElement;

static int elementcount;

void *mempool_alloc_test(int gfp_mask, void *pool_data)
{
	TMemElement *data = kmalloc(sizeof(TMemElement), gfp_mask);
	(void)pool_data;
	if (data != NULL)
		data->number = elementcount++;
	return data;
}

void mempool_free_test(void *element, void *pool_data)
{
	(void)pool_data;
	kfree(element);
}

int mempool_init(void)
{
	TMemElement *element[4];
	mempool_t *mp;

	memset(element, 0, sizeof(element));
	mp = mempool_create(4, mempool_alloc_test, mempool_free_test, NULL);
	element[0] = mempool_alloc(mp, GFP_KERNEL);
	mempool_free(element[0], mp);
	mempool_destroy(mp);
	return 0;
}

void mempool_exit(void)
{
	printk("Module MEMPOOL Test End\n");
}

module_init(mempool_init);
module_exit(mempool_exit);
MODULE_LICENSE("Dual BSD/GPL");
