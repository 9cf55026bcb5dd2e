/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/rculist.h>, the RCU forms of <linux/list.h>'s list and hlist, over the machine's
 * RCU (<linux/rcupdate.h>). Writers (serialized among themselves by the caller, as in the
 * kernel) publish an entry with a release store (rcu_assign_pointer) only after its own
 * pointers are set, so a reader that finds it finds it whole; readers inside rcu_read_lock
 * follow next pointers with rcu_dereference (a consume load) and may run concurrently with
 * the writers. Only the forward links are for readers: prev (and an hlist node's pprev) are
 * the writers'.
 *
 * list_del_rcu and hlist_del_rcu unlink an entry but poison only its prev/pprev (LIST_POISON2,
 * as list_del does), leaving next intact so that a reader standing on the entry still reaches
 * the rest of the list; list_replace_rcu and hlist_replace_rcu likewise poison the old entry's
 * prev/pprev only. hlist_del_init_rcu leaves pprev NULL (hlist_unhashed is true) and next
 * intact. A deleted entry may be freed only after a grace period: synchronize_rcu, then kfree;
 * or kfree_rcu/call_rcu. list_splice_init_rcu and list_splice_tail_init_rcu take the function
 * that waits for readers (synchronize_rcu) and call it once, between emptying `list` and
 * splicing its entries in. list_empty is the RCU-safe emptiness test (it reads next once and
 * never dereferences it), so there is no list_empty_rcu; nor a list_first_entry_rcu: use
 * list_first_or_null_rcu.
 *
 * Deviations: the optional last argument of list_for_each_entry_rcu, hlist_for_each_entry_rcu
 * (and hash_for_each_possible_rcu), the lockdep condition under which a writer may walk the
 * list without rcu_read_lock, is accepted and never evaluated, as in a kernel without
 * CONFIG_PROVE_RCU_LIST; the _bh, _sched and srcu variants, list_for_each_entry_lockless and
 * the hlist_bl lists are not provided. The hlist_nulls lists, for lookups in
 * SLAB_TYPESAFE_BY_RCU caches, are in <linux/list_nulls.h> and <linux/rculist_nulls.h>, as in
 * the kernel. Written for kmem from the documented API. */
#ifndef _KMEM_LINUX_RCULIST_H
#define _KMEM_LINUX_RCULIST_H

#include <linux/compiler.h>
#include <linux/list.h>
#include <linux/rcupdate.h>

/* INIT_LIST_HEAD for a head readers may already see: the stores are not torn. */
static inline void INIT_LIST_HEAD_RCU(struct list_head *list)
{
	WRITE_ONCE(list->next, list);
	WRITE_ONCE(list->prev, list);
}

/* The forward link of `list` (and the head's backward one), as the lvalue the RCU accessors
 * take. */
#define list_next_rcu(list)	(*((struct list_head __rcu **)(&(list)->next)))
#define list_tail_rcu(head)	(*((struct list_head __rcu **)(&(head)->prev)))

/* Links `entry` between the adjacent `prev` and `next`: `entry`'s own links first, then the
 * release store that makes it reachable from `prev`; next->prev is the writers' only. */
static inline void __list_add_rcu(struct list_head *entry, struct list_head *prev, struct list_head *next)
{
	entry->next = next;
	entry->prev = prev;
	rcu_assign_pointer(list_next_rcu(prev), entry);
	next->prev = entry;
}

/* After `head`: a stack. */
static inline void list_add_rcu(struct list_head *entry, struct list_head *head)
{
	__list_add_rcu(entry, head, head->next);
}

/* Before `head`, at the end: a queue. */
static inline void list_add_tail_rcu(struct list_head *entry, struct list_head *head)
{
	__list_add_rcu(entry, head->prev, head);
}

/* Unlinks `entry`; its next still leads on (for readers on it), its prev is LIST_POISON2. */
static inline void list_del_rcu(struct list_head *entry)
{
	__list_del_entry(entry);
	entry->prev = (struct list_head *)LIST_POISON2;
}

/* `repl` takes `old`'s place, published with one release store; `old`'s next still leads on,
 * its prev is LIST_POISON2. */
static inline void list_replace_rcu(struct list_head *old, struct list_head *repl)
{
	repl->next = old->next;
	repl->prev = old->prev;
	rcu_assign_pointer(list_next_rcu(repl->prev), repl);
	repl->next->prev = repl;
	old->prev = (struct list_head *)LIST_POISON2;
}

/* Moves the entries of the non-empty `list` between `prev` and `next`. `list` is emptied
 * first (readers that start on it from then on see it empty) and `sync` waits for the readers
 * that may still be walking its entries, whose last next leads back to `list`; then the
 * entries go in with one release store. Blocks (in `sync`). */
static inline void __list_splice_init_rcu(struct list_head *list, struct list_head *prev,
					  struct list_head *next, void (*sync)(void))
{
	struct list_head *first = list->next, *last = list->prev;

	INIT_LIST_HEAD_RCU(list);
	sync();
	last->next = next;
	rcu_assign_pointer(list_next_rcu(prev), first);
	first->prev = prev;
	next->prev = last;
}

/* `list`'s entries to the front of `head` (a stack); `list` is left empty. */
static inline void list_splice_init_rcu(struct list_head *list, struct list_head *head, void (*sync)(void))
{
	if (!list_empty(list))
		__list_splice_init_rcu(list, head, head->next, sync);
}

/* `list`'s entries to the end of `head` (a queue); `list` is left empty. */
static inline void list_splice_tail_init_rcu(struct list_head *list, struct list_head *head,
					     void (*sync)(void))
{
	if (!list_empty(list))
		__list_splice_init_rcu(list, head->prev, head, sync);
}

/* The entry holding the list_head `ptr` (an lvalue, read once with rcu_dereference). */
#define list_entry_rcu(ptr, type, member) container_of(rcu_dereference(ptr), type, member)

/* The first entry of `ptr`, or NULL if it is empty: its next is read once, so a concurrent
 * deletion cannot make the test and the entry disagree. */
#define list_first_or_null_rcu(ptr, type, member) __extension__ ({			\
		struct list_head *__rcul_head = (ptr);					\
		struct list_head *__rcul_next = rcu_dereference(list_next_rcu(__rcul_head)); \
		__rcul_next != __rcul_head ? list_entry(__rcul_next, type, member) : NULL; \
	})

