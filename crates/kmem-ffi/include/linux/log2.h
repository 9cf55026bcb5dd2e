/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/log2.h>, integer base-2 logarithms and powers of two. ilog2(n) is floor(log2(n))
 * for n > 0 (undefined for 0, as in the kernel; kmem gives 0); of a constant it is an integer
 * constant expression (GCC folds __builtin_clzll), so it sizes arrays and feeds
 * _Static_assert, as <linux/hashtable.h>'s HASH_BITS needs. Written for kmem from the
 * documented API. */
#ifndef _KMEM_LINUX_LOG2_H
#define _KMEM_LINUX_LOG2_H

#include <linux/types.h>

#define ilog2(n)							\
	((n) < 2 ? 0 : 63 - __builtin_clzll((unsigned long long)(n)))

/* The smallest power of two >= n (n >= 1), and the largest <= n (n >= 1), as unsigned long. */
#define roundup_pow_of_two(n)						\
	((n) <= 1 ? 1UL : 1UL << (ilog2((n) - 1) + 1))
#define rounddown_pow_of_two(n)	(1UL << ilog2(n))

/* ceil(log2(n)); 0 for n <= 1. */
#define order_base_2(n)		((n) > 1 ? ilog2((n) - 1) + 1 : 0)

static inline __attribute__((__const__)) bool is_power_of_2(unsigned long n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

#endif
