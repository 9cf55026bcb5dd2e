/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/mm.h>: struct page and its conversions. struct page is opaque; a pointer to
 * one is only ever passed back to these functions. A pointer that is not one of the
 * machine's pages is reported in the log and ignored. */
#ifndef _KMEM_LINUX_MM_H
#define _KMEM_LINUX_MM_H

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/types.h>
#include <asm/page.h>

struct page;

void *page_address(const struct page *page);
void split_page(struct page *page, unsigned int order);
int page_count(const struct page *page);
void get_page(struct page *page);
/* Drops a reference; the last one frees the page (a compound block whole, as folio_put). A
 * non-compound block of more than one page only loses the reference while others hold it; its
 * last reference must be dropped with __free_pages(page, order): a put_page of that one frees
 * nothing and is reported (the order does not match). */
void put_page(struct page *page);
int PageHighMem(const struct page *page);

/* compound_head(virt_to_page(x)): the head page of the compound block (__GFP_COMP, a large
 * kmalloc) that x lies in, else x's own page; an address or a pointer, as virt_to_page. */
struct page *virt_to_head_page(const void *x);
#define virt_to_head_page(x)	virt_to_head_page(__kmem_addr(x))

#define page_to_virt(page)	page_address(page)
#define lowmem_page_address(page) page_address(page)

bool is_vmalloc_addr(const void *x);

/* PAGE_ALIGNED(addr): an address or a pointer on a page boundary. */
#define PAGE_ALIGNED(addr)	((((unsigned long)(addr)) & (PAGE_SIZE - 1)) == 0)

#endif
