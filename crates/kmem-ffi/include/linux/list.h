/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/list.h>, the kernel's circular doubly linked list as driver code uses it
 * (struct list_head is in <linux/types.h>). A list is a head whose next and prev point to
 * itself when empty; entries embed a struct list_head and are found again with list_entry
 * (container_of). list_del leaves the entry's pointers at LIST_POISON1/LIST_POISON2 (0x100 and
 * 0x122, in the unmapped first page: a use after list_del faults), as the kernel does without
 * CONFIG_ILLEGAL_POINTER_VALUE. The _safe iterators allow deleting the current entry.
 *
 * The hlist (struct hlist_head and hlist_node, also in <linux/types.h>) is the hash-bucket
 * list <linux/hashtable.h> builds on: a NULL-terminated list whose head is one pointer, so a
 * table of buckets is half the size. A node's pprev points at the pointer that points at the
 * node, so a node is unlinked without knowing its head; an unhashed node has pprev NULL.
 * hlist_del poisons next/pprev with LIST_POISON1/LIST_POISON2 as list_del does. Written for
 * kmem from the documented API; the RCU forms (list_*_rcu, hlist_*_rcu) are in
 * <linux/rculist.h>, as in the kernel; hlist_nulls in <linux/list_nulls.h>. */
#ifndef _KMEM_LINUX_LIST_H
#define _KMEM_LINUX_LIST_H

#include <stddef.h>
#include <linux/types.h>
#include <linux/kernel.h>

#define LIST_POISON1 ((void *)0x100)
#define LIST_POISON2 ((void *)0x122)

#define LIST_HEAD_INIT(name) { &(name), &(name) }
#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)

static inline void INIT_LIST_HEAD(struct list_head *list)
{
	list->next = list;
	list->prev = list;
}

/* Links `entry` between the two adjacent entries `prev` and `next`. */
static inline void __list_add(struct list_head *entry, struct list_head *prev, struct list_head *next)
{
	next->prev = entry;
	entry->next = next;
	entry->prev = prev;
	prev->next = entry;
}

/* After `head`: a stack. */
static inline void list_add(struct list_head *entry, struct list_head *head)
{
	__list_add(entry, head, head->next);
}

/* Before `head`, at the end: a queue. */
static inline void list_add_tail(struct list_head *entry, struct list_head *head)
{
	__list_add(entry, head->prev, head);
}

/* Joins `prev` and `next`, dropping what was between them. prev->next is stored whole: RCU
 * readers (<linux/rculist.h>) may be reading it. */
static inline void __list_del(struct list_head *prev, struct list_head *next)
{
	next->prev = prev;
	WRITE_ONCE(prev->next, next);
}

static inline void __list_del_entry(struct list_head *entry)
{
	__list_del(entry->prev, entry->next);
}

static inline void list_del(struct list_head *entry)
{
	__list_del_entry(entry);
	entry->next = (struct list_head *)LIST_POISON1;
	entry->prev = (struct list_head *)LIST_POISON2;
}

static inline void list_del_init(struct list_head *entry)
{
	__list_del_entry(entry);
	INIT_LIST_HEAD(entry);
}

/* `repl` takes `old`'s place; `old` is left pointing at its former neighbours. */
static inline void list_replace(struct list_head *old, struct list_head *repl)
{
	repl->next = old->next;
	repl->next->prev = repl;
	repl->prev = old->prev;
	repl->prev->next = repl;
}

static inline void list_replace_init(struct list_head *old, struct list_head *repl)
{
	list_replace(old, repl);
	INIT_LIST_HEAD(old);
}

static inline void list_move(struct list_head *entry, struct list_head *head)
{
	__list_del_entry(entry);
	list_add(entry, head);
}

static inline void list_move_tail(struct list_head *entry, struct list_head *head)
{
	__list_del_entry(entry);
	list_add_tail(entry, head);
}

static inline int list_is_first(const struct list_head *entry, const struct list_head *head)
{
	return entry->prev == head;
}

static inline int list_is_last(const struct list_head *entry, const struct list_head *head)
{
	return entry->next == head;
}

static inline int list_is_head(const struct list_head *entry, const struct list_head *head)
{
	return entry == head;
}

/* Reads next once, and never follows it: also the emptiness test for RCU readers. */
static inline int list_empty(const struct list_head *head)
{
	return READ_ONCE(head->next) == head;
}

static inline int list_is_singular(const struct list_head *head)
{
	return !list_empty(head) && head->next == head->prev;
}

