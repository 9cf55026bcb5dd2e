/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: page geometry (asm/page.h, asm-generic/getorder.h). */
#ifndef _KMEM_ASM_PAGE_H
#define _KMEM_ASM_PAGE_H

#include <linux/compiler.h>
#include <linux/types.h>

#define PAGE_SHIFT		12
#define PAGE_SIZE		(1UL << PAGE_SHIFT)
/* glibc's <sys/user.h> defines PAGE_SHIFT, PAGE_SIZE and PAGE_MASK too, with these values and
 * this spelling (an identical redefinition is no warning); the guard covers other spellings. */
#ifndef PAGE_MASK
#define PAGE_MASK		(~(PAGE_SIZE-1))
#endif
/* PAGE_ALIGN(addr): the kernel's ALIGN(addr, PAGE_SIZE), in the type of `addr` (an unsigned int
 * stays unsigned int and wraps as the kernel's does, and prints with %u). */
#define PAGE_ALIGN(addr)	(((addr) + ((__typeof__(addr))PAGE_SIZE - 1)) & ~((__typeof__(addr))PAGE_SIZE - 1))
#define offset_in_page(p)	((unsigned long)(p) & ~PAGE_MASK)

/* Orders 0..MAX_PAGE_ORDER. The book's MAX_ORDER is the exclusive bound ("usually 11"). */
#define MAX_PAGE_ORDER		10
#define NR_PAGE_ORDERS		(MAX_PAGE_ORDER + 1)
#define MAX_ORDER		(MAX_PAGE_ORDER + 1)
#define MAX_ORDER_NR_PAGES	(1 << MAX_PAGE_ORDER)
#define PAGE_ALLOC_COSTLY_ORDER	3

/* get_order(size): the smallest order whose block holds size bytes; undefined for 0. */
static __always_inline __attribute__((__const__)) int get_order(unsigned long size)
{
	size--;
	size >>= PAGE_SHIFT;
	return size ? 64 - __builtin_clzl(size) : 0;
}

/* clear_page/copy_page: one whole page at a page-aligned address (arch/x86 page_64.h). */
static inline void clear_page(void *page) { __builtin_memset(page, 0, PAGE_SIZE); }
static inline void copy_page(void *to, void *from) { __builtin_memcpy(to, from, PAGE_SIZE); }

struct page;
phys_addr_t virt_to_phys(const volatile void *address);
void *phys_to_virt(phys_addr_t address);
struct page *virt_to_page(const void *addr);
struct page *pfn_to_page(unsigned long pfn);
unsigned long page_to_pfn(const struct page *page);
int pfn_valid(unsigned long pfn);
int virt_addr_valid(const void *kaddr);

/* As the kernel's macros (`__pa((unsigned long)(x))`), these take an address either way: a
 * pointer or the `unsigned long` __get_free_page() returns. The functions keep their names, so
 * `(virt_to_page)(p)` and `&virt_to_page` still reach the exports. */
#define __kmem_addr(x)		((const void *)(unsigned long)(x))
#define __pa(x)			virt_to_phys(__kmem_addr(x))
#define virt_to_page(kaddr)	virt_to_page(__kmem_addr(kaddr))
#define virt_addr_valid(kaddr)	virt_addr_valid(__kmem_addr(kaddr))
#define __va(x)			phys_to_virt((phys_addr_t)(x))
#define virt_to_pfn(kaddr)	((unsigned long)(__pa(kaddr) >> PAGE_SHIFT))
#define pfn_to_virt(pfn)	__va((phys_addr_t)(pfn) << PAGE_SHIFT)
#define page_to_phys(page)	((phys_addr_t)page_to_pfn(page) << PAGE_SHIFT)
#define PFN_UP(x)		(((x) + PAGE_SIZE - 1) >> PAGE_SHIFT)
#define PFN_DOWN(x)		((x) >> PAGE_SHIFT)
#define PFN_PHYS(x)		((phys_addr_t)(x) << PAGE_SHIFT)

#endif
