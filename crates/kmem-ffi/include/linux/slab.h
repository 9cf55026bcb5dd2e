/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: slab caches and kmalloc (include/linux/slab.h), with the book's legacy forms.
 *
 * Exported by libkmem (crates/kmem-ffi/src/slab.rs, kmalloc.rs and buckets.rs).
 *
 * kmem_cache_create accepts every form kernel-style code has used:
 *   kmem_cache_create(name, size, offset, flags, ctor, dtor)   LDD3 / 2.6, ctor and dtor of
 *                                                              type (void *, kmem_cache_t *, unsigned long)
 *   kmem_cache_create(name, size, align, flags, ctor)          2.6.23 .. 6.x, ctor (void *);
 *                                                              a 2.6-style 3-argument ctor is accepted too
 *   kmem_cache_create(name, size, &args, flags)                6.12+, struct kmem_cache_args
 *   kmem_cache_create(name, size, NULL, flags)                 6.12+, default arguments
 * kmem_cache_destroy returns int as in the book (0, or -EBUSY when objects are still
 * allocated: the kernel's reports are logged, the cache's memory stays, but the handle is
 * dead), so code of both eras compiles. 2.6 constructors get SLAB_CTOR_CONSTRUCTOR (and
 * SLAB_CTOR_ATOMIC when the allocation may not sleep); destructors get 0 and run when a
 * slab's pages go back to the page allocator. */
#ifndef _KMEM_LINUX_SLAB_H
#define _KMEM_LINUX_SLAB_H

#include <linux/cleanup.h>
#include <linux/compiler.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/numa.h>
#include <linux/overflow.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

/* Flags (crates/kmem-core/src/slab/flags.rs decides the configuration). */
#define SLAB_CONSISTENCY_CHECKS	((slab_flags_t)(1U << 0))
#define SLAB_RED_ZONE		((slab_flags_t)(1U << 1))
#define SLAB_POISON		((slab_flags_t)(1U << 2))
#define SLAB_KMALLOC		((slab_flags_t)(1U << 3))
#define SLAB_HWCACHE_ALIGN	((slab_flags_t)(1U << 4))
#define SLAB_CACHE_DMA		((slab_flags_t)(1U << 5))
#define SLAB_CACHE_DMA32	((slab_flags_t)(1U << 6))
#define SLAB_STORE_USER		((slab_flags_t)(1U << 7))
#define SLAB_PANIC		((slab_flags_t)(1U << 8))
#define SLAB_TYPESAFE_BY_RCU	((slab_flags_t)(1U << 9))
#define SLAB_TRACE		((slab_flags_t)(1U << 10))
#define SLAB_NOLEAKTRACE	((slab_flags_t)(1U << 11))
#define SLAB_NO_MERGE		((slab_flags_t)(1U << 12))
#define SLAB_FAILSLAB		((slab_flags_t)(1U << 13))
#define SLAB_ACCOUNT		((slab_flags_t)(1U << 14))
#define SLAB_NO_USER_FLAGS	((slab_flags_t)(1U << 15))
#define SLAB_RECLAIM_ACCOUNT	((slab_flags_t)(1U << 16))
#define __OBJECT_POISON		((slab_flags_t)(1U << 17))	/* internal */
#define __CMPXCHG_DOUBLE	((slab_flags_t)(1U << 18))	/* internal */
#define SLAB_DEBUG_OBJECTS	((slab_flags_t)0)
#define SLAB_KASAN		((slab_flags_t)0)
#define SLAB_SKIP_KFENCE	((slab_flags_t)0)
#define SLAB_NO_OBJ_EXT		((slab_flags_t)0)
#define SLAB_TEMPORARY		SLAB_RECLAIM_ACCOUNT
#define SLAB_DESTROY_BY_RCU	SLAB_TYPESAFE_BY_RCU
/* The book's: never shrink this cache under memory pressure. */
#define SLAB_NO_REAP		((slab_flags_t)(1U << 31))

/* The 2.6 constructor's flags argument (not slab_flags_t). */
#define SLAB_CTOR_CONSTRUCTOR	0x001UL
#define SLAB_CTOR_ATOMIC	0x002UL