/* Inserts the entries of the non-empty `list` between `prev` and `next`. */
static inline void __list_splice(const struct list_head *list, struct list_head *prev, struct list_head *next)
{
	struct list_head *first = list->next, *last = list->prev;

	first->prev = prev;
	prev->next = first;
	last->next = next;
	next->prev = last;
}

/* `list`'s entries go to the front of `head`; `list` itself is left stale (use _init). */
static inline void list_splice(const struct list_head *list, struct list_head *head)
{
	if (!list_empty(list))
		__list_splice(list, head, head->next);
}

static inline void list_splice_tail(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list))
		__list_splice(list, head->prev, head);
}

static inline void list_splice_init(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list)) {
		__list_splice(list, head, head->next);
		INIT_LIST_HEAD(list);
	}
}

static inline void list_splice_tail_init(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list)) {
		__list_splice(list, head->prev, head);
		INIT_LIST_HEAD(list);
	}
}

static inline size_t list_count_nodes(const struct list_head *head)
{
	const struct list_head *pos;
	size_t count = 0;

	for (pos = head->next; pos != head; pos = pos->next)
		count++;
	return count;
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(ptr, type, member) list_entry((ptr)->next, type, member)
#define list_last_entry(ptr, type, member) list_entry((ptr)->prev, type, member)
/* ptr is evaluated once, as in the kernel. */
#define list_first_entry_or_null(ptr, type, member) __extension__ ({			\
		struct list_head *__kmem_head = (ptr);					\
		list_empty(__kmem_head) ? NULL : list_first_entry(__kmem_head, type, member); \
	})
#define list_next_entry(pos, member) list_entry((pos)->member.next, __typeof__(*(pos)), member)
#define list_prev_entry(pos, member) list_entry((pos)->member.prev, __typeof__(*(pos)), member)
#define list_entry_is_head(pos, head, member) (&(pos)->member == (head))

#define list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)
#define list_for_each_prev(pos, head) for (pos = (head)->prev; pos != (head); pos = pos->prev)
#define list_for_each_safe(pos, n, head)						\
	for (pos = (head)->next, n = pos->next; pos != (head); pos = n, n = pos->next)

#define list_for_each_entry(pos, head, member)						\
	for (pos = list_first_entry(head, __typeof__(*pos), member);			\
	     !list_entry_is_head(pos, head, member);					\
	     pos = list_next_entry(pos, member))

#define list_for_each_entry_reverse(pos, head, member)					\
	for (pos = list_last_entry(head, __typeof__(*pos), member);			\
	     !list_entry_is_head(pos, head, member);					\
	     pos = list_prev_entry(pos, member))

#define list_for_each_entry_safe(pos, n, head, member)					\
	for (pos = list_first_entry(head, __typeof__(*pos), member),			\
	     n = list_next_entry(pos, member);						\
	     !list_entry_is_head(pos, head, member);					\
	     pos = n, n = list_next_entry(n, member))


/* ---- hlist: the singly headed list of hash buckets ---- */

#define HLIST_HEAD_INIT { .first = NULL }
#define HLIST_HEAD(name) struct hlist_head name = HLIST_HEAD_INIT
#define INIT_HLIST_HEAD(ptr) ((ptr)->first = NULL)

static inline void INIT_HLIST_NODE(struct hlist_node *node)
{
	node->next = NULL;
	node->pprev = NULL;
}

/* Not on any list: never added, or taken off with hlist_del_init. */
static inline int hlist_unhashed(const struct hlist_node *node)
{
	return node->pprev == NULL;
}

/* hlist_unhashed for a check that races with writers (a read that is not torn). */
static inline int hlist_unhashed_lockless(const struct hlist_node *node)
{
	return READ_ONCE(node->pprev) == NULL;
}

static inline int hlist_empty(const struct hlist_head *head)
{
	return READ_ONCE(head->first) == NULL;
}

/* Unlinks `node`: whatever pointed at it now points at its successor. */
static inline void __hlist_del(struct hlist_node *node)
{
	struct hlist_node *next = node->next;
	struct hlist_node **pprev = node->pprev;

	WRITE_ONCE(*pprev, next);
	if (next)
		WRITE_ONCE(next->pprev, pprev);
}

static inline void hlist_del(struct hlist_node *node)
{
	__hlist_del(node);
	node->next = (struct hlist_node *)LIST_POISON1;
	node->pprev = (struct hlist_node **)LIST_POISON2;
}

/* Unlinks `node` if it is on a list and leaves it unhashed; a no-op on an unhashed node. */
static inline void hlist_del_init(struct hlist_node *node)
{
	if (!hlist_unhashed(node)) {
		__hlist_del(node);
		INIT_HLIST_NODE(node);
	}
}

