/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: GFP flags with the kernel's values (include/linux/gfp_types.h), for a 64-bit kernel
 * without KASAN_HW_TAGS, LOCKDEP and SLAB_OBJ_EXT (crates/kmem-core/src/gfp.rs decides).
 * The book's removed flags still compile: __GFP_WAIT (now __GFP_RECLAIM), __GFP_REPEAT (now
 * __GFP_RETRY_MAYFAIL), __GFP_COLD (bit 0x200, honoured by kmem's per-CPU lists). */
#ifndef _KMEM_LINUX_GFP_TYPES_H
#define _KMEM_LINUX_GFP_TYPES_H

#include <linux/types.h>

/* Zone modifiers. */
#define __GFP_DMA		((gfp_t)0x01u)
#define __GFP_HIGHMEM		((gfp_t)0x02u)
#define __GFP_DMA32		((gfp_t)0x04u)
#define __GFP_MOVABLE		((gfp_t)0x08u)
#define GFP_ZONEMASK		(__GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE)

/* Page mobility and placement hints. */
#define __GFP_RECLAIMABLE	((gfp_t)0x10u)
#define __GFP_WRITE		((gfp_t)0x1000u)
#define __GFP_HARDWALL		((gfp_t)0x100000u)
#define __GFP_THISNODE		((gfp_t)0x200000u)
#define __GFP_ACCOUNT		((gfp_t)0x400000u)

/* Watermark modifiers. */
#define __GFP_HIGH		((gfp_t)0x20u)
#define __GFP_MEMALLOC		((gfp_t)0x20000u)
#define __GFP_NOMEMALLOC	((gfp_t)0x80000u)

/* Reclaim modifiers. */
#define __GFP_IO		((gfp_t)0x40u)
#define __GFP_FS		((gfp_t)0x80u)
#define __GFP_DIRECT_RECLAIM	((gfp_t)0x400u)
#define __GFP_KSWAPD_RECLAIM	((gfp_t)0x800u)
#define __GFP_RECLAIM		((gfp_t)(__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM))
#define __GFP_RETRY_MAYFAIL	((gfp_t)0x4000u)
#define __GFP_NOFAIL		((gfp_t)0x8000u)
#define __GFP_NORETRY		((gfp_t)0x10000u)

/* Action modifiers. */
#define __GFP_ZERO		((gfp_t)0x100u)
#define __GFP_NOWARN		((gfp_t)0x2000u)
#define __GFP_COMP		((gfp_t)0x40000u)
#define __GFP_ZEROTAGS		((gfp_t)0x800000u)
#define __GFP_SKIP_ZERO		((gfp_t)0)
#define __GFP_SKIP_KASAN	((gfp_t)0)
#define __GFP_NOLOCKDEP		((gfp_t)0)
#define __GFP_NO_OBJ_EXT	((gfp_t)0)

#define __GFP_BITS_SHIFT	24
#define __GFP_BITS_MASK		((gfp_t)((1u << __GFP_BITS_SHIFT) - 1))

/* The book's names (LDD3, Linux 2.6). */
#define __GFP_WAIT		__GFP_RECLAIM
#define __GFP_REPEAT		__GFP_RETRY_MAYFAIL
#define __GFP_COLD		((gfp_t)0x200u)
#define __GFP_NOTRACK		((gfp_t)0)

/* The combinations callers use. */
#define GFP_ATOMIC		(__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
#define GFP_KERNEL		(__GFP_RECLAIM | __GFP_IO | __GFP_FS)
#define GFP_KERNEL_ACCOUNT	(GFP_KERNEL | __GFP_ACCOUNT)
#define GFP_NOWAIT		(__GFP_KSWAPD_RECLAIM | __GFP_NOWARN)
#define GFP_NOIO		(__GFP_RECLAIM)
#define GFP_NOFS		(__GFP_RECLAIM | __GFP_IO)
#define GFP_USER		(__GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL)
#define GFP_DMA			__GFP_DMA
#define GFP_DMA32		__GFP_DMA32
#define GFP_HIGHUSER		(GFP_USER | __GFP_HIGHMEM)
#define GFP_HIGHUSER_MOVABLE	(GFP_HIGHUSER | __GFP_MOVABLE | __GFP_SKIP_KASAN)
#define GFP_TRANSHUGE_LIGHT	((GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM)
#define GFP_TRANSHUGE		(GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM)

#endif
