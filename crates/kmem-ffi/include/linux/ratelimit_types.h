/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: struct ratelimit_state and __ratelimit (include/linux/ratelimit_types.h).
 *
 * ___ratelimit() is lib/ratelimit.c's: at most `burst` callbacks per `interval` jiffies; when
 * a new interval begins after callbacks were suppressed it prints "<func>: N callbacks
 * suppressed" (KERN_WARNING) unless RATELIMIT_MSG_ON_RELEASE is set; interval 0 never limits;
 * a caller that finds the state busy (another thread inside) is suppressed. `lock` is the
 * state's own word (0: free), handled by libkmem. */
#ifndef _KMEM_LINUX_RATELIMIT_TYPES_H
#define _KMEM_LINUX_RATELIMIT_TYPES_H

#include <linux/jiffies.h>

#define DEFAULT_RATELIMIT_INTERVAL	(5 * HZ)
#define DEFAULT_RATELIMIT_BURST		10

/* issue num suppressed message on exit */
#define RATELIMIT_MSG_ON_RELEASE	(1 << 0)

struct ratelimit_state {
	int lock;
	int interval;
	int burst;
	int printed;
	int missed;
	unsigned int flags;
	unsigned long begin;
};

#define RATELIMIT_STATE_INIT_FLAGS(name, interval_init, burst_init, flags_init) {	\
		.lock = 0,								\
		.interval = (interval_init),						\
		.burst = (burst_init),							\
		.flags = (flags_init),							\
	}

#define RATELIMIT_STATE_INIT(name, interval_init, burst_init)			\
	RATELIMIT_STATE_INIT_FLAGS(name, interval_init, burst_init, 0)

#define RATELIMIT_STATE_INIT_DISABLED	RATELIMIT_STATE_INIT(ratelimit_state, 0, DEFAULT_RATELIMIT_BURST)

#define DEFINE_RATELIMIT_STATE(name, interval_init, burst_init)		\
	struct ratelimit_state name = RATELIMIT_STATE_INIT(name, interval_init, burst_init)

int ___ratelimit(struct ratelimit_state *rs, const char *func);
#define __ratelimit(state) ___ratelimit(state, __func__)

#endif
