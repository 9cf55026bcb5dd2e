/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/rculist_nulls.h>, the RCU forms of <linux/list_nulls.h>'s hlist_nulls, over the
 * machine's RCU (<linux/rcupdate.h>), for lists that lockless readers search. Writers
 * (serialized among themselves by the caller, as in the kernel) publish a node with a release
 * store (rcu_assign_pointer) only after its own next and pprev are set, so a reader that finds
 * it finds it whole; readers inside rcu_read_lock follow first and next with rcu_dereference (a
 * consume load) and may run concurrently with the writers. pprev is the writers' (and
 * hlist_nulls_unhashed_lockless's).
 *
 * hlist_nulls_del_rcu unlinks a node and poisons its pprev only (LIST_POISON2), leaving next
 * intact so that a reader standing on the node still reaches the rest of the list and its end
 * marker; hlist_nulls_del_init_rcu leaves pprev NULL (hlist_nulls_unhashed is true) and next
 * intact. hlist_nulls_add_tail_rcu keeps the list's end marker (the new last node takes it
 * over); hlist_nulls_add_fake makes a node look hashed (pprev at its own next, next the marker
 * of 0) without being on a list, so hlist_nulls_del_rcu on it touches nothing else.
 *
 * The list's memory rules are the caller's: nodes of an ordinary allocation are freed only
 * after a grace period (synchronize_rcu, kfree_rcu, call_rcu); nodes in a SLAB_TYPESAFE_BY_RCU
 * cache may be freed with kmem_cache_free at once and reused at once, and then a reader must
 * follow the documented lookup: on a key match take a reference that fails on a free object (an
 * atomic increment unless zero), check the key again, and start over when the walk ends on
 * another list's nulls value (see get_nulls_value in <linux/list_nulls.h>).
 *
 * Deviations: the walks do not begin with the kernel's compiler barrier: their first load is an
 * atomic one (rcu_dereference), which the compiler performs anew each time a lookup starts over.
 * hlist_nulls_add_before_rcu and the hlist_nulls_pprev_rcu accessor of recent kernels are not
 * provided. Written for kmem from the documented API. */
#ifndef _KMEM_LINUX_RCULIST_NULLS_H
#define _KMEM_LINUX_RCULIST_NULLS_H

#include <linux/compiler.h>
#include <linux/list_nulls.h>
#include <linux/rcupdate.h>

/* The head's first and a node's next, as the lvalues the RCU accessors take. */
#define hlist_nulls_first_rcu(head)	(*((struct hlist_nulls_node __rcu **)(&(head)->first)))
#define hlist_nulls_next_rcu(node)	(*((struct hlist_nulls_node __rcu **)(&(node)->next)))

/* Unlinks `node` if it is on a list and leaves it unhashed (pprev NULL); its next still leads
 * on. A no-op on an unhashed node. */
static inline void hlist_nulls_del_init_rcu(struct hlist_nulls_node *node)
{
	if (!hlist_nulls_unhashed(node)) {
		__hlist_nulls_del(node);
		WRITE_ONCE(node->pprev, NULL);
	}
}

/* Unlinks `node`; its next still leads on, its pprev is LIST_POISON2 (so it is not unhashed). */
static inline void hlist_nulls_del_rcu(struct hlist_nulls_node *node)
{
	__hlist_nulls_del(node);
	WRITE_ONCE(node->pprev, (struct hlist_nulls_node **)LIST_POISON2);
}

/* At the front of `head`: the node's links first, then the release store that publishes it. */
static inline void hlist_nulls_add_head_rcu(struct hlist_nulls_node *node, struct hlist_nulls_head *head)
{
	struct hlist_nulls_node *first = head->first;

	WRITE_ONCE(node->next, first);
	WRITE_ONCE(node->pprev, &head->first);
	rcu_assign_pointer(hlist_nulls_first_rcu(head), node);
	if (!is_a_nulls(first))
		WRITE_ONCE(first->pprev, &node->next);
}

/* At the end of `head`, taking over its end marker: the writer walks the list to its last node
 * (O(n)). */
static inline void hlist_nulls_add_tail_rcu(struct hlist_nulls_node *node, struct hlist_nulls_head *head)
{
	struct hlist_nulls_node *pos, *last = NULL;

	for (pos = head->first; !is_a_nulls(pos); pos = pos->next)
		last = pos;
	if (last) {
		WRITE_ONCE(node->next, last->next);
		WRITE_ONCE(node->pprev, &last->next);
		rcu_assign_pointer(hlist_nulls_next_rcu(last), node);
	} else {
		hlist_nulls_add_head_rcu(node, head);
	}
}

/* Makes `node` look hashed without being on a list: its pprev points at its own next, which is
 * the end marker of 0. */
static inline void hlist_nulls_add_fake(struct hlist_nulls_node *node)
{
	node->pprev = &node->next;
	node->next = (struct hlist_nulls_node *)NULLS_MARKER(0);
}

/* Every entry of `head`, under rcu_read_lock: `tpos` the entry, `pos` its node; after a walk
 * that runs to the end, `pos` is the end marker it met. */
#define hlist_nulls_for_each_entry_rcu(tpos, pos, head, member)			\
	for (pos = rcu_dereference(hlist_nulls_first_rcu(head));			\
	     !is_a_nulls(pos) &&							\
	     ((tpos = hlist_nulls_entry(pos, __typeof__(*(tpos)), member)), 1);	\
	     pos = rcu_dereference(hlist_nulls_next_rcu(pos)))

/* The same walk with `pos` moved on to the next node (or the end marker) before the body
 * runs, so the body may delete or free `tpos`. */
#define hlist_nulls_for_each_entry_safe(tpos, pos, head, member)			\
	for (pos = rcu_dereference(hlist_nulls_first_rcu(head));			\
	     !is_a_nulls(pos) &&							\
	     ((tpos = hlist_nulls_entry(pos, __typeof__(*(tpos)), member)),		\
	      (pos = rcu_dereference(hlist_nulls_next_rcu(pos))), 1);		\
	     )

#endif
