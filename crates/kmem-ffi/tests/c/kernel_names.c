/* Kernel names a driver uses that are thin forms of others: the _node allocators (one node),
 * <linux/overflow.h>'s saturating sizes feeding the allocators, and put_page. */
#include <stdint.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include "ktest.h"

struct flex {
	int n;
	long items[];
};

int main(void)
{
	struct kmem_cache *cache;
	struct flex *f;
	struct page *page;
	char *p;
	size_t sum;
	int i, all_zero = 1;

	/* The _node forms, with a node id and with NUMA_NO_NODE. */
	p = kmalloc_node(100, GFP_KERNEL, 0);
	CHECK(p && ksize(p) == 128);
	kfree(p);
	p = kzalloc_node(200, GFP_KERNEL, NUMA_NO_NODE);
	CHECK(p != NULL);
	for (i = 0; p && i < 200; i++)
		all_zero &= p[i] == 0;
	CHECK(all_zero);
	kfree(p);
	CHECK(kcalloc_node(SIZE_MAX / 2, 4, GFP_KERNEL, 0) == NULL);	/* overflow: NULL */
	p = kmalloc_array_node(10, 10, GFP_KERNEL, NUMA_NO_NODE);
	CHECK(p && ksize(p) >= 100);
	kfree(p);
	p = kvmalloc_node(3 * PAGE_SIZE, GFP_KERNEL, 0);
	CHECK(p != NULL);
	kvfree(p);
	cache = kmem_cache_create("ktest_node", 48, 0, 0, NULL);
	p = kmem_cache_alloc_node(cache, GFP_KERNEL, NUMA_NO_NODE);
	CHECK(p != NULL);
	kmem_cache_free(cache, p);
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);
	page = alloc_pages_node(NUMA_NO_NODE, GFP_KERNEL, 2);
	CHECK(page != NULL && page_count(page) == 1);
	__free_pages(page, 2);

	/* <linux/overflow.h>: sizes that overflow saturate, and the allocators refuse them. */
	CHECK(array_size(SIZE_MAX / 2, 3) == SIZE_MAX);
	CHECK(array3_size(1000, 1000, 1000) == 1000000000UL);
	CHECK(size_add(SIZE_MAX, 1) == SIZE_MAX && size_sub(1, 2) == SIZE_MAX);
	CHECK(check_add_overflow((size_t)SIZE_MAX, (size_t)1, &sum) && !check_mul_overflow((size_t)6, (size_t)7, &sum) && sum == 42);
	CHECK(struct_size(f, items, 4) == sizeof(*f) + 4 * sizeof(long));
	f = kmalloc(struct_size(f, items, 4), GFP_KERNEL);
	CHECK(f != NULL && ksize(f) >= sizeof(*f) + 4 * sizeof(long));
	kfree(f);
	CHECK(kmalloc(struct_size(f, items, SIZE_MAX / 4), GFP_KERNEL | __GFP_NOWARN) == NULL);

	/* put_page: get_page's reference goes first, then the page. */
	page = alloc_page(GFP_KERNEL);
	get_page(page);
	CHECK_EQ_UL(page_count(page), 2);
	put_page(page);
	CHECK_EQ_UL(page_count(page), 1);
	kmem_dmesg_clear();
	put_page(page);
	CHECK_NOT_LOG("BUG");
	/* A compound block goes back whole with put_page. */
	page = alloc_pages(GFP_KERNEL | __GFP_COMP, 2);
	CHECK(page != NULL);
	put_page(page);
	CHECK_NOT_LOG("BUG");
	/* A non-compound block of four pages is __free_pages's: put_page's order 0 does not
	 * match, which is reported, and nothing is freed. */
	page = alloc_pages(GFP_KERNEL, 2);
	put_page(page);
	CHECK_LOG("BUG");
	CHECK_EQ_UL(page_count(page), 1);
	__free_pages(page, 2);
	return ktest_result("kernel_names");
}
