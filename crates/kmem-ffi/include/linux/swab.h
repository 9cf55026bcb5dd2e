/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: byte swapping (include/uapi/linux/swab.h). */
#ifndef _KMEM_LINUX_SWAB_H
#define _KMEM_LINUX_SWAB_H

#include <linux/types.h>

#define ___constant_swab16(x)	((__u16)__builtin_bswap16((__u16)(x)))
#define ___constant_swab32(x)	((__u32)__builtin_bswap32((__u32)(x)))
#define ___constant_swab64(x)	((__u64)__builtin_bswap64((__u64)(x)))
#define __swab16(x)		___constant_swab16(x)
#define __swab32(x)		___constant_swab32(x)
#define __swab64(x)		___constant_swab64(x)
#define swab16			__swab16
#define swab32			__swab32
#define swab64			__swab64

static inline __u16 __swab16p(const __u16 *p) { return __swab16(*p); }
static inline __u32 __swab32p(const __u32 *p) { return __swab32(*p); }
static inline __u64 __swab64p(const __u64 *p) { return __swab64(*p); }
static inline void __swab16s(__u16 *p) { *p = __swab16(*p); }
static inline void __swab32s(__u32 *p) { *p = __swab32(*p); }
static inline void __swab64s(__u64 *p) { *p = __swab64(*p); }

#endif
