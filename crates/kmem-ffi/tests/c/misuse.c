/* Misuse through the C ABI is reported in the kernel's words and ignored: the program goes on. */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/spinlock.h>
#include <asm/io.h>
#include "ktest.h"

int main(void)
{
	int on_stack = 0;
	unsigned long page;
	struct page *pg;
	spinlock_t never_initialised;
	DEFINE_SPINLOCK(lock);

	memset(&never_initialised, 0, sizeof(never_initialised));

	/* free_pages of an address kmem never handed out. */
	kmem_dmesg_clear();
	free_pages((unsigned long)&on_stack, 0);
	CHECK_LOG("BUG: free_pages: order:0: address is not in the direct map; ignored");
	free_pages(0, 3);	/* 0 is a no-op, as in the kernel */

	/* A double free is a bad page state, and the page is not freed twice. */
	kmem_dmesg_clear();
	page = __get_free_page(GFP_KERNEL);
	CHECK(page != 0);
	free_page(page);
	free_page(page);
	CHECK_LOG("BUG: Bad page state in process");
	CHECK_LOG("double free");

	/* struct page pointers that are not pages. */
	kmem_dmesg_clear();
	__free_pages(NULL, 0);
	CHECK_LOG("<1>BUG: kernel NULL pointer dereference, address: 0000000000000000");
	CHECK_LOG("kmem: __free_pages() called with a NULL struct page pointer; ignored");
	kmem_dmesg_clear();
	__free_pages((struct page *)&on_stack, 0);
	CHECK_LOG("BUG: unable to handle page fault for address:");
	CHECK_LOG("kmem: __free_pages() called with a struct page pointer that kmem did not hand out; ignored");
	CHECK(page_address((struct page *)&on_stack) == NULL);
	pg = alloc_page(GFP_KERNEL);
	CHECK(page_address((struct page *)((char *)pg + 1)) == NULL);	/* inside a page, not one */
	__free_page(pg);

	/* Addresses outside the direct map. */
	kmem_dmesg_clear();
	CHECK_EQ_UL(virt_to_phys(&on_stack), 0);
	CHECK_LOG("WARNING: virt_to_phys used for non-linear address:");
	CHECK(virt_to_page(&on_stack) == NULL);
	CHECK_LOG("WARNING: virt_to_page used for non-linear address:");
	CHECK(!virt_addr_valid(&on_stack));
	CHECK(pfn_to_page(1UL << 40) == NULL);
	CHECK_LOG("pfn_to_page: pfn 0x10000000000 is not valid");
	CHECK(!pfn_valid(1UL << 40));
	CHECK(phys_to_virt(1UL << 40) == NULL);

	/* Impossible orders are refused. */
	CHECK_EQ_UL(__get_free_pages(GFP_KERNEL | __GFP_NOWARN, MAX_ORDER), 0);
	CHECK(alloc_pages(GFP_KERNEL | __GFP_NOWARN, 99) == NULL);

	/* Spin lock misuse, as CONFIG_DEBUG_SPINLOCK reports it. */
	kmem_dmesg_clear();
	spin_lock(&never_initialised);
	CHECK_LOG("<0>BUG: spinlock bad magic on CPU#");
	spin_unlock(&never_initialised);
	kmem_dmesg_clear();
	spin_unlock(&lock);
	CHECK_LOG("BUG: spinlock already unlocked on CPU#");
	CHECK_LOG(".magic: dead4ead");
	CHECK(!in_atomic());	/* the failed unlock did not leave atomic context unbalanced */
	spin_lock(&lock);
	kmem_dmesg_clear();
	spin_lock(&lock);
	CHECK_LOG("BUG: spinlock recursion on CPU#");
	spin_unlock(&lock);
	CHECK(!spin_is_locked(&lock));
	spin_lock_init(&never_initialised);
	kmem_dmesg_clear();
	spin_lock(&never_initialised);
	spin_unlock(&never_initialised);
	CHECK_NOT_LOG("BUG");

	return ktest_result("misuse");
}
