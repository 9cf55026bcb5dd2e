/* A module that frees some of what it allocates and, with leak=1 (the default), forgets some:
 * a kmalloc'd string, a cache object, a vmalloc area and a mempool. Objects it hands to
 * kfree_rcu, marks with kmemleak_not_leak, or frees in its exit are no leaks. fail=1 makes
 * its init fail after leaking one buffer. */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/mempool.h>
#include <linux/kmemleak.h>
#include <linux/rcupdate.h>

static bool leak = true;
module_param(leak, bool, 0);
static bool fail;
module_param(fail, bool, 0);

struct node {
	struct rcu_head rcu;
	int value;
};

static struct kmem_cache *cache;
static void *kept;
static char *forgotten_string;

static noinline void leak_some(void)
{
	struct node *n;
	void *area;

	forgotten_string = kstrdup("leaked by leaky_init", GFP_KERNEL);
	forgotten_string = NULL; /* The only reference, dropped. */
	n = kmem_cache_alloc(cache, GFP_KERNEL);
	if (n)
		n->value = 0x4b4d454d; /* "MEMK" little-endian. */
	area = vmalloc(3 * PAGE_SIZE + 1);
	(void)area;
	(void)mempool_create_kmalloc_pool(2, 64);
}

static int __init leaky_init(void)
{
	struct node *n;
	void *tmp, *grown;

	cache = kmem_cache_create("leaky_node", sizeof(struct node), 0, SLAB_HWCACHE_ALIGN, NULL);
	if (!cache)
		return -ENOMEM;
	/* Freed at once, or moved and freed: none of these is a leak. */
	kfree(kmalloc(100, GFP_KERNEL));
	tmp = kmalloc(16, GFP_KERNEL);
	grown = krealloc(tmp, 4096, GFP_KERNEL);
	kfree(grown ? grown : tmp);
	vfree(vzalloc(2 * PAGE_SIZE));
	n = kmem_cache_alloc(cache, GFP_KERNEL);
	if (n)
		kfree_rcu(n, rcu);
	kept = kzalloc(48, GFP_KERNEL);
	kmemleak_not_leak(kept);
	if (leak)
		leak_some();
	if (fail) {
		(void)kmalloc(200, GFP_KERNEL);
		rcu_barrier();
		kmem_cache_destroy(cache);
		return -EINVAL;
	}
	return 0;
}

static void __exit leaky_exit(void)
{
	rcu_barrier();
	kfree(kept);
	/* The cache still holds leak_some's object with leak=1: kept alive (and reported). */
	if (!leak)
		kmem_cache_destroy(cache);
}

module_init(leaky_init);
module_exit(leaky_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmemleak test module");
