/* kmemleak with memory of the program's own (KMEM_KMEMLEAK=1): a malloc'd block is invisible
 * to the scan (kmemleak scans what it tracks, and libc's heap is not kmem's) until the program
 * describes it with kmemleak_alloc(ptr, size, 0, gfp): min_count 0, never reported but
 * scanned, so what it points to is referenced. Here kmemleak_alloc is the program's first call
 * into kmem, before any allocation:
 * - a global points to a described malloc'd block, which holds a kmalloc-128 object: not a leak;
 * - a global points to an undescribed malloc'd block, which holds a kmalloc-512 object:
 *   reported (nothing kmemleak scans refers to it);
 * - a kmalloc-256 object is dropped: reported.
 * Expected: 2 leaks, sizes 512 and 256 (in allocation order). */
#include <stdio.h>
#include <stdlib.h>
#include <linux/slab.h>
#include <linux/kmemleak.h>
#include "kmemleak_test.h"

struct holder {
	void *obj;
};

static struct holder *described, *undescribed;

/* Fills both holders deep in the stack, so that no stale copy of the objects' addresses is
 * left in a frame or register the exit scan reads (see deep()). */
static noinline void fill(void)
{
	described->obj = kmalloc(100, GFP_KERNEL);
	undescribed->obj = kmalloc(400, GFP_KERNEL);
}

int main(void)
{
	described = calloc(1, sizeof(*described));
	undescribed = calloc(1, sizeof(*undescribed));
	if (!described || !undescribed)
		return 1;
	kmemleak_alloc(described, sizeof(*described), 0, GFP_KERNEL);
	deep(fill);
	deep(lose_one);
	printf("kmemleak_malloc: described %p, undescribed %p\n", (void *)described, (void *)undescribed);
	return 0;
}
