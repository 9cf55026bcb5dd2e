/* put_page drops one reference (folio_put): on a page of a non-compound block of more than one
 * page that someone else still holds, that is all it does, as the kernel's. kmem took every
 * put_page of such a block for a free with the wrong order: it reported "freed with a
 * different order" and kept the reference, so the owner's __free_pages(page, order) then found
 * two references, freed only the tail halves and leaked the head page. The last reference of
 * such a block is still the owner's to drop with __free_pages (its put_page is reported). */
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

int main(void)
{
	struct page *page = alloc_pages(GFP_KERNEL, 2);

	CHECK(page != NULL);
	get_page(page);
	CHECK(page_count(page) == 2);
	put_page(page);
	CHECK(page_count(page) == 1);
	CHECK_NOT_LOG("freed with a different order");
	__free_pages(page, 2);
	CHECK(page_count(page) == 0);	/* the whole block is free, the head too */
	CHECK_NOT_LOG("Bad page state");

	/* The last reference by put_page: reported, and the block stays the owner's. */
	page = alloc_pages(GFP_KERNEL, 2);
	put_page(page);
	CHECK_LOG("freed with a different order");
	CHECK(page_count(page) == 1);
	__free_pages(page, 2);
	CHECK(page_count(page) == 0);
	return ktest_result("put_page_refs");
}
