/* Today's embedded-pool API (compile-only): mempool_init(pool, ...) and mempool_exit(pool). */
#include <linux/mempool.h>

static mempool_t pool;

int setup(struct kmem_cache *cache)
{
	int err = mempool_init(&pool, 16, mempool_alloc_slab, mempool_free_slab, cache);
	if (err)
		return err;
	mempool_exit(&pool);
	return mempool_resize(mempool_create_kmalloc_pool(2, 64), 4);
}
