/* Mempool debugging from C (run with KMEM_MEMPOOL_DEBUG=1 by tests/c_abi.rs): a pool made with
 * one of the kernel's helper pairs (the header's mempool_create_{kmalloc,slab,page}_pool, the
 * pairs named in mempool_create_node and mempool_init) is the Rust API's helper pool, so
 *  - elements leaving the reserve are checked and filled with POISON_INUSE (0x5a), elements
 *    entering it are poisoned (0x6b..., 0xa5), and a write into a reserved element is reported
 *    when it leaves (MP-13);
 *  - mempool_free of a pointer that is not an element of the pool's kind, or of an element
 *    already in the reserve, is reported and ignored: it is never handed out (TST-16);
 *  - mempool_resize, mempool_exit and mempool_destroy keep the reserve poisoned and counted.
 * Pools with the caller's own callbacks, and mixed pairs, stay custom pools: their callbacks
 * are called and their elements are never looked into, as before. */
#include <linux/slab.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <stdlib.h>
#include "ktest.h"

#define MIN_NR 4

struct kind {
	const char *name;
	mempool_t *pool;
	size_t size;	/* the bytes of one element */
	int pages;	/* elements are struct page * */
};

/* mempool_alloc_preallocated out of the optimiser's sight: the header declares it __malloc,
 * so gcc may assume its result equals no pointer the test holds (a foreign pointer it freed
 * into a custom pool) and fold the comparisons. */
static __attribute__((noipa)) void *take(mempool_t *mp)
{
	return mempool_alloc_preallocated(mp);
}

static unsigned char *bytes_of(const struct kind *k, void *e)
{
	return k->pages ? page_address(e) : e;
}

