/* Prefilled sheaves from C (SEMANTICS §3.1, Linux 6.18): kmem_cache_args.sheaf_capacity,
 * prefill (refilled to the capacity), allocations that do not fail up to the size and NULL
 * after, kmem_cache_sheaf_size, refill (-EINVAL, in place, replaced by a larger sheaf), return,
 * and the pointers kmem refuses: a NULL or stray sheaf, a sheaf already returned, a sheaf used
 * with another cache. */
#include <linux/slab.h>
#include <linux/errno.h>
#include "ktest.h"

int main(void)
{
	struct kmem_cache_args args = { .sheaf_capacity = 8 };
	struct kmem_cache *c = kmem_cache_create("csheaf", 96, &args, 0);
	struct kmem_cache *other = kmem_cache_create("csheaf_other", 200, NULL, 0);
	struct slab_sheaf *sheaf, *old, *stray = (struct slab_sheaf *)&args;
	void *objs[8];
	int i, distinct = 1;

	CHECK(c != NULL && other != NULL);
	sheaf = kmem_cache_prefill_sheaf(c, GFP_KERNEL, 3);
	CHECK(sheaf != NULL);
	CHECK_EQ_UL(kmem_cache_sheaf_size(sheaf), 8);
	for (i = 0; i < 8; i++) {
		objs[i] = kmem_cache_alloc_from_sheaf(c, GFP_KERNEL | __GFP_ZERO, sheaf);
		CHECK(objs[i] != NULL);
		if (i > 0 && objs[i] == objs[i - 1])
			distinct = 0;
		memset(objs[i], 0x5a, 96);
	}
	CHECK(distinct);
	CHECK(kmem_cache_alloc_from_sheaf(c, GFP_KERNEL, sheaf) == NULL);
	CHECK_EQ_UL(kmem_cache_sheaf_size(sheaf), 0);
	for (i = 0; i < 8; i++)
		kmem_cache_free(c, objs[i]);

	/* Refill: -EINVAL without a sheaf; in place up to the capacity; above it a new sheaf. */
	CHECK(kmem_cache_refill_sheaf(c, GFP_KERNEL, NULL, 1) == -EINVAL);
	old = NULL;
	CHECK(kmem_cache_refill_sheaf(c, GFP_KERNEL, &old, 1) == -EINVAL);
	old = sheaf;
	CHECK(kmem_cache_refill_sheaf(c, GFP_KERNEL, &sheaf, 4) == 0);
	CHECK(sheaf == old);
	CHECK_EQ_UL(kmem_cache_sheaf_size(sheaf), 8);
	CHECK(kmem_cache_refill_sheaf(c, GFP_KERNEL, &sheaf, 20) == 0);
	CHECK(sheaf != old);
	CHECK_EQ_UL(kmem_cache_sheaf_size(sheaf), 20);
	kmem_dmesg_clear();
	/* The replaced sheaf was returned by the refill: using it is refused. */
	CHECK_EQ_UL(kmem_cache_sheaf_size(old), 0);
	CHECK_LOG("kmem_cache_sheaf_size() called with a sheaf that kmem did not hand out");
	CHECK(kmem_cache_alloc_from_sheaf(c, GFP_KERNEL, stray) == NULL);
	CHECK_LOG("kmem_cache_alloc_from_sheaf() called with a sheaf that kmem did not hand out");
	CHECK(kmem_cache_alloc_from_sheaf(c, GFP_KERNEL, NULL) == NULL);
	CHECK_LOG("kmem_cache_alloc_from_sheaf() called with a NULL sheaf");
	/* Another cache's sheaf is refused and left alone. */
	CHECK(kmem_cache_alloc_from_sheaf(other, GFP_KERNEL, sheaf) == NULL);
	CHECK_LOG("sheaf of cache csheaf used with cache csheaf_other");
	kmem_cache_return_sheaf(other, GFP_KERNEL, sheaf);
	CHECK_EQ_UL(kmem_cache_sheaf_size(sheaf), 20);

	kmem_cache_return_sheaf(c, GFP_KERNEL, sheaf);
	kmem_dmesg_clear();
	kmem_cache_return_sheaf(c, GFP_KERNEL, sheaf);
	CHECK_LOG("kmem_cache_return_sheaf() called with a sheaf that kmem did not hand out");
	/* The kept sheaf goes with the cache: nothing remains, nothing is reported. */
	kmem_dmesg_clear();
	CHECK(kmem_cache_destroy(c) == 0);
	CHECK(kmem_cache_destroy(other) == 0);
	CHECK_NOT_LOG("Objects remaining");
	return ktest_result("sheaf");
}
