/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/log2.h>, integer base-2 logarithms and powers of two. ilog2(n) is floor(log2(n))
 * for n > 0 (undefined for 0, as in the kernel; kmem gives 0); of a constant it is an integer
 * constant expression (GCC folds __builtin_clzll), so it sizes arrays and feeds
 * _Static_assert, as <linux/hashtable.h>'s HASH_BITS needs. Each macro evaluates its argument
 * once. Written for kmem from the documented API. */
#ifndef _KMEM_LINUX_LOG2_H
#define _KMEM_LINUX_LOG2_H

#include <linux/types.h>

/* The non-constant forms: each macro below evaluates its argument once, through one of these,
 * as the kernel's do (its constant forms name the argument more than once, but a constant has
 * no side effects). */
static inline __attribute__((__const__)) int __kmem_ilog2(unsigned long long n)
{
	return n < 2 ? 0 : 63 - __builtin_clzll(n);
}

static inline __attribute__((__const__)) unsigned long __kmem_roundup_pow_of_two(unsigned long n)
{
	return n <= 1 ? 1UL : 1UL << (__kmem_ilog2(n - 1) + 1);
}

static inline __attribute__((__const__)) int __kmem_order_base_2(unsigned long n)
{
	return n > 1 ? __kmem_ilog2(n - 1) + 1 : 0;
}

#define ilog2(n)							\
	(__builtin_constant_p(n) ?					\
	 ((n) < 2 ? 0 : 63 - __builtin_clzll((unsigned long long)(n))) :	\
	 __kmem_ilog2(n))

/* The smallest power of two >= n (n >= 1), and the largest <= n (n >= 1), as unsigned long. */
#define roundup_pow_of_two(n)						\
	(__builtin_constant_p(n) ?					\
	 ((n) <= 1 ? 1UL : 1UL << (ilog2((n) - 1) + 1)) :		\
	 __kmem_roundup_pow_of_two(n))
#define rounddown_pow_of_two(n)	(1UL << ilog2(n))

/* ceil(log2(n)); 0 for n <= 1. */
#define order_base_2(n)							\
	(__builtin_constant_p(n) ?					\
	 ((n) > 1 ? ilog2((n) - 1) + 1 : 0) :				\
	 __kmem_order_base_2(n))

static inline __attribute__((__const__)) bool is_power_of_2(unsigned long n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

#endif
