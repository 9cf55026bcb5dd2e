/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: unaligned access (the seed's section 5.1: get_unaligned(ptr), put_unaligned(val, ptr)),
 * with the sized little/big-endian forms of linux/unaligned.h. */
#ifndef _KMEM_ASM_UNALIGNED_H
#define _KMEM_ASM_UNALIGNED_H

#include <linux/types.h>
#include <asm/byteorder.h>

/* As the kernel does it: a packed one-member struct makes the compiler emit an access that
 * is safe at any alignment. */
#define __get_unaligned_t(type, ptr) ({						\
		const struct { type x; } __packed *__pptr = (__typeof__(__pptr))(ptr);	\
		__pptr->x;							\
	})
#define __put_unaligned_t(type, val, ptr) do {					\
		struct { type x; } __packed *__pptr = (__typeof__(__pptr))(ptr);	\
		__pptr->x = (val);						\
	} while (0)

#define get_unaligned(ptr)	__get_unaligned_t(__typeof__(*(ptr)), (ptr))
#define put_unaligned(val, ptr)	__put_unaligned_t(__typeof__(*(ptr)), (val), (ptr))

static inline u16 get_unaligned_le16(const void *p) { return le16_to_cpu(get_unaligned((const __le16 *)p)); }
static inline u32 get_unaligned_le32(const void *p) { return le32_to_cpu(get_unaligned((const __le32 *)p)); }
static inline u64 get_unaligned_le64(const void *p) { return le64_to_cpu(get_unaligned((const __le64 *)p)); }
static inline u16 get_unaligned_be16(const void *p) { return be16_to_cpu(get_unaligned((const __be16 *)p)); }
static inline u32 get_unaligned_be32(const void *p) { return be32_to_cpu(get_unaligned((const __be32 *)p)); }
static inline u64 get_unaligned_be64(const void *p) { return be64_to_cpu(get_unaligned((const __be64 *)p)); }
static inline void put_unaligned_le16(u16 v, void *p) { put_unaligned(cpu_to_le16(v), (__le16 *)p); }
static inline void put_unaligned_le32(u32 v, void *p) { put_unaligned(cpu_to_le32(v), (__le32 *)p); }
static inline void put_unaligned_le64(u64 v, void *p) { put_unaligned(cpu_to_le64(v), (__le64 *)p); }
static inline void put_unaligned_be16(u16 v, void *p) { put_unaligned(cpu_to_be16(v), (__be16 *)p); }
static inline void put_unaligned_be32(u32 v, void *p) { put_unaligned(cpu_to_be32(v), (__be32 *)p); }
static inline void put_unaligned_be64(u64 v, void *p) { put_unaligned(cpu_to_be64(v), (__be64 *)p); }

#endif
