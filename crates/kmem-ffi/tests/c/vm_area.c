/* struct vm_struct from C (SEMANTICS §5.4): get_vm_area()/find_vm_area() give the kernel's
 * fields (size with the guard page, get_vm_area_size() without), remove_vm_area() hands the
 * struct to the caller to kfree(), free_vm_area() frees both, vm_map_ram() areas have none,
 * and no struct outlives its area (kmalloc objects counted through /proc/slabinfo-free
 * meminfo: Slab does not grow over many rounds). */
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

int main(void)
{
	struct vm_struct *area, *found, *removed;
	struct page *pages[2];
	char *p, *v, *r;
	long slab0 = -1;
	int round;

	pages[0] = alloc_page(GFP_KERNEL);
	pages[1] = alloc_page(GFP_KERNEL);
	for (round = 0; round < 200; round++) {
		area = get_vm_area(3 * PAGE_SIZE, VM_IOREMAP);
		CHECK(area != NULL);
		CHECK_EQ_UL(area->size, 4 * PAGE_SIZE);
		CHECK_EQ_UL(get_vm_area_size(area), 3 * PAGE_SIZE);
		CHECK_EQ_UL(area->flags, VM_IOREMAP);
		CHECK(find_vm_area((char *)area->addr + PAGE_SIZE) == area);	/* one struct per area */

		p = vmalloc(2 * PAGE_SIZE + 5);
		found = find_vm_area(p);
		CHECK(found != NULL && found->addr == p);
		CHECK_EQ_UL(found->nr_pages, 3);
		CHECK_EQ_UL(found->requested_size, 2 * PAGE_SIZE + 5);
		CHECK_EQ_UL(found->flags & VM_ALLOC, VM_ALLOC);
		CHECK_EQ_UL(get_vm_area_size(found), 3 * PAGE_SIZE);

		v = vmap(pages, 2, VM_MAP, PAGE_KERNEL);
		CHECK(find_vm_area(v) != NULL && find_vm_area(v)->nr_pages == 0);
		removed = remove_vm_area(v);
		CHECK(removed != NULL && removed->addr == v);
		CHECK(vmalloc_to_page(v) == NULL);
		kfree(removed);	/* as the kernel's callers do */

		r = vm_map_ram(pages, 2, -1);
		CHECK(find_vm_area(r) == NULL);
		vm_unmap_ram(r, 2);

		CHECK(remove_vm_area(p) == NULL);	/* owns its pages: free it with vfree() */
		vfree(p);
		free_vm_area(area);
		vm_unmap_aliases();
		if (round == 10)
			slab0 = ktest_meminfo_kb("Slab:");
	}
	CHECK_LOG("owns its pages");
	CHECK(ktest_meminfo_kb("Slab:") <= slab0 + 16);

	/* Structs of areas freed another way (kvfree(), vfree_atomic()) are pruned, not kept for
	 * ever: Slab stays bounded over many rounds. */
	for (round = 0; round < 3000; round++) {
		p = vmalloc(PAGE_SIZE);
		CHECK(find_vm_area(p) != NULL);
		if (round & 1)
			kvfree(p);
		else
			vfree_atomic(p);
		if (round == 1000) {
			vm_unmap_aliases();
			slab0 = ktest_meminfo_kb("Slab:");
		}
	}
	vm_unmap_aliases();
	CHECK(ktest_meminfo_kb("Slab:") <= slab0 + 64);

	/* Many structs held at once: each call finds its own without walking the others
	 * (free_vm_area by pointer, stale structs pruned only when the registry doubles). */
	{
		enum { N = 4000 };
		static struct vm_struct *held[N];
		int i;

		for (i = 0; i < N; i++) {
			held[i] = get_vm_area(PAGE_SIZE, VM_IOREMAP);
			CHECK(held[i] != NULL);
		}
		for (i = 0; i < N; i++)
			CHECK(find_vm_area(held[i]->addr) == held[i]);
		for (i = N - 1; i >= 0; i--)
			free_vm_area(held[i]);
	}

	/* vmalloc_huge(): PMD-size blocks where the profile has them (page_order 9: size rounded
	 * up to and aligned on 2 MiB), small pages otherwise. */
	p = vmalloc_huge(3UL << 20, GFP_KERNEL);
	found = find_vm_area(p);
	CHECK(found != NULL);
	if (found->page_order == 9) {
		CHECK_EQ_UL((unsigned long)p & ((2UL << 20) - 1), 0);
		CHECK_EQ_UL(found->size, (4UL << 20) + PAGE_SIZE);
		CHECK_EQ_UL(vmalloc_to_pfn(p) % 512, 0);
		CHECK_EQ_UL(vmalloc_to_pfn(p + PAGE_SIZE), vmalloc_to_pfn(p) + 1);
	} else {
		CHECK_EQ_UL(found->page_order, 0);
		CHECK_EQ_UL(found->size, (3UL << 20) + PAGE_SIZE);
	}
	CHECK_EQ_UL(found->flags & VM_ALLOW_HUGE_VMAP, VM_ALLOW_HUGE_VMAP);
	vfree(p);
	p = vmalloc_huge_node(PAGE_SIZE, GFP_KERNEL, 0);
	CHECK(p != NULL && find_vm_area(p)->page_order == 0);
	vfree(p);
	free_vm_area((struct vm_struct *)pages[0]);
	CHECK_LOG("free_vm_area");
	CHECK_NOT_LOG("nonexistent vm area");
	__free_page(pages[0]);
	__free_page(pages[1]);
	return ktest_result("vm_area");
}
