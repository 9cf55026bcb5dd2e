/* The remaining node and copy forms of <linux/slab.h> and <linux/string.h> that driver code
 * calls: kvmalloc_array_node and kvcalloc_node (NULL on an overflowing product, as
 * kvmalloc_array), kmalloc_node_track_caller, and kvmemdup (mm/util.c: a kvmalloc copy, from
 * vmalloc memory when the size is past what kmalloc gives, freed with kvfree). The machine has
 * one node, so every node id names it. */
#include <stdint.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include "ktest.h"

int main(void)
{
	static unsigned char src[(4 << 20) + 1];
	unsigned char *p;
	size_t i;

	p = kvmalloc_array_node(3, 100, GFP_KERNEL, NUMA_NO_NODE);
	CHECK(p != NULL && !is_vmalloc_addr(p));
	CHECK_EQ_UL(ksize(p), 512);
	kvfree(p);
	CHECK(kvmalloc_array_node(SIZE_MAX / 2, 3, GFP_KERNEL, 0) == NULL);

	p = kvcalloc_node(1000, 100, GFP_KERNEL, 0);	/* 100000 bytes: kmalloc or vmalloc */
	CHECK(p != NULL);
	for (i = 0; p && i < 100000; i++)
		if (p[i] != 0)
			break;
	CHECK_EQ_UL(i, 100000);
	kvfree(p);
	CHECK(kvcalloc_node(SIZE_MAX / 2, 3, GFP_KERNEL, NUMA_NO_NODE) == NULL);

	p = kmalloc_node_track_caller(40, GFP_KERNEL, NUMA_NO_NODE);
	CHECK(p != NULL);
	CHECK_EQ_UL(ksize(p), 64);
	kfree(p);

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7);
	p = kvmemdup(src, 100, GFP_KERNEL);
	CHECK(p != NULL && !is_vmalloc_addr(p) && memcmp(p, src, 100) == 0);
	kvfree(p);
	p = kvmemdup(src, sizeof(src), GFP_KERNEL);	/* above KMALLOC_MAX_SIZE: vmalloc */
	CHECK(p != NULL && is_vmalloc_addr(p) && memcmp(p, src, sizeof(src)) == 0);
	kvfree(p);
	p = kvmemdup(src, 0, GFP_KERNEL);
	CHECK(p == ZERO_SIZE_PTR);
	kvfree(p);
	CHECK_NOT_LOG("WARNING");
	return ktest_result("node_and_dup_forms");
}
