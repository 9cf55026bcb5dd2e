/* The page allocator through the C ABI: get_order, alignment of every order, GFP_DMA below
 * 16 MiB, HighMem pages without an address, the conversions, exact/bulk/split forms, and
 * memory coming back (meminfo). */
#include <stdlib.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/highmem.h>
#include <asm/io.h>
#include <asm/page.h>
#include "ktest.h"

static unsigned long mem_free_kb(void)
{
	long kb = ktest_meminfo_kb("MemFree:");

	CHECK(kb >= 0);
	return kb < 0 ? 0 : (unsigned long)kb;
}

/* Pages parked on the per-CPU lists (kB): free for the allocator, not counted in MemFree. */
static unsigned long pcp_kb(void)
{
	static char buf[1 << 16];
	unsigned long pages = 0;
	const char *at = buf;
	CHECK(kmem_proc_read("zoneinfo", buf, sizeof(buf)) > 0);
	while ((at = strstr(at, "count:")) != NULL) {
		at += strlen("count:");
		pages += strtoul(at, NULL, 10);
	}
	return pages * (PAGE_SIZE >> 10);
}

int main(void)
{
	unsigned long before, addrs[NR_PAGE_ORDERS];
	unsigned int order;
	struct page *page, *bulk[8] = { 0 };
	unsigned long n;
	char *p;

	/* get_order: the smallest order whose block holds the size (the book: 8192*10 -> 5). */
	CHECK_EQ_UL(get_order(1), 0);
	CHECK_EQ_UL(get_order(PAGE_SIZE), 0);
	CHECK_EQ_UL(get_order(PAGE_SIZE + 1), 1);
	CHECK_EQ_UL(get_order(8192), 1);
	CHECK_EQ_UL(get_order(8192 * 10), 5);
	CHECK_EQ_UL(get_order(32 * PAGE_SIZE), 5);
	CHECK_EQ_UL(get_order(4UL << 20), MAX_PAGE_ORDER);
	CHECK_EQ_UL(MAX_ORDER, 11);
	CHECK_EQ_UL(PAGE_SIZE, 4096);

	before = mem_free_kb();
	CHECK(before > 0);
	CHECK_EQ_UL(pcp_kb(), 0);

	/* Every order is naturally aligned, virtually and physically. */
	for (order = 0; order <= MAX_PAGE_ORDER; order++) {
		unsigned long size = PAGE_SIZE << order;
		addrs[order] = __get_free_pages(GFP_KERNEL, order);
		CHECK(addrs[order] != 0);
		CHECK_EQ_UL(addrs[order] & (size - 1), 0);
		CHECK_EQ_UL(virt_to_phys((void *)addrs[order]) & (size - 1), 0);
		memset((void *)addrs[order], 0xa5, size);	/* the whole block is writable */
	}
	CHECK(mem_free_kb() + ((PAGE_SIZE << NR_PAGE_ORDERS) >> 10) - 4 <= before);
	for (order = 0; order <= MAX_PAGE_ORDER; order++)
		free_pages(addrs[order], order);

	/* GFP_DMA pages lie in the first 16 MiB; GFP_KERNEL ones in lowmem. */
	for (order = 0; order <= 4; order++) {
		unsigned long a = __get_free_pages(GFP_DMA, order);
		CHECK(a != 0);
		CHECK(virt_to_phys((void *)a) + (PAGE_SIZE << order) <= 16UL << 20);
		free_pages(a, order);
	}
	p = (char *)__get_free_page(GFP_KERNEL);
	CHECK(p && virt_to_phys(p) >= 16UL << 20 && virt_to_phys(p) < 896UL << 20);
	free_page((unsigned long)p);

	/* alloc_pages and the conversions round-trip. */
	page = alloc_pages(GFP_KERNEL, 3);
	CHECK(page != NULL);
	p = page_address(page);
	CHECK(p != NULL);
	CHECK(virt_to_page(p) == page);
	CHECK(pfn_to_page(page_to_pfn(page)) == page);
	CHECK(phys_to_virt(virt_to_phys(p + 123)) == p + 123);
	CHECK_EQ_UL(page_to_pfn(page), virt_to_phys(p) >> PAGE_SHIFT);
	CHECK(pfn_valid(page_to_pfn(page)));
	CHECK(virt_addr_valid(p));
	CHECK(!PageHighMem(page));
	CHECK_EQ_UL(page_count(page), 1);
	__free_pages(page, 3);

	/* A second reference keeps a page allocated until it is dropped too. */
	page = alloc_page(GFP_KERNEL);
	get_page(page);
	CHECK_EQ_UL(page_count(page), 2);
	__free_page(page);
	CHECK_EQ_UL(page_count(page), 1);
	__free_page(page);

	/* HighMem (i386 profile: above 896 MiB) has no direct-map address. */
	page = alloc_pages(GFP_HIGHUSER, 0);
	CHECK(page != NULL);
	CHECK(PageHighMem(page));
	CHECK(page_address(page) == NULL);
	CHECK(page_to_pfn(page) >= (896UL << 20) >> PAGE_SHIFT);
	__free_page(page);

	/* get_zeroed_page is zeroed even when the page was dirty before. */
	p = (char *)__get_free_page(GFP_KERNEL);
	memset(p, 0x5a, PAGE_SIZE);
	free_page((unsigned long)p);
	p = (char *)get_zeroed_page(GFP_KERNEL);
	CHECK(p != NULL);
	for (n = 0; p && n < PAGE_SIZE; n++)
		if (p[n] != 0)
			break;
	CHECK_EQ_UL(n, PAGE_SIZE);
	free_page((unsigned long)p);

	/* alloc_pages_exact: 5 pages out of an order-3 block, the rest given back at once. */
	p = alloc_pages_exact(5 * PAGE_SIZE, GFP_KERNEL);
	CHECK(p != NULL);
	CHECK_EQ_UL((unsigned long)p & (8 * PAGE_SIZE - 1), 0);
	CHECK_EQ_UL(page_count(virt_to_page(p + 4 * PAGE_SIZE)), 1);
	CHECK_EQ_UL(page_count(virt_to_page(p + 5 * PAGE_SIZE)), 0);
	free_pages_exact(p, 5 * PAGE_SIZE);

	/* split_page: an order-2 block becomes four pages freed one by one. */
	page = alloc_pages(GFP_KERNEL, 2);
	CHECK(page != NULL);
	split_page(page, 2);
	p = page_address(page);
	for (n = 0; n < 4; n++) {
		CHECK_EQ_UL(page_count(virt_to_page(p + n * PAGE_SIZE)), 1);
		free_page((unsigned long)(p + n * PAGE_SIZE));
	}

	/* alloc_pages_bulk fills the NULL entries only. */
	bulk[2] = alloc_page(GFP_KERNEL);
	n = alloc_pages_bulk(GFP_KERNEL, 8, bulk);
	CHECK_EQ_UL(n, 8);
	for (n = 0; n < 8; n++) {
		CHECK(bulk[n] != NULL);
		__free_page(bulk[n]);
	}

	/* A tail page of a compound block stands for the block (page_folio): get_page and
	 * put_page count on the head, page_count reads the head's, and the last put_page, of
	 * a tail, frees the whole block (checked with the rest below). */
	page = alloc_pages(GFP_KERNEL | __GFP_COMP, 2);
	CHECK(page != NULL);
	get_page(pfn_to_page(page_to_pfn(page) + 3));
	CHECK_EQ_UL(page_count(page), 2);
	CHECK_EQ_UL(page_count(pfn_to_page(page_to_pfn(page) + 1)), 2);
	put_page(pfn_to_page(page_to_pfn(page) + 1));
	CHECK_EQ_UL(page_count(page), 1);
	put_page(pfn_to_page(page_to_pfn(page) + 2));
	CHECK_EQ_UL(page_count(page), 0);

	/* Every page went back: to the free lists or the per-CPU lists. */
	CHECK_EQ_UL(mem_free_kb() + pcp_kb(), before);
	CHECK_NOT_LOG("BUG");
	CHECK_NOT_LOG("WARNING");
	return ktest_result("pages");
}