/* At the front of `head`. */
static inline void hlist_add_head(struct hlist_node *node, struct hlist_head *head)
{
	struct hlist_node *first = head->first;

	WRITE_ONCE(node->next, first);
	if (first)
		WRITE_ONCE(first->pprev, &node->next);
	WRITE_ONCE(head->first, node);
	WRITE_ONCE(node->pprev, &head->first);
}

/* Just before `next`, which must be on a list. */
static inline void hlist_add_before(struct hlist_node *node, struct hlist_node *next)
{
	WRITE_ONCE(node->pprev, next->pprev);
	WRITE_ONCE(node->next, next);
	WRITE_ONCE(next->pprev, &node->next);
	WRITE_ONCE(*node->pprev, node);
}

/* Just after `prev`, which must be on a list. */
static inline void hlist_add_behind(struct hlist_node *node, struct hlist_node *prev)
{
	WRITE_ONCE(node->next, prev->next);
	WRITE_ONCE(prev->next, node);
	WRITE_ONCE(node->pprev, &prev->next);
	if (node->next)
		WRITE_ONCE(node->next->pprev, &node->next);
}

/* Makes `node` look hashed without being on a list (pprev at its own next): hlist_del then
 * leaves everything else alone. */
static inline void hlist_add_fake(struct hlist_node *node)
{
	node->pprev = &node->next;
}

static inline int hlist_fake(struct hlist_node *node)
{
	return node->pprev == &node->next;
}

/* `node` is the one node of `head` (false when `head` is empty, as `node` is then not its). */
static inline int hlist_is_singular_node(struct hlist_node *node, struct hlist_head *head)
{
	return node->next == NULL && node->pprev == &head->first;
}

/* `new_head` takes over `old`'s nodes (whatever `new_head` held is dropped); `old` is left
 * empty. */
static inline void hlist_move_list(struct hlist_head *old, struct hlist_head *new_head)
{
	new_head->first = old->first;
	if (new_head->first)
		new_head->first->pprev = &new_head->first;
	old->first = NULL;
}

/* Moves the nodes of the non-empty `from`, whose last node is `last`, to the front of `to`;
 * `from` is left empty. */
static inline void hlist_splice_init(struct hlist_head *from, struct hlist_node *last, struct hlist_head *to)
{
	if (to->first)
		to->first->pprev = &last->next;
	last->next = to->first;
	to->first = from->first;
	from->first->pprev = &to->first;
	from->first = NULL;
}

static inline size_t hlist_count_nodes(struct hlist_head *head)
{
	struct hlist_node *pos;
	size_t count = 0;

	for (pos = head->first; pos; pos = pos->next)
		count++;
	return count;
}

#define hlist_entry(ptr, type, member) container_of(ptr, type, member)
/* The entry of `ptr`, or NULL if `ptr` is NULL; `ptr` is evaluated once. */
#define hlist_entry_safe(ptr, type, member) __extension__ ({				\
		__typeof__(ptr) __hlist_ptr = (ptr);					\
		__hlist_ptr ? hlist_entry(__hlist_ptr, type, member) : NULL;		\
	})

#define hlist_for_each(pos, head) for (pos = (head)->first; pos; pos = pos->next)
#define hlist_for_each_safe(pos, n, head)						\
	for (pos = (head)->first; pos && ((n) = pos->next, 1); pos = (n))

/* The entry iterators leave `pos` NULL when they run to the end. */
#define hlist_for_each_entry(pos, head, member)						\
	for (pos = hlist_entry_safe((head)->first, __typeof__(*(pos)), member);		\
	     pos;									\
	     pos = hlist_entry_safe((pos)->member.next, __typeof__(*(pos)), member))

/* From the entry after `pos`. */
#define hlist_for_each_entry_continue(pos, member)					\
	for (pos = hlist_entry_safe((pos)->member.next, __typeof__(*(pos)), member);	\
	     pos;									\
	     pos = hlist_entry_safe((pos)->member.next, __typeof__(*(pos)), member))

/* From `pos` itself. */
#define hlist_for_each_entry_from(pos, member)						\
	for (; pos; pos = hlist_entry_safe((pos)->member.next, __typeof__(*(pos)), member))

/* `n` (a struct hlist_node *) holds the next node, so the body may delete `pos`. */
#define hlist_for_each_entry_safe(pos, n, head, member)					\
	for (pos = hlist_entry_safe((head)->first, __typeof__(*(pos)), member);		\
	     pos && ((n) = (pos)->member.next, 1);					\
	     pos = hlist_entry_safe(n, __typeof__(*(pos)), member))

#endif
