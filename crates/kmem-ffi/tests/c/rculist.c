/* <linux/rculist.h> and the _rcu forms of <linux/hashtable.h>, over kmalloc'd entries and the
 * machine's RCU. Single-threaded, for exact answers: list_add_rcu/list_add_tail_rcu order,
 * list_for_each_entry_rcu (with and without the lockdep argument, which is never evaluated),
 * the _continue and _from forms, list_first_or_null_rcu/list_next_or_null_rcu,
 * list_next_rcu/list_tail_rcu, list_del_rcu poisoning prev only (a reader standing on the
 * deleted entry still walks on), list_replace_rcu, list_splice_init_rcu and
 * list_splice_tail_init_rcu (the sync function called once, after the source is emptied and
 * before the target changes); the hlist forms likewise, with every node's pprev checked after
 * each change; hash_add_rcu, hash_for_each_rcu, hash_for_each_possible_rcu (visiting its
 * bucket only) and hash_del_rcu. Then one writer and one reader thread: the writer adds and
 * deletes entries of a list and an hlist (freeing each after synchronize_rcu, or with
 * kfree_rcu) while the reader walks both under rcu_read_lock and checks every entry it visits
 * is live. Every entry is freed (KMEM_KMEMLEAK=1 in the driver finds nothing left). */
#include <pthread.h>
#include <linux/rculist.h>
#include <linux/hashtable.h>
#include <linux/slab.h>
#include "ktest.h"

#define LIVE 0x600DF00Du
#define DEAD 0xDEADBEEFu

struct item {
	int value;
	unsigned int magic;
	struct list_head node;
	struct hlist_node hnode;
	struct rcu_head rcu;
};

static LIST_HEAD(head);
static HLIST_HEAD(bucket);

static struct item *item_new(int value)
{
	struct item *it = kmalloc(sizeof(*it), GFP_KERNEL);

	if (it) {
		it->value = value;
		it->magic = LIVE;
		INIT_LIST_HEAD(&it->node);
		INIT_HLIST_NODE(&it->hnode);
	}
	return it;
}

static int evaluations;

/* A lockdep condition with a side effect: it must not run (nor is it referenced, so unused). */
static __maybe_unused int cond(void)
{
	evaluations++;
	return 1;
}

/* A walk longer than this went round a broken list: the helpers give up (-1, 0) rather than
 * loop forever. */
#define MAX_WALK 64

/* The values of `h`'s entries, front to back, as decimal digits, read as an RCU reader. */
static long digits(struct list_head *h)
{
	struct item *it;
	long out = 0;
	int n = 0;

	rcu_read_lock();
	list_for_each_entry_rcu(it, h, node) {
		if (++n > MAX_WALK) {
			out = -1;
			break;
		}
		out = out * 10 + it->value;
	}
	rcu_read_unlock();
	return out;
}

/* Both directions agree: every next's prev points back. */
static int linked(struct list_head *h)
{
	struct list_head *pos;
	int n = 0;

	for (pos = h->next; pos != h; pos = pos->next)
		if (++n > MAX_WALK || pos->next->prev != pos || pos->prev->next != pos)
			return 0;
	return h->next->prev == h && h->prev->next == h;
}

static long hdigits(struct hlist_head *h)
{
	struct item *it;
	long out = 0;
	int n = 0;

	rcu_read_lock();
	hlist_for_each_entry_rcu(it, h, hnode) {
		if (++n > MAX_WALK) {
			out = -1;
			break;
		}
		out = out * 10 + it->value;
	}
	rcu_read_unlock();
	return out;
}

/* Every node's pprev points at what points at it: the head's first, then each next. */
static int hlinked(struct hlist_head *h)
{
	struct hlist_node **link = &h->first, *pos;
	int n = 0;

	for (pos = h->first; pos; pos = pos->next) {
		if (++n > MAX_WALK || pos->pprev != link || *pos->pprev != pos)
			return 0;
		link = &pos->next;
	}
	return 1;
}

static struct item *hfind(struct hlist_head *h, int value)
{
	struct item *it;

	hlist_for_each_entry_rcu(it, h, hnode)
		if (it->value == value)
			break;
	return it;
}

/* The sync function given to the splices: when it runs, the source is already empty and the
 * target not yet changed. */
static int syncs, sync_saw_source_empty, sync_saw_target;
static struct list_head *splice_source;

static void counting_sync(void)
{
	syncs++;
	sync_saw_source_empty = list_empty(splice_source);
	sync_saw_target = (int)digits(&head);
	synchronize_rcu();
}

