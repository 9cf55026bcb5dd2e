/* include/linux/highmem.h's inline helpers on a HighMem page (no direct-map address on the
 * i386 profile: every access goes through kmap_local_page) and on a lowmem one:
 * memset_page, memcpy_to_page, memcpy_from_page, zero_user_segments, zero_user,
 * clear_highpage, copy_highpage, and asm/page.h's clear_page/copy_page. */
#include <linux/gfp.h>
#include <linux/highmem.h>
#include "ktest.h"

static int all(const char *p, size_t n, char c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

int main(void)
{
	struct page *hi = alloc_page(GFP_HIGHUSER), *lo = alloc_page(GFP_KERNEL);
	char buf[PAGE_SIZE], *k;

	CHECK(hi != NULL && lo != NULL && PageHighMem(hi) && !PageHighMem(lo));
	CHECK(page_address(hi) == NULL);
	memset_page(hi, 0, 'a', PAGE_SIZE);
	memcpy_to_page(hi, 100, "kmem", 4);
	memcpy_from_page(buf, hi, 98, 8);
	CHECK(memcmp(buf, "aakmemaa", 8) == 0);
	zero_user_segments(hi, 0, 10, PAGE_SIZE - 10, PAGE_SIZE);
	zero_user(hi, 200, 5);
	memzero_page(hi, 300, 1);
	memcpy_from_page(buf, hi, 0, PAGE_SIZE);
	CHECK(all(buf, 10, 0) && all(buf + 10, 90, 'a') && all(buf + PAGE_SIZE - 10, 10, 0));
	CHECK(all(buf + 200, 5, 0) && buf[205] == 'a' && buf[300] == 0 && buf[301] == 'a');
	copy_highpage(lo, hi);
	CHECK(memcmp(page_address(lo), buf, PAGE_SIZE) == 0);
	clear_highpage(hi);
	k = kmap_local_page(hi);
	CHECK(all(k, PAGE_SIZE, 0));
	kunmap_local(k);
	copy_page(buf, page_address(lo));
	clear_page(page_address(lo));
	CHECK(all(page_address(lo), PAGE_SIZE, 0) && buf[100] == 'k');
	__free_page(hi);
	__free_page(lo);
	CHECK_NOT_LOG("BUG");
	CHECK_NOT_LOG("WARNING");
	return ktest_result("highmem_helpers");
}
