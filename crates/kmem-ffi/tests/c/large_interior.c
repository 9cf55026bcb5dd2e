/* KM-4, KM-7 from C: a pointer inside a large (page-backed) kmalloc is not the allocation.
 * kfree refuses it (never loses data: the allocation stays live and whole) and the report
 * names the live allocation it is inside (start address, order, size) rather than calling
 * its page free. ksize of such a pointer is reported and gives 0, as ksize of a pointer
 * inside a slab object does (its size from there would reach past the allocation). */
#include <linux/slab.h>
#include <linux/mm.h>
#include "ktest.h"

int main(void)
{
	char *p = kmalloc(100000, GFP_KERNEL), *q = kmalloc(64, GFP_KERNEL);
	char want[160];
	int i, intact = 1;

	CHECK(p != NULL && q != NULL);
	CHECK(ksize(p) == 131072);
	memset(p, 0x5a, 100000);
	snprintf(want, sizeof(want), "inside the large kmalloc at 0x%lx (order 5, 131072 bytes)", (unsigned long)p);

	kmem_dmesg_clear();
	kfree(p + 4096);	/* a tail page */
	CHECK_LOG("kfree: object pointer: 0x");
	CHECK_LOG(want);
	CHECK_NOT_LOG("is free");
	kmem_dmesg_clear();
	kfree(p + 8);		/* the head page */
	CHECK_LOG(want);
	CHECK(ksize(p) == 131072);	/* still live */
	for (i = 0; i < 100000; i++)
		intact &= p[i] == 0x5a;
	CHECK(intact);

	/* ksize inside the allocation: reported, 0; inside a slab object: the same. */
	kmem_dmesg_clear();
	CHECK(ksize(p + 8) == 0);
	CHECK_LOG("ksize: object pointer: 0x");
	CHECK_LOG(want);
	CHECK(ksize(p + 65536) == 0);
	CHECK(ksize(q + 8) == 0);
	CHECK_LOG("Invalid object pointer 0x");

	kfree(p);
	kfree(q);
	/* Once freed, its pages are free pages again. */
	kmem_dmesg_clear();
	kfree(p + 4096);
	CHECK_LOG("is free");
	return ktest_result("large_interior");
}
