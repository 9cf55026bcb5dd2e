/* The book's legacy forms compile next to today's (compile-only; slab.c and mempool.c run
 * them). The _Static_asserts check which function each form selects. */
#define MODULE
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/mempool.h>
#include <linux/vmalloc.h>
#include <asm/page.h>

#define SAME(a, b) __builtin_types_compatible_p(__typeof__(a), __typeof__(b))

static void ctor26(void *obj, kmem_cache_t *cache, unsigned long flags)
{
	(void)obj; (void)cache;
	if (flags & SLAB_CTOR_CONSTRUCTOR)
		return;
	(void)(flags & SLAB_CTOR_ATOMIC);
}

static void ctor(void *obj) { (void)obj; }

/* The book's mempool callbacks take int gfp_mask; today's take gfp_t. */
static void *alloc_fn(gfp_t gfp_mask, void *pool_data) { return kmalloc((size_t)pool_data, gfp_mask); }
static void free_fn(void *element, void *pool_data) { (void)pool_data; kfree(element); }

int init_module(void)
{
	struct kmem_cache_args args = { .align = 64, .ctor = ctor };
	kmem_cache_t *scullc_cache, *a, *b, *c, *d, *e;
	mempool_t *pool;
	char *buff;

	/* LDD3: kmem_cache_create(name, size, offset, flags, ctor, dtor). */
	scullc_cache = kmem_cache_create("scullc", 4000, 0, SLAB_HWCACHE_ALIGN | SLAB_NO_REAP, NULL, NULL);
	a = kmem_cache_create("ldd", 64, 0, SLAB_CACHE_DMA, ctor26, ctor26);
	/* 2.6.23 .. 6.x: kmem_cache_create(name, size, align, flags, ctor). */
	b = kmem_cache_create("MyselfCache", 10240, 0, SLAB_HWCACHE_ALIGN, NULL);
	c = kmem_cache_create("modern", 64, 8, 0, ctor);
	/* 6.12+: kmem_cache_create(name, size, &args, flags) and (name, size, NULL, flags). */
	d = kmem_cache_create("args", 64, &args, SLAB_HWCACHE_ALIGN);
	e = kmem_cache_create("defaults", 64, NULL, 0);
	_Static_assert(SAME(kmem_cache_create("x", 1, &args, 0), struct kmem_cache *), "args form");

	pool = mempool_create(4, alloc_fn, free_fn, (void *)128);
	mempool_resize(pool, 8);			/* today's 2 arguments */
	mempool_resize(pool, 8, GFP_KERNEL);		/* the book's 3 */
	printk("min_nr = %d\n", pool->min_nr);
	mempool_destroy(pool);

	buff = kmalloc(32 * PAGE_SIZE, GFP_KERNEL | __GFP_WAIT | __GFP_REPEAT | __GFP_COLD);
	kfree(buff);
	buff = vmalloc(33 * PAGE_SIZE);
	vfree(buff);
	(void)get_order(8192 * 10);
	(void)MAX_ORDER;
	if (kmem_cache_destroy(scullc_cache))	/* the book checks the result */
		printk(KERN_ERR "leak\n");
	kmem_cache_destroy(a);
	kmem_cache_destroy(b);
	kmem_cache_destroy(c);
	kmem_cache_destroy(d);
	kmem_cache_destroy(e);
	return 0;
}

void cleanup_module(void)
{
	printk("Module Memory Test End\n");
}
