/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: the parts of <linux/sched.h> allocation code uses. */
#ifndef _KMEM_LINUX_SCHED_H
#define _KMEM_LINUX_SCHED_H

#include <linux/kernel.h>
#include <linux/preempt.h>

#endif
