/* <linux/list_nulls.h> and <linux/rculist_nulls.h>, single-threaded, for exact answers over
 * kmalloc'd entries: the end markers (NULLS_MARKER, is_a_nulls, get_nulls_value,
 * INIT_HLIST_NULLS_HEAD); hlist_nulls_add_head and hlist_nulls_del with every node's next and
 * pprev checked after each change, the poisoned pprev after a delete, unhashed and empty; the
 * walks (plain, _from, _rcu, _safe) in order and ending on the list's own marker, whose value
 * is checked; hlist_nulls_entry/_entry_safe; the RCU forms: first/next accessors,
 * add_head_rcu, add_tail_rcu (order, and the new last node taking over the marker),
 * del_rcu (pprev poisoned, next intact: a reader standing on the node walks on to the marker),
 * del_init_rcu (unhashed, next intact, a no-op the second time), add_fake; and the race the
 * markers exist for, played out step by step: a reader standing on a node that a writer moves
 * to another list misses the key it looks for and ends on that list's marker, the value on
 * which rculist_nulls.rst's lookup starts over (that lookup, run afterwards, finds every key
 * without starting over). Every entry is freed (KMEM_KMEMLEAK=1 in the driver finds nothing
 * left). */
#include <linux/rculist_nulls.h>
#include <linux/slab.h>
#include "ktest.h"

struct obj {
	unsigned long key;
	struct hlist_nulls_node node;
};

static struct obj *obj_new(unsigned long key)
{
	struct obj *o = kzalloc(sizeof(*o), GFP_KERNEL);

	CHECK(o != NULL);
	if (o) {
		o->key = key;
		CHECK(hlist_nulls_unhashed(&o->node) && hlist_nulls_unhashed_lockless(&o->node));
	}
	return o;
}

/* The keys (one digit each) of `head` in walk order ("" if empty), and the value of the marker
 * the walk ended on (ULONG_MAX if it did not end on one, or went on for more than MAX_WALK
 * entries: a broken list). Walked with the plain iterator, or the RCU one. */
#define MAX_WALK 16
static char walked[MAX_WALK + 1];
static unsigned long walk(struct hlist_nulls_head *head, int rcu)
{
	struct hlist_nulls_node *pos;
	struct obj *o;
	int n = 0;

	walked[0] = '\0';
	if (rcu) {
		rcu_read_lock();
		hlist_nulls_for_each_entry_rcu(o, pos, head, node) {
			if (n == MAX_WALK)
				break;
			walked[n++] = (char)('0' + o->key % 10);
		}
		rcu_read_unlock();
	} else {
		hlist_nulls_for_each_entry(o, pos, head, node) {
			if (n == MAX_WALK)
				break;
			walked[n++] = (char)('0' + o->key % 10);
		}
	}
	walked[n] = '\0';
	return is_a_nulls(pos) ? get_nulls_value(pos) : ULONG_MAX;
}

static void markers(void)
{
	struct hlist_nulls_head h;
	struct obj local;
	unsigned long v;

	CHECK_EQ_UL(NULLS_MARKER(0), 1);
	CHECK_EQ_UL(NULLS_MARKER(5), 11);
	CHECK_EQ_UL(NULLS_MARKER(0x40000000UL), 0x80000001UL);
	for (v = 0; v < 100; v++) {
		struct hlist_nulls_node *m = (struct hlist_nulls_node *)NULLS_MARKER(v);

		CHECK(is_a_nulls(m));
		CHECK_EQ_UL(get_nulls_value(m), v);
	}
	CHECK_EQ_UL(get_nulls_value((struct hlist_nulls_node *)NULLS_MARKER(ULONG_MAX >> 1)), ULONG_MAX >> 1);
	/* A node's address is never a marker; nor is NULL. */
	CHECK(!is_a_nulls(&local.node));
	CHECK(!is_a_nulls(NULL));
	CHECK(!is_a_nulls((struct hlist_nulls_node *)(unsigned long)0x1000));

	INIT_HLIST_NULLS_HEAD(&h, 3);
	CHECK_EQ_UL(h.first, 7);
	CHECK(hlist_nulls_empty(&h));
	CHECK_EQ_UL(walk(&h, 0), 3);
	CHECK(strcmp(walked, "") == 0);
	CHECK_EQ_UL(walk(&h, 1), 3);
	/* hlist_nulls_entry is container_of; _entry_safe is NULL on a marker. */
	CHECK(hlist_nulls_entry(&local.node, struct obj, node) == &local);
	CHECK(hlist_nulls_entry_safe(&local.node, struct obj, node) == &local);
	CHECK(hlist_nulls_entry_safe(h.first, struct obj, node) == NULL);
}

