/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/minmax.h> (included by <linux/kernel.h>, as in the kernel): min, max, min3, max3,
 * umin, umax, min_not_zero, clamp, min_t, max_t, clamp_t, clamp_val, MIN_T, MAX_T and swap.
 * Each evaluates its arguments once (MIN_T and MAX_T excepted, as in the kernel: they are for
 * constants). The result of min and max has the type the comparison is made in (C's usual
 * arithmetic conversions of the two), as in the kernel.
 *
 * min, max, min3, max3, min_not_zero and clamp check signedness at compile time, with the
 * kernel's rule (6.x minmax.h's __types_ok): two arguments may be compared if their types are
 * both signed or both unsigned, or become so by the integer promotions (an unsigned char or
 * short is an int), or if either is a signed integer constant expression that is not negative
 * (min(u, 5) is fine; min(i, 5u) is not). Otherwise the program does not compile: "min(i, u)
 * signedness error, fix types or consider umin() before min_t()". With only constant arguments
 * min, max, min3, max3 and clamp are constant expressions (an array bound), unchecked.
 * umin/umax compare as unsigned long long; min_t/max_t/clamp_t convert to the given type,
 * clamp_val to val's type; none of those checks signedness. A clamp whose constant lo is above
 * its constant hi does not compile either.
 *
 * Deviation: kernels from 6.13 also accept a signed argument that the optimizer proves
 * non-negative (their check runs after optimization); this one runs at compile time at every
 * -O level, so only constants are exempt. min_array, max_array and in_range are not provided,
 * nor MIN and MAX (glibc's <sys/param.h> has its own). Written for kmem from the documented
 * rules. */
#ifndef _KMEM_LINUX_MINMAX_H
#define _KMEM_LINUX_MINMAX_H

#include <linux/compiler.h>

/* Whether x is of a signed type, as an integer constant expression (0 for a pointer, whose
 * is_signed_type is not one). x is not evaluated. */
#define __kmem_signed(x)							\
	__builtin_choose_expr(__is_constexpr(is_signed_type(__typeof__(x))),	\
			      is_signed_type(__typeof__(x)), 0)

/* x is a signed integer constant expression >= 0. */
#define __kmem_nonneg_const(x)							\
	(__builtin_choose_expr(__is_constexpr(x) && __kmem_signed(x), x, -1) >= 0)

/* The kernel's __types_ok: x and y may be compared without a signedness surprise. */
#define __kmem_types_ok(x, y)							\
	(__kmem_signed(x) == __kmem_signed(y) ||				\
	 __kmem_signed((x) + 0) == __kmem_signed((y) + 0) ||			\
	 __kmem_nonneg_const(x) || __kmem_nonneg_const(y))

#define __kmem_signedness_check(x, y, msg)	_Static_assert(__kmem_types_ok(x, y), msg)
#define __kmem_cmp_msg(op, x, y)						\
	#op "(" #x ", " #y ") signedness error, fix types or consider u" #op "() before " #op "_t()"

#define __kmem_op_min <
#define __kmem_op_max >

#define __kmem_cmp(op, x, y)	((x) __kmem_op_##op (y) ? (x) : (y))

/* v converted to the type C gives a conditional between a and b: the type a comparison of a
 * and b is made in. */
#define __kmem_in(a, b, v)	((__typeof__(1 ? (a) : (b)))(v))

/* For constants: a constant expression (each argument written more than once), compared and
 * returned in the type C would use, the operands converted to it explicitly (the same values,
 * without -Wsign-compare's noise in the branch __builtin_choose_expr does not take). */
#define __kmem_cmp_const(op, x, y)						\
	__kmem_cmp(op, __kmem_in(x, y, x), __kmem_in(x, y, y))

/* Both values held in the type C compares them in (the same comparison and result as with
 * each in its own type, without -Wsign-compare's noise about the allowed mixes). */
#define __kmem_cmp_once(op, x, y, ux, uy) __extension__ ({			\
		__typeof__(1 ? (x) : (y)) ux = (x), uy = (y);			\
		__kmem_cmp(op, ux, uy);						\
	})

#define __kmem_careful_cmp_once(op, x, y, ux, uy) __extension__ ({		\
		__kmem_signedness_check(x, y, __kmem_cmp_msg(op, x, y));	\
		__kmem_cmp_once(op, x, y, ux, uy);				\
	})

#define __kmem_careful_cmp(op, x, y)						\
	__builtin_choose_expr(__is_constexpr((x) - (y)), __kmem_cmp_const(op, x, y), \
			      __kmem_careful_cmp_once(op, x, y, __UNIQUE_ID(x_), __UNIQUE_ID(y_)))

#define min(x, y)	__kmem_careful_cmp(min, x, y)
#define max(x, y)	__kmem_careful_cmp(max, x, y)

/* Of two values that are never negative, whatever their types: compared as unsigned long long
 * (a negative argument becomes a huge one). */
#define umin(x, y)	__kmem_careful_cmp(min, (x) + 0u + 0ul + 0ull, (y) + 0u + 0ul + 0ull)
#define umax(x, y)	__kmem_careful_cmp(max, (x) + 0u + 0ul + 0ull, (y) + 0u + 0ul + 0ull)

