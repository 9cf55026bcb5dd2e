/* Bad input that used to do damage or leave state behind, found by the input audit:
 * kmap_atomic of no page returned NULL but left the caller in atomic context (every later
 * sleeping allocation was reported and lost __GFP_DIRECT_RECLAIM); kfree_sensitive of a
 * pointer inside an object zeroed the next object; mempool_create with a negative min_nr
 * returned NULL without a word. Each is now reported and harmless. */
#include <string.h>
#include <linux/errno.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mempool.h>
#include "ktest.h"

int main(void)
{
	unsigned char *objs[64];
	void *p;
	int i, j, bad = 0;

	CHECK(!in_atomic());
	CHECK(kmap_atomic(NULL) == NULL);
	CHECK_LOG("kmap_atomic");
	CHECK(!in_atomic());
	while (in_atomic())
		preempt_enable();
	kmem_dmesg_clear();
	p = kmalloc(100, GFP_KERNEL);
	CHECK(p != NULL);
	CHECK_NOT_LOG("sleeping function called from invalid context");
	kfree(p);

	for (i = 0; i < 64; i++) {
		objs[i] = kmalloc(64, GFP_KERNEL);
		memset(objs[i], 0xAA, 64);
	}
	kfree_sensitive(objs[10] + 32);
	CHECK_LOG("Invalid object pointer");
	for (i = 0; i < 64; i++)
		for (j = 0; j < 64; j++)
			if (objs[i][j] != 0xAA) {
				bad++;
				fprintf(stderr, "object %d byte %d is %#x\n", i, j, objs[i][j]);
				break;
			}
	CHECK_EQ_UL(bad, 0);
	for (i = 0; i < 64; i++)
		kfree(objs[i]);

	kmem_dmesg_clear();
	CHECK(mempool_create_kmalloc_pool(-1, 64) == NULL);
	CHECK_LOG("min_nr -1 is negative");
	return ktest_result("live_objects");
}
