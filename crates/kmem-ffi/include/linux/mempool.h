/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: memory pools (include/linux/mempool.h), exported by libkmem (crates/kmem-ffi/src/mempool.rs).
 * mempool_t has the kernel's layout; min_nr and curr_nr are kept up to date after every call,
 * elements is non-NULL while the pool is initialised but opaque (the reserve lives in kmem).
 *
 * mempool_resize takes the kernel's 2 arguments (pool, new_min_nr) or the book's 3
 * (pool, new_min_nr, gfp_mask); the gfp is then used for the elements the resize allocates. */
#ifndef _KMEM_LINUX_MEMPOOL_H
#define _KMEM_LINUX_MEMPOOL_H

#include <linux/compiler.h>
#include <linux/gfp.h>
#include <linux/slab.h>
#include <linux/types.h>
#include <linux/wait.h>

struct kmem_cache;

typedef void *(mempool_alloc_t)(gfp_t gfp_mask, void *pool_data);
typedef void (mempool_free_t)(void *element, void *pool_data);
/* The book's allocation callback takes `int gfp_mask` (before gfp_t existed). */
typedef void *(mempool_alloc_legacy_t)(int gfp_mask, void *pool_data);

/* The kernel's layout; seed 003 reads pool->min_nr. */
typedef struct mempool {
	spinlock_t lock;
	int min_nr;		/* nr of elements at *elements */
	int curr_nr;		/* current nr of elements at *elements */
	void **elements;
	void *pool_data;
	mempool_alloc_t *alloc;
	mempool_free_t *free;
	wait_queue_head_t wait;
} mempool_t;

static inline bool mempool_initialized(mempool_t *pool) { return pool->elements != NULL; }
static inline bool mempool_is_saturated(mempool_t *pool) { return pool->curr_nr >= pool->min_nr; }

/* mempool_init(pool, min_nr, alloc_fn, free_fn, pool_data) and mempool_exit(pool) (Linux 4.18+)
 * are declared without a prototype on purpose before C23: the book's mempool.c, written for
 * 2.6, defines its own `int mempool_init(void)` and `void mempool_exit(void)` module functions,
 * and both must compile (-Wstrict-prototypes, which the kernel builds with, is silenced for
 * these two lines only). `kmem insmod` binds a module's own functions before kmem's exports of
 * the same name, as the kernel does. In C23 `()` means `(void)`, so there the kernel's own
 * prototypes are declared (and the book's module must be built as gnu11, as it was written). */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L
int mempool_init(mempool_t *pool, int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t *free_fn,
		 void *pool_data);
void mempool_exit(mempool_t *pool);
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
int mempool_init();
void mempool_exit();
#pragma GCC diagnostic pop
#endif
/* mempool_init with the mask for the array and the reserve, and a node (kmem has one). */
int mempool_init_node(mempool_t *pool, int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t *free_fn,
		      void *pool_data, gfp_t gfp_mask, int node_id);
mempool_t *mempool_create(int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t *free_fn,
			  void *pool_data);
/* Accepts today's callback type and the book's `int gfp_mask` one (the same calling convention),
 * and NULL (reported at run time, as the kernel would oops on it); any other type is a compile
 * error. */
#define __mempool_alloc_fn(fn)							\
	_Generic((fn),								\
		mempool_alloc_t *: (fn),					\
		mempool_alloc_legacy_t *: (mempool_alloc_t *)(fn),		\
		void *: (mempool_alloc_t *)(fn))
#define mempool_create(min_nr, alloc_fn, free_fn, pool_data)			\
	(mempool_create)((min_nr), __mempool_alloc_fn(alloc_fn), (free_fn), (pool_data))
mempool_t *mempool_create_node(int min_nr, mempool_alloc_t *alloc_fn, mempool_free_t *free_fn,
			       void *pool_data, gfp_t gfp_mask, int nid);
void mempool_destroy(mempool_t *pool);
void *mempool_alloc(mempool_t *pool, gfp_t gfp_mask) __malloc;
void *mempool_alloc_preallocated(mempool_t *pool) __malloc;
void mempool_free(void *element, mempool_t *pool);
/* The newest kernel's bulk calls (2025). mempool_alloc_bulk fills every NULL slot of
 * elems[0..count], of which `allocated` are filled already: alloc_fn first (GFP_KERNEL), then the
 * reserve, which gives the whole remainder or nothing, else it sleeps (at most 5 s, woken by a
 * free into the reserve) and retries; so it returns 0 with every slot filled. kmem also returns
 * -ENOMEM in atomic context, where it does not sleep (reported; the slots filled so far stay
 * filled), and -EINVAL for a bad pool or a NULL elems. A count above min_nr may wait for a reserve
 * that never holds enough: warned once per pool. mempool_free_bulk puts the leading elements into
 * the reserve while it is short (the slots are left as they are) and returns how many it took;
 * the caller frees elems[ret..count] with the backing allocator, as the kernel's callers do. */