static void free_list(struct list_head *h)
{
	struct item *it, *tmp;

	list_for_each_entry_safe(it, tmp, h, node) {
		list_del_rcu(&it->node);
		synchronize_rcu();
		kfree(it);
	}
}

static void lists(void)
{
	struct item *a, *b, *c, *d, *it;
	struct list_head src;
	long n;

	/* An empty list: nothing visited, no first entry. */
	INIT_LIST_HEAD_RCU(&head);
	CHECK(list_empty(&head) && head.prev == &head);
	CHECK(digits(&head) == 0);
	CHECK(list_first_or_null_rcu(&head, struct item, node) == NULL);

	/* list_add_rcu is a stack, list_add_tail_rcu a queue. */
	a = item_new(1);
	b = item_new(2);
	c = item_new(3);
	list_add_rcu(&a->node, &head);
	list_add_rcu(&b->node, &head);
	list_add_tail_rcu(&c->node, &head);
	CHECK_EQ_UL(digits(&head), 213);
	CHECK(linked(&head));
	CHECK(list_next_rcu(&head) == &b->node && list_tail_rcu(&head) == &c->node);
	CHECK(list_next_rcu(&b->node) == &a->node);

	/* The lockdep argument is accepted and not evaluated. */
	n = 0;
	evaluations = 0;
	list_for_each_entry_rcu(it, &head, node, cond())
		n = n * 10 + it->value;
	CHECK(n == 213 && evaluations == 0);
	CHECK(&it->node == &head);

	/* First and next or NULL; list_entry_rcu. */
	rcu_read_lock();
	CHECK(list_first_or_null_rcu(&head, struct item, node) == b);
	CHECK(list_next_or_null_rcu(&head, &b->node, struct item, node) == a);
	CHECK(list_next_or_null_rcu(&head, &a->node, struct item, node) == c);
	CHECK(list_next_or_null_rcu(&head, &c->node, struct item, node) == NULL);
	CHECK(list_entry_rcu(head.prev, struct item, node) == c);
	rcu_read_unlock();

	/* _continue starts after `pos`, _from at it; both end on the head. */
	rcu_read_lock();
	it = b;
	n = 0;
	list_for_each_entry_continue_rcu(it, &head, node)
		n = n * 10 + it->value;
	CHECK(n == 13 && &it->node == &head);
	it = a;
	n = 0;
	list_for_each_entry_from_rcu(it, &head, node)
		n = n * 10 + it->value;
	CHECK(n == 13 && &it->node == &head);
	it = c;
	n = 0;
	list_for_each_entry_continue_rcu(it, &head, node)
		n++;
	CHECK(n == 0);
	n = 0;
	list_for_each_entry_from_rcu(it, &head, node)	/* from the head's entry: nothing */
		n++;
	CHECK(n == 0);
	rcu_read_unlock();

	/* list_del_rcu: unlinked, prev poisoned, next left for a reader standing on it, who walks
	 * on to the rest of the list. */
	list_del_rcu(&a->node);
	CHECK_EQ_UL(digits(&head), 23);
	CHECK(linked(&head));
	CHECK(a->node.prev == LIST_POISON2 && a->node.next == &c->node);
	rcu_read_lock();
	it = a;
	n = 0;
	list_for_each_entry_continue_rcu(it, &head, node)
		n = n * 10 + it->value;
	CHECK(n == 3);
	rcu_read_unlock();
	synchronize_rcu();
	kfree(a);

	/* list_replace_rcu: in the middle of nothing (the first), then the last. */
	d = item_new(4);
	list_replace_rcu(&b->node, &d->node);
	CHECK_EQ_UL(digits(&head), 43);
	CHECK(linked(&head));
	CHECK(b->node.prev == LIST_POISON2 && b->node.next == &c->node);
	kfree_rcu(b, rcu);
	a = item_new(5);
	list_replace_rcu(&c->node, &a->node);
	CHECK_EQ_UL(digits(&head), 45);
	CHECK(linked(&head) && list_tail_rcu(&head) == &a->node);
	CHECK(c->node.prev == LIST_POISON2 && c->node.next == &head);
	kfree_rcu(c, rcu);

	/* list_splice_init_rcu to the front: sync runs once, between emptying the source and
	 * changing the target; list_splice_tail_init_rcu to the end; an empty source is left alone
	 * and sync is not called. */
	INIT_LIST_HEAD(&src);
	list_add_tail_rcu(&item_new(6)->node, &src);
	list_add_tail_rcu(&item_new(7)->node, &src);
	splice_source = &src;
	syncs = 0;
	list_splice_init_rcu(&src, &head, counting_sync);
	CHECK(syncs == 1 && sync_saw_source_empty && sync_saw_target == 45);
	CHECK(list_empty(&src) && src.prev == &src);
	CHECK_EQ_UL(digits(&head), 6745);
	CHECK(linked(&head));
	list_add_tail_rcu(&item_new(8)->node, &src);
	list_add_tail_rcu(&item_new(9)->node, &src);
	list_splice_tail_init_rcu(&src, &head, counting_sync);
	CHECK(syncs == 2 && sync_saw_source_empty && sync_saw_target == 6745);
	CHECK(list_empty(&src));
	CHECK_EQ_UL(digits(&head), 674589);
	CHECK(linked(&head));
	list_splice_init_rcu(&src, &head, counting_sync);
	list_splice_tail_init_rcu(&src, &head, synchronize_rcu);
	CHECK(syncs == 2 && digits(&head) == 674589);
	list_add_rcu(&item_new(1)->node, &src);
	list_splice_tail_init_rcu(&src, &head, synchronize_rcu);
	CHECK(list_empty(&src) && digits(&head) == 6745891);
	CHECK(linked(&head));

	free_list(&head);
	CHECK(list_empty(&head));
}

