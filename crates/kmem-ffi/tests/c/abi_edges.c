/* Edges of the C ABI a driver port hits with sizes and counts C computed wrongly: every call
 * below must fail cleanly (NULL, with the kernel's report or none), never end in a kmem
 * internal error or abort the process. The driver (tests/c_abi.rs) runs the program with
 * kmemleak off and on (KMEM_KMEMLEAK=1), whose bookkeeping sees every vmalloc result.
 *
 * VM-2: vmalloc() of a size above total RAM (SIZE_MAX included, which does not even round up
 * to whole pages) is NULL with the `exceeds total pages` report. §5.4 (vmap): a count above
 * totalram_pages() is NULL, silently, after the flag checks and before the page array is read;
 * vmap_pfn the same; vm_map_ram refuses it with a warning (docs/deviations.md). MP-12: a page
 * pool of a negative order asks alloc_pages() for that order as an unsigned int, as the
 * kernel's helper does, and gets the page allocator's order warning (it failed silently).
 * <asm/page.h>: PAGE_ALIGN(x) is the kernel's ALIGN(x, PAGE_SIZE), of the type of x (it was
 * always unsigned long). free_vm_area(NULL) is reported in records of their own. */
#include <limits.h>
#include <stdint.h>
#include <linux/gfp.h>
#include <linux/mempool.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "ktest.h"

/* First: the order warning is WARN_ON_ONCE, once per machine. */
static void a_page_pool_of_a_negative_order_is_warned_about(void)
{
	mempool_t *pool;
	struct page *page;

	CHECK(mempool_create_page_pool(1, -1) == NULL);
	CHECK_LOG("order 4294967295 > MAX_PAGE_ORDER (10)");
	CHECK(mempool_alloc_pages(GFP_KERNEL, (void *)(long)-2) == NULL);
	/* A pool of a valid order still works, and its free helper takes the element back. */
	pool = mempool_create_page_pool(1, 1);
	CHECK(pool != NULL);
	page = mempool_alloc(pool, GFP_KERNEL);
	CHECK(page != NULL);
	mempool_free(page, pool);
	mempool_destroy(pool);
	/* A negative order on the free side is a wrong order: reported, the page left alone. */
	page = alloc_pages(GFP_KERNEL, 0);
	CHECK(page != NULL);
	mempool_free_pages(page, (void *)(long)-1);
	CHECK_LOG("order:4294967295: order does not fit the page");
	CHECK_EQ_UL(page_count(page), 1);
	__free_pages(page, 0);
	CHECK_NOT_LOG("internal error");
}

static void huge_vmalloc_sizes_fail_cleanly(void)
{
	CHECK(vmalloc(SIZE_MAX) == NULL);
	CHECK_LOG("vmalloc error: size 18446744073709551615, exceeds total pages");
	CHECK(vzalloc(SIZE_MAX) == NULL);
	CHECK(vmalloc_user(SIZE_MAX) == NULL);
	CHECK(vmalloc_32(SIZE_MAX - 1) == NULL);
	CHECK(vmalloc_32_user(SIZE_MAX) == NULL);
	CHECK(__vmalloc(SIZE_MAX, GFP_KERNEL) == NULL);
	CHECK(vmalloc_huge(SIZE_MAX, GFP_KERNEL) == NULL);
	CHECK(vmalloc_huge_node(SIZE_MAX, GFP_KERNEL, NUMA_NO_NODE) == NULL);
	CHECK(kvmalloc(SIZE_MAX, GFP_KERNEL | __GFP_NOWARN) == NULL);
	CHECK_NOT_LOG("internal error");
}

