/* kmemleak with memory of the program's own (KMEM_KMEMLEAK=1): a malloc'd block is invisible
 * to the scan (kmemleak scans what it tracks, and libc's heap is not kmem's) until the program
 * describes it with kmemleak_alloc(ptr, size, 0, gfp): min_count 0, never reported but
 * scanned, so what it points to is referenced. Here kmemleak_alloc is the program's first call
 * into kmem, before any allocation:
 * - a global points to a described malloc'd block, which holds a kmalloc-128 object: not a leak;
 * - a global points to an undescribed malloc'd block, which holds a kmalloc-512 object:
 *   reported (nothing kmemleak scans refers to it);
 * - a kmalloc-256 object is dropped: reported;
 * - a block described past the end of the address space is refused with a warning, not
 *   recorded (the exit scan would read it).
 * Expected: 2 leaks, sizes 512 and 256 (in allocation order), and the warning. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kmem.h>
#include <linux/slab.h>
#include <linux/kmemleak.h>
#include "kmemleak_test.h"

struct holder {
	void *obj;
};

static struct holder *described, *undescribed;
static char log_text[1 << 16];

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
	kmemleak_alloc((void *)(UINTPTR_MAX - 63), 4096, 1, GFP_KERNEL);
	if (kmem_dmesg_read(log_text, sizeof(log_text), 0) > 0 &&
	    strstr(log_text, "kmemleak: Cannot insert 0xffffffffffffffc0 into the object search tree"))
		printf("kmemleak_malloc: the wrapping block was refused\n");
	printf("kmemleak_malloc: described %p, undescribed %p\n", (void *)described, (void *)undescribed);
	return 0;
}
