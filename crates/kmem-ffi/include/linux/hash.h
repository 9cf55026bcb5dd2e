/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/hash.h>, the kernel's multiplicative hash: hash_32/hash_64 keep the top `bits`
 * bits of the value times the golden ratio constant (GOLDEN_RATIO_32 = 0x61C88647,
 * GOLDEN_RATIO_64 = 0x61C8864680B583EB), so equal values land in equal buckets of a table of
 * 2^bits. `bits` is 1..32 (hash_32) or 1..64 (hash_64). On a 64-bit long, hash_64 is the
 * 64-bit product; on a 32-bit long it folds the halves through __hash_32 as the kernel does
 * there. hash_long is hash_32 or hash_64 by the size of long; hash_ptr hashes an address.
 * Written for kmem from the documented API. */
#ifndef _KMEM_LINUX_HASH_H
#define _KMEM_LINUX_HASH_H

#include <linux/types.h>
#include <linux/compiler.h>

#define GOLDEN_RATIO_32 0x61C88647
#define GOLDEN_RATIO_64 0x61C8864680B583EBull

#if __SIZEOF_LONG__ == 8
#define GOLDEN_RATIO_PRIME GOLDEN_RATIO_64
#define hash_long(val, bits) hash_64(val, bits)
#else
#define GOLDEN_RATIO_PRIME GOLDEN_RATIO_32
#define hash_long(val, bits) hash_32(val, bits)
#endif

/* The full 32-bit product, before keeping the top bits. */
static inline u32 __hash_32(u32 val)
{
	return val * GOLDEN_RATIO_32;
}

static inline u32 hash_32(u32 val, unsigned int bits)
{
	return __hash_32(val) >> (32 - bits);
}

static __always_inline u32 hash_64(u64 val, unsigned int bits)
{
#if __SIZEOF_LONG__ == 8
	return (u32)((val * GOLDEN_RATIO_64) >> (64 - bits));
#else
	return hash_32((u32)val ^ __hash_32((u32)(val >> 32)), bits);
#endif
}

static inline u32 hash_ptr(const void *ptr, unsigned int bits)
{
	return hash_long((unsigned long)ptr, bits);
}

/* An address folded to 32 bits, not spread: for a key that is then hashed again. */
static inline u32 hash32_ptr(const void *ptr)
{
	unsigned long val = (unsigned long)ptr;

#if __SIZEOF_LONG__ == 8
	val ^= val >> 32;
#endif
	return (u32)val;
}

#endif