static int all_are(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static int poisoned(const unsigned char *p, size_t n)
{
	return all_are(p, n - 1, 0x6b) && p[n - 1] == 0xa5;
}

/* MP-13: poison on entry, check and POISON_INUSE on exit, a write while reserved reported. */
static void check_poisoning(const struct kind *k)
{
	mempool_t *mp = k->pool;
	char want[96];
	unsigned char *b;
	void *e, *again;

	kmem_dmesg_clear();
	e = take(mp);
	CHECK(e != NULL && mp->curr_nr == MIN_NR - 1);
	b = bytes_of(k, e);
	CHECK(all_are(b, k->size, 0x5a));	/* checked on the way out, then POISON_INUSE */
	memset(b, 0x42, k->size);
	mempool_free(e, mp);	/* one short: into the reserve */
	CHECK_EQ_UL(mp->curr_nr, MIN_NR);
	CHECK(poisoned(b, k->size));
	CHECK(take(mp) == e);	/* LIFO */
	CHECK_NOT_LOG("BUG");	/* an untouched element passes */
	mempool_free(e, mp);
	b[k->size / 2] = 0x11;	/* use after free while in the reserve */
	again = take(mp);
	CHECK(again == e);
	CHECK_LOG("BUG: mempool element poison mismatch");
	/* The report names the pool by the mempool_t * the program holds. */
	snprintf(want, sizeof(want), "Mempool %p size %zu\n", (void *)mp, k->size);
	CHECK_LOG(want);
	snprintf(want, sizeof(want), " nr=%d @ %p: ... 0x6b 6b 6b 6b 6b 6b 6b 6b 11 6b ", MIN_NR - 1, (void *)b);
	CHECK_LOG(want);
	CHECK(all_are(b, k->size, 0x5a));	/* refilled after the report */
	mempool_free(again, mp);
	CHECK_EQ_UL(mp->curr_nr, MIN_NR);
}

/* TST-16: foreign pointers and double frees into a short reserve are reported and ignored. */
static void check_frees(const struct kind *k, void *const *foreign, int n)
{
	mempool_t *mp = k->pool;
	void *held[MIN_NR], *e;
	char want[96];
	int i, j;

	e = take(mp);	/* one short, so frees go into the reserve */
	for (i = 0; i < n; i++) {
		kmem_dmesg_clear();
		mempool_free(foreign[i], mp);
		CHECK_LOG("BUG: mempool_free: invalid free: not an element of this pool");
		snprintf(want, sizeof(want), "Mempool %p element %p", (void *)mp, foreign[i]);
		CHECK_LOG(want);
		CHECK_EQ_UL(mp->curr_nr, MIN_NR - 1);
	}
	mempool_free(e, mp);
	CHECK_EQ_UL(mp->curr_nr, MIN_NR);
	e = take(mp);
	mempool_free(e, mp);
	kmem_dmesg_clear();
	mempool_free(e, mp);	/* already in the reserve */
	CHECK_LOG("BUG: mempool_free: double free: the element is already in the reserve");
	CHECK_EQ_UL(mp->curr_nr, MIN_NR);
	/* Nothing foreign was handed out, and the element only once. */
	for (i = 0; i < MIN_NR; i++) {
		held[i] = take(mp);
		CHECK(held[i] != NULL);
		for (j = 0; j < n; j++)
			CHECK(held[i] != foreign[j]);
		for (j = 0; j < i; j++)
			CHECK(held[i] != held[j]);
	}
	CHECK(take(mp) == NULL);
	for (i = 0; i < MIN_NR; i++)
		mempool_free(held[i], mp);
	CHECK_EQ_UL(mp->curr_nr, MIN_NR);
}

static int allocs, frees;

static void *count_alloc(gfp_t gfp_mask, void *pool_data)
{
	allocs++;
	return kmalloc((size_t)pool_data, gfp_mask);
}

static void count_free(void *element, void *pool_data)
{
	(void)pool_data;
	frees++;
	kfree(element);
}

static void count_kfree(void *element, void *pool_data)
{
	count_free(element, pool_data);
}

/* A custom pool (or a mixed pair) under mempool debugging: its own callbacks, no poisoning,
 * no look into what is freed, as before. */
static void check_custom(mempool_t *mp, size_t size, int freed_by_counter)
{
	int on_stack[16] = { 0 };
	unsigned char *e;

	kmem_dmesg_clear();
	e = take(mp);
	CHECK(e != NULL);
	memset(e, 0x33, size);
	mempool_free(e, mp);
	CHECK(all_are(e, size, 0x33));	/* not poisoned */
	CHECK(take(mp) == e);
	/* A custom pool cannot know its elements: a foreign pointer is taken, as the kernel does. */
	mempool_free(on_stack, mp);
	CHECK(take(mp) == (void *)on_stack);
	CHECK_NOT_LOG("BUG");
	mempool_free(e, mp);
	frees = 0;
	mempool_destroy(mp);
	CHECK_EQ_UL(frees, freed_by_counter ? 2 : 0);	/* the reserve went to the caller's free_fn */
}

int main(void)
{
	struct kmem_cache *cache, *other;
	struct kind kinds[5];
	mempool_t embedded, *mp;
	struct page *page;
	char *kmalloced, *in_element;
	void *v, *obj, *held[MIN_NR + 2];
	int on_stack[64] = { 0 }, i;

	cache = kmem_cache_create("ktest_debug_pool", 123, 0, 0, NULL);
	other = kmem_cache_create("ktest_debug_other", 123, 0, SLAB_NO_MERGE, NULL);
	kinds[0] = (struct kind){ "kmalloc", mempool_create_kmalloc_pool(MIN_NR, 64), 64, 0 };
	kinds[1] = (struct kind){ "slab", mempool_create_slab_pool(MIN_NR, cache), 123, 0 };
	kinds[2] = (struct kind){ "page", mempool_create_page_pool(MIN_NR, 1), 2 * PAGE_SIZE, 1 };
	kinds[3] = (struct kind){ "kmalloc, mempool_create_node",
		mempool_create_node(MIN_NR, mempool_kmalloc, mempool_kfree, (void *)300, GFP_KERNEL, -1), 300, 0 };
	memset(&embedded, 0, sizeof(embedded));
	CHECK_EQ_UL(mempool_init_page_pool(&embedded, MIN_NR, 0), 0);
	kinds[4] = (struct kind){ "page, mempool_init_page_pool", &embedded, PAGE_SIZE, 1 };
	for (i = 0; i < 5; i++) {
		CHECK(kinds[i].pool != NULL);
		if (!kinds[i].pool)
			return ktest_result("mempool_debug");
	}
	/* The C structure still shows what C passed. */
	CHECK(kinds[0].pool->alloc == mempool_kmalloc && kinds[0].pool->free == mempool_kfree);
	CHECK(kinds[0].pool->pool_data == (void *)64 && kinds[1].pool->pool_data == cache);
	CHECK(kinds[2].pool->alloc == mempool_alloc_pages && kinds[2].pool->pool_data == (void *)1);

	for (i = 0; i < 5; i++)
		check_poisoning(&kinds[i]);

	/* Foreign pointers: the stack, vmalloc memory, a struct page, the inside of an element,
	 * another cache's object, a kmalloc block where a struct page is expected. */
	v = vmalloc(PAGE_SIZE);
	page = alloc_page(GFP_KERNEL);
	kmalloced = kmalloc(64, GFP_KERNEL);
	obj = kmem_cache_alloc(other, GFP_KERNEL);
	in_element = mempool_alloc(kinds[0].pool, GFP_KERNEL);
	{
		/* Not another cache's object: kfree takes any slab object, as the kernel's does. */
		void *kmalloc_foreign[] = { on_stack, v, page, in_element + 8 };
		void *slab_foreign[] = { on_stack, v, page, kmalloced, obj };
		void *page_foreign[] = { on_stack, v, kmalloced, page_address(page), (char *)page + 1 };

		check_frees(&kinds[0], kmalloc_foreign, 4);
		check_frees(&kinds[1], slab_foreign, 5);
		check_frees(&kinds[2], page_foreign, 5);
		check_frees(&kinds[3], kmalloc_foreign, 4);
		check_frees(&kinds[4], page_foreign, 5);
	}
	mempool_free(in_element, kinds[0].pool);
	CHECK(ksize(kmalloced) == 64 && page_count(page) == 1);	/* untouched by the pools */
	kfree(kmalloced);
	__free_page(page);
	kmem_cache_free(other, obj);
	vfree(v);

	/* A resize keeps the reserve poisoned: new elements are poisoned as they come in. */
	kmem_dmesg_clear();
	mp = kinds[1].pool;
	CHECK_EQ_UL(mempool_resize(mp, MIN_NR + 2), 0);
	CHECK_EQ_UL(mp->curr_nr, MIN_NR + 2);
	for (i = 0; i < MIN_NR + 2; i++) {
		held[i] = take(mp);
		CHECK(held[i] && all_are(held[i], 123, 0x5a));
	}
	for (i = 0; i < MIN_NR + 2; i++)
		mempool_free(held[i], mp);
	CHECK_EQ_UL(mempool_resize(mp, MIN_NR), 0);
	CHECK_EQ_UL(mp->curr_nr, MIN_NR);
	CHECK_NOT_LOG("BUG");

	/* Every element came back: no report at exit or destroy. */
	kmem_dmesg_clear();
	mempool_exit(&embedded);
	CHECK(!mempool_initialized(&embedded));
	for (i = 0; i < 4; i++)
		mempool_destroy(kinds[i].pool);
	CHECK_NOT_LOG("leaked");
	CHECK_NOT_LOG("BUG");
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);

	/* Custom pools stay custom: the caller's callbacks, a mixed pair, mismatched helpers. */
	allocs = 0;
	mp = mempool_create(2, count_alloc, count_free, (void *)64);
	CHECK(mp && allocs == 2);
	check_custom(mp, 64, 1);
	mp = mempool_create(2, mempool_kmalloc, count_kfree, (void *)64);
	check_custom(mp, 64, 1);
	mp = mempool_create(2, mempool_alloc_slab, mempool_kfree, other);
	check_custom(mp, 123, 0);
	CHECK_EQ_UL(kmem_cache_destroy(other), 0);	/* kfree gave every object back */
	return ktest_result("mempool_debug");
}
