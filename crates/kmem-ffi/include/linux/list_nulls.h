/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/list_nulls.h>, the hlist whose end is not NULL but a "nulls" marker: an odd
 * value, (value << 1) | 1, that a node pointer (at least 2-byte aligned) never is. A head is
 * one pointer, as an hlist's; an empty list's first is its marker. Each list can end in its own
 * value (a hash table stores the bucket's index), so a lockless reader that reaches the end of
 * a list learns which list it has walked: if a writer moved the node it stood on to another
 * list, the walk ends on that list's value and the reader starts over. That is what makes
 * lists of SLAB_TYPESAFE_BY_RCU objects, which may be freed and reused under a reader without
 * a grace period, searchable (the kernel's Documentation/RCU/rculist_nulls.rst); the RCU forms
 * are in <linux/rculist_nulls.h>.
 *
 * A node's pprev points at the pointer that points at it (the head's first or the previous
 * node's next); an unhashed node has pprev NULL. hlist_nulls_del poisons pprev only
 * (LIST_POISON2, as the kernel does) and leaves next alone. The iterators take an entry cursor
 * `tpos` and a node cursor `pos`; when the walk runs to the end, `pos` holds the end marker,
 * for get_nulls_value. Written for kmem from the documented API. */
#ifndef _KMEM_LINUX_LIST_NULLS_H
#define _KMEM_LINUX_LIST_NULLS_H

#include <linux/compiler.h>
#include <linux/kernel.h>
#include <linux/list.h>

struct hlist_nulls_head {
	struct hlist_nulls_node *first;
};

struct hlist_nulls_node {
	struct hlist_nulls_node *next, **pprev;
};

/* The end marker that carries `value` (an integer, or a pointer, whose top bit is lost). */
#define NULLS_MARKER(value)	((((unsigned long)(value)) << 1) | 1UL)

/* An empty list that ends in `nulls`. */
#define INIT_HLIST_NULLS_HEAD(ptr, nulls)						\
	((ptr)->first = (struct hlist_nulls_node *)NULLS_MARKER(nulls))

/* Whether `ptr` (a head's first or a node's next) is an end marker rather than a node. */
static inline int is_a_nulls(const struct hlist_nulls_node *ptr)
{
	return ((unsigned long)ptr & 1UL) != 0;
}

/* The value an end marker carries; meaningful only when is_a_nulls(ptr). */
static inline unsigned long get_nulls_value(const struct hlist_nulls_node *ptr)
{
	return (unsigned long)ptr >> 1;
}

/* Not on any list: never added, or taken off with hlist_nulls_del_init_rcu. */
static inline int hlist_nulls_unhashed(const struct hlist_nulls_node *node)
{
	return node->pprev == NULL;
}

/* hlist_nulls_unhashed for a check that races with writers (a read that is not torn). */
static inline int hlist_nulls_unhashed_lockless(const struct hlist_nulls_node *node)
{
	return READ_ONCE(node->pprev) == NULL;
}

/* Reads first once and never follows it: also the test for lockless readers. */
static inline int hlist_nulls_empty(const struct hlist_nulls_head *head)
{
	return is_a_nulls(READ_ONCE(head->first));
}

/* At the front of `head`; the list keeps its end marker. */
static inline void hlist_nulls_add_head(struct hlist_nulls_node *node, struct hlist_nulls_head *head)
{
	struct hlist_nulls_node *first = head->first;

	node->next = first;
	node->pprev = &head->first;
	WRITE_ONCE(head->first, node);
	if (!is_a_nulls(first))
		first->pprev = &node->next;
}

/* Unlinks `node`: whatever pointed at it now points at its successor (or the end marker).
 * That pointer is stored whole: lockless readers may be reading it. */
static inline void __hlist_nulls_del(struct hlist_nulls_node *node)
{
	struct hlist_nulls_node *next = node->next;
	struct hlist_nulls_node **pprev = node->pprev;

	WRITE_ONCE(*pprev, next);
	if (!is_a_nulls(next))
		WRITE_ONCE(next->pprev, pprev);
}

/* Unlinks `node`; its next is left as it was, its pprev is LIST_POISON2 (so it is not
 * unhashed). */
static inline void hlist_nulls_del(struct hlist_nulls_node *node)
{
	__hlist_nulls_del(node);
	WRITE_ONCE(node->pprev, (struct hlist_nulls_node **)LIST_POISON2);
}

#define hlist_nulls_entry(ptr, type, member) container_of(ptr, type, member)

/* The entry of `ptr`, or NULL if `ptr` is an end marker; `ptr` is evaluated once. */
#define hlist_nulls_entry_safe(ptr, type, member) __extension__ ({			\
		__typeof__(ptr) __nulls_ptr = (ptr);					\
		!is_a_nulls(__nulls_ptr) ? hlist_nulls_entry(__nulls_ptr, type, member) : NULL; \
	})

/* Every entry of `head`: `tpos` the entry, `pos` its node; `pos` is the end marker after a
 * walk that runs to the end. */
#define hlist_nulls_for_each_entry(tpos, pos, head, member)				\
	for (pos = (head)->first;							\
	     !is_a_nulls(pos) &&							\
	     ((tpos = hlist_nulls_entry(pos, __typeof__(*(tpos)), member)), 1);	\
	     pos = (pos)->next)

/* From the node `pos` itself (nothing if it is an end marker). */
#define hlist_nulls_for_each_entry_from(tpos, pos, member)				\
	for (; !is_a_nulls(pos) &&							\
	     ((tpos = hlist_nulls_entry(pos, __typeof__(*(tpos)), member)), 1);	\
	     pos = (pos)->next)

#endif
