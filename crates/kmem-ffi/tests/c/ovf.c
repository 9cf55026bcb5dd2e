/* Audit (size arithmetic): kmem_cache_create_dtor takes a size_t alignment ("offset"), so C can
 * pass any value. An alignment near SIZE_MAX, or 2^63 with SLAB_RED_ZONE, overflows the slab
 * layout arithmetic (calculate_alignment's round-up to a word, calculate_sizes' round-up of
 * the stride) and the call ends in a Rust panic caught at the boundary ("BUG: kmem internal
 * error"), instead of the kernel's "__kmem_cache_create_args(...) failed with error -22". */
#include <stdint.h>
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
	return ktest_result("ovf");
}
