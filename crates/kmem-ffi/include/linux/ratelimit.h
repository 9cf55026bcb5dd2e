/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: include/linux/ratelimit.h: initialising, flagging and retiring a ratelimit state. */
#ifndef _KMEM_LINUX_RATELIMIT_H
#define _KMEM_LINUX_RATELIMIT_H

#include <string.h>
#include <linux/ratelimit_types.h>

static inline void ratelimit_state_init(struct ratelimit_state *rs, int interval, int burst)
{
	memset(rs, 0, sizeof(*rs));
	rs->interval = interval;
	rs->burst = burst;
}

static inline void ratelimit_default_init(struct ratelimit_state *rs)
{
	ratelimit_state_init(rs, DEFAULT_RATELIMIT_INTERVAL, DEFAULT_RATELIMIT_BURST);
}

static inline void ratelimit_set_flags(struct ratelimit_state *rs, unsigned long flags)
{
	rs->flags = (unsigned int)flags;
}

/* With RATELIMIT_MSG_ON_RELEASE: "<comm>: N output lines suppressed due to ratelimiting". */
void ratelimit_state_exit(struct ratelimit_state *rs);

#endif
