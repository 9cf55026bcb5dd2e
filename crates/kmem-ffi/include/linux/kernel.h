/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/kernel.h>: printk, sprintf and kasprintf, the small helpers, might_sleep. */
#ifndef _KMEM_LINUX_KERNEL_H
#define _KMEM_LINUX_KERNEL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>	/* sprintf, snprintf, vsnprintf: the C library's. */
#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/printk.h>
#include <linux/bug.h>
#include <linux/err.h>
#include <linux/overflow.h>	/* and the limits (INT_MAX, U32_MAX, ...), as <linux/limits.h> */
#include <linux/string.h>	/* memset and friends, as the kernel's headers pull them in */
#include <linux/sprintf.h>	/* kasprintf and kvasprintf */
/* What the uapi <linux/kernel.h> gives, which kmem's shadows under -I include: glibc's
 * <sys/sysinfo.h> includes <linux/kernel.h> for struct sysinfo. kmem has neither header, so
 * these are the system's. */
#include <linux/sysinfo.h>
#include <linux/const.h>

#define ARRAY_SIZE(arr)		(sizeof(arr) / sizeof((arr)[0]))
#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))
#define ALIGN(x, a)		(((x) + ((__typeof__(x))(a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a)	((x) & ~((__typeof__(x))(a) - 1))
#define IS_ALIGNED(x, a)	(((x) & ((__typeof__(x))(a) - 1)) == 0)
/* glibc's <sys/param.h> defines roundup too, the same way (with a mask for a constant power
 * of two): whichever header comes first defines it. */
#ifndef roundup
#define roundup(x, y)		((((x) + ((y) - 1)) / (y)) * (y))
#endif
#define rounddown(x, y)		((x) - ((x) % (y)))

#define min(x, y) ({ __typeof__(x) _min1 = (x); __typeof__(y) _min2 = (y); _min1 < _min2 ? _min1 : _min2; })
#define max(x, y) ({ __typeof__(x) _max1 = (x); __typeof__(y) _max2 = (y); _max1 > _max2 ? _max1 : _max2; })
#define min_t(type, x, y) ({ type __min1 = (x); type __min2 = (y); __min1 < __min2 ? __min1 : __min2; })
#define max_t(type, x, y) ({ type __max1 = (x); type __max2 = (y); __max1 > __max2 ? __max1 : __max2; })
#define clamp(val, lo, hi)	min(max(val, lo), hi)
#define swap(a, b) do { __typeof__(a) __tmp = (a); (a) = (b); (b) = __tmp; } while (0)

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* might_sleep(): in atomic context (spin lock held, interrupts off) this reports
 * "BUG: sleeping function called from invalid context at <file>:<line>". */
void __might_sleep(const char *file, int line);
#define might_sleep()		__might_sleep(__FILE__, __LINE__)
#define might_sleep_if(cond)	do { if (cond) might_sleep(); } while (0)

int _cond_resched(void);
#define cond_resched()		({ __might_sleep(__FILE__, __LINE__); _cond_resched(); })

#endif
