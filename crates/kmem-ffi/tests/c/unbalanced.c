/* Unbalanced kunmap_local/kunmap_atomic and preempt_enable, reported as the kernel does, once:
 * kunmap_local_indexed's WARN_ON_ONCE(addr < PAGE_OFFSET) for an address that is no kmap
 * mapping and no kernel address (NULL, the stack), and CONFIG_DEBUG_PREEMPT's
 * DEBUG_LOCKS_WARN_ON(val > preempt_count()) in preempt_count_sub for a preempt_enable below
 * zero. The count stays 0; balanced use keeps working; lowmem and vmalloc addresses (kernel
 * addresses, above PAGE_OFFSET in the kernel) stay silent. */
#include <linux/highmem.h>
#include <linux/preempt.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "ktest.h"

static int log_count(const char *needle)
{
	const char *s = ktest_dmesg();
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

#define KUNMAP_WARN "WARN_ON_ONCE(addr < PAGE_OFFSET)"
#define PREEMPT_WARN "DEBUG_LOCKS_WARN_ON(val > preempt_count())"

int main(void)
{
	int on_stack = 0;
	struct page *pg = alloc_page(GFP_KERNEL);
	void *v = vmalloc(PAGE_SIZE), *m;

	kmem_dmesg_clear();
	/* A lowmem page's address and a vmalloc address are kernel addresses: silent. */
	kunmap_local(page_address(pg));
	kunmap_local(v);
	CHECK_NOT_LOG("WARNING");
	CHECK(!in_atomic());

	/* A stack address, then NULL: the warning once. */
	kunmap_local(&on_stack);
	CHECK_LOG(KUNMAP_WARN);
	CHECK_LOG("WARNING: CPU: ");
	kunmap_local(NULL);
	CHECK(log_count(KUNMAP_WARN) == 1);
	CHECK(!in_atomic());

	/* preempt_enable at 0: the warning once; the count stays 0. */
	preempt_enable();
	CHECK_LOG(PREEMPT_WARN);
	CHECK(!in_atomic());
	preempt_enable();
	CHECK(log_count(PREEMPT_WARN) == 1);
	preempt_disable();
	CHECK(in_atomic());	/* one disable is one level: the underflow was not counted */
	preempt_enable();
	CHECK(!in_atomic());

	/* kunmap_atomic with no kmap_atomic: both checks, each already reported once. */
	kunmap_atomic(NULL);
	kunmap_atomic(&on_stack);
	CHECK(!in_atomic());
	CHECK(log_count(KUNMAP_WARN) == 1 && log_count(PREEMPT_WARN) == 1);

	/* Balanced use still works and stays silent. */
	m = kmap_atomic(pg);
	CHECK(m != NULL && in_atomic());
	kunmap_atomic(m);
	CHECK(!in_atomic());
	CHECK(log_count("WARNING") == 2);
	CHECK_NOT_LOG("BUG:");

	vfree(v);
	__free_page(pg);
	return ktest_result("unbalanced");
}
