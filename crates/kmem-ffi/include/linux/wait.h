/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: the wait queue head as mempool_t embeds it (include/linux/wait.h). */
#ifndef _KMEM_LINUX_WAIT_H
#define _KMEM_LINUX_WAIT_H

#include <linux/spinlock.h>
#include <linux/types.h>

struct wait_queue_head {
	spinlock_t lock;
	struct list_head head;
};
typedef struct wait_queue_head wait_queue_head_t;

#endif