/* hlist_nulls_entry_safe evaluates its pointer once. */
static int evaluations;
static struct hlist_nulls_node *counted(struct hlist_nulls_node *n)
{
	evaluations++;
	return n;
}

static void plain(void)
{
	struct hlist_nulls_head h;
	struct hlist_nulls_node *pos;
	struct obj *a = obj_new(1), *b = obj_new(2), *c = obj_new(3), *o;
	int n;

	INIT_HLIST_NULLS_HEAD(&h, 42);
	hlist_nulls_add_head(&a->node, &h);
	CHECK(!hlist_nulls_empty(&h));
	CHECK(!hlist_nulls_unhashed(&a->node) && !hlist_nulls_unhashed_lockless(&a->node));
	CHECK(a->node.pprev == &h.first && a->node.next == (struct hlist_nulls_node *)NULLS_MARKER(42));
	hlist_nulls_add_head(&b->node, &h);
	hlist_nulls_add_head(&c->node, &h);
	CHECK_EQ_UL(walk(&h, 0), 42);
	CHECK(strcmp(walked, "321") == 0);
	CHECK(c->node.pprev == &h.first && b->node.pprev == &c->node.next && a->node.pprev == &b->node.next);
	CHECK(c->node.next == &b->node && b->node.next == &a->node);

	CHECK(hlist_nulls_entry_safe(counted(&b->node), struct obj, node) == b && evaluations == 1);
	CHECK(hlist_nulls_entry_safe(counted(a->node.next), struct obj, node) == NULL && evaluations == 2);

	/* _from: from b itself to the marker; from a marker, nothing. */
	n = 0;
	pos = &b->node;
	hlist_nulls_for_each_entry_from(o, pos, node)
		n = n * 10 + (int)o->key;
	CHECK(n == 21);	/* b, then a */
	CHECK(is_a_nulls(pos) && get_nulls_value(pos) == 42);
	o = NULL;
	hlist_nulls_for_each_entry_from(o, pos, node)
		n = -1;
	CHECK(n == 21 && o == NULL);

	/* Delete the middle node: pprev poisoned, next untouched, not unhashed. */
	hlist_nulls_del(&b->node);
	CHECK(b->node.pprev == (struct hlist_nulls_node **)LIST_POISON2);
	CHECK(b->node.next == &a->node);
	CHECK(!hlist_nulls_unhashed(&b->node));
	CHECK(c->node.next == &a->node && a->node.pprev == &c->node.next);
	CHECK_EQ_UL(walk(&h, 0), 42);
	CHECK(strcmp(walked, "31") == 0);
	/* The last: its predecessor takes over the marker. */
	hlist_nulls_del(&a->node);
	CHECK(a->node.pprev == (struct hlist_nulls_node **)LIST_POISON2);
	CHECK(a->node.next == (struct hlist_nulls_node *)NULLS_MARKER(42));
	CHECK(c->node.next == (struct hlist_nulls_node *)NULLS_MARKER(42));
	/* The first and only: the head holds the marker again. */
	hlist_nulls_del(&c->node);
	CHECK(c->node.pprev == (struct hlist_nulls_node **)LIST_POISON2);
	CHECK_EQ_UL(h.first, NULLS_MARKER(42));
	CHECK(hlist_nulls_empty(&h));
	CHECK_EQ_UL(walk(&h, 0), 42);
	kfree(a);
	kfree(b);
	kfree(c);
}

