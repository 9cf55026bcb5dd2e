/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/bits.h>: single bits and contiguous masks of an unsigned long (or unsigned
 * long long), as constant expressions. */
#ifndef _KMEM_LINUX_BITS_H
#define _KMEM_LINUX_BITS_H

#include <linux/build_bug.h>

#ifndef BITS_PER_LONG
#define BITS_PER_LONG		(__SIZEOF_LONG__ * 8)
#endif
#ifndef BITS_PER_LONG_LONG
#define BITS_PER_LONG_LONG	64
#endif
#define BITS_PER_BYTE		8

#define BIT(nr)			(1UL << (nr))
#define BIT_ULL(nr)		(1ULL << (nr))
#define BIT_MASK(nr)		(1UL << ((nr) % BITS_PER_LONG))
#define BIT_WORD(nr)		((nr) / BITS_PER_LONG)
#define BIT_ULL_MASK(nr)	(1ULL << ((nr) % BITS_PER_LONG_LONG))
#define BIT_ULL_WORD(nr)	((nr) / BITS_PER_LONG_LONG)

/* Bits l..h set (h >= l, both below the type's width). Reversed constant bounds do not
 * compile, as in the kernel (GENMASK_INPUT_CHECK); bounds known only at run time are not
 * checked. */
#define __KMEM_GENMASK_CHECK(h, l)						\
	BUILD_BUG_ON_ZERO(__builtin_choose_expr(__is_constexpr((l) > (h)), (l) > (h), 0))
#define GENMASK(h, l)								\
	(__KMEM_GENMASK_CHECK(h, l) +						\
	 ((~0UL << (l)) & (~0UL >> (BITS_PER_LONG - 1 - (h)))))
#define GENMASK_ULL(h, l)							\
	(__KMEM_GENMASK_CHECK(h, l) +						\
	 ((~0ULL << (l)) & (~0ULL >> (BITS_PER_LONG_LONG - 1 - (h)))))

#endif
