/* vmap(pages, count, VM_MAP_PUT_PAGES, prot) from C (VM-9): the area takes the pages and the
 * kmalloc'd or vmalloc'd pages array, so vfree() frees every page and kvfree()s the array;
 * vunmap() leaves both to the caller; an array kvfree() could not free (here, one on the
 * stack) is reported and refused, and so is a page that is not kmem's, both leaving the
 * caller everything. */
#include <linux/vmalloc.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "ktest.h"

#define NPAGES 3

_Static_assert(VM_MAP_PUT_PAGES == 0x00000200, "the kernel's value");

static struct page **page_array(void)
{
	struct page **arr = kmalloc_array(NPAGES, sizeof(*arr), GFP_KERNEL);
	int i;

	if (!arr)
		return NULL;
	for (i = 0; i < NPAGES; i++)
		arr[i] = alloc_page(GFP_KERNEL);
	return arr;
}

int main(void)
{
	struct page **arr, *pg[NPAGES], *local[NPAGES];
	void *v, *again;
	int i;

	/* A kmalloc'd array: vfree puts the pages and frees the array. */
	arr = page_array();
	CHECK(arr != NULL);
	for (i = 0; i < NPAGES; i++) {
		CHECK(arr[i] != NULL);
		pg[i] = arr[i];
	}
	v = vmap(arr, NPAGES, VM_MAP_PUT_PAGES, PAGE_KERNEL);
	CHECK(v != NULL);
	for (i = 0; i < NPAGES; i++)
		CHECK(vmalloc_to_page((char *)v + i * PAGE_SIZE) == pg[i]);
	((char *)v)[PAGE_SIZE + 5] = 7;
	CHECK_EQ_UL(((char *)page_address(pg[1]))[5], 7);
	vfree(v);
	for (i = 0; i < NPAGES; i++)
		CHECK_EQ_UL(page_count(pg[i]), 0);	/* back in the page allocator */
	/* The array went to kfree: the same size class hands the object just freed out first. */
	again = kmalloc_array(NPAGES, sizeof(*arr), GFP_KERNEL);
	CHECK(again == (void *)arr);
	kfree(again);
	CHECK_NOT_LOG("nonexistent vm area");
	CHECK_NOT_LOG("WARNING");

	/* A vmalloc'd array (kvmalloc's fallback): vfree of the area vfree()s the array too. */
	arr = vmalloc(PAGE_SIZE);
	CHECK(arr != NULL);
	for (i = 0; i < NPAGES; i++) {
		arr[i] = alloc_page(GFP_KERNEL);
		CHECK(arr[i] != NULL);
		pg[i] = arr[i];
	}
	v = vmap(arr, NPAGES, VM_MAP_PUT_PAGES, PAGE_KERNEL);
	CHECK(v != NULL);
	CHECK(vmalloc_to_page(arr) != NULL);
	vfree(v);
	CHECK(vmalloc_to_page(arr) == NULL);	/* the array's area is gone */
	for (i = 0; i < NPAGES; i++)
		CHECK_EQ_UL(page_count(pg[i]), 0);
	CHECK_NOT_LOG("nonexistent vm area");

	/* vunmap: the pages and the array stay the caller's. */
	arr = page_array();
	CHECK(arr != NULL);
	v = vmap(arr, NPAGES, VM_MAP_PUT_PAGES, PAGE_KERNEL);
	CHECK(v != NULL);
	vunmap(v);
	CHECK(vmalloc_to_page(v) == NULL);
	for (i = 0; i < NPAGES; i++) {
		CHECK_EQ_UL(page_count(arr[i]), 1);
		__free_page(arr[i]);
	}
	kfree(arr);
	CHECK_NOT_LOG("WARNING");

	/* An array kvfree() could not free: reported, refused, everything still the caller's. */
	for (i = 0; i < NPAGES; i++) {
		local[i] = alloc_page(GFP_KERNEL);
		CHECK(local[i] != NULL);
	}
	v = vmap(local, NPAGES, VM_MAP_PUT_PAGES, PAGE_KERNEL);
	CHECK(v == NULL);
	CHECK_LOG("vmap: VM_MAP_PUT_PAGES page array");
	CHECK_LOG("is not from kmalloc or kvmalloc");
	for (i = 0; i < NPAGES; i++) {
		CHECK_EQ_UL(page_count(local[i]), 1);
		__free_page(local[i]);
	}

	/* A failed vmap takes nothing: a NULL entry leaves the array and the pages to the caller. */
	arr = page_array();
	CHECK(arr != NULL);
	__free_page(arr[NPAGES - 1]);
	arr[NPAGES - 1] = NULL;
	v = vmap(arr, NPAGES, VM_MAP_PUT_PAGES, PAGE_KERNEL);
	CHECK(v == NULL);
	for (i = 0; i < NPAGES - 1; i++) {
		CHECK_EQ_UL(page_count(arr[i]), 1);
		__free_page(arr[i]);
	}
	kfree(arr);
	return ktest_result("vmap_put_pages");
}
