/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/hashtable.h>, the kernel's fixed-size hash table: an array of 2^bits hlist
 * buckets (DEFINE_HASHTABLE, or DECLARE_HASHTABLE and hash_init), an object embeds a struct
 * hlist_node and goes to the bucket hash_min(key, HASH_BITS(table)) picks: hash_32 for a key
 * of at most 4 bytes, hash_long for a wider one. The table must be an array, not a pointer
 * (HASH_SIZE is ARRAY_SIZE). hash_for_each visits every object, bucket by bucket; a `break` in
 * its body ends the whole walk. hash_for_each_possible visits one bucket: the objects whose
 * key hashes there, which the caller still compares. The _safe forms allow hash_del of the
 * current object. The _rcu forms (hash_add_rcu, hash_del_rcu, hash_for_each_rcu,
 * hash_for_each_possible_rcu) are <linux/rculist.h>'s hlist forms on the buckets: readers walk
 * under rcu_read_lock while one writer at a time adds and deletes, and a deleted object is freed
 * after a grace period. Written for kmem from the documented API. */
#ifndef _KMEM_LINUX_HASHTABLE_H
#define _KMEM_LINUX_HASHTABLE_H

#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/rculist.h>
#include <linux/hash.h>
#include <linux/log2.h>

/* Every bucket empty (NULL): ISO C zero-fills the elements the initializer leaves out. */
#define DEFINE_HASHTABLE(name, bits)						\
	struct hlist_head name[1 << (bits)] = { HLIST_HEAD_INIT }

#define DECLARE_HASHTABLE(name, bits) struct hlist_head name[1 << (bits)]

#define HASH_SIZE(name) (ARRAY_SIZE(name))
#define HASH_BITS(name) ilog2(HASH_SIZE(name))

/* A bucket index of `bits` bits for `val`: hash_32 when it fits in 32 bits, else hash_long. */
#define hash_min(val, bits)							\
	(sizeof(val) <= 4 ? hash_32(val, bits) : hash_long(val, bits))

static inline void __hash_init(struct hlist_head *table, unsigned int size)
{
	unsigned int i;

	for (i = 0; i < size; i++)
		INIT_HLIST_HEAD(&table[i]);
}

#define hash_init(table) __hash_init(table, HASH_SIZE(table))

#define hash_add(table, node, key)						\
	hlist_add_head(node, &(table)[hash_min(key, HASH_BITS(table))])

/* hash_add for a table RCU readers walk: the object is published whole. */
#define hash_add_rcu(table, node, key)						\
	hlist_add_head_rcu(node, &(table)[hash_min(key, HASH_BITS(table))])

/* The object is in a table. */
static inline bool hash_hashed(struct hlist_node *node)
{
	return !hlist_unhashed(node);
}

static inline bool __hash_empty(struct hlist_head *table, unsigned int size)
{
	unsigned int i;

	for (i = 0; i < size; i++)
		if (!hlist_empty(&table[i]))
			return false;
	return true;
}

#define hash_empty(table) __hash_empty(table, HASH_SIZE(table))

/* Takes the object out of its table and leaves its node unhashed (hash_hashed is false). */
static inline void hash_del(struct hlist_node *node)
{
	hlist_del_init(node);
}

/* Takes the object out of a table RCU readers walk: unhashed (hash_hashed is false), and its
 * next still leads readers on it to the rest of the bucket. Free it after a grace period. */
static inline void hash_del_rcu(struct hlist_node *node)
{
	hlist_del_init_rcu(node);
}

/* Every object: `bkt` (an integer) is the bucket, `obj` the object; each bucket's walk ends with
 * `obj` NULL, which is what moves the outer loop to the next bucket. */
#define hash_for_each(name, bkt, obj, member)					\
	for ((bkt) = 0, (obj) = NULL;						\
	     (obj) == NULL && (size_t)(bkt) < HASH_SIZE(name);			\
	     (bkt)++)								\
		hlist_for_each_entry(obj, &(name)[bkt], member)

/* hash_for_each under rcu_read_lock. */
#define hash_for_each_rcu(name, bkt, obj, member)				\
	for ((bkt) = 0, (obj) = NULL;						\
	     (obj) == NULL && (size_t)(bkt) < HASH_SIZE(name);			\
	     (bkt)++)								\
		hlist_for_each_entry_rcu(obj, &(name)[bkt], member)

/* hash_for_each where the body may hash_del `obj`; `tmp` is a struct hlist_node *. */
#define hash_for_each_safe(name, bkt, tmp, obj, member)			\
	for ((bkt) = 0, (obj) = NULL;						\
	     (obj) == NULL && (size_t)(bkt) < HASH_SIZE(name);			\
	     (bkt)++)								\
		hlist_for_each_entry_safe(obj, tmp, &(name)[bkt], member)

/* The objects in `key`'s bucket (other keys may share it). */
#define hash_for_each_possible(name, obj, member, key)				\
	hlist_for_each_entry(obj, &(name)[hash_min(key, HASH_BITS(name))], member)

#define hash_for_each_possible_safe(name, obj, tmp, member, key)		\
	hlist_for_each_entry_safe(obj, tmp, &(name)[hash_min(key, HASH_BITS(name))], member)

/* hash_for_each_possible under rcu_read_lock; the optional fifth argument, the kernel's lockdep
 * condition, is not evaluated. */
#define hash_for_each_possible_rcu(name, obj, member, key, ...)		\
	hlist_for_each_entry_rcu(obj, &(name)[hash_min(key, HASH_BITS(name))], member)

#define hash_for_each_possible_rcu_notrace(name, obj, member, key)		\
	hlist_for_each_entry_rcu_notrace(obj, &(name)[hash_min(key, HASH_BITS(name))], member)

#endif
