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

/* The newest kernel's bulk calls (2025). */
unsigned int bulk(mempool_t *mp, void **elems, unsigned int count)
{
	if (mempool_alloc_bulk(mp, elems, count, 0))
		return 0;
	return mempool_free_bulk(mp, elems, count);
}