static void hlists(void)
{
	struct hlist_head other;
	struct hlist_node *pos;
	struct item *a, *b, *c, *it, *repl;
	long n;

	/* Head and tail adds, and a tail add to an empty list. */
	INIT_HLIST_HEAD(&other);
	a = item_new(1);
	b = item_new(2);
	c = item_new(3);
	hlist_add_head_rcu(&a->hnode, &bucket);
	hlist_add_head_rcu(&b->hnode, &bucket);
	hlist_add_tail_rcu(&c->hnode, &bucket);
	CHECK_EQ_UL(hdigits(&bucket), 213);
	CHECK(hlinked(&bucket));
	hlist_add_tail_rcu(&item_new(9)->hnode, &other);
	CHECK(hdigits(&other) == 9 && hlinked(&other));
	CHECK(hlist_first_rcu(&bucket) == &b->hnode && hlist_next_rcu(&b->hnode) == &a->hnode);
	CHECK(hlist_next_rcu(&c->hnode) == NULL);

	/* Before the first and in the middle; behind the last and in the middle. */
	hlist_add_before_rcu(&item_new(4)->hnode, &b->hnode);
	CHECK_EQ_UL(hdigits(&bucket), 4213);
	CHECK(hlinked(&bucket));
	hlist_add_before_rcu(&item_new(5)->hnode, &c->hnode);
	CHECK_EQ_UL(hdigits(&bucket), 42153);
	CHECK(hlinked(&bucket));
	hlist_add_behind_rcu(&item_new(6)->hnode, &c->hnode);
	CHECK_EQ_UL(hdigits(&bucket), 421536);
	CHECK(hlinked(&bucket));
	hlist_add_behind_rcu(&item_new(7)->hnode, &b->hnode);
	CHECK_EQ_UL(hdigits(&bucket), 4271536);
	CHECK(hlinked(&bucket));

	/* Every form of walk; the lockdep argument is not evaluated; they end with `pos` NULL. */
	rcu_read_lock();
	n = 0;
	evaluations = 0;
	hlist_for_each_entry_rcu(it, &bucket, hnode, cond())
		n = n * 10 + it->value;
	CHECK(n == 4271536 && evaluations == 0 && it == NULL);
	n = 0;
	hlist_for_each_entry_rcu_notrace(it, &bucket, hnode)
		n = n * 10 + it->value;
	CHECK(n == 4271536 && it == NULL);
	n = 0;
	__hlist_for_each_rcu(pos, &bucket)
		n = n * 10 + hlist_entry(pos, struct item, hnode)->value;
	CHECK(n == 4271536 && pos == NULL);
	it = a;
	n = 0;
	hlist_for_each_entry_continue_rcu(it, hnode)
		n = n * 10 + it->value;
	CHECK(n == 536 && it == NULL);
	it = a;
	n = 0;
	hlist_for_each_entry_from_rcu(it, hnode)
		n = n * 10 + it->value;
	CHECK(n == 1536 && it == NULL);
	it = hfind(&bucket, 6);
	n = 0;
	hlist_for_each_entry_continue_rcu(it, hnode)
		n++;
	CHECK(n == 0 && it == NULL);
	rcu_read_unlock();

	/* hlist_del_rcu: unlinked, pprev poisoned (still "hashed"), next left for readers on it. */
	hlist_del_rcu(&a->hnode);
	CHECK_EQ_UL(hdigits(&bucket), 427536);
	CHECK(hlinked(&bucket));
	CHECK((void *)a->hnode.pprev == LIST_POISON2 && a->hnode.next == &hfind(&bucket, 5)->hnode);
	CHECK(!hlist_unhashed(&a->hnode));
	rcu_read_lock();
	it = a;
	n = 0;
	hlist_for_each_entry_continue_rcu(it, hnode)
		n = n * 10 + it->value;
	CHECK(n == 536);
	rcu_read_unlock();
	kfree_rcu(a, rcu);
	it = hfind(&bucket, 4);				/* the first */
	hlist_del_rcu(&it->hnode);
	CHECK(hdigits(&bucket) == 27536 && hlinked(&bucket) && it->hnode.next == &b->hnode);
	kfree_rcu(it, rcu);

	/* hlist_del_init_rcu: unhashed, next left; again is a no-op. */
	hlist_del_init_rcu(&c->hnode);
	CHECK(hlist_unhashed(&c->hnode) && c->hnode.next == &hfind(&bucket, 6)->hnode);
	CHECK_EQ_UL(hdigits(&bucket), 2756);
	CHECK(hlinked(&bucket));
	hlist_del_init_rcu(&c->hnode);
	CHECK(hlist_unhashed(&c->hnode) && hdigits(&bucket) == 2756);
	synchronize_rcu();
	kfree(c);

	/* hlist_replace_rcu of the first, a middle and the last node: the old one's pprev
	 * poisoned, its next left. */
	repl = item_new(1);
	hlist_replace_rcu(&b->hnode, &repl->hnode);
	CHECK(hdigits(&bucket) == 1756 && hlinked(&bucket));
	CHECK((void *)b->hnode.pprev == LIST_POISON2 && b->hnode.next == &hfind(&bucket, 7)->hnode);
	kfree_rcu(b, rcu);
	it = hfind(&bucket, 5);
	repl = item_new(8);
	hlist_replace_rcu(&it->hnode, &repl->hnode);
	CHECK(hdigits(&bucket) == 1786 && hlinked(&bucket));
	CHECK((void *)it->hnode.pprev == LIST_POISON2 && it->hnode.next == &hfind(&bucket, 6)->hnode);
	kfree_rcu(it, rcu);
	it = hfind(&bucket, 6);
	repl = item_new(3);
	hlist_replace_rcu(&it->hnode, &repl->hnode);
	CHECK(hdigits(&bucket) == 1783 && hlinked(&bucket));
	CHECK((void *)it->hnode.pprev == LIST_POISON2 && it->hnode.next == NULL);
	kfree_rcu(it, rcu);

	/* Everything off, each freed after a grace period. */
	while ((it = hlist_entry_safe(bucket.first, struct item, hnode)) != NULL) {
		hlist_del_rcu(&it->hnode);
		kfree_rcu(it, rcu);
	}
	it = hlist_entry(other.first, struct item, hnode);
	hlist_del_init_rcu(&it->hnode);
	CHECK(hlist_empty(&bucket) && hlist_empty(&other));
	synchronize_rcu();
	kfree(it);
}

