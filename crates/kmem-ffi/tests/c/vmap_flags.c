/* vmap() flags from C (VM-9): a VM_ALLOC among the caller's flags only labels the area, so
 * vfree() of it frees none of the caller's pages (the next vmalloc does not get them); flags
 * a caller may not set (bits above 31 of the unsigned long, bit 31) are dropped with one
 * warning, and the area still unmaps normally. */
#include <limits.h>
#include <linux/vmalloc.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

#define NPAGES 3

int main(void)
{
	struct page *pages[NPAGES], *one[1];
	void *keep, *v, *q;
	int i, j;

	keep = vmalloc(4 * PAGE_SIZE);	/* VmallocUsed has pages to lose */
	CHECK(keep != NULL);
	for (i = 0; i < NPAGES; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		CHECK(pages[i] != NULL);
	}
	v = vmap(pages, NPAGES, VM_ALLOC, PAGE_KERNEL);
	CHECK(v != NULL);
	((char *)v)[1] = 42;
	vfree(v);	/* the kernel: nr_pages is 0 for a vmap area, nothing is freed */
	for (i = 0; i < NPAGES; i++)
		CHECK_EQ_UL(page_count(pages[i]), 1);
	CHECK_EQ_UL(((char *)page_address(pages[0]))[1], 42);
	q = vmalloc(NPAGES * PAGE_SIZE);
	CHECK(q != NULL);
	for (i = 0; i < NPAGES; i++)
		for (j = 0; j < NPAGES; j++)
			CHECK(vmalloc_to_page((char *)q + i * PAGE_SIZE) != pages[j]);
	CHECK_NOT_LOG("nonexistent vm area");

	/* Bit 40 (beyond any flag: it reaches the check as bit 31, not truncated away) and bit 31
	 * (kmem's own): dropped, reported once, harmless. */
	one[0] = alloc_page(GFP_KERNEL);
#if ULONG_MAX > 0xffffffffUL
	v = vmap(one, 1, (1UL << 40) | VM_MAP, PAGE_KERNEL);
	CHECK(v != NULL);
	CHECK_LOG("vmap: VM flags 0x80000000 dropped");
	vunmap(v);
	CHECK(vmalloc_to_page(v) == NULL);
#endif
	v = vmap(one, 1, (1UL << 31) | VM_MAP, PAGE_KERNEL);
	CHECK(v != NULL);
	CHECK_LOG("vmap: VM flags 0x80000000 dropped");
	vunmap(v);
	CHECK(vmalloc_to_page(v) == NULL);
	CHECK_NOT_LOG("nonexistent vm area");
	CHECK_EQ_UL(page_count(one[0]), 1);

	__free_page(one[0]);
	for (i = 0; i < NPAGES; i++)
		__free_page(pages[i]);
	vfree(q);
	vfree(keep);
	return ktest_result("vmap_flags");
}
