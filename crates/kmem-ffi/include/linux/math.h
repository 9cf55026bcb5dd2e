/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/math.h>: rounding and division helpers (<linux/kernel.h> includes it, as the
 * kernel's does). round_up/round_down take a power-of-two step (a mask); roundup/rounddown
 * any step. */
#ifndef _KMEM_LINUX_MATH_H
#define _KMEM_LINUX_MATH_H

#include <linux/compiler.h>

#define __round_mask(x, y)	((__typeof__(x))((y) - 1))
#define round_up(x, y)		((((x) - 1) | __round_mask(x, y)) + 1)
#define round_down(x, y)	((x) & ~__round_mask(x, y))

#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))
#define DIV_ROUND_UP_ULL(ll, d)	((unsigned long long)DIV_ROUND_UP((unsigned long long)(ll), (d)))
#define DIV_ROUND_DOWN_ULL(ll, d)	((unsigned long long)(ll) / (d))

/* glibc's <sys/param.h> defines roundup too, the same way (with a mask for a constant power
 * of two): whichever header comes first defines it. */
#ifndef roundup
#define roundup(x, y)		((((x) + ((y) - 1)) / (y)) * (y))
#endif
#define rounddown(x, y)		((x) - ((x) % (y)))

/* x / divisor rounded to the nearest integer, halves away from zero; each argument evaluated
 * once. With a signed x or divisor of opposite signs the half is subtracted, as the kernel's
 * does (its result is undefined for a negative divisor with unsigned types). */
#define DIV_ROUND_CLOSEST(x, divisor) __extension__ ({				\
		__typeof__(x) __kmem_x = (x);					\
		__typeof__(divisor) __kmem_d = (divisor);			\
		(((__typeof__(x))-1) > 0 || ((__typeof__(divisor))-1) > 0 ||	\
		 ((__kmem_x > 0) == (__kmem_d > 0))) ?				\
			((__kmem_x + (__kmem_d / 2)) / __kmem_d) :		\
			((__kmem_x - (__kmem_d / 2)) / __kmem_d);		\
	})
#define DIV_ROUND_CLOSEST_ULL(x, divisor) __extension__ ({			\
		__typeof__(divisor) __kmem_d = (divisor);			\
		((unsigned long long)(x) + __kmem_d / 2) / __kmem_d;		\
	})

#endif
