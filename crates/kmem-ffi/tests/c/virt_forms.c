/* virt_to_page, virt_to_pfn, virt_addr_valid and __pa take an address as the kernel's macros
 * do (`__pa((unsigned long)(x))`): a pointer or the `unsigned long` __get_free_page returns,
 * clean under -Wall -Wextra -Werror, with the same answers. */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <asm/page.h>
#include "ktest.h"

int main(void)
{
	unsigned long addr = __get_free_page(GFP_KERNEL);
	const void *ptr = (const void *)addr;
	volatile char *vptr = (volatile char *)addr;
	struct page *pg;

	CHECK(addr != 0);
	pg = virt_to_page(addr);
	CHECK(pg != NULL);
	CHECK(pg == virt_to_page(ptr));
	CHECK(pg == virt_to_page((char *)addr + 100));
	CHECK(pg == virt_to_page(vptr));
	CHECK(page_address(pg) == ptr);
	CHECK(virt_to_page(__get_free_page(GFP_KERNEL)) != NULL);	/* leaked: a test of the form */
	CHECK(virt_addr_valid(addr));
	CHECK(virt_addr_valid(ptr));
	CHECK(virt_to_pfn(addr) == page_to_pfn(pg));
	CHECK(virt_to_pfn(ptr) == page_to_pfn(pg));
	CHECK(__pa(addr) == __pa(ptr));
	CHECK(__pa(addr) == page_to_phys(pg));
	free_page(addr);
	return ktest_result("virt_forms");
}
