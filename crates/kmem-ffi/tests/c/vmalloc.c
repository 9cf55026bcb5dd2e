/* vmalloc and kmap through the C ABI: the same bytes through a vmalloc address and through
 * page_address()/kmap() of vmalloc_to_page(), vmap of pages, HighMem pages mapped with kmap,
 * kmap_local_page and kmap_atomic, and the vmalloc variants. */
#include <stdint.h>
#include <linux/vmalloc.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/preempt.h>
#include "ktest.h"

#define NPAGES 5

int main(void)
{
	unsigned char *v, *alias, *w;
	struct page *pg, *pages[NPAGES];
	int i, highmem = 0, distinct = 1;
	void *p;

	/* vmalloc aliasing: write through the vmalloc address, read through each frame's own
	 * mapping (page_address for lowmem, kmap for HighMem), and back. */
	v = vmalloc(NPAGES * PAGE_SIZE);
	CHECK(v != NULL && is_vmalloc_addr(v));
	CHECK_EQ_UL((uintptr_t)v % PAGE_SIZE, 0);
	for (i = 0; i < NPAGES * (int)PAGE_SIZE; i++)
		v[i] = (unsigned char)(i * 7 + i / PAGE_SIZE);
	for (i = 0; i < NPAGES; i++) {
		pg = vmalloc_to_page(v + i * PAGE_SIZE + 100);
		CHECK(pg != NULL);
		if (!pg)
			continue;
		pages[i] = pg;
		CHECK_EQ_UL(vmalloc_to_pfn(v + i * PAGE_SIZE), page_to_pfn(pg));
		alias = page_address(pg);
		if (PageHighMem(pg)) {
			highmem++;
			CHECK(alias == NULL);
			alias = kmap(pg);
		}
		CHECK(alias != NULL && alias != v + i * PAGE_SIZE && !is_vmalloc_addr(alias));
		if (!alias)
			continue;
		CHECK(!memcmp(alias, v + i * PAGE_SIZE, PAGE_SIZE));
		alias[17] = 0xab;	/* and the other way round */
		CHECK(v[i * PAGE_SIZE + 17] == 0xab);
		if (PageHighMem(pg))
			kunmap(pg);
	}
	for (i = 1; i < NPAGES; i++)
		distinct &= pages[i] != pages[i - 1];
	CHECK(distinct);
	CHECK(vmalloc_to_page(v + NPAGES * PAGE_SIZE) == NULL);	/* the guard page */
	vfree(v);
	printf("vmalloc: %d of %d frames were HighMem\n", highmem, NPAGES);

	/* vmap: pages mapped contiguously; the bytes are the pages'. */
	for (i = 0; i < NPAGES; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		memset(page_address(pages[i]), 'a' + i, PAGE_SIZE);
	}
	w = vmap(pages, NPAGES, VM_MAP, PAGE_KERNEL);
	CHECK(w != NULL && is_vmalloc_addr(w));
	for (i = 0; w && i < NPAGES; i++) {
		CHECK(w[i * PAGE_SIZE] == 'a' + i && w[i * PAGE_SIZE + PAGE_SIZE - 1] == 'a' + i);
		CHECK(vmalloc_to_page(w + i * PAGE_SIZE) == pages[i]);
	}
	vunmap(w);
	for (i = 0; i < NPAGES; i++)
		__free_page(pages[i]);

	/* HighMem pages: no address until kmapped; kmap_local_page and kmap_atomic. */
	pg = alloc_page(GFP_HIGHUSER);
	CHECK(pg != NULL && PageHighMem(pg));
	CHECK(page_address(pg) == NULL);
	alias = kmap(pg);
	CHECK(alias != NULL);
	CHECK(page_address(pg) == alias && PageHighMem(pg));	/* kmapped: it has an address */
	memset(alias, 0x3c, PAGE_SIZE);
	kunmap(pg);
	CHECK(page_address(pg) == NULL);
	alias = kmap_local_page(pg);
	CHECK(alias && alias[0] == 0x3c && alias[PAGE_SIZE - 1] == 0x3c);
	kunmap_local(alias);
	CHECK(!in_atomic());
	alias = kmap_atomic(pg);
	CHECK(alias && alias[100] == 0x3c);
	CHECK(in_atomic());
	kunmap_atomic(alias);
	CHECK(!in_atomic());
	__free_page(pg);
	pg = alloc_page(GFP_KERNEL);	/* lowmem: kmap is page_address */
	CHECK(kmap(pg) == page_address(pg));
	kunmap(pg);
	__free_page(pg);

	/* The variants. */
	p = vzalloc(3 * PAGE_SIZE + 1);
	CHECK(p && ((unsigned char *)p)[3 * PAGE_SIZE] == 0);
	vfree(p);
	p = vmalloc_user(PAGE_SIZE);
	CHECK(p && ((unsigned char *)p)[7] == 0);
	vfree(p);
	p = vmalloc_32(2 * PAGE_SIZE);
	CHECK(p && !PageHighMem(vmalloc_to_page(p)));
	vfree(p);
	p = vmalloc_32_user(PAGE_SIZE);
	CHECK(p != NULL);
	vfree(p);
	p = __vmalloc(PAGE_SIZE, GFP_KERNEL | __GFP_ZERO);
	CHECK(p && ((unsigned char *)p)[4095] == 0);
	memcpy(p, "vrealloc", 9);
	p = vrealloc(p, 10 * PAGE_SIZE, GFP_KERNEL);
	CHECK(p && !memcmp(p, "vrealloc", 9));
	CHECK(vrealloc(p, 0, GFP_KERNEL) == NULL);	/* frees */
	/* __vmalloc_node(size, align, gfp, node, caller) (VM-4): aligned to align, a power of two. */
	p = __vmalloc_node(3 * PAGE_SIZE, 1UL << 20, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE,
			   __builtin_return_address(0));
	CHECK(p && (uintptr_t)p % (1UL << 20) == 0 && ((unsigned char *)p)[3 * PAGE_SIZE - 1] == 0);
	vfree(p);
	p = kmalloc(64, GFP_KERNEL);
	CHECK(!is_vmalloc_addr(p) && !is_vmalloc_addr(NULL));
	kfree(p);
	vfree(NULL);
	CHECK_NOT_LOG("WARNING");
	CHECK_NOT_LOG("BUG");

	return ktest_result("vmalloc");
}