static void rcu_forms(void)
{
	struct hlist_nulls_head h;
	struct hlist_nulls_node *pos;
	struct obj *o[6], *e;
	int i;

	for (i = 0; i < 6; i++)
		o[i] = obj_new(i);
	INIT_HLIST_NULLS_HEAD(&h, 9);

	/* add_tail_rcu on an empty list, then behind the last node: a queue, marker kept. */
	hlist_nulls_add_tail_rcu(&o[1]->node, &h);
	CHECK(o[1]->node.pprev == &h.first && o[1]->node.next == (struct hlist_nulls_node *)NULLS_MARKER(9));
	hlist_nulls_add_tail_rcu(&o[2]->node, &h);
	hlist_nulls_add_tail_rcu(&o[3]->node, &h);
	CHECK(o[2]->node.pprev == &o[1]->node.next && o[3]->node.pprev == &o[2]->node.next);
	CHECK(o[1]->node.next == &o[2]->node && o[2]->node.next == &o[3]->node);
	CHECK(o[3]->node.next == (struct hlist_nulls_node *)NULLS_MARKER(9));
	CHECK_EQ_UL(walk(&h, 1), 9);
	CHECK(strcmp(walked, "123") == 0);
	/* add_head_rcu in front of them. */
	hlist_nulls_add_head_rcu(&o[0]->node, &h);
	CHECK(o[0]->node.pprev == &h.first && o[0]->node.next == &o[1]->node);
	CHECK(o[1]->node.pprev == &o[0]->node.next);
	hlist_nulls_add_tail_rcu(&o[4]->node, &h);
	CHECK_EQ_UL(walk(&h, 1), 9);
	CHECK(strcmp(walked, "01234") == 0);
	CHECK_EQ_UL(walk(&h, 0), 9);
	CHECK(strcmp(walked, "01234") == 0);

	/* The accessors name the links themselves. */
	CHECK(&hlist_nulls_first_rcu(&h) == &h.first);
	CHECK(&hlist_nulls_next_rcu(&o[2]->node) == &o[2]->node.next);
	rcu_read_lock();
	CHECK(rcu_dereference(hlist_nulls_first_rcu(&h)) == &o[0]->node);
	CHECK(rcu_dereference(hlist_nulls_next_rcu(&o[3]->node)) == &o[4]->node);
	rcu_read_unlock();

	/* del_rcu: pprev poisoned, next intact; a reader standing on o[2] walks on to the end. */
	hlist_nulls_del_rcu(&o[2]->node);
	CHECK(o[2]->node.pprev == (struct hlist_nulls_node **)LIST_POISON2);
	CHECK(o[2]->node.next == &o[3]->node);
	CHECK(!hlist_nulls_unhashed(&o[2]->node) && !hlist_nulls_unhashed_lockless(&o[2]->node));
	CHECK(o[1]->node.next == &o[3]->node && o[3]->node.pprev == &o[1]->node.next);
	CHECK_EQ_UL(walk(&h, 1), 9);
	CHECK(strcmp(walked, "0134") == 0);
	pos = &o[2]->node;
	i = 0;
	rcu_read_lock();
	hlist_nulls_for_each_entry_from(e, pos, node)
		i = i * 10 + (int)e->key;
	rcu_read_unlock();
	CHECK(i == 234 && is_a_nulls(pos) && get_nulls_value(pos) == 9);

	/* del_init_rcu: unhashed, next intact; again, a no-op. */
	hlist_nulls_del_init_rcu(&o[0]->node);
	CHECK(hlist_nulls_unhashed(&o[0]->node) && hlist_nulls_unhashed_lockless(&o[0]->node));
	CHECK(o[0]->node.next == &o[1]->node);
	CHECK(h.first == &o[1]->node && o[1]->node.pprev == &h.first);
	hlist_nulls_del_init_rcu(&o[0]->node);
	CHECK(h.first == &o[1]->node && o[1]->node.pprev == &h.first);
	CHECK(hlist_nulls_unhashed(&o[0]->node) && o[0]->node.next == &o[1]->node);
	/* The last one by del_init_rcu: its predecessor takes the marker, its next keeps it. */
	hlist_nulls_del_init_rcu(&o[4]->node);
	CHECK(hlist_nulls_unhashed(&o[4]->node));
	CHECK(o[4]->node.next == (struct hlist_nulls_node *)NULLS_MARKER(9));
	CHECK(o[3]->node.next == (struct hlist_nulls_node *)NULLS_MARKER(9));
	CHECK_EQ_UL(walk(&h, 1), 9);
	CHECK(strcmp(walked, "13") == 0);

	/* add_fake: looks hashed, is on no list, and del_rcu on it touches nothing else. */
	hlist_nulls_add_fake(&o[5]->node);
	CHECK(o[5]->node.pprev == &o[5]->node.next);
	CHECK(is_a_nulls(o[5]->node.next) && get_nulls_value(o[5]->node.next) == 0);
	CHECK(!hlist_nulls_unhashed(&o[5]->node));
	hlist_nulls_del_rcu(&o[5]->node);
	CHECK(o[5]->node.pprev == (struct hlist_nulls_node **)LIST_POISON2);
	CHECK(is_a_nulls(o[5]->node.next) && get_nulls_value(o[5]->node.next) == 0);
	hlist_nulls_add_fake(&o[5]->node);
	hlist_nulls_del_init_rcu(&o[5]->node);
	CHECK(hlist_nulls_unhashed(&o[5]->node));
	CHECK_EQ_UL(walk(&h, 1), 9);
	CHECK(strcmp(walked, "13") == 0);

	/* _safe: `pos` is already on the next node in the body, which frees the entry. */
	hlist_nulls_add_head_rcu(&o[2]->node, &h);
	i = 0;
	hlist_nulls_for_each_entry_safe(e, pos, &h, node) {
		CHECK(pos == e->node.next);
		i = i * 10 + (int)e->key;
		hlist_nulls_del_rcu(&e->node);
		kfree(e);
	}
	CHECK(i == 213);
	CHECK(is_a_nulls(pos) && get_nulls_value(pos) == 9);
	CHECK(hlist_nulls_empty(&h) && h.first == (struct hlist_nulls_node *)NULLS_MARKER(9));
	kfree(o[0]);
	kfree(o[4]);
	kfree(o[5]);
}

