/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: jiffies (include/linux/jiffies.h, asm/param.h).
 *
 * HZ is 250 (CONFIG_HZ_250, the x86 default), the rate of the jiffies kmem's own reports
 * print (slab track ages, RCU stall reports): a jiffy is 4 ms of the machine's monotonic clock,
 * and `jiffies` counts them from INITIAL_JIFFIES at the machine's start, as the kernel's does
 * from boot (so it is never 0, which ratelimit states read as "not started"). HZ is 250 whatever came before: glibc's <sys/param.h> (its
 * <asm/param.h>) defines it as 100 when included first, which would make every interval in
 * jiffies wrong. The time_* comparisons are the kernel's, wrap-safe; the conversions round up
 * as the kernel's do. */
#ifndef _KMEM_LINUX_JIFFIES_H
#define _KMEM_LINUX_JIFFIES_H

#include <linux/types.h>

#undef HZ
#define HZ		250
#define USER_HZ		100
#define MSEC_PER_SEC	1000L
#define USEC_PER_MSEC	1000L
#define USEC_PER_SEC	1000000L
#define INITIAL_JIFFIES	((unsigned long)(unsigned int)(-300 * HZ))
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
	if ((int)m < 0)
		return (unsigned long)MAX_JIFFY_OFFSET;
	return ((unsigned long)m + (MSEC_PER_SEC / HZ) - 1) / (MSEC_PER_SEC / HZ);
}
static inline unsigned long usecs_to_jiffies(const unsigned int u)
{
	return ((unsigned long)u + (USEC_PER_SEC / HZ) - 1) / (USEC_PER_SEC / HZ);
}
static inline unsigned int jiffies_to_msecs(const unsigned long j) { return (unsigned int)((MSEC_PER_SEC / HZ) * j); }
static inline unsigned int jiffies_to_usecs(const unsigned long j) { return (unsigned int)((USEC_PER_SEC / HZ) * j); }

#endif
