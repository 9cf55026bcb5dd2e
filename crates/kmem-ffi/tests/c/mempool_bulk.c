/* The newest kernel's bulk mempool calls through the C ABI (SEMANTICS.md §6.1, §6.2):
 * mempool_alloc_bulk fills only the NULL slots, alloc_fn first, then the whole remainder from the
 * reserve or nothing, and returns 0; mempool_free_bulk returns how many leading elements the
 * reserve took (LIFO, MP-3, MP-4) and the caller frees the rest; the count > min_nr warning fires
 * once per pool; misuse is reported. c_abi.rs runs it a second time with
 * KMEM_FAIL_MEMPOOL_ALLOC=1,100,0,1: then the first mempool_alloc skips alloc_fn. */
#include <stdlib.h>
#include <linux/errno.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/mempool.h>
#include "ktest.h"

static int allocs, frees, number, fail;

static void *count_alloc(gfp_t gfp_mask, void *pool_data)
{
	int *element;

	(void)pool_data;
	allocs++;
	if (fail)
		return NULL;
	element = kmalloc(sizeof(int), gfp_mask);
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

#define NUM(e) (*(int *)(e))

static void forced_mempool_alloc(void)
{
	mempool_t *mp = mempool_create(2, count_alloc, count_free, NULL);	/* 0, 1 */
	void *x;

	kmem_dmesg_clear();
	x = mempool_alloc(mp, GFP_KERNEL);
	CHECK(x && NUM(x) == 1);	/* the reserve's top */
	CHECK_EQ_UL(allocs, 2);	/* alloc_fn not called */
	CHECK_EQ_UL(mp->curr_nr, 1);
	CHECK_LOG("forcing mempool usage for ");
	CHECK_NOT_LOG("FAULT_INJECTION");
	mempool_free(x, mp);
	x = mempool_alloc(mp, GFP_KERNEL);	/* times used up: alloc_fn again */
	CHECK(x && NUM(x) == 2 && allocs == 3 && mp->curr_nr == 2);
	CHECK_EQ_UL(ktest_log_count("forcing mempool usage for "), 1);
	mempool_free(x, mp);
	mempool_destroy(mp);
	allocs = frees = number = 0;
}

int main(void)
{
	mempool_t *mp;
	void *elems[3], *more[3], *list[6], *big[5], *x, *a[3];
	unsigned int taken, i;

	if (getenv("KMEM_FAIL_MEMPOOL_ALLOC"))
		forced_mempool_alloc();

	mp = mempool_create(4, count_alloc, count_free, NULL);	/* 0..3, 3 on top */
	x = mempool_alloc(mp, GFP_KERNEL);	/* 4, from alloc_fn */
	CHECK(x && NUM(x) == 4);

	/* Only the NULL slots are filled, alloc_fn first; the reserve is untouched. */
	elems[0] = NULL;
	elems[1] = x;
	elems[2] = NULL;
	CHECK_EQ_UL(mempool_alloc_bulk(mp, elems, 3, 1), 0);
	CHECK_EQ_UL(allocs, 7);
	CHECK(elems[1] == x && NUM(elems[0]) == 5 && NUM(elems[2]) == 6);
	CHECK_EQ_UL(mp->curr_nr, 4);

	/* alloc_fn fails: the whole remainder comes from the reserve, top first. */
	fail = 1;
	more[0] = more[1] = more[2] = NULL;
	CHECK_EQ_UL(mempool_alloc_bulk(mp, more, 3, 0), 0);
	CHECK_EQ_UL(allocs, 8);	/* one failed first pass */
	CHECK(NUM(more[0]) == 3 && NUM(more[1]) == 2 && NUM(more[2]) == 1);
	CHECK_EQ_UL(mp->curr_nr, 1);

	/* The reserve takes the leading three; the caller frees the other three itself. */
	for (i = 0; i < 3; i++) {
		list[i] = more[i];
		list[3 + i] = elems[i];
	}
	taken = mempool_free_bulk(mp, list, 6);
	CHECK_EQ_UL(taken, 3);
	CHECK_EQ_UL(mp->curr_nr, 4);
	CHECK_EQ_UL(frees, 0);	/* the pool frees nothing itself */
	CHECK(list[0] == more[0]);	/* the slots are left as they were */
	for (i = taken; i < 6; i++)
		count_free(list[i], NULL);
	CHECK_EQ_UL(frees, 3);

	/* LIFO: the last element pushed (1) is the first taken. */
	for (i = 0; i < 3; i++)
		a[i] = mempool_alloc(mp, GFP_ATOMIC);
	CHECK(NUM(a[0]) == 1 && NUM(a[1]) == 2 && NUM(a[2]) == 3);
	CHECK_EQ_UL(mp->curr_nr, 1);

	/* One reserved, three missing: nothing is taken. kmem does not sleep in atomic context,
	 * so the call fails there (reported) with the reserve intact. */
	more[0] = more[1] = more[2] = NULL;
	kmem_dmesg_clear();
	preempt_disable();
	CHECK_EQ_UL(mempool_alloc_bulk(mp, more, 3, 0), -ENOMEM);
	preempt_enable();
	CHECK(!more[0] && !more[1] && !more[2]);
	CHECK_EQ_UL(mp->curr_nr, 1);
	CHECK_LOG("BUG: sleeping function called from invalid context");
	CHECK_EQ_UL(mempool_free_bulk(mp, a, 3), 3);
	CHECK_EQ_UL(mp->curr_nr, 4);
	/* A saturated pool takes nothing. */
	fail = 0;
	x = mempool_alloc(mp, GFP_KERNEL);
	CHECK_EQ_UL(mempool_free_bulk(mp, &x, 1), 0);
	count_free(x, NULL);

	/* count > min_nr: VM_WARN_ON_ONCE, once per pool. */
	kmem_dmesg_clear();
	for (i = 0; i < 2; i++) {
		memset(big, 0, sizeof(big));
		CHECK_EQ_UL(mempool_alloc_bulk(mp, big, 5, 0), 0);
		CHECK_EQ_UL(mempool_free_bulk(mp, big, 5), 0);
		for (taken = 0; taken < 5; taken++)
			count_free(big[taken], NULL);
	}
	CHECK_EQ_UL(ktest_log_count("mempool_alloc_bulk: count > pool->min_nr (5 > 4)"), 1);
	CHECK_LOG("WARNING: CPU: ");

	/* A wrong `allocated` is warned about (the kernel would take too few or too many reserve
	 * elements); kmem counts the filled slots. */
	x = mempool_alloc(mp, GFP_KERNEL);
	elems[0] = x;
	elems[1] = NULL;
	CHECK_EQ_UL(mempool_alloc_bulk(mp, elems, 2, 0), 0);
	CHECK(elems[0] == x && elems[1] != NULL);
	CHECK_LOG("mempool_alloc_bulk: allocated (0) is not the number of filled slots (1); using 1");
	mempool_free(elems[0], mp);
	mempool_free(elems[1], mp);

	/* Misuse: reported, nothing touched. */
	kmem_dmesg_clear();
	CHECK_EQ_UL(mempool_alloc_bulk(NULL, elems, 1, 0), -EINVAL);
	CHECK_LOG("kmem: mempool_alloc_bulk() called with a NULL mempool_t pointer; ignored");
	CHECK_EQ_UL(mempool_alloc_bulk(mp, NULL, 2, 0), -EINVAL);
	CHECK_LOG("kmem: mempool_alloc_bulk() called with a NULL elems array; ignored");
	CHECK_EQ_UL(mempool_alloc_bulk(mp, NULL, 0, 0), 0);
	CHECK_EQ_UL(mempool_free_bulk(NULL, elems, 1), 0);
	CHECK_LOG("kmem: mempool_free_bulk() called with a NULL mempool_t pointer; ignored");
	CHECK_EQ_UL(mempool_free_bulk(mp, NULL, 0), 0);

	frees = 0;
	mempool_destroy(mp);
	CHECK_EQ_UL(frees, 4);	/* the reserve goes at destroy */
	CHECK_NOT_LOG("destroyed with");	/* every element came back */
	return ktest_result("mempool_bulk");
}
