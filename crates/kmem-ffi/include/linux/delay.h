/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/delay.h>. msleep sleeps for real and is a might_sleep() point. */
#ifndef _KMEM_LINUX_DELAY_H
#define _KMEM_LINUX_DELAY_H

#include <unistd.h>

void msleep(unsigned int msecs);
static inline void ssleep(unsigned int seconds) { msleep(seconds * 1000); }
/* Busy-waits in the kernel; here a plain short sleep without the might_sleep check. */
static inline void udelay(unsigned long usecs) { usleep((useconds_t)usecs); }
static inline void mdelay(unsigned long msecs) { usleep((useconds_t)(msecs * 1000)); }
static inline void ndelay(unsigned long nsecs) { usleep((useconds_t)(nsecs / 1000 + 1)); }

#endif
