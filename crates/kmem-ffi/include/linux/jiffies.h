/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: jiffies (include/linux/jiffies.h, asm/param.h).
 *
 * HZ is 1000 (CONFIG_HZ_1000): a jiffy is a millisecond of the machine's monotonic clock, and
 * `jiffies` counts them from the machine's start (the kernel starts at INITIAL_JIFFIES, five
 * minutes before wrapping; kmem starts at 0, and an unsigned long of milliseconds does not
 * wrap in a process's life). HZ is 1000 whatever came before: glibc's <sys/param.h> (its
 * <asm/param.h>) defines it as 100 when included first, which would make every interval in
 * jiffies a tenth of what it says. The time_* comparisons are the kernel's, wrap-safe. */
#ifndef _KMEM_LINUX_JIFFIES_H
#define _KMEM_LINUX_JIFFIES_H

#include <linux/types.h>

#undef HZ
#define HZ		1000
#define USER_HZ		100
#define MSEC_PER_SEC	1000L
#define USEC_PER_MSEC	1000L
#define MAX_JIFFY_OFFSET	((long)((~0UL >> 1) >> 1) - 1)

/* libkmem: the machine's clock in jiffies. */
unsigned long kmem_jiffies(void);
#define jiffies		kmem_jiffies()

#define time_after(a, b)	((long)((b) - (a)) < 0)
#define time_before(a, b)	time_after(b, a)
#define time_after_eq(a, b)	((long)((a) - (b)) >= 0)
#define time_before_eq(a, b)	time_after_eq(b, a)
#define time_in_range(a, b, c)	(time_after_eq(a, b) && time_before_eq(a, c))
#define time_is_before_jiffies(a)	time_after(jiffies, a)
#define time_is_after_jiffies(a)	time_before(jiffies, a)
#define time_is_before_eq_jiffies(a)	time_after_eq(jiffies, a)
#define time_is_after_eq_jiffies(a)	time_before_eq(jiffies, a)

/* A negative int of milliseconds is "for ever" (MAX_JIFFY_OFFSET), as in the kernel. */
static inline unsigned long msecs_to_jiffies(const unsigned int m)
{
	return (int)m < 0 ? (unsigned long)MAX_JIFFY_OFFSET : m;
}
static inline unsigned long usecs_to_jiffies(const unsigned int u) { return (u + 999UL) / 1000UL; }
static inline unsigned int jiffies_to_msecs(const unsigned long j) { return (unsigned int)j; }
static inline unsigned int jiffies_to_usecs(const unsigned long j) { return (unsigned int)(j * 1000u); }

#endif