/* Three values, each pair checked as min's are; compared in the type of all three. */
#define __kmem_op3_msg(op, x, y, z) #op "3(" #x ", " #y ", " #z ") signedness error"
#define __kmem_careful_op3(op, x, y, z, ux, uy, uz) __extension__ ({		\
		__kmem_signedness_check(x, y, __kmem_op3_msg(op, x, y, z));	\
		__kmem_signedness_check(x, z, __kmem_op3_msg(op, x, y, z));	\
		__kmem_signedness_check(y, z, __kmem_op3_msg(op, x, y, z));	\
		__typeof__(1 ? (x) : 1 ? (y) : (z)) ux = (x), uy = (y), uz = (z); \
		__kmem_cmp(op, __kmem_cmp(op, ux, uy), uz);			\
	})

/* Of constants, a constant expression (unchecked, as min's). */
#define __kmem_op3(op, x, y, z)							\
	__builtin_choose_expr(__is_constexpr((x) - (y) + (z)),			\
			      __kmem_cmp_const(op, __kmem_cmp_const(op, x, y), z),	\
			      __kmem_careful_op3(op, x, y, z, __UNIQUE_ID(x_), __UNIQUE_ID(y_), \
						 __UNIQUE_ID(z_)))

#define min3(x, y, z)	__kmem_op3(min, x, y, z)
#define max3(x, y, z)	__kmem_op3(max, x, y, z)

/* The smaller of two values that is not 0; 0 if both are. */
#define __kmem_min_not_zero(x, y, ux, uy) __extension__ ({			\
		__kmem_signedness_check(x, y, "min_not_zero(" #x ", " #y ") signedness error"); \
		__typeof__(1 ? (x) : (y)) ux = (x), uy = (y);			\
		ux == 0 ? uy : uy == 0 ? ux : __kmem_cmp(min, ux, uy);		\
	})
#define min_not_zero(x, y) __kmem_min_not_zero(x, y, __UNIQUE_ID(x_), __UNIQUE_ID(y_))

/* val limited to [lo, hi]: hi if val >= hi, else lo if val <= lo, else val; each comparison
 * and conditional made in the type C makes it in, the operands converted to it explicitly (the
 * same values, without -Wsign-compare's noise). A constant expression for constants. */
#define __kmem_clamp_vals(v, l, h)						\
	(__kmem_in(v, h, v) >= __kmem_in(v, h, h) ?				\
	 __kmem_in(h, __kmem_in(l, v, l), h) :					\
	 __kmem_in(h, __kmem_in(l, v, l),					\
		   __kmem_in(v, l, v) <= __kmem_in(v, l, l) ? __kmem_in(l, v, l) : __kmem_in(l, v, v)))

#define __kmem_clamp_once(val, lo, hi, uv, ul, uh) __extension__ ({		\
		_Static_assert(__builtin_choose_expr(__is_constexpr((lo) > (hi)), (lo) <= (hi), 1), \
			       "clamp() low limit " #lo " greater than high limit " #hi); \
		_Static_assert(__kmem_types_ok(val, lo), "clamp() 'lo' signedness error"); \
		_Static_assert(__kmem_types_ok(val, hi), "clamp() 'hi' signedness error"); \
		__typeof__(1 ? (val) : (val)) uv = (val);			\
		__typeof__(1 ? (lo) : (lo)) ul = (lo);				\
		__typeof__(1 ? (hi) : (hi)) uh = (hi);				\
		__kmem_clamp_vals(uv, ul, uh);					\
	})

#define __kmem_careful_clamp(val, lo, hi)					\
	__builtin_choose_expr(__is_constexpr((val) - (lo) + (hi)), __kmem_clamp_vals(val, lo, hi), \
			      __kmem_clamp_once(val, lo, hi, __UNIQUE_ID(v_), __UNIQUE_ID(l_), \
						__UNIQUE_ID(h_)))

/* val limited to [lo, hi], each pair of val and a limit checked as min's are. */
#define clamp(val, lo, hi)	__kmem_careful_clamp(val, lo, hi)

/* Unchecked: every argument converted to `type` (min_t, max_t, clamp_t) or to val's type
 * (clamp_val, for an unsigned val and literal limits) first. */
#define __kmem_cmp_t(op, type, x, y, ux, uy) __extension__ ({			\
		type ux = (x);							\
		type uy = (y);							\
		__kmem_cmp(op, ux, uy);						\
	})
#define min_t(type, x, y)	__kmem_cmp_t(min, type, x, y, __UNIQUE_ID(x_), __UNIQUE_ID(y_))
#define max_t(type, x, y)	__kmem_cmp_t(max, type, x, y, __UNIQUE_ID(x_), __UNIQUE_ID(y_))
#define clamp_t(type, val, lo, hi) __kmem_careful_clamp((type)(val), (type)(lo), (type)(hi))
#define clamp_val(val, lo, hi)	clamp_t(__typeof__(val), val, lo, hi)

/* For constants only: unchecked, arguments written twice. */
#define MIN_T(type, x, y)	__kmem_cmp(min, (type)(x), (type)(y))
#define MAX_T(type, x, y)	__kmem_cmp(max, (type)(x), (type)(y))

/* Exchanges two lvalues, each evaluated once. */
#define __kmem_swap(a, b, pa, pb, tmp) do {					\
		__typeof__(a) *pa = &(a);					\
		__typeof__(b) *pb = &(b);					\
		__typeof__(a) tmp = *pa;					\
		*pa = *pb;							\
		*pb = tmp;							\
	} while (0)
#define swap(a, b)	__kmem_swap(a, b, __UNIQUE_ID(a_), __UNIQUE_ID(b_), __UNIQUE_ID(t_))

#endif
