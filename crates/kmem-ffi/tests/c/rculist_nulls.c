/* Documentation/RCU/rculist_nulls.rst over a kmem SLAB_TYPESAFE_BY_RCU cache: a hash table of
 * NCHAINS chains, chain i ending on the nulls value i. Each chain holds two objects whose keys
 * never move, at its end (inserted first; every later insertion is at the head), and the
 * table NMOVING more. A writer thread moves those: it unlinks one (hlist_nulls_del_rcu or
 * hlist_nulls_del_init_rcu), drops the table's reference, which frees it with kmem_cache_free
 * at once unless a reader holds one (no grace period: the type-safe cache may hand the memory
 * out again at once, and does), allocates an object, gives it a new key whose chain is another
 * one, sets its reference count to 1 with a release store and publishes it with
 * hlist_nulls_add_head_rcu. Reader threads look keys up with the documented algorithm: under
 * rcu_read_lock, walk the key's chain; on a match take a reference (an increment unless zero,
 * with acquire order) and check the key again (else drop it and start over); start over when
 * the walk ends on a nulls value other than the chain's index. Checked: a lookup never returns
 * an object with another key, and the key stays while the reference is held; a key that never
 * moves is always found (a reader diverted into another chain that did not start over would
 * miss it); every reference is dropped and the cache is empty at the end. The restarts of each
 * kind are printed; the race is timing-dependent, so their number is not checked (a reader
 * pauses on each node to widen it: without the nulls check, this test misses never-moved keys
 * hundreds of times a run). The writer makes ROUNDS moves (scaled by KTEST_SCALE) or as many
 * as BUDGET_MS allows, whichever is fewer, so that memcheck's serialised threads stay brief. */
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <linux/rculist_nulls.h>
#include <linux/slab.h>
#include "ktest.h"

#define NCHAINS 4
#define NPERM (2 * NCHAINS)	/* keys 0 .. NPERM - 1, never moved */
#define NMOVING 24
#define NREADERS 2
#define ROUNDS 100000		/* the writer's moves, scaled by KTEST_SCALE (ktest_rounds) */
#define BUDGET_MS 1000		/* or fewer, if they take longer than this (valgrind) */
#define WIDEN 4000		/* the pause on each node of a walk (widen) */
#define MAX_RESTARTS 10000	/* one lookup starting over this often: the lists are broken */
#define MAX_WALK (100 * (NPERM + NMOVING))	/* one walk visiting more nodes: likewise */

struct obj {
	unsigned long key;
	int refcnt;
	struct hlist_nulls_node node;
};

static struct kmem_cache *cache;
static struct hlist_nulls_head table[NCHAINS];
static unsigned long next_key = NPERM;	/* the writer's; readers read it relaxed */
static int readers_ready, done;

struct stats {
	unsigned long lookups, found, perm_found;
	unsigned long nulls_restarts, free_restarts, key_restarts;
	unsigned long wrong_key, perm_missed, stuck;
};

