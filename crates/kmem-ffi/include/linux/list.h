/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/list.h>, the kernel's circular doubly linked list as driver code uses it
 * (struct list_head is in <linux/types.h>). A list is a head whose next and prev point to
 * itself when empty; entries embed a struct list_head and are found again with list_entry
 * (container_of). list_del leaves the entry's pointers at LIST_POISON1/LIST_POISON2 (0x100 and
 * 0x122, in the unmapped first page: a use after list_del faults), as the kernel does without
 * CONFIG_ILLEGAL_POINTER_VALUE. The _safe iterators allow deleting the current entry. Written
 * for kmem from the documented API; hlist and the RCU forms are not provided. */
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

/* Joins `prev` and `next`, dropping what was between them. */
static inline void __list_del(struct list_head *prev, struct list_head *next)
{
	next->prev = prev;
	prev->next = next;
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

static inline int list_empty(const struct list_head *head)
{
	return head->next == head;
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
#define list_first_entry_or_null(ptr, type, member)					\
	(list_empty(ptr) ? NULL : list_first_entry(ptr, type, member))
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

#endif