/* The entry after the list_head `ptr` on the list `head`, or NULL if `ptr` is the last. */
#define list_next_or_null_rcu(head, ptr, type, member) __extension__ ({		\
		struct list_head *__rcul_head = (head);					\
		struct list_head *__rcul_next = rcu_dereference(list_next_rcu(ptr));	\
		__rcul_next != __rcul_head ? list_entry(__rcul_next, type, member) : NULL; \
	})

/* Every entry, under rcu_read_lock (or the writers' lock: the optional fourth argument, the
 * kernel's lockdep condition saying so, is not evaluated). */
#define list_for_each_entry_rcu(pos, head, member, ...)				\
	for (pos = list_entry_rcu(list_next_rcu(head), __typeof__(*(pos)), member);	\
	     &(pos)->member != (head);							\
	     pos = list_entry_rcu(list_next_rcu(&(pos)->member), __typeof__(*(pos)), member))

/* From the entry after `pos`. */
#define list_for_each_entry_continue_rcu(pos, head, member)				\
	for (pos = list_entry_rcu(list_next_rcu(&(pos)->member), __typeof__(*(pos)), member); \
	     &(pos)->member != (head);							\
	     pos = list_entry_rcu(list_next_rcu(&(pos)->member), __typeof__(*(pos)), member))

/* From `pos` itself (nothing if `pos` is the head's entry, as list_for_each_entry leaves it). */
#define list_for_each_entry_from_rcu(pos, head, member)				\
	for (; &(pos)->member != (head);						\
	     pos = list_entry_rcu(list_next_rcu(&(pos)->member), __typeof__(*(pos)), member))


/* ---- hlist ---- */

/* The head's first and a node's next, and what a node's pprev points at, as lvalues. */
#define hlist_first_rcu(head)	(*((struct hlist_node __rcu **)(&(head)->first)))
#define hlist_next_rcu(node)	(*((struct hlist_node __rcu **)(&(node)->next)))
#define hlist_pprev_rcu(node)	(*((struct hlist_node __rcu **)((node)->pprev)))

/* Unlinks `node`; its next still leads on, its pprev is LIST_POISON2 (so it is not unhashed). */
static inline void hlist_del_rcu(struct hlist_node *node)
{
	__hlist_del(node);
	WRITE_ONCE(node->pprev, (struct hlist_node **)LIST_POISON2);
}