/* ---- the race, step by step ---- */

#define NCHAINS 2
static struct hlist_nulls_head table[NCHAINS];

/* rculist_nulls.rst's lookup, without references (nothing is freed here): the number of
 * times it started over is counted in *restarts. */
static struct obj *lookup(unsigned long key, int *restarts)
{
	unsigned long slot = key % NCHAINS;
	struct hlist_nulls_node *pos;
	struct obj *o;

	rcu_read_lock();
begin:
	hlist_nulls_for_each_entry_rcu(o, pos, &table[slot], node)
		if (o->key == key)
			goto out;
	if (get_nulls_value(pos) != slot) {
		CHECK(++*restarts < 100);	/* else the markers are broken: give up */
		if (*restarts < 100)
			goto begin;
	}
	o = NULL;
out:
	rcu_read_unlock();
	return o;
}

static void moved(void)
{
	struct hlist_nulls_node *pos;
	struct obj *p = obj_new(0), *x = obj_new(2), *y = obj_new(1), *o = NULL, *found;
	int restarts = 0;
	unsigned long i;

	for (i = 0; i < NCHAINS; i++)
		INIT_HLIST_NULLS_HEAD(&table[i], i);
	/* Chain 0: x, p (key 0, at the end); chain 1: y. */
	hlist_nulls_add_head_rcu(&p->node, &table[0]);
	hlist_nulls_add_head_rcu(&x->node, &table[0]);
	hlist_nulls_add_head_rcu(&y->node, &table[1]);

	/* A reader looking for key 0 stands on x... */
	rcu_read_lock();
	hlist_nulls_for_each_entry_rcu(o, pos, &table[0], node)
		if (o == x)
			break;
	CHECK(o == x && pos == &x->node);
	/* ...when a writer moves x to chain 1 under a new key (as a SLAB_TYPESAFE_BY_RCU cache
	 * may hand it out again at once)... */
	hlist_nulls_del_rcu(&x->node);
	x->key = 3;
	hlist_nulls_add_head_rcu(&x->node, &table[1]);
	/* ...so its walk goes on in chain 1, misses p and ends on chain 1's marker. */
	found = NULL;
	i = 0;
	hlist_nulls_for_each_entry_from(o, pos, node) {
		i = i * 10 + o->key;
		if (o->key == 0)
			found = o;
	}
	rcu_read_unlock();
	CHECK_EQ_UL(i, 31);
	CHECK(found == NULL);
	CHECK(is_a_nulls(pos) && get_nulls_value(pos) == 1);

	/* The documented lookup notices the foreign marker and starts over: here only when the
	 * walk really strayed (none did), and p is found. */
	CHECK(lookup(0, &restarts) == p && restarts == 0);
	CHECK(lookup(3, &restarts) == x && lookup(1, &restarts) == y && restarts == 0);
	CHECK(lookup(2, &restarts) == NULL && lookup(5, &restarts) == NULL && restarts == 0);

	/* Each chain ends on its own marker. */
	CHECK_EQ_UL(walk(&table[0], 1), 0);
	CHECK(strcmp(walked, "0") == 0);
	CHECK_EQ_UL(walk(&table[1], 1), 1);
	CHECK(strcmp(walked, "31") == 0);
	for (i = 0; i < NCHAINS; i++) {
		hlist_nulls_for_each_entry_safe(o, pos, &table[i], node) {
			hlist_nulls_del_init_rcu(&o->node);
			kfree(o);
		}
		CHECK(hlist_nulls_empty(&table[i]));
	}
}

int main(void)
{
	markers();
	plain();
	rcu_forms();
	moved();
	return ktest_result("list_nulls");
}
