/* Memory pools through the C ABI: the seed's call sequence (alloc_fn/free_fn counted at each
 * step, 4/4/4/4), the kernel's mempool_t layout (pool->min_nr, curr_nr), both mempool_resize
 * forms, mempool_init/mempool_exit on an embedded pool, the slab, kmalloc and page helper pairs,
 * mempool_alloc_preallocated, and the reports for misuse. */
#include <linux/slab.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include "ktest.h"

_Static_assert(sizeof(mempool_t) == 88, "the layout kmem-ffi's mempool_t mirrors");

static int allocs, frees, number;

static void *count_alloc(gfp_t gfp_mask, void *pool_data)
{
	int *element = kmalloc(sizeof(int) + (size_t)pool_data, gfp_mask);
	allocs++;
	if (element)
		*element = number++;
	return element;
}

static void count_free(void *element, void *pool_data)
{
	(void)pool_data;
	frees++;
	kfree(element);
}

static gfp_t last_gfp;

static void *gfp_alloc(gfp_t gfp_mask, void *pool_data)
{
	last_gfp = gfp_mask;
	return count_alloc(gfp_mask, pool_data);
}

static void *failing_alloc(gfp_t gfp_mask, void *pool_data)
{
	(void)gfp_mask;
	(void)pool_data;
	return NULL;
}

/* The book's callback type takes int gfp_mask. */
static void *legacy_alloc(int gfp_mask, void *pool_data)
{
	return count_alloc((gfp_t)gfp_mask, pool_data);
}

static void ctor(void *obj) { (void)obj; }

