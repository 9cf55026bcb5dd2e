/* SL-9 edge: the bulk calls with size 0 return at once, as mm/slub.c's `if (!size) return`:
 * kmem_cache_alloc_bulk gives 0 and kmem_cache_free_bulk/kfree_bulk do nothing, with a NULL
 * array, and no report. A NULL array with a size is still reported. */
#include <linux/slab.h>
#include "ktest.h"

int main(void)
{
	struct kmem_cache *c = kmem_cache_create("bulk0", 64, 0, 0, NULL);
	void *objs[2];

	CHECK(c != NULL);
	kmem_dmesg_clear();
	CHECK(kmem_cache_alloc_bulk(c, GFP_KERNEL, 0, NULL) == 0);
	CHECK(kmem_cache_alloc_bulk(c, GFP_KERNEL, 0, objs) == 0);
	kmem_cache_free_bulk(c, 0, NULL);
	kmem_cache_free_bulk(NULL, 0, NULL);
	CHECK_NOT_LOG("BUG");
	CHECK_NOT_LOG("NULL");
	CHECK(kmem_cache_alloc_bulk(c, GFP_KERNEL, 2, objs) == 2);
	kmem_cache_free_bulk(c, 2, objs);
	CHECK_NOT_LOG("BUG");
	/* A size with no array is still the NULL-pointer report. */
	CHECK(kmem_cache_alloc_bulk(c, GFP_KERNEL, 1, NULL) == 0);
	CHECK_LOG("kmem_cache_alloc_bulk() called with a NULL object array");
	CHECK(kmem_cache_destroy(c) == 0);
	return ktest_result("bulk_zero");
}
