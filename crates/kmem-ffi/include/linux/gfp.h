/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: the page allocator (include/linux/gfp.h): alloc_pages, __get_free_pages, free_pages
 * and the exact and bulk forms. Failures return NULL or 0, as in the kernel. */
#ifndef _KMEM_LINUX_GFP_H
#define _KMEM_LINUX_GFP_H

#include <linux/gfp_types.h>
#include <linux/numa.h>
#include <linux/types.h>
#include <asm/page.h>

struct page;

struct page *alloc_pages(gfp_t gfp, unsigned int order);
unsigned long __get_free_pages(gfp_t gfp, unsigned int order);
unsigned long get_zeroed_page(gfp_t gfp);
void *alloc_pages_exact(size_t size, gfp_t gfp);
void free_pages_exact(void *virt, size_t size);
unsigned long alloc_pages_bulk(gfp_t gfp, unsigned long nr_pages, struct page **page_array);
void __free_pages(struct page *page, unsigned int order);
void free_pages(unsigned long addr, unsigned int order);

/* One node (<linux/numa.h>): `nid` always names it. */
static inline struct page *alloc_pages_node(int nid, gfp_t gfp, unsigned int order)
{
	(void)nid;
	return alloc_pages(gfp, order);
}
#define __alloc_pages_node(nid, gfp, order)	alloc_pages_node((nid), (gfp), (order))

#define alloc_page(gfp)		alloc_pages(gfp, 0)
#define __get_free_page(gfp)	__get_free_pages((gfp), 0)
#define __get_dma_pages(gfp, order) __get_free_pages((gfp) | GFP_DMA, (order))
#define __free_page(page)	__free_pages((page), 0)
#define free_page(addr)		free_pages((addr), 0)

static inline bool gfpflags_allow_blocking(const gfp_t gfp_flags)
{
	return !!(gfp_flags & __GFP_DIRECT_RECLAIM);
}

#endif