#define NKEYS 24

struct obj {
	u32 key;
	struct hlist_node node;
};

static DEFINE_HASHTABLE(table, 3);

/* How many of the keys 0..NKEYS-1 go to `key`'s bucket. */
static int sharing(u32 key)
{
	u32 k;
	int n = 0;

	for (k = 0; k < NKEYS; k++)
		n += hash_min(k, HASH_BITS(table)) == hash_min(key, HASH_BITS(table));
	return n;
}

static void hashtable(void)
{
	struct obj *objs[NKEYS], *o;
	unsigned int bkt;
	u32 key;
	int n, sum, wrong;

	for (key = 0; key < NKEYS; key++) {
		objs[key] = kmalloc(sizeof(*objs[key]), GFP_KERNEL);
		objs[key]->key = key;
		hash_add_rcu(table, &objs[key]->node, key);
		CHECK(hash_hashed(&objs[key]->node));
	}

	/* hash_for_each_rcu: every object once, bucket by bucket. */
	rcu_read_lock();
	n = sum = 0;
	hash_for_each_rcu(table, bkt, o, node) {
		n++;
		sum += o->key;
		CHECK(hash_min(o->key, HASH_BITS(table)) == bkt);
	}
	CHECK(n == NKEYS && sum == NKEYS * (NKEYS - 1) / 2);

	/* hash_for_each_possible_rcu: the key's bucket only (with and without the lockdep
	 * argument, not evaluated), which holds the key. */
	for (key = 0; key < NKEYS; key++) {
		n = wrong = 0;
		evaluations = 0;
		hash_for_each_possible_rcu(table, o, node, key, cond()) {
			n += o->key == key;
			wrong += hash_min(o->key, HASH_BITS(table)) != hash_min(key, HASH_BITS(table));
		}
		CHECK(n == 1 && wrong == 0 && evaluations == 0 && o == NULL);
		n = 0;
		hash_for_each_possible_rcu(table, o, node, key)
			n++;
		CHECK(n == sharing(key));
		n = 0;
		hash_for_each_possible_rcu_notrace(table, o, node, key)
			n += o->key == key;
		CHECK(n == 1);
	}
	rcu_read_unlock();

	/* hash_del_rcu: unhashed, not found, freed after a grace period. */
	for (key = 0; key < NKEYS; key += 2) {
		hash_del_rcu(&objs[key]->node);
		CHECK(!hash_hashed(&objs[key]->node));
	}
	rcu_read_lock();
	n = 0;
	hash_for_each_possible_rcu(table, o, node, 4)
		n += o->key == 4;
	CHECK(n == 0);
	n = 0;
	hash_for_each_rcu(table, bkt, o, node)
		n += o->key % 2;
	CHECK(n == NKEYS / 2);
	rcu_read_unlock();
	synchronize_rcu();
	for (key = 0; key < NKEYS; key++) {
		if (key % 2)
			hash_del_rcu(&objs[key]->node);
		kfree(objs[key]);
	}
	CHECK(hash_empty(table));
}

