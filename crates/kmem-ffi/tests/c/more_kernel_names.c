/* Kernel functions and macros the headers gained, with the kernel's semantics
 * (include/linux/slab.h, string.h, vmalloc.h, mm.h; mm/util.c): kfree_bulk, kmemdup_nul,
 * kmemdup_array, kmalloc_track_caller, vmalloc_array, vcalloc, vmalloc_node, PAGE_ALIGNED,
 * kmem_cache_create_usercopy and KMEM_CACHE_USERCOPY. */
#include <stdint.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include "ktest.h"

struct msg {
	int id;
	char payload[52];
	long tail;
};

static int all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--)
		if (*c++)
			return 0;
	return 1;
}

int main(void)
{
	void *objs[3];
	char *s;
	int src[4] = { 1, 2, 3, 4 }, *arr;
	long *v;
	struct kmem_cache *u, *u2, *plain, *bad, *bad2;
	struct msg *m;

	/* kfree_bulk: kmem_cache_free_bulk(NULL, ...), each to its own cache. */
	objs[0] = kmalloc(10, GFP_KERNEL);
	objs[1] = kmalloc(1000, GFP_KERNEL);
	objs[2] = kmalloc(20000, GFP_KERNEL);
	CHECK(objs[0] && objs[1] && objs[2]);
	kmem_dmesg_clear();
	kfree_bulk(3, objs);
	kfree_bulk(0, NULL);
	CHECK_NOT_LOG("BUG");

	/* kmemdup_nul: len bytes and a NUL, whatever the source holds after them. */
	s = kmemdup_nul("abcdef", 3, GFP_KERNEL);
	CHECK(s && strcmp(s, "abc") == 0 && ksize(s) >= 4);
	kfree(s);
	s = kmemdup_nul("a\0b", 3, GFP_KERNEL);	/* copies the NUL inside, terminates after */
	CHECK(s && s[0] == 'a' && s[1] == '\0' && s[2] == 'b' && s[3] == '\0');
	kfree(s);
	CHECK(kmemdup_nul(NULL, 5, GFP_KERNEL) == NULL);

	/* kmemdup_array(src, count, element_size, gfp); an overflowing size gives NULL. */
	arr = kmemdup_array(src, 4, sizeof(int), GFP_KERNEL);
	CHECK(arr && memcmp(arr, src, sizeof(src)) == 0);
	kfree(arr);
	CHECK(kmemdup_array(src, SIZE_MAX / 2, 4, GFP_KERNEL | __GFP_NOWARN) == NULL);

	/* kmalloc_track_caller is kmalloc. */
	s = kmalloc_track_caller(100, GFP_KERNEL);
	CHECK(s && ksize(s) == 128);
	kfree(s);

	/* vmalloc_array, vcalloc (zeroed), vmalloc_node; overflow gives NULL. */
	v = vmalloc_array(3000, sizeof(long));
	CHECK(v && is_vmalloc_addr(v));
	v[2999] = 7;
	vfree(v);
	v = vcalloc(3000, sizeof(long));
	CHECK(v && all_zero(v, 3000 * sizeof(long)));
	vfree(v);
	CHECK(vmalloc_array(SIZE_MAX / 2, 4) == NULL);
	CHECK(vcalloc(SIZE_MAX / 2, 4) == NULL);
	v = vmalloc_node(2 * PAGE_SIZE, NUMA_NO_NODE);
	CHECK(v && is_vmalloc_addr(v));
	vfree(v);

	/* PAGE_ALIGNED takes an address or a pointer. */
	CHECK(PAGE_ALIGNED(8192UL) && !PAGE_ALIGNED(8193UL));
	s = (char *)__get_free_page(GFP_KERNEL);
	CHECK(PAGE_ALIGNED(s) && !PAGE_ALIGNED(s + 1));
	free_page((unsigned long)s);

	/* Usercopy caches: a cache with a usercopy region is never merged (slab_common.c
	 * aliases only when usersize is 0). */
	plain = kmem_cache_create("msg_plain", sizeof(struct msg), 0, 0, NULL);
	u = KMEM_CACHE_USERCOPY(msg, 0, payload);
	u2 = kmem_cache_create_usercopy("msg_uc2", sizeof(struct msg), 0, 0,
					offsetof(struct msg, payload), sizeof(((struct msg *)0)->payload), NULL);
	CHECK(plain && u && u2);
	CHECK(u != plain && u2 != plain && u != u2);
	CHECK(u && strcmp(kmem_cache_name(u), "msg") == 0);
	CHECK(u && kmem_cache_size(u) >= sizeof(struct msg));
	m = u ? kmem_cache_alloc(u, GFP_KERNEL) : NULL;
	CHECK(m != NULL);
	if (m)
		kmem_cache_free(u, m);
	/* A region that does not fit: the kernel's WARN_ON, and the cache has none. */
	kmem_dmesg_clear();
	bad = kmem_cache_create_usercopy("msg_bad", 64, 0, 0, 60, 8, NULL);
	CHECK(bad != NULL);
	CHECK_LOG("__kmem_cache_create_args: WARN_ON(object_size < args->usersize");
	kmem_dmesg_clear();
	bad2 = kmem_cache_create_usercopy("msg_bad2", 64, 0, 0, 8, 0, NULL);
	CHECK(bad2 != NULL);
	CHECK_LOG("WARN_ON(!args->usersize && args->useroffset)");
	CHECK(kmem_cache_destroy(bad2) == 0);
	CHECK(kmem_cache_destroy(bad) == 0);
	CHECK(kmem_cache_destroy(u2) == 0);
	CHECK(kmem_cache_destroy(u) == 0);
	CHECK(kmem_cache_destroy(plain) == 0);
	return ktest_result("more_kernel_names");
}