/* kmalloc geometry. */
#define ARCH_KMALLOC_MINALIGN	8
#define KMALLOC_MIN_SIZE	8
#define KMALLOC_SHIFT_HIGH	(PAGE_SHIFT + 1)
#define KMALLOC_SHIFT_MAX	(MAX_PAGE_ORDER + PAGE_SHIFT)
#define KMALLOC_MAX_SIZE	(1UL << KMALLOC_SHIFT_MAX)
#define KMALLOC_MAX_CACHE_SIZE	(1UL << KMALLOC_SHIFT_HIGH)
#define ZERO_SIZE_PTR		((void *)16)
#define ZERO_OR_NULL_PTR(x)	((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)

struct kmem_cache;
typedef struct kmem_cache kmem_cache_t;

struct kmem_cache_args {
	unsigned int align;
	unsigned int useroffset;
	unsigned int usersize;
	unsigned int freeptr_offset;
	bool use_freeptr_offset;
	void (*ctor)(void *);
	unsigned int sheaf_capacity;	/* 6.18: capacity of prefilled sheaves, 0 for none */
};

typedef void (*kmem_cache_ctor_t)(void *);
typedef void (*kmem_cache_legacy_ctor_t)(void *, kmem_cache_t *, unsigned long);

struct kmem_cache *__kmem_cache_create(const char *name, unsigned int size, unsigned int align,
				       slab_flags_t flags, void (*ctor)(void *));
struct kmem_cache *__kmem_cache_create_args(const char *name, unsigned int object_size,
					    struct kmem_cache_args *args, slab_flags_t flags);
/* kmem: the 2.6 form, constructor and destructor with (object, cache, SLAB_CTOR_* flags). */
struct kmem_cache *kmem_cache_create_dtor(const char *name, size_t size, size_t offset,
					  unsigned long flags, kmem_cache_legacy_ctor_t ctor,
					  kmem_cache_legacy_ctor_t dtor);

static inline struct kmem_cache *__kmem_cache_default_args(const char *name, unsigned int size,
							   struct kmem_cache_args *args,
							   slab_flags_t flags)
{
	struct kmem_cache_args kmem_default_args = { 0 };
	(void)args;
	return __kmem_cache_create_args(name, size, &kmem_default_args, flags);
}

static inline struct kmem_cache *__kmem_cache_create_legacy5(const char *name, unsigned int size,
							     unsigned int align, slab_flags_t flags,
							     kmem_cache_legacy_ctor_t ctor)
{
	return kmem_cache_create_dtor(name, size, align, flags, ctor, NULL);
}

#define __kmem_cache_create_4(name, size, args, flags)				\
	_Generic((args),							\
		struct kmem_cache_args *: __kmem_cache_create_args,		\
		void *: __kmem_cache_default_args)(name, size, args, flags)
#define __kmem_cache_create_5(name, size, align, flags, ctor)			\
	_Generic((ctor),							\
		kmem_cache_legacy_ctor_t: __kmem_cache_create_legacy5,		\
		default: __kmem_cache_create)(name, size, align, flags, ctor)
#define __kmem_cache_create_6(name, size, offset, flags, ctor, dtor)		\
	kmem_cache_create_dtor(name, size, offset, flags, ctor, dtor)
#define kmem_cache_create(...)							\
	__PASTE(__kmem_cache_create_, __KMEM_NARGS(__VA_ARGS__))(__VA_ARGS__)

#define KMEM_CACHE(__struct, __flags)						\
	__kmem_cache_create(#__struct, sizeof(struct __struct),		\
			    __alignof__(struct __struct), (__flags), NULL)

/* kmem_cache_create_usercopy: the hardened-usercopy region [useroffset, useroffset + usersize)
 * of each object; a cache with one is never merged. As the kernel's inline (6.12+). */
static inline struct kmem_cache *kmem_cache_create_usercopy(const char *name, unsigned int size,
							    unsigned int align, slab_flags_t flags,
							    unsigned int useroffset,
							    unsigned int usersize,
							    void (*ctor)(void *))
{
	struct kmem_cache_args kmem_args = {
		.align = align,
		.useroffset = useroffset,
		.usersize = usersize,
		.ctor = ctor,
	};
	return __kmem_cache_create_args(name, size, &kmem_args, flags);
}

#define KMEM_CACHE_USERCOPY(__struct, __flags, __field)				\
	__kmem_cache_create_args(#__struct, sizeof(struct __struct),		\
		&(struct kmem_cache_args) {						\
			.align = __alignof__(struct __struct),				\
			.useroffset = offsetof(struct __struct, __field),		\
			.usersize = sizeof(((struct __struct *)0)->__field),		\
		}, (__flags))

