/* virt_to_head_page(x) is compound_head(virt_to_page(x)) (include/linux/mm.h): for an address
 * anywhere in a compound block (a large kmalloc, an alloc_pages(__GFP_COMP) block) it is the
 * block's head page. The header defined it as virt_to_page, so it gave the tail page: its
 * page_address was not the block's, and __free_pages of it with the block's order was
 * reported as a double free and freed nothing (the block leaked). Pages of no compound block,
 * and addresses outside the direct map, are answered as virt_to_page answers them. */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "ktest.h"

int main(void)
{
	char *large = kmalloc(5 * PAGE_SIZE, GFP_KERNEL);	/* an order-3 compound block */
	struct page *comp = alloc_pages(GFP_KERNEL | __GFP_COMP, 2);
	struct page *plain = alloc_pages(GFP_KERNEL, 2);
	char *obj = kmalloc(64, GFP_KERNEL);
	unsigned long addr = __get_free_page(GFP_KERNEL);
	char *c, *p;
	int local;

	CHECK(large != NULL && comp != NULL && plain != NULL && obj != NULL && addr != 0);
	CHECK(virt_to_head_page(large) == virt_to_page(large));
	CHECK(virt_to_head_page(large + 3 * PAGE_SIZE + 5) == virt_to_page(large));
	CHECK(page_address(virt_to_head_page(large + 7 * PAGE_SIZE)) == large);

	c = page_address(comp);
	CHECK(virt_to_head_page(c + 2 * PAGE_SIZE) == comp);
	CHECK(virt_to_head_page(c + 4 * PAGE_SIZE - 1) == comp);

	/* A plain block's pages are their own heads, as are a slab's and an order-0 page's. */
	p = page_address(plain);
	CHECK(virt_to_head_page(p + PAGE_SIZE) == virt_to_page(p + PAGE_SIZE));
	CHECK(virt_to_head_page(obj) == virt_to_page(obj));
	CHECK(virt_to_head_page(addr) == virt_to_page(addr));	/* the unsigned long form */

	/* Outside the direct map: NULL with the CONFIG_DEBUG_VIRTUAL warning, as virt_to_page. */
	CHECK(virt_to_head_page(&local) == NULL);
	CHECK_LOG("WARNING: virt_to_head_page used for non-linear address");

	/* Freed through the head found from a tail address: nothing reported, nothing leaked. */
	__free_pages(virt_to_head_page(c + 3 * PAGE_SIZE), 2);
	CHECK_NOT_LOG("double free");
	CHECK_NOT_LOG("Bad page state");
	__free_pages(plain, 2);
	kfree(large);
	kfree(obj);
	free_page(addr);
	CHECK_NOT_LOG("Bad page state");
	return ktest_result("head_page");
}
