/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* RCU as slab users need it: read-side sections, grace periods, call_rcu, kfree_rcu/kvfree_rcu
 * and the pointer accessors, over the machine's RCU (SLAB_TYPESAFE_BY_RCU caches use the same
 * one). Grace periods run on demand (synchronize_rcu, rcu_barrier, cache shrink and destroy,
 * reclaim) and, with kswapd on (KMEM_KSWAPD, the default), once a second when no reader that
 * predates them is inside, so an object given to kfree_rcu is freed by the next of those.
 * call_rcu callbacks run after such a once-a-second grace period (or sooner, after 10000 are
 * queued: qhimark) in kswapd's thread, or at the next rcu_barrier, oldest first (a barrier's
 * batch may run alongside an older one kswapd is running) and in atomic
 * (softirq) context, as the kernel's do: they may run while other threads go on, must not
 * sleep, and should take the locks they share with other code (see crates/kmem-ffi/src/rcu.rs).
 * With KMEM_KSWAPD=0 only rcu_barrier runs them. */
#ifndef _KMEM_LINUX_RCUPDATE_H
#define _KMEM_LINUX_RCUPDATE_H

#include <linux/compiler.h>
#include <linux/types.h>

/* The kernel's callback_head (linux/types.h), as rcu_head: embedded in objects given to
 * call_rcu (which chains them through it) or to the two-argument kfree_rcu (which does not
 * write it: its queue is kept elsewhere). */
struct callback_head {
	struct callback_head *next;
	void (*func)(struct callback_head *head);
} __attribute__((aligned(sizeof(void *))));
#define rcu_head callback_head
typedef void (*rcu_callback_t)(struct rcu_head *head);

#define __rcu

void rcu_read_lock(void);
void rcu_read_unlock(void);
/* Whether the calling thread is inside a read-side section. */
int rcu_read_lock_held(void);
void synchronize_rcu(void);
/* Waits for every callback queued before it to run, and frees what kfree_rcu queued. */
void rcu_barrier(void);
/* func(head) runs after a grace period (after kswapd's next grace period, or at rcu_barrier, in kmem). */
void call_rcu(struct rcu_head *head, rcu_callback_t func);

/* kvfree_call_rcu's two halves: a kmalloc or slab object, or (kvfree) a vmalloc area too. */
void kmem_kfree_rcu(const void *ptr);
void kmem_kvfree_rcu(const void *ptr);

#define rcu_dereference(p)		__atomic_load_n(&(p), __ATOMIC_CONSUME)
#define rcu_dereference_raw(p)		rcu_dereference(p)
#define rcu_dereference_check(p, c)	rcu_dereference(p)
#define rcu_dereference_protected(p, c)	(p)
#define rcu_access_pointer(p)		__atomic_load_n(&(p), __ATOMIC_RELAXED)
#define rcu_assign_pointer(p, v)	__atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define RCU_INIT_POINTER(p, v)		((p) = (v))

/* `rhf` must name a struct rcu_head member of *ptr, as the kernel's macro requires. */
#define __kmem_rcu_head_check(ptr, rhf)							\
	_Static_assert(__builtin_types_compatible_p(__typeof__(((__typeof__(*(ptr)) *)0)->rhf), \
						    struct rcu_head),		\
		       "kfree_rcu: " #rhf " is not a struct rcu_head member")

#define __kfree_rcu_2(ptr, rhf) do {							\
		__kmem_rcu_head_check(ptr, rhf);					\
		kmem_kfree_rcu(ptr);							\
	} while (0)
#define __kfree_rcu_1(ptr)		kmem_kfree_rcu(ptr)
#define __kvfree_rcu_2(ptr, rhf) do {							\
		__kmem_rcu_head_check(ptr, rhf);					\
		kmem_kvfree_rcu(ptr);							\
	} while (0)
#define __kvfree_rcu_1(ptr)		kmem_kvfree_rcu(ptr)

/* kfree_rcu(ptr, rhf) (and the one-argument form of kernels before 6.3), kvfree_rcu likewise. */
#define kfree_rcu(...)		__PASTE(__kfree_rcu_, __KMEM_NARGS(__VA_ARGS__))(__VA_ARGS__)
#define kvfree_rcu(...)		__PASTE(__kvfree_rcu_, __KMEM_NARGS(__VA_ARGS__))(__VA_ARGS__)
#define kfree_rcu_mightsleep(ptr)	kmem_kfree_rcu(ptr)
#define kvfree_rcu_mightsleep(ptr)	kmem_kvfree_rcu(ptr)

#endif