int kmem_cache_destroy(struct kmem_cache *s);
int kmem_cache_shrink(struct kmem_cache *s);
unsigned int kmem_cache_size(struct kmem_cache *s);
const char *kmem_cache_name(struct kmem_cache *s);
void *kmem_cache_alloc(struct kmem_cache *s, gfp_t flags);
void kmem_cache_free(struct kmem_cache *s, void *objp);
int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags, size_t size, void **p);
void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p);

/* Prefilled sheaves (6.18): up to `size` later allocations that cannot fail. A cache gets
 * sheaves of its own capacity from kmem_cache_args.sheaf_capacity; a larger prefill makes an
 * "oversize" sheaf. The sheaf is opaque; kmem checks every pointer passed back. */
struct slab_sheaf;
struct slab_sheaf *kmem_cache_prefill_sheaf(struct kmem_cache *s, gfp_t gfp, unsigned int size);
int kmem_cache_refill_sheaf(struct kmem_cache *s, gfp_t gfp, struct slab_sheaf **sheafp,
			    unsigned int size);
void kmem_cache_return_sheaf(struct kmem_cache *s, gfp_t gfp, struct slab_sheaf *sheaf);
void *kmem_cache_alloc_from_sheaf(struct kmem_cache *s, gfp_t gfp, struct slab_sheaf *sheaf) __malloc;
unsigned int kmem_cache_sheaf_size(struct slab_sheaf *sheaf);

/* The userspace test shim's hooks (tools/testing/shared/linux.c, SEMANTICS §8.6), on real
 * caches, for ports of the radix-tree/xarray/maple-tree userspace suites. Opt-in per cache:
 * from the first kmem_cache_set_non_kernel() on it (any value, 0 too) until it is destroyed, a
 * request without __GFP_DIRECT_RECLAIM fails (NULL) when the budget is 0, arming the callback,
 * and otherwise takes one from the budget; other caches are never gated. An armed callback
 * runs once, with the private pointer and no kmem lock held, at the start of the cache's next
 * allocation. Bulk and sheaf fills gate each object (all or nothing; the budget taken stays
 * spent). The shim's global `int nr_allocated` is the function kmem_nr_allocated() here. */
void kmem_cache_set_non_kernel(struct kmem_cache *cachep, unsigned int val);
void kmem_cache_set_callback(struct kmem_cache *cachep, void (*callback)(void *));
void kmem_cache_set_private(struct kmem_cache *cachep, void *priv);
/* Objects out with users (a held sheaf counts all it holds). */
unsigned long kmem_cache_nr_allocated(struct kmem_cache *cachep);
/* Objects handed out since the cache was made or last zeroed. */
unsigned long kmem_cache_nr_tallocated(struct kmem_cache *cachep);
void kmem_cache_zero_nr_tallocated(struct kmem_cache *cachep);
/* kmem_cache_size(cachep) * kmem_cache_nr_allocated(cachep). */
unsigned long kmem_cache_get_alloc(struct kmem_cache *cachep);
/* kmem_cache_nr_allocated summed over the live caches but kmalloc's (the shim counts kmalloc's
 * objects in kmalloc_nr_allocated, which kmem does not offer). A failure callback also runs for,
 * and is armed by, a bulk allocation here; the shim's bulk call does neither. */
unsigned long kmem_nr_allocated(void);
/* kfree_bulk: each object to its own cache. */
static inline void kfree_bulk(size_t size, void **p) { kmem_cache_free_bulk(NULL, size, p); }
static inline void *kmem_cache_zalloc(struct kmem_cache *k, gfp_t flags)
{
	return kmem_cache_alloc(k, flags | __GFP_ZERO);
}

void *kmalloc(size_t size, gfp_t flags) __malloc;
void *kmalloc_array(size_t n, size_t size, gfp_t flags) __malloc;
void *kcalloc(size_t n, size_t size, gfp_t flags) __malloc;
void *krealloc(const void *objp, size_t new_size, gfp_t flags) __must_check;
void *krealloc_array(void *p, size_t new_n, size_t new_size, gfp_t flags) __must_check;
void kfree(const void *objp);
void kfree_sensitive(const void *objp);
size_t ksize(const void *objp);
size_t kmalloc_size_roundup(size_t size);
static inline void *kzalloc(size_t size, gfp_t flags) { return kmalloc(size, flags | __GFP_ZERO); }
/* The kernel records the caller's caller for slab debugging; here it is kmalloc. */
#define kmalloc_track_caller(size, flags)	kmalloc((size), (flags))
#define kzfree(p)	kfree_sensitive(p)

