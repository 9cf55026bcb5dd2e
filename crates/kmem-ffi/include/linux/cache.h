/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/cache.h>: the cache line (64 bytes, as x86's and as kmem's slab caches align
 * SLAB_HWCACHE_ALIGN objects) and the data-placement annotations. kmem has no special data
 * sections: __read_mostly and __ro_after_init only document (a __ro_after_init variable stays
 * writable). */
#ifndef _KMEM_LINUX_CACHE_H
#define _KMEM_LINUX_CACHE_H

#define L1_CACHE_SHIFT		6
#define L1_CACHE_BYTES		(1 << L1_CACHE_SHIFT)
#define SMP_CACHE_BYTES		L1_CACHE_BYTES
#define L1_CACHE_ALIGN(x)	(((x) + (L1_CACHE_BYTES - 1)) & ~(__typeof__(x))(L1_CACHE_BYTES - 1))
#define cache_line_size()	L1_CACHE_BYTES

#define ____cacheline_aligned		__attribute__((__aligned__(SMP_CACHE_BYTES)))
#define ____cacheline_aligned_in_smp	____cacheline_aligned
#define __cacheline_aligned		____cacheline_aligned
#define __cacheline_aligned_in_smp	____cacheline_aligned

#define __read_mostly
#define __ro_after_init

#endif
