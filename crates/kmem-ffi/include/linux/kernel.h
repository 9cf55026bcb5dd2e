/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/kernel.h>: printk, sprintf and kasprintf, the small helpers (min and max from
 * <linux/minmax.h>, the rounding ones from <linux/math.h>), might_sleep. */
#ifndef _KMEM_LINUX_KERNEL_H
#define _KMEM_LINUX_KERNEL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>	/* sprintf, snprintf, vsnprintf: the C library's. */
#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/printk.h>
#include <linux/bug.h>
#include <linux/build_bug.h>	/* BUILD_BUG_ON_ZERO, static_assert, ... */
#include <linux/bits.h>		/* BIT, GENMASK, as through the kernel's <linux/bitops.h> */
#include <linux/math.h>		/* DIV_ROUND_UP, round_up, roundup, DIV_ROUND_CLOSEST */
#include <linux/err.h>
#include <linux/minmax.h>	/* min, max, clamp, swap and the rest, signedness-checked */
#include <linux/instruction_pointer.h>
#include <linux/overflow.h>	/* and the limits (INT_MAX, U32_MAX, ...), as <linux/limits.h> */
#include <linux/string.h>	/* memset and friends, as the kernel's headers pull them in */
#include <linux/sprintf.h>	/* kasprintf and kvasprintf */
/* What the uapi <linux/kernel.h> gives, which kmem's shadows under -I include: glibc's
 * <sys/sysinfo.h> includes <linux/kernel.h> for struct sysinfo. kmem has neither header, so
 * these are the system's. */
#include <linux/sysinfo.h>
#include <linux/const.h>

#define ARRAY_SIZE(arr)		(sizeof(arr) / sizeof((arr)[0]))
#define ALIGN(x, a)		(((x) + ((__typeof__(x))(a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a)	((x) & ~((__typeof__(x))(a) - 1))
#define IS_ALIGNED(x, a)	(((x) & ((__typeof__(x))(a) - 1)) == 0)


/* As the kernel's: ptr is evaluated once, and must point to the member's type (or be a void
 * pointer); another type does not compile ("pointer type mismatch in container_of()"). */
#define container_of(ptr, type, member) __extension__ ({				\
		void *__mptr = (void *)(ptr);						\
		_Static_assert(__builtin_types_compatible_p(__typeof__(*(ptr)),		\
							    __typeof__(((type *)0)->member)) || \
			       __builtin_types_compatible_p(__typeof__(*(ptr)), void),	\
			       "pointer type mismatch in container_of()");		\
		((type *)((char *)__mptr - offsetof(type, member)));			\
	})

/* might_sleep(): in atomic context (spin lock held, interrupts off) this reports
 * "BUG: sleeping function called from invalid context at <file>:<line>". */
void __might_sleep(const char *file, int line);
#define might_sleep()		__might_sleep(__FILE__, __LINE__)
#define might_sleep_if(cond)	do { if (cond) might_sleep(); } while (0)

int _cond_resched(void);
#define cond_resched()		({ __might_sleep(__FILE__, __LINE__); _cond_resched(); })

#endif
