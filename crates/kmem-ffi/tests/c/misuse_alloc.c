/* Misuse of the allocators through the C ABI is reported in the kernel's words and ignored:
 * kfree of memory kmem did not hand out, double frees, the wrong cache, vfree of an address
 * that is no vmalloc area, mempool_free with no pool, destroying a cache that has objects. The
 * program goes on after each, and the allocator still works. */
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/highmem.h>
#include <string.h>
#include <linux/mempool.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/errno.h>
#include "ktest.h"

static int frees;

static int all_zero(const unsigned char *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}
static void *pool_alloc(gfp_t gfp, void *data) { (void)data; return kmalloc(32, gfp); }
static void pool_free(void *element, void *data) { (void)data; frees++; kfree(element); }

int main(void)
{
	int on_stack = 0;
	struct kmem_cache *a, *b;
	char *p, *q;
	void *v;
	struct page *pg, *pg2;
	mempool_t *mp;

	/* kfree of memory kmem did not hand out: a stack address, the inside of a page. */
	kmem_dmesg_clear();
	kfree(&on_stack);
	CHECK_LOG("kfree: object pointer: 0x");
	CHECK_LOG("not a kmem address (outside the direct map); ignored");
	pg = alloc_page(GFP_KERNEL);
	kmem_dmesg_clear();
	kfree((char *)page_address(pg) + 64);
	CHECK_LOG("Not a kmalloc allocation (page:pfn:");
	CHECK_EQ_UL(page_count(pg), 1);	/* the page is untouched */
	__free_page(pg);
	kmem_dmesg_clear();
	CHECK_EQ_UL(ksize(&on_stack), 0);
	CHECK_LOG("<4>WARNING: at ");
	CHECK_LOG("ksize: object pointer: 0x");

	/* A double kfree is the kernel's set_freepointer BUG; the second free is ignored. */
	p = kmalloc(100, GFP_KERNEL);
	kfree(p);
	kmem_dmesg_clear();
	kfree(p);
	CHECK_LOG("kernel BUG at mm/slub.c: set_freepointer: object == fp");
	CHECK_LOG("double free of object 0x");
	CHECK_LOG("in cache kmalloc-128; the free is ignored");
	q = kmalloc(100, GFP_KERNEL);
	CHECK(q == p);	/* handed out once, not twice */
	CHECK(kmalloc(100, GFP_KERNEL) != p);
	kfree(q);

	/* The wrong cache: freed to its own, with cache_from_obj's warning. */
	a = kmem_cache_create("ktest_a", 48, 0, 0, NULL);
	b = kmem_cache_create("ktest_b", 80, 0, SLAB_NO_MERGE, NULL);
	p = kmem_cache_alloc(b, GFP_KERNEL);
	kmem_dmesg_clear();
	kmem_cache_free(a, p);
	CHECK_LOG("cache_from_obj: Wrong slab cache. ktest_a but object is from ktest_b");
	CHECK(kmem_cache_alloc(b, GFP_KERNEL) == p);	/* it went back to ktest_b */
	kmem_cache_free(b, p);
	kmem_dmesg_clear();
	kmem_cache_free(b, p);
	CHECK_LOG("double free of object 0x");
	kmem_dmesg_clear();
	kmem_cache_free((struct kmem_cache *)&on_stack, p);
	CHECK_LOG("BUG: unable to handle page fault for address:");
	CHECK_LOG("kmem: kmem_cache_free() called with a struct kmem_cache pointer that kmem did not hand out; ignored");
	kmem_dmesg_clear();
	CHECK(kmem_cache_alloc(NULL, GFP_KERNEL) == NULL);
	CHECK_LOG("kmem: kmem_cache_alloc() called with a NULL struct kmem_cache pointer; ignored");

	/* Destroying a cache with objects: -EBUSY and the kernel's two reports. */
	p = kmem_cache_alloc(a, GFP_KERNEL);
	kmem_dmesg_clear();
	CHECK_EQ_UL(kmem_cache_destroy(a), -EBUSY);
	CHECK_LOG("<3>BUG ktest_a (Not tainted): Objects remaining on __kmem_cache_shutdown()");
	CHECK_LOG("<4>kmem_cache_destroy ktest_a: Slab cache still has objects when called from");
	kmem_dmesg_clear();
	CHECK_EQ_UL(kmem_cache_destroy(a), 0);	/* the handle is dead now: reported */
	CHECK_LOG("kmem: kmem_cache_destroy() called with a struct kmem_cache pointer that kmem did not hand out; ignored");
	kfree(p);
	CHECK_EQ_UL(kmem_cache_destroy(b), 0);

	/* vfree of addresses that start no vmalloc area. A kmalloc-64 object that is not
	 * page-aligned (the first object of a slab page is: of two objects, one is not). */
	p = kmalloc(64, GFP_KERNEL);
	q = kmalloc(64, GFP_KERNEL);
	if (((unsigned long)p & ~PAGE_MASK) == 0) {
		void *t = p;
		p = q;
		q = t;
	}
	CHECK(((unsigned long)p & ~PAGE_MASK) != 0);
	kmem_dmesg_clear();
	vfree(p);
	CHECK_LOG("Trying to vfree() bad address (");	/* not even page-aligned */
	CHECK(ksize(p) == 64);	/* still a live kmalloc object */
	kfree(p);
	kfree(q);
	kmem_dmesg_clear();
	vfree(&on_stack);
	CHECK_LOG("Trying to vfree() bad address (");
	kmem_dmesg_clear();
	vfree((void *)((unsigned long)&on_stack & PAGE_MASK));
	CHECK_LOG("Trying to vfree() nonexistent vm area (");
	v = vmalloc(3 * PAGE_SIZE);
	kmem_dmesg_clear();
	vfree((char *)v + PAGE_SIZE);	/* inside an area, not its start */
	CHECK_LOG("Trying to vfree() nonexistent vm area (");
	kmem_dmesg_clear();
	kfree(v);	/* and kfree of a vmalloc address: named as one */
	CHECK_LOG("kfree: object pointer: 0x");
	CHECK_LOG(": Not a kmalloc allocation (a vmalloc address: free it with vfree() or kvfree()); ignored");
	CHECK_NOT_LOG("outside the direct map");
	/* The same through a kmalloc pool whose reserve is full (mempool_kfree is kfree). */
	mp = mempool_create_kmalloc_pool(1, 64);
	kmem_dmesg_clear();
	mempool_free(v, mp);
	CHECK_LOG("kfree: object pointer: 0x");
	CHECK_LOG(": Not a kmalloc allocation (a vmalloc address: free it with vfree() or kvfree()); ignored");
	CHECK_EQ_UL(mp->curr_nr, 1);
	mempool_destroy(mp);
	CHECK(is_vmalloc_addr(v) && vmalloc_to_page(v) != NULL);	/* still mapped */
	vfree(v);

	/* kvfree_sensitive with a length past the allocation: all of it is zeroed (its frames
	 * read back through kmap after the free), the overrun is reported, the free goes on. */
	v = vmalloc(2 * PAGE_SIZE);
	memset(v, 0xa5, 2 * PAGE_SIZE);
	pg = vmalloc_to_page(v);
	pg2 = vmalloc_to_page((char *)v + PAGE_SIZE);
	kmem_dmesg_clear();
	kvfree_sensitive(v, 2 * PAGE_SIZE + 1);
	CHECK_LOG("kvfree_sensitive: 8193 bytes at ");
	CHECK_LOG(" kvfree_sensitive");
	CHECK(vmalloc_to_page(v) == NULL);	/* freed */
	CHECK(all_zero(kmap(pg), PAGE_SIZE));
	kunmap(pg);
	CHECK(all_zero(kmap(pg2), PAGE_SIZE));
	kunmap(pg2);
	p = kvmalloc(512, GFP_KERNEL);
	memset(p, 0xa5, 512);
	kmem_dmesg_clear();
	kvfree_sensitive(p, 600);
	CHECK_LOG("kvfree_sensitive: 600 bytes at ");

	/* mempool_free: a NULL element is ignored as in the kernel; a NULL pool is reported. */
	mp = mempool_create(1, pool_alloc, pool_free, NULL);
	p = mempool_alloc(mp, GFP_KERNEL);
	kmem_dmesg_clear();
	mempool_free(NULL, mp);
	CHECK_EQ_UL(frees, 0);
	CHECK_NOT_LOG("mempool_free");
	mempool_free(p, NULL);
	CHECK_LOG("<1>BUG: kernel NULL pointer dereference, address: 0000000000000000");
	CHECK_LOG("kmem: mempool_free() called with a NULL mempool_t pointer; ignored");
	mempool_free(p, mp);
	mempool_destroy(mp);
	kmem_dmesg_clear();
	mempool_destroy(mp);	/* twice */
	CHECK_LOG("after mempool_destroy freed it (double destroy); ignored");

	/* After all that the allocator still works. */
	p = kmalloc(100, GFP_KERNEL);
	CHECK(p != NULL && ksize(p) == 128);
	kfree(p);
	return ktest_result("misuse_alloc");
}