/* try_get_ref: an increment unless the count is zero (a free object, or one being freed). */
static int try_get_ref(struct obj *o)
{
	int old = __atomic_load_n(&o->refcnt, __ATOMIC_RELAXED);

	do {
		if (old == 0)
			return 0;
	} while (!__atomic_compare_exchange_n(&o->refcnt, &old, old + 1, 1, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return 1;
}

/* The last reference frees the object: the table's (dropped by the writer after unlinking it)
 * or a reader's. */
static void put_ref(struct obj *o)
{
	if (__atomic_sub_fetch(&o->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		kmem_cache_free(cache, o);
}

/* A pause on each node of a walk, between reading the node and reading its next: it widens
 * the window in which the writer moves the node under the reader (what the nulls values are
 * there to catch), which a walk of a few loads would otherwise rarely be caught in. */
static void widen(void)
{
	int i;

	for (i = 0; i < WIDEN; i++)
		barrier();
}

/* The documented lookup: the object of `key` with a reference held, or NULL. */
static struct obj *lookup(unsigned long key, struct stats *st)
{
	unsigned long slot = key % NCHAINS, restarts = 0, steps;
	struct hlist_nulls_node *pos;
	struct obj *o;

	rcu_read_lock();
begin:
	if (restarts++ == MAX_RESTARTS) {
		st->stuck++;
		o = NULL;
		goto out;
	}
	steps = 0;
	hlist_nulls_for_each_entry_rcu(o, pos, &table[slot], node) {
		if (steps++ == MAX_WALK) {	/* a cycle: the lists are broken */
			st->stuck++;
			o = NULL;
			goto out;
		}
		widen();
		if (READ_ONCE(o->key) != key)
			continue;
		if (!try_get_ref(o)) {
			st->free_restarts++;
			goto begin;
		}
		if (READ_ONCE(o->key) != key) {
			put_ref(o);
			st->key_restarts++;
			goto begin;
		}
		goto out;
	}
	if (get_nulls_value(pos) != slot) {
		st->nulls_restarts++;
		goto begin;
	}
	o = NULL;
out:
	rcu_read_unlock();
	return o;
}

static unsigned long xorshift(unsigned long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *reader(void *arg)
{
	struct stats *st = arg;
	unsigned long seed = (unsigned long)arg | 1, key, i;
	struct obj *o;

	__atomic_add_fetch(&readers_ready, 1, __ATOMIC_RELEASE);
	for (i = 0; !__atomic_load_n(&done, __ATOMIC_ACQUIRE); i++) {
		if (i % 2) {
			key = xorshift(&seed) % NPERM;
		} else {
			/* A recent key: the object may be in the table, moved on, or being moved. */
			unsigned long newest = __atomic_load_n(&next_key, __ATOMIC_RELAXED) - 1;
			unsigned long back = xorshift(&seed) % (2 * NMOVING);

			key = newest >= NPERM + back ? newest - back : NPERM;
		}
		st->lookups++;
		o = lookup(key, st);
		if (!o) {
			st->perm_missed += key < NPERM;
			continue;
		}
		st->found++;
		st->perm_found += key < NPERM;
		/* Held, it is not freed, so neither reused: its key stays. */
		if (READ_ONCE(o->key) != key || __atomic_load_n(&o->refcnt, __ATOMIC_RELAXED) < 1)
			st->wrong_key++;
		if (i % 64 == 0)
			sched_yield();	/* hold it a while, so that the writer's put is not the last */
		if (READ_ONCE(o->key) != key)
			st->wrong_key++;
		put_ref(o);
		if (st->stuck)
			break;
	}
	return NULL;
}

static struct obj *insert(unsigned long key)
{
	struct obj *o = kmem_cache_alloc(cache, GFP_KERNEL);

	if (!o)
		return NULL;
	WRITE_ONCE(o->key, key);
	/* The key before the count: a reader whose reference succeeds sees the new key. */
	__atomic_store_n(&o->refcnt, 1, __ATOMIC_RELEASE);
	hlist_nulls_add_head_rcu(&o->node, &table[key % NCHAINS]);
	return o;
}

struct writer_result {
	unsigned long moves, reused;
};

static struct obj *moving[NMOVING];

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void *writer(void *arg)
{
	struct writer_result *res = arg;
	unsigned long seed = 0x9E3779B97F4A7C15UL, key, old_slot;
	int i, rounds = ktest_rounds(ROUNDS);
	long start = now_ms();
	struct obj *o, *n;

	for (i = 0; i < rounds; i++) {
		if (i % 256 == 0 && now_ms() - start > BUDGET_MS)
			break;
		unsigned int idx = xorshift(&seed) % NMOVING;

		o = moving[idx];
		old_slot = o->key % NCHAINS;
		if (i % 2)
			hlist_nulls_del_rcu(&o->node);
		else
			hlist_nulls_del_init_rcu(&o->node);
		put_ref(o);	/* no grace period: freed now unless a reader holds it */
		key = next_key;
		while (key % NCHAINS == old_slot)
			key++;
		__atomic_store_n(&next_key, key + 1, __ATOMIC_RELAXED);
		n = insert(key);
		if (!n)
			break;
		res->reused += n == o;
		moving[idx] = n;
		res->moves++;
	}
	return NULL;
}

int main(void)
{
	struct stats st[NREADERS];
	struct writer_result wr = { 0, 0 };
	struct stats sum = { 0 };
	struct hlist_nulls_node *pos;
	pthread_t readers[NREADERS], w;
	unsigned long i, left = 0, held = 0;
	struct obj *o;

	cache = kmem_cache_create("nulls_test", sizeof(struct obj), 0, SLAB_TYPESAFE_BY_RCU, NULL);
	CHECK(cache != NULL);
	if (!cache)
		return ktest_result("rculist_nulls");
	for (i = 0; i < NCHAINS; i++)
		INIT_HLIST_NULLS_HEAD(&table[i], i);
	for (i = 0; i < NPERM; i++)
		CHECK(insert(i) != NULL);
	for (i = 0; i < NMOVING; i++) {
		moving[i] = insert(next_key++);
		CHECK(moving[i] != NULL);
	}

	memset(st, 0, sizeof(st));
	for (i = 0; i < NREADERS; i++)
		CHECK(pthread_create(&readers[i], NULL, reader, &st[i]) == 0);
	while (__atomic_load_n(&readers_ready, __ATOMIC_ACQUIRE) < NREADERS)
		;
	CHECK(pthread_create(&w, NULL, writer, &wr) == 0);
	CHECK(pthread_join(w, NULL) == 0);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (i = 0; i < NREADERS; i++) {
		CHECK(pthread_join(readers[i], NULL) == 0);
		sum.lookups += st[i].lookups;
		sum.found += st[i].found;
		sum.perm_found += st[i].perm_found;
		sum.nulls_restarts += st[i].nulls_restarts;
		sum.free_restarts += st[i].free_restarts;
		sum.key_restarts += st[i].key_restarts;
		sum.wrong_key += st[i].wrong_key;
		sum.perm_missed += st[i].perm_missed;
		sum.stuck += st[i].stuck;
	}
	printf("rculist_nulls: %lu moves (%lu got the freed object back), %lu lookups, %lu found "
	       "(%lu of never-moved keys); restarts: %lu on a foreign nulls value, %lu on a free "
	       "object, %lu on a changed key\n",
	       wr.moves, wr.reused, sum.lookups, sum.found, sum.perm_found, sum.nulls_restarts,
	       sum.free_restarts, sum.key_restarts);
	CHECK(wr.moves >= 256 && wr.moves <= (unsigned long)ktest_rounds(ROUNDS));
	CHECK(sum.lookups > 0 && sum.perm_found > 0);
	CHECK_EQ_UL(sum.wrong_key, 0);
	CHECK_EQ_UL(sum.perm_missed, 0);
	CHECK_EQ_UL(sum.stuck, 0);

	/* Every chain ends on its own value and holds only the table's references. */
	for (i = 0; i < NCHAINS; i++) {
		hlist_nulls_for_each_entry_safe(o, pos, &table[i], node) {
			if (left == NPERM + NMOVING + 1)	/* a cycle: the lists are broken */
				break;
			CHECK_EQ_UL(o->key % NCHAINS, i);
			held += o->refcnt != 1;
			hlist_nulls_del_rcu(&o->node);
			put_ref(o);
			left++;
		}
		CHECK(is_a_nulls(pos) && get_nulls_value(pos) == i);
		CHECK(hlist_nulls_empty(&table[i]));
	}
	CHECK_EQ_UL(left, NPERM + NMOVING);
	CHECK_EQ_UL(held, 0);
	CHECK(kmem_cache_destroy(cache) == 0);
	return ktest_result("rculist_nulls");
}
