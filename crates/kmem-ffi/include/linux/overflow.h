/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/overflow.h>: checked arithmetic and the saturating size helpers. An overflowing
 * size saturates to SIZE_MAX, which every allocator refuses (NULL), as in the kernel.
 * As the kernel's, it brings the limits of <linux/limits.h>: the C names (INT_MAX, UINT_MAX,
 * LONG_MAX, ULONG_MAX, ... from <limits.h>, SIZE_MAX from <stdint.h>) and the kernel's
 * fixed-size ones, so code that includes only <linux/slab.h> or <linux/kernel.h> has them. */
#ifndef _KMEM_LINUX_OVERFLOW_H
#define _KMEM_LINUX_OVERFLOW_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

/* include/linux/limits.h */
#ifndef SSIZE_MAX	/* glibc's <limits.h> has it (LONG_MAX) outside strict ISO C */
#define SSIZE_MAX	((ssize_t)(SIZE_MAX >> 1))
#endif
#define PHYS_ADDR_MAX	(~(phys_addr_t)0)
#define RESOURCE_SIZE_MAX	((resource_size_t)~0)
#define U8_MAX		((u8)~0U)
#define S8_MAX		((s8)(U8_MAX >> 1))
#define S8_MIN		((s8)(-S8_MAX - 1))
#define U16_MAX		((u16)~0U)
#define S16_MAX		((s16)(U16_MAX >> 1))
#define S16_MIN		((s16)(-S16_MAX - 1))
#define U32_MAX		((u32)~0U)
#define U32_MIN		((u32)0)
#define S32_MAX		((s32)(U32_MAX >> 1))
#define S32_MIN		((s32)(-S32_MAX - 1))
#define U64_MAX		((u64)~0ULL)
#define S64_MAX		((s64)(U64_MAX >> 1))
#define S64_MIN		((s64)(-S64_MAX - 1))

#define check_add_overflow(a, b, d)	__builtin_add_overflow(a, b, d)
#define check_sub_overflow(a, b, d)	__builtin_sub_overflow(a, b, d)
#define check_mul_overflow(a, b, d)	__builtin_mul_overflow(a, b, d)

static inline size_t size_mul(size_t factor1, size_t factor2)
{
	size_t bytes;

	if (check_mul_overflow(factor1, factor2, &bytes))
		return SIZE_MAX;
	return bytes;
}

static inline size_t size_add(size_t addend1, size_t addend2)
{
	size_t bytes;

	if (check_add_overflow(addend1, addend2, &bytes))
		return SIZE_MAX;
	return bytes;
}

static inline size_t size_sub(size_t minuend, size_t subtrahend)
{
	size_t bytes;

	if (minuend == SIZE_MAX || subtrahend == SIZE_MAX || check_sub_overflow(minuend, subtrahend, &bytes))
		return SIZE_MAX;
	return bytes;
}

#define array_size(a, b)	size_mul(a, b)
#define array3_size(a, b, c)	size_mul(size_mul(a, b), c)
/* Saturating product and sum of constants, as constant expressions. Written as wrap tests, not
 * comparisons with SIZE_MAX: -Wtype-limits (in -Wextra) would flag those for a 1-byte element
 * even in the branch a variable count does not take. */
#define __kmem_const_size_mul(n, size)						\
	((size) && (size_t)(n) * (size) / ((size) | !(size)) != (size_t)(n) ?	\
	 SIZE_MAX : (size_t)(n) * (size))
#define __kmem_const_size_add(a, b)	((a) + (b) < (a) ? SIZE_MAX : (a) + (b))

/* The size of `*p` with `count` elements of its flexible array `member`. As the kernel's, of a
 * constant count these are constant expressions (an array bound, BUILD_BUG_ON, a static
 * initializer: __builtin_choose_expr(__is_constexpr(count), ...)); a constant too large gives
 * SIZE_MAX here too, where the kernel's constant arithmetic would wrap. */
#define flex_array_size(p, member, count)					\
	__builtin_choose_expr(__is_constexpr(count),				\
		__kmem_const_size_mul(count, sizeof(*(p)->member)),		\
		size_mul(count, sizeof(*(p)->member)))
#define struct_size(p, member, count)						\
	__builtin_choose_expr(__is_constexpr(count),				\
		__kmem_const_size_add(sizeof(*(p)), flex_array_size(p, member, count)), \
		size_add(sizeof(*(p)), flex_array_size(p, member, count)))
#define struct_size_t(type, member, count)	struct_size((type *)NULL, member, count)

#endif