static void page_counts_above_memory_are_refused_before_the_array_is_read(void)
{
	struct page *one[1];
	unsigned long pfns[1];
	void *v;

	one[0] = alloc_page(GFP_KERNEL);
	CHECK(one[0] != NULL);
	pfns[0] = page_to_pfn(one[0]);

	/* The kernel's `count > totalram_pages()`: NULL and nothing else. */
	CHECK(vmap(one, UINT_MAX, 0, PAGE_KERNEL) == NULL);
	CHECK(vmap(one, UINT_MAX, VM_MAP_PUT_PAGES, PAGE_KERNEL) == NULL);
	CHECK(vmap_pfn(pfns, UINT_MAX, PAGE_KERNEL) == NULL);
	CHECK(vmap(NULL, UINT_MAX, 0, PAGE_KERNEL) == NULL);	/* the array is never looked at */
	CHECK_NOT_LOG("page array");
	/* The flag checks come first, as in the kernel's vmap. */
	CHECK(vmap(one, UINT_MAX, VM_FLUSH_RESET_PERMS, PAGE_KERNEL) == NULL);
	CHECK_LOG("vmap: VM_FLUSH_RESET_PERMS is not allowed");
	CHECK(vm_map_ram(one, UINT_MAX, NUMA_NO_NODE) == NULL);
	CHECK_LOG("vm_map_ram: count 4294967295 is more pages than the machine has");
	CHECK_NOT_LOG("internal error");
	CHECK_EQ_UL(page_count(one[0]), 1);

	/* The same arrays with their true counts still map. */
	v = vmap(one, 1, 0, PAGE_KERNEL);
	CHECK(v != NULL);
	((char *)v)[5] = 7;
	CHECK(vmalloc_to_page(v) == one[0]);
	vunmap(v);
	v = vm_map_ram(one, 1, NUMA_NO_NODE);
	CHECK(v != NULL);
	CHECK(((char *)v)[5] == 7);
	vm_unmap_ram(v, 1);
	v = vmap_pfn(pfns, 1, PAGE_KERNEL);
	CHECK(v != NULL);
	CHECK(((char *)v)[5] == 7);
	vunmap(v);
	__free_page(one[0]);
}

/* The kernel's PAGE_ALIGN is ALIGN(addr, PAGE_SIZE): the type of its argument, so a u32 length
 * stays a u32 (printk("%u", PAGE_ALIGN(len)) compiles under -Werror=format) and wraps at 4 GiB
 * as the kernel's does (the overflow test `PAGE_ALIGN(len) < len` then works). */
static void page_align_keeps_the_type_of_its_argument(void)
{
	unsigned int len = 0xfffff001u;
	unsigned long big = 4097;
	char buf[32];

	CHECK(_Generic(PAGE_ALIGN(len), unsigned int: 1, default: 0));
	CHECK(_Generic(PAGE_ALIGN(big), unsigned long: 1, default: 0));
	CHECK(_Generic(PAGE_ALIGN((unsigned long long)big), unsigned long long: 1, default: 0));
	CHECK_EQ_UL(PAGE_ALIGN(len), 0);
	CHECK(PAGE_ALIGN(len) < len);
	CHECK_EQ_UL(PAGE_ALIGN(4097u), 8192);
	CHECK_EQ_UL(PAGE_ALIGN(big), 8192);
	CHECK_EQ_UL(PAGE_ALIGN(8192UL), 8192);
	CHECK_EQ_UL(PAGE_ALIGN(0UL), 0);
	snprintf(buf, sizeof(buf), "%u", PAGE_ALIGN(1000u));
	CHECK(strcmp(buf, "4096") == 0);
}

/* free_vm_area(NULL) is reported as the other NULL handles are: the kernel's fault line and
 * kmem's own, each a record of its own (the report lacked its newline, so the next message
 * was glued to it as a continuation). */
static void free_vm_area_of_null_is_a_report_of_its_own(void)
{
	free_vm_area(NULL);
	printk(KERN_INFO "abi_edges: after free_vm_area\n");
	CHECK_LOG("<1>kmem: free_vm_area() called with a NULL struct vm_struct pointer; ignored\n");
	CHECK_LOG("\n<6>abi_edges: after free_vm_area\n");
}

int main(void)
{
	page_align_keeps_the_type_of_its_argument();
	a_page_pool_of_a_negative_order_is_warned_about();
	huge_vmalloc_sizes_fail_cleanly();
	free_vm_area_of_null_is_a_report_of_its_own();
	page_counts_above_memory_are_refused_before_the_array_is_read();
	return ktest_result("abi_edges");
}