int mempool_alloc_bulk(mempool_t *pool, void **elems, unsigned int count, unsigned int allocated);
unsigned int mempool_free_bulk(mempool_t *pool, void **elems, unsigned int count);

int mempool_resize(mempool_t *pool, int new_min_nr);
/* kmem: the book's 3-argument form. */
int mempool_resize_gfp(mempool_t *pool, int new_min_nr, gfp_t gfp_mask);
#define __mempool_resize_2(pool, new_min_nr)		(mempool_resize)(pool, new_min_nr)
#define __mempool_resize_3(pool, new_min_nr, gfp)	mempool_resize_gfp(pool, new_min_nr, gfp)
#define mempool_resize(...)	__PASTE(__mempool_resize_, __KMEM_NARGS(__VA_ARGS__))(__VA_ARGS__)

/* The helper pairs. A pool whose alloc_fn and free_fn are one of these pairs (however it is
 * made: the inline functions below, mempool_create, mempool_create_node, mempool_init) is kmem's
 * helper pool of that kind, as in Rust: with mempool debugging (KMEM_MEMPOOL_DEBUG=1) its
 * reserve is poisoned (0x6b..., 0xa5; 0x5a when handed out, a write while reserved reported)
 * and mempool_free of a foreign pointer or of an element already in the reserve is reported and
 * ignored. Other pools (own callbacks, mixed pairs) are custom: counted, never looked into.
 * kmem_cache_destroy of the cache of a live slab pool is refused (-EBUSY, reported). */

/* Slab-backed pools. */
void *mempool_alloc_slab(gfp_t gfp_mask, void *pool_data);
void mempool_free_slab(void *element, void *pool_data);
static inline mempool_t *mempool_create_slab_pool(int min_nr, struct kmem_cache *kc)
{
	return mempool_create(min_nr, mempool_alloc_slab, mempool_free_slab, (void *)kc);
}
static inline int mempool_init_slab_pool(mempool_t *pool, int min_nr, struct kmem_cache *kc)
{
	return mempool_init(pool, min_nr, mempool_alloc_slab, mempool_free_slab, (void *)kc);
}

/* kmalloc-backed pools: pool_data is the element size. */
void *mempool_kmalloc(gfp_t gfp_mask, void *pool_data);
void mempool_kfree(void *element, void *pool_data);
static inline mempool_t *mempool_create_kmalloc_pool(int min_nr, size_t size)
{
	return mempool_create(min_nr, mempool_kmalloc, mempool_kfree, (void *)size);
}
static inline int mempool_init_kmalloc_pool(mempool_t *pool, int min_nr, size_t size)
{
	return mempool_init(pool, min_nr, mempool_kmalloc, mempool_kfree, (void *)size);
}

/* kvmalloc-backed pools (6.x): pool_data is the element size. A custom pool for mempool
 * debugging: the kernel does not poison kvmalloc elements either. */
void *mempool_kvmalloc(gfp_t gfp_mask, void *pool_data);
void mempool_kvfree(void *element, void *pool_data);
static inline mempool_t *mempool_create_kvmalloc_pool(int min_nr, size_t size)
{
	return mempool_create(min_nr, mempool_kvmalloc, mempool_kvfree, (void *)size);
}
static inline int mempool_init_kvmalloc_pool(mempool_t *pool, int min_nr, size_t size)
{
	return mempool_init(pool, min_nr, mempool_kvmalloc, mempool_kvfree, (void *)size);
}

/* Page-backed pools: pool_data is the order. */
void *mempool_alloc_pages(gfp_t gfp_mask, void *pool_data);
void mempool_free_pages(void *element, void *pool_data);
static inline mempool_t *mempool_create_page_pool(int min_nr, int order)
{
	return mempool_create(min_nr, mempool_alloc_pages, mempool_free_pages, (void *)(long)order);
}
static inline int mempool_init_page_pool(mempool_t *pool, int min_nr, int order)
{
	return mempool_init(pool, min_nr, mempool_alloc_pages, mempool_free_pages, (void *)(long)order);
}

#endif