/* Unlinks `node` if it is on a list and leaves it unhashed (pprev NULL); its next still leads
 * on. A no-op on an unhashed node. */
static inline void hlist_del_init_rcu(struct hlist_node *node)
{
	if (!hlist_unhashed(node)) {
		__hlist_del(node);
		WRITE_ONCE(node->pprev, NULL);
	}
}

/* `repl` takes `old`'s place, published with one release store; `old`'s next still leads on,
 * its pprev is LIST_POISON2. */
static inline void hlist_replace_rcu(struct hlist_node *old, struct hlist_node *repl)
{
	struct hlist_node *next = old->next;

	repl->next = next;
	WRITE_ONCE(repl->pprev, old->pprev);
	rcu_assign_pointer(hlist_pprev_rcu(repl), repl);
	if (next)
		WRITE_ONCE(next->pprev, &repl->next);
	WRITE_ONCE(old->pprev, (struct hlist_node **)LIST_POISON2);
}

/* At the front of `head`. */
static inline void hlist_add_head_rcu(struct hlist_node *node, struct hlist_head *head)
{
	struct hlist_node *first = head->first;

	WRITE_ONCE(node->next, first);
	WRITE_ONCE(node->pprev, &head->first);
	rcu_assign_pointer(hlist_first_rcu(head), node);
	if (first)
		WRITE_ONCE(first->pprev, &node->next);
}

/* At the end of `head`: the writer walks the list to its last node (O(n)). */
static inline void hlist_add_tail_rcu(struct hlist_node *node, struct hlist_head *head)
{
	struct hlist_node *pos, *last = NULL;

	for (pos = head->first; pos; pos = pos->next)
		last = pos;
	if (last) {
		node->next = NULL;
		WRITE_ONCE(node->pprev, &last->next);
		rcu_assign_pointer(hlist_next_rcu(last), node);
	} else {
		hlist_add_head_rcu(node, head);
	}
}

/* Just before `next`, which must be on a list. */
static inline void hlist_add_before_rcu(struct hlist_node *node, struct hlist_node *next)
{
	WRITE_ONCE(node->pprev, next->pprev);
	node->next = next;
	rcu_assign_pointer(hlist_pprev_rcu(node), node);
	WRITE_ONCE(next->pprev, &node->next);
}

/* Just after `prev`, which must be on a list. */
static inline void hlist_add_behind_rcu(struct hlist_node *node, struct hlist_node *prev)
{
	node->next = prev->next;
	WRITE_ONCE(node->pprev, &prev->next);
	rcu_assign_pointer(hlist_next_rcu(prev), node);
	if (node->next)
		WRITE_ONCE(node->next->pprev, &node->next);
}

#define __hlist_for_each_rcu(pos, head)						\
	for (pos = rcu_dereference(hlist_first_rcu(head));			\
	     pos;									\
	     pos = rcu_dereference(hlist_next_rcu(pos)))

/* Every entry, under rcu_read_lock (the optional fourth argument, the kernel's lockdep
 * condition, is not evaluated); leaves `pos` NULL when it runs to the end. */
#define hlist_for_each_entry_rcu(pos, head, member, ...)				\
	for (pos = hlist_entry_safe(rcu_dereference(hlist_first_rcu(head)),		\
				    __typeof__(*(pos)), member);				\
	     pos;									\
	     pos = hlist_entry_safe(rcu_dereference(hlist_next_rcu(&(pos)->member)),	\
				    __typeof__(*(pos)), member))

/* The kernel's form without RCU debugging or tracing: the same walk here. */
#define hlist_for_each_entry_rcu_notrace(pos, head, member)				\
	hlist_for_each_entry_rcu(pos, head, member)

/* From the entry after `pos`. */
#define hlist_for_each_entry_continue_rcu(pos, member)					\
	for (pos = hlist_entry_safe(rcu_dereference(hlist_next_rcu(&(pos)->member)),	\
				    __typeof__(*(pos)), member);				\
	     pos;									\
	     pos = hlist_entry_safe(rcu_dereference(hlist_next_rcu(&(pos)->member)),	\
				    __typeof__(*(pos)), member))

/* From `pos` itself. */
#define hlist_for_each_entry_from_rcu(pos, member)					\
	for (; pos;									\
	     pos = hlist_entry_safe(rcu_dereference(hlist_next_rcu(&(pos)->member)),	\
				    __typeof__(*(pos)), member))

#endif
