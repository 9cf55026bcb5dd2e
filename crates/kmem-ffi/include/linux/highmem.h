/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/highmem.h>. HighMem pages (above 896 MiB on the i386 profile) have no
 * direct-map address: page_address() is NULL until kmap(). kmap and friends are exported by
 * libkmem (crates/kmem-ffi/src/vmalloc.rs); kmap_atomic enters atomic context until
 * kunmap_atomic. */
#ifndef _KMEM_LINUX_HIGHMEM_H
#define _KMEM_LINUX_HIGHMEM_H

#include <linux/mm.h>

void *kmap(struct page *page);
void kunmap(struct page *page);
void *kmap_local_page(struct page *page);
void kunmap_local(const void *addr);
void *kmap_atomic(struct page *page);
void kunmap_atomic(void *addr);

#endif