void *kvmalloc(size_t size, gfp_t flags) __malloc;
void *kvmalloc_array(size_t n, size_t size, gfp_t flags) __malloc;
void *kvrealloc(const void *p, size_t size, gfp_t flags) __must_check;
void kvfree(const void *addr);
void kvfree_sensitive(const void *addr, size_t len);
static inline void *kvzalloc(size_t size, gfp_t flags) { return kvmalloc(size, flags | __GFP_ZERO); }

/* Scope-based freeing (<linux/cleanup.h>): `p __free(kfree)`, `p __free(kvfree)`. */
DEFINE_FREE(kfree, void *, if (!IS_ERR_OR_NULL(_T)) kfree(_T))
DEFINE_FREE(kvfree, void *, if (!IS_ERR_OR_NULL(_T)) kvfree(_T))
static inline void *kvcalloc(size_t n, size_t size, gfp_t flags) { return kvmalloc_array(n, size, flags | __GFP_ZERO); }

/* Dedicated bucket sets (6.11+, CONFIG_SLAB_BUCKETS; crates/kmem-ffi/src/buckets.rs): a cache
 * per kmalloc size class named "<name>-<size>" (SLAB_NO_MERGE, the usercopy window clamped per
 * class). A NULL set allocates from the kmalloc caches. kmem_buckets_destroy is kmem's:
 * mainline has no way to free a set. */
typedef struct kmem_cache *kmem_buckets[KMALLOC_SHIFT_HIGH + 1];
kmem_buckets *kmem_buckets_create(const char *name, slab_flags_t flags, unsigned int useroffset,
				  unsigned int usersize, void (*ctor)(void *));
void kmem_buckets_destroy(kmem_buckets *b);
void *kmem_buckets_alloc(kmem_buckets *b, size_t size, gfp_t flags) __malloc;
void *kmem_buckets_alloc_track_caller(kmem_buckets *b, size_t size, gfp_t flags) __malloc;
void *kmem_buckets_valloc(kmem_buckets *b, size_t size, gfp_t flags) __malloc;

/* Memory cgroups: kmem has none. kmem_cache_alloc_lru never reads lru; kmem_cache_charge is
 * true for a live slab object or large kmalloc and false (reported) for anything else. */
struct list_lru;
void *kmem_cache_alloc_lru(struct kmem_cache *s, struct list_lru *lru, gfp_t gfpflags) __malloc;
bool kmem_cache_charge(void *objp, gfp_t gfpflags);

/* The _node forms: the machine has one node (<linux/numa.h>), so `node` (a node id or
 * NUMA_NO_NODE) always names it. */
static inline void *kmalloc_node(size_t size, gfp_t flags, int node) { (void)node; return kmalloc(size, flags); }
static inline void *kzalloc_node(size_t size, gfp_t flags, int node) { (void)node; return kzalloc(size, flags); }
static inline void *kmalloc_array_node(size_t n, size_t size, gfp_t flags, int node)
{
	(void)node;
	return kmalloc_array(n, size, flags);
}
static inline void *kcalloc_node(size_t n, size_t size, gfp_t flags, int node)
{
	(void)node;
	return kcalloc(n, size, flags);
}
static inline void *kvmalloc_node(size_t size, gfp_t flags, int node) { (void)node; return kvmalloc(size, flags); }
static inline void *kvmalloc_array_node(size_t n, size_t size, gfp_t flags, int node)
{
	(void)node;
	return kvmalloc_array(n, size, flags);
}
static inline void *kvcalloc_node(size_t n, size_t size, gfp_t flags, int node)
{
	(void)node;
	return kvcalloc(n, size, flags);
}
#define kmalloc_node_track_caller(size, flags, node)	kmalloc_node((size), (flags), (node))
static inline void *kvzalloc_node(size_t size, gfp_t flags, int node) { (void)node; return kvzalloc(size, flags); }
static inline void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t flags, int node)
{
	(void)node;
	return kmem_cache_alloc(s, flags);
}

#endif
