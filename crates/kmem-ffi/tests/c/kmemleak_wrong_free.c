/* kmemleak after frees of the wrong family (KMEM_KMEMLEAK=1): kmem reports each and refuses
 * it, so the object stays allocated, and kmemleak keeps its record: when the program then
 * drops it, it is reported like any other leak.
 * - a vmalloc area given to kfree, then dropped: reported (size 12288);
 * - a kmalloc-64 object given to vfree, then dropped: reported (size 64);
 * - a malloc'd block described with kmemleak_alloc (min_count 1), given to kfree, then
 *   dropped: reported (size 48);
 * - a vmalloc area given to kfree_rcu_mightsleep (kfree after the grace period), then
 *   dropped: reported (size 4096);
 * - a kmalloc-96 object given to vunmap, then dropped: reported (size 96);
 * - a vmalloc area given to kvfree_rcu_mightsleep in atomic context (which cannot wait for
 *   the grace period, so it warns and leaves the area), then dropped: reported (size 8192);
 * - a vmalloc area given to krealloc with size 0 (a kfree), then dropped: reported (size
 *   20480);
 * - a kmalloc-128 object given to vrealloc with size 0 (a vfree), then dropped: reported
 *   (size 128);
 * - a described block (min_count 1) given to kvrealloc with size 0, then dropped: reported
 *   (size 24);
 * - a kmalloc object and a vmalloc area given to kvfree, a cache object to kmem_cache_free:
 *   freed, not reported.
 * Expected: 9 leaks, sizes 12288, 64, 4096, 96, 8192, 20480, 128, 48 and 24 (in the order
 * they were recorded; the blocks are recorded when they are described, after the
 * allocations). */
#include <stdio.h>
#include <stdlib.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/kmemleak.h>
#include <linux/rcupdate.h>
#include <linux/preempt.h>
#include "kmemleak_test.h"

static noinline void misuse(void)
{
	void *volatile area = vmalloc(3 * 4096);
	void *volatile obj = kmalloc(50, GFP_KERNEL);
	void *volatile block = calloc(1, 48);
	void *volatile area2 = vmalloc(4096);
	void *volatile obj2 = kmalloc(90, GFP_KERNEL);
	void *volatile area3 = vmalloc(8192);
	void *volatile area4 = vmalloc(5 * 4096);
	void *volatile obj3 = kmalloc(120, GFP_KERNEL);
	void *volatile block2 = calloc(1, 24);
	void *volatile sink;
	struct kmem_cache *cache = kmem_cache_create("wrong_free", 40, 0, 0, NULL);

	kmemleak_alloc(block, 48, 1, GFP_KERNEL);
	kmemleak_alloc(block2, 24, 1, GFP_KERNEL);
	kfree(area);
	vfree(obj);
	kfree(block);
	kfree_rcu_mightsleep(area2);
	rcu_barrier();
	vunmap(obj2);
	preempt_disable();
	kvfree_rcu_mightsleep(area3);
	preempt_enable();
	/* Each frees (size 0): refused, so the result is not the object. */
	sink = krealloc(area4, 0, GFP_KERNEL);
	sink = vrealloc(obj3, 0, GFP_KERNEL);
	sink = kvrealloc(block2, 0, GFP_KERNEL);
	kvfree(kmalloc(300, GFP_KERNEL));
	kvfree(vmalloc(2 * 4096));
	kmem_cache_free(cache, kmem_cache_alloc(cache, GFP_KERNEL));
	kmem_cache_destroy(cache);
	area = obj = block = area2 = obj2 = area3 = area4 = obj3 = block2 = sink = NULL;
}

int main(void)
{
	deep(misuse);
	printf("kmemleak_wrong_free: done\n");
	return 0;
}