/* ---- a writer and a reader ---- */

#define ROUNDS 3000	/* scaled by KTEST_SCALE (ktest_rounds) */
#define KEEP 8

static LIST_HEAD(shared);
static HLIST_HEAD(shared_bucket);
static int done, passes, visits, bad;

static void *reader(void *arg)
{
	struct item *it;

	(void)arg;
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		rcu_read_lock();
		list_for_each_entry_rcu(it, &shared, node) {
			visits++;
			if (READ_ONCE(it->magic) != LIVE)
				bad++;
		}
		hlist_for_each_entry_rcu(it, &shared_bucket, hnode) {
			visits++;
			if (READ_ONCE(it->magic) != LIVE)
				bad++;
		}
		rcu_read_unlock();
		__atomic_store_n(&passes, passes + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Takes `it` off both lists; frees it after a grace period, either by waiting for one (the
 * magic is cleared first, so a reader that still saw it would notice) or with kfree_rcu. */
static void retire(struct item *it, int wait)
{
	list_del_rcu(&it->node);
	hlist_del_rcu(&it->hnode);
	if (wait) {
		synchronize_rcu();
		WRITE_ONCE(it->magic, DEAD);
		kfree(it);
	} else {
		kfree_rcu(it, rcu);
	}
}

static void threads(void)
{
	struct item *it, *tmp;
	pthread_t t;
	int i, rounds = ktest_rounds(ROUNDS);

	for (i = 0; i < KEEP; i++) {
		it = item_new(i);
		list_add_tail_rcu(&it->node, &shared);
		hlist_add_head_rcu(&it->hnode, &shared_bucket);
	}
	CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
	while (!__atomic_load_n(&passes, __ATOMIC_ACQUIRE))	/* one walk before any change */
		;
	for (i = 0; i < rounds; i++) {
		it = item_new(KEEP + i);
		if (!it)
			break;
		if (i % 2)
			list_add_rcu(&it->node, &shared);
		else
			list_add_tail_rcu(&it->node, &shared);
		if (i % 3)
			hlist_add_head_rcu(&it->hnode, &shared_bucket);
		else
			hlist_add_tail_rcu(&it->hnode, &shared_bucket);
		/* The oldest entry goes: every third round with a grace period waited for. */
		retire(list_entry(i % 2 ? shared.prev : shared.next, struct item, node), i % 3 == 0);
	}
	CHECK(i == rounds);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(bad == 0 && visits > 0);
	CHECK(list_count_nodes(&shared) == KEEP && hlist_count_nodes(&shared_bucket) == KEEP);
	list_for_each_entry_safe(it, tmp, &shared, node)
		retire(it, 1);
	CHECK(list_empty(&shared) && hlist_empty(&shared_bucket));
}

int main(void)
{
	lists();
	hlists();
	hashtable();
	threads();
	rcu_barrier();	/* frees what kfree_rcu queued */
	return ktest_result("rculist");
}
