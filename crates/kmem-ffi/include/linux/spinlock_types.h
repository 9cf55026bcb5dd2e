/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: spinlock_t with the kernel's CONFIG_DEBUG_SPINLOCK fields (owner as a pid). */
#ifndef _KMEM_LINUX_SPINLOCK_TYPES_H
#define _KMEM_LINUX_SPINLOCK_TYPES_H

#define SPINLOCK_MAGIC		0xdead4ead
#define SPINLOCK_OWNER_INIT	(-1)

typedef struct raw_spinlock {
	unsigned int raw_lock;
	unsigned int magic;
	int owner_cpu;
	int owner;
} raw_spinlock_t;

typedef struct spinlock {
	struct raw_spinlock rlock;
} spinlock_t;

#define __RAW_SPIN_LOCK_UNLOCKED(lockname) \
	{ .raw_lock = 0, .magic = SPINLOCK_MAGIC, .owner_cpu = -1, .owner = SPINLOCK_OWNER_INIT }
#define __SPIN_LOCK_UNLOCKED(lockname)	{ .rlock = __RAW_SPIN_LOCK_UNLOCKED(lockname) }
#define DEFINE_SPINLOCK(x)		spinlock_t x = __SPIN_LOCK_UNLOCKED(x)
#define DEFINE_RAW_SPINLOCK(x)		raw_spinlock_t x = __RAW_SPIN_LOCK_UNLOCKED(x)

#endif
