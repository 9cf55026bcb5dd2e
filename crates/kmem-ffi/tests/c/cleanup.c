/* Scope-based freeing from <linux/cleanup.h>, as 6.5+ drivers write it with kmem's allocators:
 * a `__free(kfree)` variable is kfree()d when its scope ends, on every path out (an early
 * return included), unless no_free_ptr()/return_ptr() took the pointer out of it; NULL and
 * error pointers are left alone, as the kernel's kfree class does; `__free(kvfree)` and
 * `__free(vfree)` free vmalloc memory. Counted with kmem_cache_nr_allocated() on a cache of
 * its own (kfree frees any slab object) and with VmallocUsed. */
#include <linux/cleanup.h>
#include <linux/err.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "ktest.h"

static struct kmem_cache *cache;

static int scope_frees(int fail)
{
	void *p __free(kfree) = kmem_cache_alloc(cache, GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	if (fail)
		return -EINVAL;		/* freed here */
	memset(p, 1, 64);
	return 0;			/* and here */
}

static void *handed_out(void)
{
	void *p __free(kfree) = kmem_cache_alloc(cache, GFP_KERNEL);

	if (!p)
		return NULL;
	return_ptr(p);			/* not freed: the caller owns it */
}

static void *taken_out(void)
{
	void *p __free(kfree) = kmem_cache_alloc(cache, GFP_KERNEL);
	void *q = no_free_ptr(p);

	CHECK(p == NULL);
	return q;
}

static void null_and_error_pointers_are_left_alone(void)
{
	void *a __free(kfree) = NULL;
	void *b __free(kfree) = ERR_PTR(-ENOMEM);
	void *c __free(kvfree) = ERR_PTR(-EINVAL);
	void *d __free(vfree) = NULL;

	(void)a;
	(void)b;
	(void)c;
	(void)d;
}

static void vmalloc_memory(void)
{
	void *v __free(vfree) = vmalloc(64 * PAGE_SIZE);
	void *kv __free(kvfree) = kvmalloc(8 << 20, GFP_KERNEL);

	CHECK(v != NULL && kv != NULL && is_vmalloc_addr(kv));
	CHECK(ktest_meminfo_kb("VmallocUsed:") >= 64 * 4 + (8 << 10));
}

int main(void)
{
	void *p, *q;
	long used;

	cache = kmem_cache_create("cleanup_objs", 64, 0, SLAB_NO_MERGE, NULL);
	CHECK(cache != NULL);
	CHECK_EQ_UL(scope_frees(0), 0);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);
	CHECK(scope_frees(1) == -EINVAL);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);
	p = handed_out();
	q = taken_out();
	CHECK(p != NULL && q != NULL);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 2);
	{
		void *r __free(kfree) = p;

		retain_and_null_ptr(r);	/* r is NULL now: p is not freed */
		CHECK(r == NULL);
	}
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 2);
	kfree(p);
	kfree(q);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);
	null_and_error_pointers_are_left_alone();
	used = ktest_meminfo_kb("VmallocUsed:");
	vmalloc_memory();
	CHECK_EQ_UL(ktest_meminfo_kb("VmallocUsed:"), used);
	CHECK_EQ_UL(kmem_cache_destroy(cache), 0);
	CHECK_NOT_LOG("WARNING");
	CHECK_NOT_LOG("BUG");
	return ktest_result("cleanup");
}
