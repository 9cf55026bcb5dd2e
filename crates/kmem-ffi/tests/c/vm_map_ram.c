/* vm_map_ram()/vm_unmap_ram() from C (SEMANTICS §5.4, VM-9, VM-11, VM-13): small counts share
 * a vmap block (listed once in /proc/vmallocinfo as vm_map_ram), large ones get an area of
 * their own; bytes written through the mapping are the pages' bytes; the pages stay the
 * caller's; a wrong count, a second unmap and an address vm_map_ram() did not return are
 * reported and ignored; vm_unmap_aliases() and vfree_atomic() are declared and work. */
#include <string.h>
#include <linux/vmalloc.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

#define NPAGES 70

static int count_lines(const char *needle)
{
	static char buf[1 << 16];
	const char *p = buf;
	int n = 0;

	if (kmem_proc_read("vmallocinfo", buf, sizeof(buf)) <= 0)
		return -1;
	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

int main(void)
{
	struct page *pages[NPAGES];
	char *a, *b, *big, *v;
	int i;

	for (i = 0; i < NPAGES; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		CHECK(pages[i] != NULL);
	}
	a = vm_map_ram(pages, 3, -1);
	b = vm_map_ram(pages + 3, 1, -1);
	CHECK(a != NULL && b != NULL);
	CHECK(b == a + 4 * PAGE_SIZE);	/* 3 pages take 4, at the block's free offset */
	for (i = 0; i < 3; i++) {
		a[i * PAGE_SIZE + 5] = (char)(0x40 + i);
		CHECK_EQ_UL(((char *)page_address(pages[i]))[5], 0x40 + i);
		CHECK(vmalloc_to_page(a + i * PAGE_SIZE) == pages[i]);
	}
	CHECK(vmalloc_to_page(a + 3 * PAGE_SIZE) == NULL);
	CHECK_EQ_UL(count_lines(" vm_map_ram\n"), 1);	/* one block */

	big = vm_map_ram(pages, NPAGES, 0);	/* > BITS_PER_LONG: an area of its own */
	CHECK(big != NULL);
	big[(NPAGES - 1) * PAGE_SIZE] = 0x11;
	CHECK_EQ_UL(((char *)page_address(pages[NPAGES - 1]))[0], 0x11);
	CHECK_EQ_UL(count_lines(" vm_map_ram\n"), 2);
	CHECK_EQ_UL(ktest_meminfo_kb("VmallocUsed:"), 0);

	/* Misuse: reported, ignored, nothing touched. */
	vm_unmap_ram(a, 2);
	CHECK_LOG("cannot unmap partial");
	vm_unmap_ram(big, NPAGES + 1);
	v = vmalloc(PAGE_SIZE);
	vm_unmap_ram(v, 1);
	CHECK_LOG("BUG_ON(!vb)");
	vm_unmap_ram(v, 100);
	CHECK_LOG("no vm_map_ram area of 100 pages");
	vm_unmap_ram(NULL, 1);
	CHECK_LOG("BUG_ON(!addr)");
	vfree(a);
	CHECK_LOG("Trying to vfree() nonexistent vm area");
	CHECK_EQ_UL(a[5], 0x40);
	CHECK(vmalloc_to_page(big) == pages[0]);

	vm_unmap_ram(a, 3);
	vm_unmap_ram(b, 1);
	vm_unmap_ram(big, NPAGES);
	vm_unmap_ram(b, 1);
	CHECK_LOG("already unmapped");
	CHECK(vmalloc_to_page(a) == NULL && vmalloc_to_page(big) == NULL);
	vm_unmap_aliases();
	CHECK_EQ_UL(count_lines(" vm_map_ram\n"), 1);	/* the block, with free pages left */
	CHECK_EQ_UL(count_lines("unpurged vm_area"), 0);
	/* vmap_pfn(): frames of kmem's memory in a VM_IOREMAP area; others refused. */
	{
		unsigned long pfns[2] = { page_to_pfn(pages[0]), page_to_pfn(pages[1]) };
		char *io = vmap_pfn(pfns, 2, PAGE_KERNEL);

		CHECK(io != NULL);
		CHECK(vmalloc_to_page(io + PAGE_SIZE) == pages[1]);
		CHECK(find_vm_area(io) != NULL && find_vm_area(io)->flags == VM_IOREMAP);
		vunmap(io);
		pfns[1] = ~0UL >> 8;
		CHECK(vmap_pfn(pfns, 2, PAGE_KERNEL) == NULL);
		CHECK_LOG("is not a page frame of this machine");
	}
	for (i = 0; i < NPAGES; i++) {
		CHECK_EQ_UL(page_count(pages[i]), 1);
		__free_page(pages[i]);
	}
	vfree_atomic(v);
	vfree(NULL);
	vm_unmap_aliases();
	/* A count of 0 is vb_alloc's WARN_ON(size == 0), whatever the array (the kernel does not
	 * look at it first): NULL, and no NULL-pointer report. */
	kmem_dmesg_clear();
	CHECK(vm_map_ram(NULL, 0, NUMA_NO_NODE) == NULL);
	CHECK_LOG("WARN_ON(size == 0)");
	CHECK_NOT_LOG("NULL page array");
	return ktest_result("vm_map_ram");
}
