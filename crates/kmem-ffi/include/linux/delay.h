/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/delay.h>. msleep sleeps for real and is a might_sleep() point. */
#ifndef _KMEM_LINUX_DELAY_H
#define _KMEM_LINUX_DELAY_H

#include <unistd.h>

void msleep(unsigned int msecs);
static inline void ssleep(unsigned int seconds) { msleep(seconds * 1000); }
/* Busy-waits in the kernel; here libkmem's __udelay/__ndelay (the kernel's names) sleep that
 * long without the might_sleep check, so the header needs no POSIX declaration. */
void __udelay(unsigned long usecs);
void __ndelay(unsigned long nsecs);
static inline void udelay(unsigned long usecs) { __udelay(usecs); }
static inline void mdelay(unsigned long msecs) { __udelay(msecs * 1000); }
static inline void ndelay(unsigned long nsecs) { __ndelay(nsecs); }

#endif
