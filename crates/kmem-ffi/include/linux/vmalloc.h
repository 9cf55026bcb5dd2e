/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: vmalloc (include/linux/vmalloc.h): virtually contiguous memory over physically
 * scattered pages, really mapped. Exported by libkmem
 * (crates/kmem-ffi/src/vmalloc.rs). */
#ifndef _KMEM_LINUX_VMALLOC_H
#define _KMEM_LINUX_VMALLOC_H

#include <linux/cleanup.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/types.h>
#include <linux/overflow.h>
#include <linux/instruction_pointer.h>

struct iov_iter;		/* in uio.h */

#define VM_IOREMAP		0x00000001
#define VM_ALLOC		0x00000002
#define VM_MAP			0x00000004
#define VM_USERMAP		0x00000008
#define VM_DMA_COHERENT		0x00000010
#define VM_UNINITIALIZED	0x00000020
#define VM_NO_GUARD		0x00000040
#define VM_FLUSH_RESET_PERMS	0x00000100
/* vmap() hands the pages and the page array to the area: vfree() frees every page and
 * kvfree()s the array, which must come from kmalloc()/kvmalloc() (kcalloc, kvmalloc_array,
 * ...; any other array is reported and vmap() returns NULL). On failure, or after vunmap(),
 * both stay the caller's. */
#define VM_MAP_PUT_PAGES	0x00000200
/* vmalloc_huge(): sizes of at least PMD_SIZE (2 MiB) are rounded up to and aligned on PMD_SIZE
 * and backed by PMD-size blocks (x86_64 profile only; kmem's host mapping stays 4 KiB), with a
 * fallback to small pages. */
#define VM_ALLOW_HUGE_VMAP	0x00000400
/* An area whose pages are mapped later, piecewise (vmallocinfo says " sparse"). */
#define VM_SPARSE		0x00001000

/* The kernel's vm_struct. kmem gives C one per area, a kmalloc object: get_vm_area() makes it,
 * find_vm_area() makes or refreshes it, free_vm_area()/vfree()/vunmap() free it with the area,
 * remove_vm_area() hands it to the caller, who kfree()s it (as in the kernel). `pages` is always
 * NULL (kmem hands out no page array; `nr_pages` still counts the pages the area owns),
 * `caller` NULL, `page_order` 9 for a vmalloc_huge() area mapped with PMD-size blocks. */
struct vm_struct {
	struct vm_struct	*next;
	void			*addr;
	unsigned long		size;		/* guard page included */
	unsigned long		flags;
	struct page		**pages;
	unsigned int		page_order;
	unsigned int		nr_pages;
	phys_addr_t		phys_addr;
	const void		*caller;
	unsigned long		requested_size;
};

/* The size without the guard page. */
static inline size_t get_vm_area_size(const struct vm_struct *area)
{
	if (!(area->flags & VM_NO_GUARD))
		return area->size - PAGE_SIZE;
	return area->size;
}

struct vm_struct *find_vm_area(const void *addr);
struct vm_struct *remove_vm_area(const void *addr);
struct vm_struct *get_vm_area(unsigned long size, unsigned long flags);
void free_vm_area(struct vm_struct *area);

typedef struct { unsigned long pgprot; } pgprot_t;
#define __pgprot(x)		((pgprot_t){ (x) })
#define PAGE_KERNEL		__pgprot(0x163)

void *vmalloc(unsigned long size) __malloc;
void *vzalloc(unsigned long size) __malloc;
void *vmalloc_user(unsigned long size) __malloc;
void *vmalloc_32(unsigned long size) __malloc;
void *vmalloc_32_user(unsigned long size) __malloc;
void *__vmalloc(unsigned long size, gfp_t gfp_mask) __malloc;
/* __vmalloc(size, gfp_mask, prot): 2.6 .. 5.7 took a pgprot_t too (PAGE_KERNEL in practice);
 * it is accepted and, as for vmap, the area is mapped PAGE_KERNEL. (__vmalloc) and &__vmalloc
 * name the two-argument export. */
static inline void *__kmem_vmalloc_prot(unsigned long size, gfp_t gfp_mask, pgprot_t prot)
{
	(void)prot;
	return (__vmalloc)(size, gfp_mask);
}
#define __kmem_vmalloc_2(size, gfp_mask)	(__kmem_caller(_THIS_IP_), (__vmalloc)(size, gfp_mask))
#define __kmem_vmalloc_3(size, gfp_mask, prot)	\
	(__kmem_caller(_THIS_IP_), __kmem_vmalloc_prot(size, gfp_mask, prot))
