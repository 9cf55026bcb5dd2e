/* The kmalloc family through the C ABI: every size class via ksize, ZERO_SIZE_PTR, alignment,
 * large allocations, krealloc, kcalloc/kmalloc_array overflow, the string duplicators and
 * kvmalloc's two halves. */
#include <stdint.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include "ktest.h"

/* The kernel's kmalloc classes (KMALLOC_MIN_SIZE 8, 96 and 192 between the powers of two). */
static const size_t classes[] = { 8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192 };
#define NR_CLASSES (sizeof(classes) / sizeof(classes[0]))

static size_t expected_class(size_t n)
{
	size_t i;
	for (i = 0; i < NR_CLASSES; i++)
		if (n <= classes[i])
			return classes[i];
	return 0;
}

static int all_zero(const unsigned char *p, size_t n)
{
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

int main(void)
{
	size_t n, i, seen[NR_CLASSES] = { 0 };
	void *p, *q;
	char *s;
	int bad = 0;

	/* Every size from 1 to KMALLOC_MAX_CACHE_SIZE lands in the smallest class that holds it. */
	for (n = 1; n <= KMALLOC_MAX_CACHE_SIZE; n++) {
		p = kmalloc(n, GFP_KERNEL);
		if (!p || ksize(p) != expected_class(n) || kmalloc_size_roundup(n) != expected_class(n)) {
			if (bad++ < 5)
				fprintf(stderr, "size %zu: ksize %zu, roundup %zu, want %zu\n", n,
					p ? ksize(p) : 0, kmalloc_size_roundup(n), expected_class(n));
		}
		for (i = 0; i < NR_CLASSES; i++)
			if (p && ksize(p) == classes[i])
				seen[i]++;
		/* Powers of two are naturally aligned, everything at least 8-aligned. */
		if (p && ((uintptr_t)p % ARCH_KMALLOC_MINALIGN ||
			  ((n & (n - 1)) == 0 && (uintptr_t)p % n)))
			bad++;
		kfree(p);
	}
	CHECK_EQ_UL(bad, 0);
	for (i = 0; i < NR_CLASSES; i++)
		CHECK(seen[i] > 0);	/* every class was used */
	CHECK_EQ_UL(seen[0], 8);	/* sizes 1..8 */
	CHECK_EQ_UL(seen[4], 32);	/* sizes 65..96 */
	CHECK_EQ_UL(seen[6], 64);	/* sizes 129..192 */

	/* Above the classes: whole pages, ksize the block. */
	p = kmalloc(KMALLOC_MAX_CACHE_SIZE + 1, GFP_KERNEL);
	CHECK(p != NULL);
	CHECK_EQ_UL(ksize(p), PAGE_SIZE << get_order(KMALLOC_MAX_CACHE_SIZE + 1));
	CHECK_EQ_UL((uintptr_t)p % PAGE_SIZE, 0);
	kfree(p);
	p = kmalloc(32 * PAGE_SIZE, GFP_KERNEL);	/* the book's "Big Memory" */
	CHECK(p != NULL);
	CHECK_EQ_UL(ksize(p), 32 * PAGE_SIZE);
	kfree(p);
	CHECK(kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL | __GFP_NOWARN) == NULL);

	/* ZERO_SIZE_PTR: kmalloc(0) is 16, never dereferenced; kfree and ksize accept it. */
	kmem_dmesg_clear();
	p = kmalloc(0, GFP_KERNEL);
	CHECK(p == ZERO_SIZE_PTR);
	CHECK_EQ_UL((uintptr_t)p, 16);
	CHECK(ZERO_OR_NULL_PTR(p));
	CHECK_EQ_UL(ksize(p), 0);
	CHECK_EQ_UL(ksize(NULL), 0);
	kfree(p);
	kfree(NULL);
	CHECK(krealloc(NULL, 0, GFP_KERNEL) == ZERO_SIZE_PTR);
	CHECK_NOT_LOG("WARNING");

	/* kzalloc, kcalloc, and the overflow checks. */
	p = kzalloc(700, GFP_KERNEL);
	CHECK(p && all_zero(p, ksize(p)));
	kfree(p);
	p = kcalloc(100, 12, GFP_KERNEL);
	CHECK(p && ksize(p) >= 1200 && all_zero(p, 1200));
	kfree(p);
	CHECK(kcalloc(SIZE_MAX / 2, 3, GFP_KERNEL) == NULL);
	CHECK(kmalloc_array(SIZE_MAX / 2, 3, GFP_KERNEL) == NULL);
	p = kmalloc_array(10, 10, GFP_KERNEL);
	CHECK(p && ksize(p) == 128);
	kfree(p);

	/* krealloc keeps the contents; in place while the class holds it. */
	p = kmalloc(40, GFP_KERNEL);
	memset(p, 0x5a, 40);
	q = krealloc(p, 60, GFP_KERNEL);
	CHECK(q == p);	/* still kmalloc-64 */
	q = krealloc(q, 5000, GFP_KERNEL);
	CHECK(q != NULL && ksize(q) == 8192);
	CHECK(q && ((unsigned char *)q)[0] == 0x5a && ((unsigned char *)q)[39] == 0x5a);
	p = krealloc_array(q, 3, 4000, GFP_KERNEL);
	CHECK(p != NULL && ksize(p) >= 12000);
	CHECK(krealloc_array(p, SIZE_MAX / 2, 3, GFP_KERNEL) == NULL);	/* p untouched */
	CHECK(((unsigned char *)p)[39] == 0x5a);
	CHECK(krealloc(p, 0, GFP_KERNEL) == ZERO_SIZE_PTR);	/* frees */
	p = kmalloc(64, GFP_KERNEL);
	memset(p, 0x77, 64);
	kfree_sensitive(p);

	/* The string duplicators allocate with kmalloc. */
	s = kstrdup("quantum", GFP_KERNEL);
	CHECK(s && !strcmp(s, "quantum") && ksize(s) == 8);
	kfree(s);
	s = kstrndup("quantum set", 7, GFP_KERNEL);
	CHECK(s && !strcmp(s, "quantum"));
	kfree(s);
	CHECK(kstrdup(NULL, GFP_KERNEL) == NULL);
	p = kmemdup("\1\2\3\4", 4, GFP_KERNEL);
	CHECK(p && !memcmp(p, "\1\2\3\4", 4) && ksize(p) == 8);
	kfree(p);
	s = (char *)kstrdup_const("const", GFP_KERNEL);
	CHECK(s && !strcmp(s, "const"));
	kfree_const(s);
	kfree_const("a literal is left alone");

	/* kvmalloc: kmalloc while it can, vmalloc for a large request that may sleep. */
	p = kvmalloc(100, GFP_KERNEL);
	CHECK(p && !is_vmalloc_addr(p) && ksize(p) == 128);
	kvfree(p);
	p = kvzalloc(8 << 20, GFP_KERNEL);	/* above KMALLOC_MAX_SIZE (4 MiB) */
	CHECK(p && is_vmalloc_addr(p) && all_zero(p, 8 << 20));
	q = kvrealloc(p, 9 << 20, GFP_KERNEL);
	CHECK(q != NULL && is_vmalloc_addr(q));
	kvfree_sensitive(q, 9 << 20);
	/* kvrealloc to 0 frees: NULL for a vmalloc pointer (vrealloc), ZERO_SIZE_PTR for a kmalloc
	 * one (krealloc), as kvrealloc_node_align_noprof. */
	p = kvmalloc(8 << 20, GFP_KERNEL);
	CHECK(p && is_vmalloc_addr(p));
	CHECK(kvrealloc(p, 0, GFP_KERNEL) == NULL);
	p = kvmalloc(100, GFP_KERNEL);
	CHECK(p && kvrealloc(p, 0, GFP_KERNEL) == ZERO_SIZE_PTR);
	p = kvmalloc(8 << 20, GFP_ATOMIC | __GFP_NOWARN);	/* no vmalloc fallback without sleeping */
	CHECK(p == NULL || !is_vmalloc_addr(p));
	kvfree(p);
	p = kvcalloc(1000, 1000, GFP_KERNEL);
	CHECK(p && all_zero(p, 1000000));
	kvfree(p);
	CHECK(kvmalloc_array(SIZE_MAX / 2, 3, GFP_KERNEL) == NULL);
	CHECK_NOT_LOG("WARNING");
	CHECK_NOT_LOG("BUG");

	return ktest_result("kmalloc");
}
