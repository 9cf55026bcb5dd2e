/* The userspace test shim's hooks from C (SEMANTICS §8.6, tools/testing/shared/linux.c): the
 * non_kernel budget (opt-in per cache: other caches never gated), the callback a gated failure
 * arms for the next allocation with the private pointer, a bulk allocation under a short
 * budget (all or nothing, nothing leaked), the counters and kmem_nr_allocated() (the shim's
 * global nr_allocated), TST-17's sequence checked through the counters, and the cache
 * pointers kmem refuses. */
#include <linux/slab.h>
#include "ktest.h"

static void count_call(void *private_data)
{
	(*(int *)private_data)++;
}

int main(void)
{
	struct kmem_cache *c = kmem_cache_create("cshim", 256, 0, SLAB_NO_MERGE, NULL);
	struct kmem_cache *plain = kmem_cache_create("cshim_plain", 256, 0, SLAB_NO_MERGE, NULL);
	struct kmem_cache *aligned;
	struct kmem_cache *stray = (struct kmem_cache *)&c;
	void *list[12], *p, *q;
	unsigned long before;
	int calls = 0, i, aligned_ok = 1;

	CHECK(c != NULL && plain != NULL);
	before = kmem_nr_allocated();

	/* Off until set_non_kernel: atomic requests pass. */
	p = kmem_cache_alloc(c, GFP_ATOMIC);
	CHECK(p != NULL);
	kmem_cache_free(c, p);

	kmem_cache_set_callback(c, count_call);
	kmem_cache_set_private(c, &calls);
	kmem_cache_set_non_kernel(c, 0);
	CHECK(kmem_cache_alloc(c, GFP_ATOMIC) == NULL);
	CHECK(kmem_cache_alloc(c, GFP_NOWAIT) == NULL);
	CHECK_EQ_UL(calls, 1);	/* the second request ran the first failure's callback */
	p = kmem_cache_alloc(plain, GFP_ATOMIC);
	CHECK(p != NULL);	/* another cache: never gated */
	CHECK_EQ_UL(calls, 1);
	kmem_cache_free(plain, p);
	p = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK(p != NULL);
	CHECK_EQ_UL(calls, 2);
	q = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK(q != NULL);
	CHECK_EQ_UL(calls, 2);	/* once per failure */

	/* A budget of 2. */
	kmem_cache_set_non_kernel(c, 2);
	list[0] = kmem_cache_alloc(c, GFP_ATOMIC);
	list[1] = kmem_cache_alloc(c, GFP_NOWAIT);
	CHECK(list[0] != NULL && list[1] != NULL);
	CHECK(kmem_cache_alloc(c, GFP_ATOMIC) == NULL);
	CHECK_EQ_UL(kmem_cache_nr_allocated(c), 4);
	CHECK_EQ_UL(kmem_cache_get_alloc(c), 4 * 256);
	CHECK_EQ_UL(kmem_nr_allocated(), before + 4);
	kmem_cache_free(c, list[0]);
	kmem_cache_free(c, list[1]);

	/* Bulk with budget for 3 of 5: nothing handed out, nothing kept. */
	kmem_cache_set_non_kernel(c, 3);
	CHECK(kmem_cache_alloc_bulk(c, GFP_ATOMIC, 5, list) == 0);
	CHECK_EQ_UL(kmem_cache_nr_allocated(c), 2);
	CHECK(kmem_cache_alloc(c, GFP_ATOMIC) == NULL);	/* the 3 taken stay spent */
	kmem_cache_free(c, p);
	kmem_cache_free(c, q);

	/* TST-17's sequence (test_kmem_cache_bulk), through the counters; the shim's nr_objs
	 * is its own free list, not SLUB's, and has no counterpart here. */
	kmem_cache_zero_nr_tallocated(c);
	CHECK_EQ_UL(kmem_cache_nr_tallocated(c), 0);
	for (i = 0; i < 5; i++)
		list[i] = kmem_cache_alloc(c, __GFP_DIRECT_RECLAIM);
	for (i = 0; i < 5; i++)
		kmem_cache_free(c, list[i]);
	CHECK(kmem_cache_alloc_bulk(c, __GFP_DIRECT_RECLAIM, 5, list) == 5);
	kmem_cache_free_bulk(c, 5, list);
	for (i = 0; i < 12; i++)
		list[i] = kmem_cache_alloc(c, __GFP_DIRECT_RECLAIM);
	CHECK_EQ_UL(kmem_cache_nr_allocated(c), 12);
	for (i = 0; i < 12; i++)
		kmem_cache_free(c, list[i]);
	CHECK_EQ_UL(kmem_cache_nr_allocated(c), 0);
	CHECK_EQ_UL(kmem_cache_nr_tallocated(c), 22);
	aligned = kmem_cache_create("cshim_aligned", 128, 128, SLAB_NO_MERGE, NULL);
	CHECK(aligned != NULL);
	kmem_cache_set_non_kernel(aligned, 0);
	CHECK(kmem_cache_alloc_bulk(aligned, __GFP_DIRECT_RECLAIM, 10, list) == 10);
	for (i = 0; i < 10; i++)
		if ((unsigned long)list[i] % 128)
			aligned_ok = 0;
	CHECK(aligned_ok);
	CHECK_EQ_UL(kmem_cache_nr_allocated(aligned), 10);
	CHECK_EQ_UL(kmem_cache_get_alloc(aligned), 10 * 128);
	kmem_cache_free_bulk(aligned, 10, list);
	CHECK_EQ_UL(kmem_cache_nr_allocated(aligned), 0);
	CHECK_EQ_UL(kmem_nr_allocated(), before);

	/* Pointers that are not live caches: reported, nothing done. */
	kmem_dmesg_clear();
	kmem_cache_set_non_kernel(NULL, 1);
	CHECK_LOG("kmem_cache_set_non_kernel() called with a NULL struct kmem_cache pointer");
	CHECK_EQ_UL(kmem_cache_nr_allocated(stray), 0);
	CHECK_LOG("kmem_cache_nr_allocated() called with a struct kmem_cache pointer that kmem did not hand out");
	kmem_cache_set_callback(stray, count_call);
	CHECK_LOG("kmem_cache_set_callback() called with a struct kmem_cache pointer that kmem did not hand out");

	kmem_dmesg_clear();
	CHECK(kmem_cache_destroy(c) == 0);
	CHECK(kmem_cache_destroy(plain) == 0);
	CHECK(kmem_cache_destroy(aligned) == 0);
	CHECK_NOT_LOG("Objects remaining");
	CHECK_EQ_UL(kmem_cache_nr_tallocated(c), 0);
	CHECK_LOG("kmem_cache_nr_tallocated() called with a struct kmem_cache pointer that kmem did not hand out");
	return ktest_result("shim");
}