#define __vmalloc(...)	__PASTE(__kmem_vmalloc_, __KMEM_NARGS(__VA_ARGS__))(__VA_ARGS__)
/* __vmalloc_node(size, align, gfp_mask, node, caller): aligned to align (a power of two); one
 * node, so any node id; caller is what /proc/vmallocinfo names (NULL: kmem's own export). */
void *__vmalloc_node(unsigned long size, unsigned long align, gfp_t gfp_mask, int node,
		     const void *caller) __malloc;
void *vmalloc_huge(unsigned long size, gfp_t gfp_mask) __malloc;
void *vmalloc_huge_node(unsigned long size, gfp_t gfp_mask, int node) __malloc;
void *vrealloc(const void *p, size_t size, gfp_t flags) __must_check;
void vfree(const void *addr);
/* Scope-based freeing (<linux/cleanup.h>): `p __free(vfree)`. */
DEFINE_FREE(vfree, void *, if (_T) vfree(_T))
void *vmap(struct page **pages, unsigned int count, unsigned long flags, pgprot_t prot);

/* The area's creator, as the kernel's vm->caller (__builtin_return_address(0) in vmalloc):
 * each macro passes the calling code's address to libkmem right before the call, and
 * /proc/vmallocinfo names that function (`func+0x4c/0x90 [module]`; a function the dynamic
 * symbol table does not list shows as its object's offset). (vmalloc)(size), or a call through
 * a pointer, names kmem's own export instead. */
void __kmem_caller(unsigned long ip);
#define vmalloc(size)		(__kmem_caller(_THIS_IP_), (vmalloc)(size))
#define vzalloc(size)		(__kmem_caller(_THIS_IP_), (vzalloc)(size))
#define vmalloc_user(size)	(__kmem_caller(_THIS_IP_), (vmalloc_user)(size))
#define vmalloc_32(size)	(__kmem_caller(_THIS_IP_), (vmalloc_32)(size))
#define vmalloc_32_user(size)	(__kmem_caller(_THIS_IP_), (vmalloc_32_user)(size))
#define vmalloc_huge(size, gfp_mask)	(__kmem_caller(_THIS_IP_), (vmalloc_huge)(size, gfp_mask))
#define vmap(pages, count, flags, prot)	(__kmem_caller(_THIS_IP_), (vmap)(pages, count, flags, prot))
void vunmap(const void *addr);
/* Maps page frames of kmem's memory (the kernel's is for non-RAM frames, which kmem has none of)
 * in a VM_IOREMAP area; a frame kmem does not have is refused with a warning. vunmap() it. */
void *vmap_pfn(unsigned long *pfns, unsigned int count, pgprot_t prot);
/* Frees from atomic context: the free completes later, from process context. */
void vfree_atomic(const void *addr);
/* Short-lived mappings: up to BITS_PER_LONG pages from a per-CPU vmap block, more in an area
 * of their own (no guard page). vm_unmap_ram() takes the count passed to vm_map_ram(); any
 * other count, or an address vm_map_ram() did not return, is reported and ignored. The pages
 * stay the caller's. */
void *vm_map_ram(struct page **pages, unsigned int count, int node);
void vm_unmap_ram(const void *mem, unsigned int count);
void vm_unmap_aliases(void);
/* Reads `count` bytes of the vmalloc space from `addr` into `iter` (see <linux/uio.h>: one
 * buffer or an array of kvecs) without ever faulting: holes, guard pages, VM_IOREMAP and
 * VM_SPARSE areas, freed areas and pages of vm_map_ram blocks not mapped now read as zeros.
 * If addr + count wraps, count becomes -addr. Returns the bytes written to `iter` (zeros included):
 * min(count, iov_iter_count(iter)), so 0 only when nothing was asked for or there is no room;
 * the iterator is advanced by as much. */
long vread_iter(struct iov_iter *iter, const char *addr, size_t count);
struct page *vmalloc_to_page(const void *addr);
unsigned long vmalloc_to_pfn(const void *addr);
bool is_vmalloc_addr(const void *x);

/* The array and node forms, as the kernel's (mm/util.c __vmalloc_array): a product that
 * overflows gives NULL; the machine has one node, so `node` always names it. */
static inline void *__vmalloc_array(size_t n, size_t size, gfp_t flags)
{
	size_t bytes;

	if (check_mul_overflow(n, size, &bytes))
		return NULL;
	return __vmalloc(bytes, flags);
}
static inline void *vmalloc_array(size_t n, size_t size) { return __vmalloc_array(n, size, GFP_KERNEL); }
static inline void *vcalloc(size_t n, size_t size) { return __vmalloc_array(n, size, GFP_KERNEL | __GFP_ZERO); }
static inline void *vmalloc_node(unsigned long size, int node) { (void)node; return vmalloc(size); }
static inline void *vzalloc_node(unsigned long size, int node) { (void)node; return vzalloc(size); }

#endif
