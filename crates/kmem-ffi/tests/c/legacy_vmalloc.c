/* __vmalloc in both of its forms: today's (size, gfp) and the one of 2.6 .. 5.7, the book's
 * kernels, with a pgprot_t third (PAGE_KERNEL in practice; kmem maps every area PAGE_KERNEL,
 * as for vmap). The function's own name still reaches the export. */
#include <linux/vmalloc.h>
#include <linux/mm.h>
#include "ktest.h"

int main(void)
{
	char *a = __vmalloc(3 * PAGE_SIZE, GFP_KERNEL | __GFP_ZERO, PAGE_KERNEL);
	char *b = __vmalloc(3 * PAGE_SIZE, GFP_KERNEL | __GFP_ZERO);
	void *(*fn)(unsigned long, gfp_t) = __vmalloc;
	char *c = (__vmalloc)(PAGE_SIZE, GFP_KERNEL);
	char *d = fn(PAGE_SIZE, GFP_KERNEL);
	size_t i;
	int zero = 1;

	CHECK(a && b && c && d && is_vmalloc_addr(a) && is_vmalloc_addr(b));
	for (i = 0; i < 3 * PAGE_SIZE; i++)
		zero &= a[i] == 0 && b[i] == 0;
	CHECK(zero);
	memset(a, 1, 3 * PAGE_SIZE);
	vfree(a);
	vfree(b);
	vfree(c);
	vfree(d);
	CHECK_NOT_LOG("WARNING");
	return ktest_result("legacy_vmalloc");
}
