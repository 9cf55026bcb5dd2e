/* Edges of the C ABI a driver port hits with sizes and counts C computed wrongly: every call
 * below must fail cleanly (NULL, with the kernel's report or none), never end in a kmem
 * internal error or abort the process. The driver (tests/c_abi.rs) runs the program with
 * kmemleak off and on (KMEM_KMEMLEAK=1), whose bookkeeping sees every vmalloc result.
 *
 * VM-2: vmalloc() of a size above total RAM (SIZE_MAX included, which does not even round up
 * to whole pages) is NULL with the `exceeds total pages` report. */
#include <limits.h>
#include <stdint.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "ktest.h"

static void huge_vmalloc_sizes_fail_cleanly(void)
{
	CHECK(vmalloc(SIZE_MAX) == NULL);
	CHECK_LOG("vmalloc error: size 18446744073709551615, exceeds total pages");
	CHECK(vzalloc(SIZE_MAX) == NULL);
	CHECK(vmalloc_user(SIZE_MAX) == NULL);
	CHECK(vmalloc_32(SIZE_MAX - 1) == NULL);
	CHECK(vmalloc_32_user(SIZE_MAX) == NULL);
	CHECK(__vmalloc(SIZE_MAX, GFP_KERNEL) == NULL);
	CHECK(vmalloc_huge(SIZE_MAX, GFP_KERNEL) == NULL);
	CHECK(vmalloc_huge_node(SIZE_MAX, GFP_KERNEL, NUMA_NO_NODE) == NULL);
	CHECK(kvmalloc(SIZE_MAX, GFP_KERNEL | __GFP_NOWARN) == NULL);
	CHECK_NOT_LOG("internal error");
}

int main(void)
{
	huge_vmalloc_sizes_fail_cleanly();
	return ktest_result("abi_edges");
}
