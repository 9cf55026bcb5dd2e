/* Bucket sets (kmem_buckets_create & co., Linux 6.11+) and the memory-cgroup slab calls
 * (kmem_cache_alloc_lru, kmem_cache_charge) from C: the kernel's array layout of a set, its
 * caches in /proc/slabinfo, allocation through a set or NULL, failures (bad flags, bad
 * pointers, a destroyed set) reported and harmless. */
#include <string.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "ktest.h"

static int ctor_calls;
static void count_ctor(void *obj)
{
	(void)obj;
	ctor_calls++;
}

static char slabinfo[1 << 16];

/* The <num_objs>-independent part of a slabinfo line: is a cache of this name listed? */
static int listed(const char *name)
{
	char needle[64];

	if (kmem_proc_read("slabinfo", slabinfo, sizeof(slabinfo)) <= 0)
		return -1;
	snprintf(needle, sizeof(needle), "\n%s ", name);
	return strstr(slabinfo, needle) != NULL;
}

int main(void)
{
	kmem_buckets *b, *stale;
	void *p, *q, *v;
	struct kmem_cache *c;
	int bogus;

	b = kmem_buckets_create("cbkt", 0, 16, 32, count_ctor);
	CHECK(b != NULL);
	/* The kernel's layout: (*b)[index] is the cache of kmalloc class `index`. */
	CHECK((*b)[0] == NULL);
	CHECK_EQ_UL(kmem_cache_size((*b)[1]), 96);
	CHECK_EQ_UL(kmem_cache_size((*b)[2]), 192);
	CHECK_EQ_UL(kmem_cache_size((*b)[6]), 64);
	CHECK_EQ_UL(kmem_cache_size((*b)[13]), 8192);
	CHECK(listed("cbkt-8") == 1);
	CHECK(listed("cbkt-96") == 1);
	CHECK(listed("cbkt-1k") == 1);
	CHECK(listed("cbkt-8k") == 1);

	/* Objects come from the set's caches: kmem_cache_free to that cache is no misuse. */
	kmem_dmesg_clear();
	p = kmem_buckets_alloc(b, 60, GFP_KERNEL);
	CHECK(p != NULL);
	CHECK(ctor_calls > 0);
	/* With a constructor the free pointer is kept after the object: ksize is the stride. */
	CHECK_EQ_UL(ksize(p), 72);
	kmem_cache_free((*b)[6], p);
	p = kmem_buckets_alloc_track_caller(b, 100, GFP_KERNEL);
	CHECK(p != NULL);
	kmem_cache_free((*b)[7], p);
	CHECK_NOT_LOG("Wrong slab cache");
	p = kmem_buckets_alloc(b, 1000, GFP_KERNEL);
	CHECK(p != NULL);
	kfree(p);
	CHECK(kmem_buckets_alloc(b, 0, GFP_KERNEL) == ZERO_SIZE_PTR);
	p = kmem_buckets_alloc(b, 3 * PAGE_SIZE, GFP_KERNEL);
	CHECK(p != NULL);
	CHECK_EQ_UL(ksize(p), 4 * PAGE_SIZE);
	kfree(p);

	/* NULL is the kmalloc caches. */
	p = kmem_buckets_alloc(NULL, 64, GFP_KERNEL);
	CHECK(p != NULL);
	kfree(p);

	/* kmem_buckets_valloc: the set's caches, then vmalloc above KMALLOC_MAX_SIZE. */
	v = kmem_buckets_valloc(b, KMALLOC_MAX_SIZE + 1, GFP_KERNEL);
	CHECK(v != NULL && is_vmalloc_addr(v));
	kvfree(v);
	v = kmem_buckets_valloc(b, 32, GFP_KERNEL);
	CHECK(v != NULL && !is_vmalloc_addr(v));
	kmem_cache_free((*b)[5], v);
	CHECK_NOT_LOG("Wrong slab cache");

	/* kmem_cache_charge: true for live objects, false and reported for the rest. */
	q = kmem_buckets_alloc(b, 16, GFP_KERNEL);
	CHECK(kmem_cache_charge(q, GFP_KERNEL));
	kmem_dmesg_clear();
	CHECK(!kmem_cache_charge((char *)q + 4, GFP_KERNEL));
	CHECK_LOG("Invalid object pointer");
	CHECK(!kmem_cache_charge(&bogus, GFP_KERNEL));
	CHECK_LOG("kmem_cache_charge: object pointer:");
	kfree(q);

	/* kmem_cache_alloc_lru never reads the lru. */
	c = kmem_cache_create("clru", 40, 0, 0, NULL);
	CHECK(c != NULL);
	p = kmem_cache_alloc_lru(c, (struct list_lru *)&bogus, GFP_KERNEL);
	CHECK(p != NULL);
	kmem_cache_free(c, p);
	CHECK(kmem_cache_alloc_lru(c, NULL, GFP_KERNEL) == p);
	kmem_cache_free(c, p);
	CHECK_EQ_UL(kmem_cache_destroy(c), 0);

	/* Bad flags: NULL, the kernel's lines, no cache left. */
	kmem_dmesg_clear();
	CHECK(kmem_buckets_create("cbad", 1U << 27, 0, 0, NULL) == NULL);
	CHECK_LOG("__kmem_cache_create_args(cbad-96) failed with error -22");
	CHECK_LOG("kmem_buckets_create: WARN_ON");
	CHECK(listed("cbad-96") == 0);

	/* A pointer that is no set is reported. */
	kmem_dmesg_clear();
	CHECK(kmem_buckets_alloc((kmem_buckets *)&bogus, 64, GFP_KERNEL) == NULL);
	CHECK_LOG("kmem_buckets pointer that kmem did not hand out");

	/* Destroy: NULL is a no-op; the caches go; the set is refused afterwards. */
	kmem_buckets_destroy(NULL);
	stale = b;
	kmem_buckets_destroy(b);
	CHECK(listed("cbkt-64") == 0);
	kmem_dmesg_clear();
	CHECK(kmem_buckets_alloc(stale, 64, GFP_KERNEL) == NULL);
	CHECK_LOG("kmem_buckets pointer that kmem did not hand out");
	kmem_buckets_destroy(stale);
	return ktest_result("buckets");
}