int main(void)
{
	mempool_t *mp, embedded;
	struct kmem_cache *cache;
	struct page *page;
	int *element[4], lp, on_stack = 0;
	char text[160];
	void *e;

	/* The seed's sequence: MIN_ELEMENT = TEST_ELEMENT = 4. */
	mp = mempool_create(4, legacy_alloc, count_free, (void *)128);
	CHECK(mp != NULL);
	CHECK_EQ_UL(allocs, 4);	/* the reserve is filled at once */
	CHECK_EQ_UL(mp->min_nr, 4);
	CHECK_EQ_UL(mp->curr_nr, 4);
	CHECK(mempool_initialized(mp) && mempool_is_saturated(mp));
	CHECK(mp->pool_data == (void *)128 && mp->free == count_free);
	for (lp = 0; lp < 4; lp++)
		element[lp] = mempool_alloc(mp, GFP_KERNEL);
	CHECK_EQ_UL(allocs, 8);	/* alloc_fn first, while it succeeds */
	for (lp = 0; lp < 4; lp++)
		CHECK(element[lp] && *element[lp] == 4 + lp);	/* "alloc data 4..7" */
	CHECK_EQ_UL(mp->curr_nr, 4);
	for (lp = 0; lp < 4; lp++)
		mempool_free(element[lp], mp);
	CHECK_EQ_UL(frees, 4);	/* the reserve is full: back to free_fn */
	mempool_destroy(mp);
	CHECK_EQ_UL(frees, 8);	/* and the reserve goes at destroy */
	CHECK_EQ_UL(allocs, 8);

	/* The reserve serves what alloc_fn cannot: alloc_preallocated never calls it. */
	allocs = frees = 0;
	mp = mempool_create(2, count_alloc, count_free, (void *)16);
	e = mempool_alloc_preallocated(mp);
	CHECK(e != NULL && allocs == 2 && mp->curr_nr == 1);
	mempool_free(e, mp);	/* refills the reserve, not free_fn */
	CHECK(frees == 0 && mp->curr_nr == 2);
	mempool_free(NULL, mp);	/* ignored, as in the kernel */
	CHECK_EQ_UL(frees, 0);

	/* mempool_resize: today's two arguments and the book's three. */
	CHECK_EQ_UL(mempool_resize(mp, 5), 0);
	CHECK(mp->min_nr == 5 && mp->curr_nr == 5 && allocs == 5);
	CHECK_EQ_UL(mempool_resize(mp, 3, GFP_KERNEL), 0);
	CHECK(mp->min_nr == 3 && mp->curr_nr == 3 && frees == 2);
	kmem_dmesg_clear();
	CHECK_EQ_UL(mempool_resize(mp, 0), -EINVAL);
	CHECK_LOG("kernel BUG at mm/mempool.c: mempool_resize: new_min_nr <= 0");
	CHECK_EQ_UL(mp->min_nr, 3);
	mempool_destroy(mp);
	CHECK_EQ_UL(frees, 5);

	/* Slab-backed pool (seed 003) and the embedded pool of mempool_init. */
	cache = kmem_cache_create("ktest_pool", 10240, 0, SLAB_HWCACHE_ALIGN, NULL);
	CHECK(cache != NULL);
	mp = mempool_create_slab_pool(6, cache);
	CHECK(mp && mp->min_nr == 6 && mp->pool_data == cache);
	e = mempool_alloc(mp, GFP_KERNEL);
	CHECK(e && ksize(e) >= 10240);
	mempool_free(e, mp);
	mempool_destroy(mp);
	memset(&embedded, 0, sizeof(embedded));
	CHECK(!mempool_initialized(&embedded));
	mempool_exit(&embedded);	/* a zeroed pool: nothing to do */
	CHECK_EQ_UL(mempool_init(&embedded, 3, mempool_alloc_slab, mempool_free_slab, cache), 0);
	CHECK(mempool_initialized(&embedded) && embedded.min_nr == 3 && embedded.curr_nr == 3);
	e = mempool_alloc(&embedded, GFP_NOWAIT);
	CHECK(e != NULL);
	mempool_free(e, &embedded);
	mempool_exit(&embedded);
	CHECK(!mempool_initialized(&embedded));
	/* The init forms of the helper pools (include/linux/mempool.h). */
	CHECK_EQ_UL(mempool_init_slab_pool(&embedded, 2, cache), 0);
	CHECK(embedded.alloc == mempool_alloc_slab && embedded.pool_data == cache && embedded.curr_nr == 2);
	mempool_exit(&embedded);
	CHECK_EQ_UL(mempool_init_kmalloc_pool(&embedded, 2, 300), 0);
	e = mempool_alloc(&embedded, GFP_KERNEL);
	CHECK(e && ksize(e) == 512 && embedded.free == mempool_kfree);
	mempool_free(e, &embedded);
	mempool_exit(&embedded);
	CHECK(!mempool_initialized(&embedded));
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);	/* every element went back */
	/* A failed mempool_init leaves the pool uninitialised, as the kernel's mempool_exit
	 * does (elements = NULL): the usual cleanup, which asks mempool_initialized() first,
	 * does not call mempool_exit on an uninitialised structure. */
	memset(&embedded, 0xff, sizeof(embedded));
	CHECK_EQ_UL(mempool_init(&embedded, 2, failing_alloc, count_free, NULL), -ENOMEM);
	CHECK(!mempool_initialized(&embedded) && embedded.curr_nr == 0 && embedded.min_nr == 2);
	memset(&embedded, 0xff, sizeof(embedded));
	CHECK_EQ_UL(mempool_init(&embedded, -1, count_alloc, count_free, NULL), -EINVAL);
	CHECK(!mempool_initialized(&embedded));

	/* kvmalloc pools (6.x): small elements from kmalloc, large ones from vmalloc. */
	mp = mempool_create_kvmalloc_pool(2, 3 * PAGE_SIZE);
	CHECK(mp && mp->alloc == mempool_kvmalloc && mp->curr_nr == 2);
	e = mempool_alloc(mp, GFP_KERNEL);
	CHECK(e != NULL);
	if (e)
		memset(e, 0x7e, 3 * PAGE_SIZE);
	mempool_free(e, mp);
	mempool_destroy(mp);
	memset(&embedded, 0, sizeof(embedded));
	CHECK_EQ_UL(mempool_init_kvmalloc_pool(&embedded, 1, 100), 0);
	e = mempool_alloc(&embedded, GFP_KERNEL);
	CHECK(e && ksize(e) == 128);
	mempool_free(e, &embedded);
	mempool_exit(&embedded);

	/* kmalloc and page pools. */
	mp = mempool_create_kmalloc_pool(2, 300);
	e = mempool_alloc(mp, GFP_KERNEL);
	CHECK(e && ksize(e) == 512);
	mempool_free(e, mp);
	mempool_destroy(mp);
	mp = mempool_create_page_pool(2, 1);
	page = mempool_alloc(mp, GFP_KERNEL);
	CHECK(page != NULL && page_count(page) == 1);
	mempool_free(page, mp);
	mempool_destroy(mp);

	/* The cache of a live slab pool is not destroyed under it: reported, -EBUSY, and both
	 * the pool and the cache go on working until the pool is gone. */
	cache = kmem_cache_create("ktest_pool_pinned", 64, 0, SLAB_NO_MERGE, NULL);
	mp = mempool_create_slab_pool(1, cache);
	kmem_dmesg_clear();
	CHECK_EQ_UL(kmem_cache_destroy(cache), -EBUSY);
	snprintf(text, sizeof(text), "<4>kmem_cache_destroy ktest_pool_pinned: Slab cache still used by mempool %p; not destroyed", (void *)mp);
	CHECK_LOG(text);
	CHECK_NOT_LOG("Objects remaining");
	e = mempool_alloc(mp, GFP_KERNEL);
	CHECK(e != NULL && ksize(e) >= 64);
	mempool_free(e, mp);
	CHECK_EQ_UL(kmem_cache_size(cache), 64);	/* the handle is still live */
	mempool_destroy(mp);
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);

	/* A page pool's free_fn is given a foreign pointer when the reserve is full: reported by
	 * the page allocator and ignored, even misaligned for a struct page. */
	mp = mempool_create_page_pool(1, 0);
	kmem_dmesg_clear();
	mempool_free((char *)&on_stack + 1, mp);
	CHECK_LOG("BUG: free_pages: order:0: page is not in this machine's mem_map; ignored");
	CHECK_EQ_UL(mp->curr_nr, 1);
	mempool_destroy(mp);

	/* mempool_exit of a pool mempool_create made, then mempool_destroy, as the kernel allows:
	 * exit empties it (twice is fine), the destroy frees the structure, quietly. Using it in
	 * between, or destroying it twice, is reported and ignored. */
	cache = kmem_cache_create("ktest_pool_exit", 64, 0, SLAB_NO_MERGE, NULL);
	mp = mempool_create_slab_pool(2, cache);
	kmem_dmesg_clear();
	mempool_exit(mp);
	mempool_exit(mp);
	CHECK(!mempool_initialized(mp) && mp->curr_nr == 0);
	CHECK_NOT_LOG("BUG");
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);	/* the exited pool holds no cache */
	CHECK(mempool_alloc(mp, GFP_KERNEL) == NULL);
	snprintf(text, sizeof(text), "kmem: mempool_alloc() called with mempool_t %p after mempool_exit (no elements array); ignored", (void *)mp);
	CHECK_LOG(text);
	kmem_dmesg_clear();
	mempool_destroy(mp);
	CHECK_NOT_LOG("BUG");
	mempool_destroy(mp);
	snprintf(text, sizeof(text), "kmem: mempool_destroy() called with mempool_t %p after mempool_destroy freed it (double destroy); ignored", (void *)mp);
	CHECK_LOG(text);

	/* mempool_init_node (SEMANTICS §6.1): mempool_init with the caller's mask for the
	 * array and the reserve, and a node (one node: any id). */
	memset(&embedded, 0xff, sizeof(embedded));
	CHECK_EQ_UL(mempool_init_node(&embedded, 2, gfp_alloc, count_free, NULL, GFP_NOIO, NUMA_NO_NODE), 0);
	CHECK(mempool_initialized(&embedded) && embedded.min_nr == 2 && embedded.curr_nr == 2);
	CHECK_EQ_UL(last_gfp, GFP_NOIO);
	mempool_exit(&embedded);
	CHECK(!mempool_initialized(&embedded));
	CHECK_EQ_UL(mempool_init_node(&embedded, 1, failing_alloc, count_free, NULL, GFP_KERNEL, 0), -ENOMEM);
	CHECK(!mempool_initialized(&embedded));

	/* mempool_destroy of a pool mempool_init built in the caller's storage: the kernel's
	 * mempool_exit, then its kfree of memory kmalloc never gave, which warns. The pool is
	 * exited (its reserve freed), the misuse reported, and the storage left alone. */
	CHECK_EQ_UL(mempool_init_kmalloc_pool(&embedded, 2, 100), 0);
	kmem_dmesg_clear();
	mempool_destroy(&embedded);
	snprintf(text, sizeof(text), "mempool_destroy: pool %p was built by mempool_init in the caller's storage", (void *)&embedded);
	CHECK_LOG(text);
	CHECK(!mempool_initialized(&embedded) && embedded.curr_nr == 0);
	CHECK_EQ_UL(mempool_init_kmalloc_pool(&embedded, 1, 100), 0);	/* usable again */
	mempool_exit(&embedded);

	/* A slab pool over a cache with a constructor is the kernel's VM_BUG_ON: it fails. */
	cache = kmem_cache_create("ktest_pool_ctor", 64, 0, 0, ctor);
	kmem_dmesg_clear();
	CHECK(mempool_create_slab_pool(2, cache) == NULL);
	CHECK_LOG("kernel BUG at mm/mempool.c: mempool_alloc_slab: cache ktest_pool_ctor has a constructor");
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);

	/* Misuse: NULL and foreign pools are reported and ignored. */
	kmem_dmesg_clear();
	mempool_destroy(NULL);	/* a no-op, as in the kernel */
	CHECK_NOT_LOG("BUG");
	mempool_free(&on_stack, NULL);
	CHECK_LOG("kmem: mempool_free() called with a NULL mempool_t pointer; ignored");
	kmem_dmesg_clear();
	CHECK(mempool_alloc((mempool_t *)&on_stack, GFP_KERNEL) == NULL);
	CHECK_LOG("kmem: mempool_alloc() called with a mempool_t pointer that kmem did not hand out; ignored");
	kmem_dmesg_clear();
	CHECK(mempool_create(2, NULL, count_free, NULL) == NULL);
	CHECK_LOG("kmem: mempool_create_node() called with a NULL alloc_fn; ignored");

	return ktest_result("mempool");
}
