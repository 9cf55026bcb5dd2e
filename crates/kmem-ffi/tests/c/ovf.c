/* Audit (size arithmetic), and bulk counts no array can hold (at the end). kmem_cache_create_dtor takes a size_t alignment ("offset"), so C can
 * pass any value. An alignment near SIZE_MAX, or 2^63 with SLAB_RED_ZONE, overflows the slab
 * layout arithmetic (calculate_alignment's round-up to a word, calculate_sizes' round-up of
 * the stride) and the call ends in a Rust panic caught at the boundary ("BUG: kmem internal
 * error"), instead of the kernel's "__kmem_cache_create_args(...) failed with error -22". */
#include <limits.h>
#include <stdint.h>
#include <linux/gfp.h>
#include <linux/slab.h>
#include "ktest.h"

int main(void)
{
	/* A mergeable cache on the list, so the next request is compared with it. */
	struct kmem_cache *a = kmem_cache_create("ovf_a", 64, 0, 0, NULL);

	CHECK(a != NULL);
	kmem_dmesg_clear();
	CHECK(kmem_cache_create_dtor("ovf_b", 64, SIZE_MAX, 0, NULL, NULL) == NULL);
	CHECK_NOT_LOG("internal error");
	CHECK_LOG("__kmem_cache_create_args(ovf_b) failed with error -22");

	kmem_dmesg_clear();
	CHECK(kmem_cache_create_dtor("ovf_rz", 64, (size_t)1 << 63, SLAB_RED_ZONE, NULL, NULL) == NULL);
	CHECK_NOT_LOG("internal error");
	CHECK_LOG("__kmem_cache_create_args(ovf_rz) failed with error -22");

	/* A size near SIZE_MAX overflows merge_size's round-up to a word the same way. */
	kmem_dmesg_clear();
	CHECK(kmem_cache_create_dtor("ovf_big", SIZE_MAX, 0, 0, NULL, NULL) == NULL);
	CHECK_NOT_LOG("internal error");
	CHECK_LOG("__kmem_cache_create_args(ovf_big) failed with error");

	/* The machine still makes caches afterwards. */
	struct kmem_cache *c = kmem_cache_create("ovf_c", 64, 0, 0, NULL);
	CHECK(c != NULL);
	kmem_cache_destroy(c);
	kmem_cache_destroy(a);
	/* Bulk counts no array can hold (more than PTRDIFF_MAX bytes of pointers) are reported
	 * and refused before anything is allocated or read, not turned into a slice. */
	{
		struct kmem_cache *bulk = kmem_cache_create("ovf_bulk", 64, 0, 0, NULL);
		void *objs[2] = { NULL, NULL };
		struct page *pages[2] = { NULL, NULL };

		CHECK(bulk != NULL);
		kmem_dmesg_clear();
		CHECK(kmem_cache_alloc_bulk(bulk, GFP_KERNEL, SIZE_MAX / 2, objs) == 0);
		CHECK_LOG("kmem_cache_alloc_bulk() called with");
		CHECK_LOG("more than any array can hold; ignored");
		CHECK(objs[0] == NULL);
		kmem_dmesg_clear();
		kmem_cache_free_bulk(bulk, SIZE_MAX / 4, objs);
		CHECK_LOG("kmem_cache_free_bulk() called with");
		kmem_dmesg_clear();
		CHECK(alloc_pages_bulk(GFP_KERNEL, ULONG_MAX, pages) == 0);
		CHECK_LOG("alloc_pages_bulk() called with");
		CHECK(pages[0] == NULL);
		/* A count an array can hold passes. */
		kmem_dmesg_clear();
		CHECK(kmem_cache_alloc_bulk(bulk, GFP_KERNEL, 2, objs) == 2);
		CHECK_NOT_LOG("more than any array");
		kmem_cache_free_bulk(bulk, 2, objs);
		CHECK(kmem_cache_destroy(bulk) == 0);
	}
	return ktest_result("ovf");
}
