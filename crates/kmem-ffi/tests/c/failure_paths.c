/* Failure paths of the C ABI that the Rust side tests, from C: an impossible zone mask
 * (GFP-2: __GFP_DMA|__GFP_DMA32 is GFP_ZONE_BAD: NULL and the report), __GFP_NOFAIL with an order
 * above 1 and without direct reclaim (section 2.8: the slow path's WARN_ON_ONCEs; run on a 32 MiB
 * machine so taking lowmem to get there is quick), a double
 * vfree (VM: "Trying to vfree() nonexistent vm area", VmallocUsed unchanged), and kfree of a
 * pointer inside a small kmalloc object (KM: reported, the object stays live). */
#include <stdlib.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "ktest.h"

/* meminfo VmallocUsed in kB, or -1. */
static long vmalloc_used_kb(void)
{
	return ktest_meminfo_kb("VmallocUsed:");
}

/* The pages GFP_ATOMIC can take, chained through their first word. */
static unsigned long chain;

static long take_atomic_pages(void)
{
	unsigned long page;
	long n = 0;

	while ((page = __get_free_pages(GFP_ATOMIC | __GFP_NOWARN, 0)) != 0) {
		*(unsigned long *)page = chain;
		chain = page;
		n++;
	}
	return n;
}

static void give_back(long n)
{
	while (n-- > 0 && chain) {
		unsigned long next = *(unsigned long *)chain;
		free_page(chain);
		chain = next;
	}
}

int main(void)
{
	long taken;
	struct page *pg;
	void *v;
	char *p, *q;
	long used;
	int i, intact = 1;

	/* Two zone modifiers the kernel cannot combine. */
	kmem_dmesg_clear();
	pg = alloc_pages(GFP_KERNEL | __GFP_DMA | __GFP_DMA32, 0);
	CHECK(pg == NULL);
	CHECK_LOG("BUG: invalid zone modifiers 0x5 (__GFP_DMA|__GFP_DMA32) in gfp_zone()");

	/* __GFP_NOFAIL, order 2, no direct reclaim, reaching the slow path (lowmem taken by
	 * GFP_ATOMIC first): both WARN_ON_ONCEs; without reclaim it fails anyway. */
	taken = take_atomic_pages();
	CHECK(taken > 0);
	kmem_dmesg_clear();
	pg = alloc_pages(GFP_ATOMIC | __GFP_NOFAIL, 2);
	CHECK(pg == NULL);
	CHECK_LOG("__alloc_pages_slowpath: __GFP_NOFAIL with order 2 > 1");
	CHECK_LOG("__alloc_pages_slowpath: __GFP_NOFAIL without __GFP_DIRECT_RECLAIM");
	CHECK_LOG("WARNING: CPU: ");
	CHECK_LOG("page allocation failure: order:2");
	give_back(taken);

	/* A double vfree: the kernel's warning; nothing else is freed. */
	v = vmalloc(4 * PAGE_SIZE);
	CHECK(v != NULL);
	vfree(v);
	used = vmalloc_used_kb();
	CHECK(used >= 0);
	kmem_dmesg_clear();
	vfree(v);
	CHECK_LOG("Trying to vfree() nonexistent vm area");
	CHECK(vmalloc_used_kb() == used);

	/* kfree inside a small object: reported; the object stays live and whole. */
	p = kmalloc(64, GFP_KERNEL);
	CHECK(p != NULL);
	memset(p, 0x6b, 64);
	kmem_dmesg_clear();
	kfree(p + 8);
	CHECK_LOG("Invalid object pointer 0x");
	CHECK_LOG("not freed");
	CHECK(ksize(p) == 64);
	q = kmalloc(64, GFP_KERNEL);	/* not p, not p + 8: nothing was freed */
	CHECK(q != NULL && q != p && q != p + 8);
	for (i = 0; i < 64; i++)
		intact &= p[i] == 0x6b;
	CHECK(intact);
	kfree(q);
	kfree(p);
	return ktest_result("failure_paths");
}
