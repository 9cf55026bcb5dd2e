/* alloc_pages_exact(0) and free_pages_exact(NULL, size) as the kernel's arithmetic has them
 * (§2, PA-18's functions): get_order(0) is BITS_PER_LONG - PAGE_SHIFT, order 52 here, which the
 * page allocator refuses with its WARN_ON_ONCE_GFP (kmem failed silently); freeing NULL with at
 * most a page is the kernel's free_page(0), nothing at all (kmem reported a NULL dereference),
 * while NULL with more pages is still reported (the kernel would free the page at address
 * 4096). A program of its own: the order warning is once per machine. */
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

int main(void)
{
	void *p;

	CHECK(alloc_pages_exact(0, GFP_KERNEL) == NULL);
	CHECK_LOG("order 52 > MAX_PAGE_ORDER (10)");

	free_pages_exact(NULL, 0);
	free_pages_exact(NULL, 1);
	free_pages_exact(NULL, PAGE_SIZE);
	CHECK_NOT_LOG("free_pages_exact() called with a NULL");
	free_pages_exact(NULL, 2 * PAGE_SIZE);
	CHECK_LOG("free_pages_exact() called with a NULL address");

	/* Sizes that are no edge still work: 3 pages out of an order-2 block. */
	p = alloc_pages_exact(3 * PAGE_SIZE - 100, GFP_KERNEL);
	CHECK(p != NULL);
	memset(p, 0x5a, 3 * PAGE_SIZE);
	free_pages_exact(p, 3 * PAGE_SIZE - 100);
	CHECK_NOT_LOG("internal error");
	return ktest_result("pages_exact_edges");
}
