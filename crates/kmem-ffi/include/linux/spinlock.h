/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: spin locks (include/linux/spinlock.h). A real lock between threads; holding one is
 * atomic context, so GFP_KERNEL inside is reported ("sleeping function called from invalid
 * context"). Misuse is reported as CONFIG_DEBUG_SPINLOCK does: "BUG: spinlock bad magic"
 * (not initialised), "recursion", "already unlocked", "wrong owner". */
#ifndef _KMEM_LINUX_SPINLOCK_H
#define _KMEM_LINUX_SPINLOCK_H

#include <linux/compiler.h>
#include <linux/irqflags.h>
#include <linux/preempt.h>
#include <linux/spinlock_types.h>
#include <linux/types.h>

void _raw_spin_lock(raw_spinlock_t *lock);
int _raw_spin_trylock(raw_spinlock_t *lock);
void _raw_spin_unlock(raw_spinlock_t *lock);
unsigned long _raw_spin_lock_irqsave(raw_spinlock_t *lock);
void _raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags);
void _raw_spin_lock_irq(raw_spinlock_t *lock);
void _raw_spin_unlock_irq(raw_spinlock_t *lock);
int spin_is_locked(spinlock_t *lock);

#define raw_spin_lock_init(lock)	do { *(lock) = (raw_spinlock_t)__RAW_SPIN_LOCK_UNLOCKED(lock); } while (0)
#define spin_lock_init(lock)		do { *(lock) = (spinlock_t)__SPIN_LOCK_UNLOCKED(lock); } while (0)

#define raw_spin_lock(lock)		_raw_spin_lock(lock)
#define raw_spin_unlock(lock)		_raw_spin_unlock(lock)
#define raw_spin_lock_irqsave(lock, flags) do { (flags) = _raw_spin_lock_irqsave(lock); } while (0)
#define raw_spin_unlock_irqrestore(lock, flags) _raw_spin_unlock_irqrestore(lock, flags)

static __always_inline void spin_lock(spinlock_t *lock) { _raw_spin_lock(&lock->rlock); }
static __always_inline int spin_trylock(spinlock_t *lock) { return _raw_spin_trylock(&lock->rlock); }
static __always_inline void spin_unlock(spinlock_t *lock) { _raw_spin_unlock(&lock->rlock); }
static __always_inline void spin_lock_irq(spinlock_t *lock) { _raw_spin_lock_irq(&lock->rlock); }
static __always_inline void spin_unlock_irq(spinlock_t *lock) { _raw_spin_unlock_irq(&lock->rlock); }
static __always_inline void spin_lock_bh(spinlock_t *lock) { _raw_spin_lock_irq(&lock->rlock); }
static __always_inline void spin_unlock_bh(spinlock_t *lock) { _raw_spin_unlock_irq(&lock->rlock); }

#define spin_lock_irqsave(lock, flags)	do { (flags) = _raw_spin_lock_irqsave(&(lock)->rlock); } while (0)
#define spin_unlock_irqrestore(lock, flags) _raw_spin_unlock_irqrestore(&(lock)->rlock, flags)
#define assert_spin_locked(lock)	BUG_ON(!spin_is_locked(lock))

#endif
