/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/highmem.h>. HighMem pages (above 896 MiB on the i386 profile) have no
 * direct-map address: page_address() is NULL until kmap(). kmap and friends are exported by
 * libkmem (crates/kmem-ffi/src/vmalloc.rs); kmap_atomic enters atomic context until
 * kunmap_atomic. clear_highpage, copy_highpage, zero_user*, memcpy_{from,to}_page, memset_page
 * and memzero_page are the kernel's inline helpers over kmap_local_page. */
#ifndef _KMEM_LINUX_HIGHMEM_H
#define _KMEM_LINUX_HIGHMEM_H

#include <linux/compiler.h>
#include <linux/mm.h>

void *kmap(struct page *page);
void kunmap(struct page *page);
void *kmap_local_page(struct page *page);
void kunmap_local(const void *addr);
void *kmap_atomic(struct page *page);
void kunmap_atomic(const void *addr);

/* As include/linux/highmem-internal.h: kunmap_local and kunmap_atomic take the address the map
 * call gave, never the page; passing the page (kunmap's argument) is a build error. The
 * parenthesised names call the exported functions, which `&kunmap_local` still reaches. */
#define kunmap_local(__addr)						\
do {									\
	BUILD_BUG_ON(__same_type((__addr), struct page *));		\
	(kunmap_local)(__addr);						\
} while (0)

#define kunmap_atomic(__addr)						\
do {									\
	BUILD_BUG_ON(__same_type((__addr), struct page *));		\
	(kunmap_atomic)(__addr);					\
} while (0)

/* The helpers of include/linux/highmem.h over kmap_local_page, for a page of any zone. A range
 * past the end of the page is the kernel's BUG_ON (it would write into the next page). x86 has
 * no D-cache to flush: flush_dcache_page does nothing. */
static inline void flush_dcache_page(struct page *page) { (void)page; }

static inline void clear_highpage(struct page *page)
{
	void *kaddr = kmap_local_page(page);

	clear_page(kaddr);
	kunmap_local(kaddr);
}

static inline void copy_highpage(struct page *to, struct page *from)
{
	void *vfrom = kmap_local_page(from);
	void *vto = kmap_local_page(to);

	copy_page(vto, vfrom);
	kunmap_local(vto);
	kunmap_local(vfrom);
}

static inline void zero_user_segments(struct page *page, unsigned int start1, unsigned int end1,
				      unsigned int start2, unsigned int end2)
{
	char *kaddr;

	BUG_ON(end1 > PAGE_SIZE || end2 > PAGE_SIZE);
	kaddr = (char *)kmap_local_page(page);
	if (end1 > start1)
		memset(kaddr + start1, 0, end1 - start1);
	if (end2 > start2)
		memset(kaddr + start2, 0, end2 - start2);
	kunmap_local(kaddr);
	flush_dcache_page(page);
}

static inline void zero_user_segment(struct page *page, unsigned int start, unsigned int end)
{
	zero_user_segments(page, start, end, 0, 0);
}

static inline void zero_user(struct page *page, unsigned int start, unsigned int size)
{
	zero_user_segments(page, start, start + size, 0, 0);
}

static inline void memcpy_from_page(char *to, struct page *page, size_t offset, size_t len)
{
	char *from;

	BUG_ON(offset > PAGE_SIZE || len > PAGE_SIZE - offset);
	from = (char *)kmap_local_page(page);
	memcpy(to, from + offset, len);
	kunmap_local(from);
}

static inline void memcpy_to_page(struct page *page, size_t offset, const char *from, size_t len)
{
	char *to;

	BUG_ON(offset > PAGE_SIZE || len > PAGE_SIZE - offset);
	to = (char *)kmap_local_page(page);
	memcpy(to + offset, from, len);
	flush_dcache_page(page);
	kunmap_local(to);
}

static inline void memset_page(struct page *page, size_t offset, int val, size_t len)
{
	char *addr;

	BUG_ON(offset > PAGE_SIZE || len > PAGE_SIZE - offset);
	addr = (char *)kmap_local_page(page);
	memset(addr + offset, val, len);
	kunmap_local(addr);
}

static inline void memzero_page(struct page *page, size_t offset, size_t len)
{
	memset_page(page, offset, 0, len);
}

#endif
