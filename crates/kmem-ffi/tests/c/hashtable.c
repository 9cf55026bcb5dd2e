/* <linux/hash.h> and <linux/hashtable.h> as driver code uses them: hash_32/hash_64 against the
 * multiplication and shift computed here and against known values, a static DEFINE_HASHTABLE
 * and a DECLARE_HASHTABLE member set up with hash_init, objects of 32- and 64-bit keys in the
 * bucket hash_min picks, hash_for_each (and a break in it), hash_for_each_possible visiting
 * its bucket only, deletion while iterating with the _safe forms, hash_hashed/hash_empty;
 * every object is kfree'd (KMEM_KMEMLEAK=1 in the driver finds nothing left). */
#include <linux/hashtable.h>
#include <linux/slab.h>
#include "ktest.h"

#define NKEYS 40

struct obj {
	u32 key;
	struct hlist_node node;
};

struct wide {
	u64 key;
	struct hlist_node link;
};

struct registry {
	int users;
	DECLARE_HASHTABLE(by_key, 4);
};

static DEFINE_HASHTABLE(table, 3);

_Static_assert(HASH_SIZE(table) == 8 && HASH_BITS(table) == 3, "a table of 2^3 buckets");
_Static_assert(sizeof(((struct registry *)0)->by_key) == 16 * sizeof(struct hlist_head),
	       "DECLARE_HASHTABLE");

/* hash_32 and hash_64 as documented: the top `bits` bits of the product. */
static u32 expect_32(u32 val, unsigned int bits)
{
	u32 product = val * (u32)0x61C88647;

	return product >> (32 - bits);
}

static u32 expect_64(u64 val, unsigned int bits)
{
	u64 product = val * (u64)0x61C8864680B583EBull;

	return (u32)(product >> (64 - bits));
}

static int count_all(void)
{
	struct obj *o;
	int bkt, n = 0;

	hash_for_each(table, bkt, o, node)
		n++;
	return n;
}

int main(void)
{
	static struct registry reg;
	struct obj *objs[NKEYS], *o;
	struct wide *w;
	struct hlist_node *tmp;
	unsigned int ubkt, bucket_sizes[8] = { 0 };
	int bkt, i, n, seen[NKEYS];
	u32 k;

	/* The hash functions. */
	CHECK(GOLDEN_RATIO_32 == 0x61C88647 && GOLDEN_RATIO_64 == 0x61C8864680B583EBull);
	CHECK_EQ_UL(hash_32(1, 32), 0x61C88647);
	CHECK_EQ_UL(__hash_32(1), 0x61C88647);
	CHECK_EQ_UL(hash_32(0x12345678, 8), 0x77);
	CHECK_EQ_UL(hash_32(0xdeadbeef, 16), 0x6dd9);
	CHECK_EQ_UL(hash_32(2, 10), 0x30e);
	for (k = 0; k < 100000; k += 7)
		CHECK_EQ_UL(hash_32(k * 2654435761u, (k % 32) + 1), expect_32(k * 2654435761u, (k % 32) + 1));
#if __SIZEOF_LONG__ == 8
	CHECK_EQ_UL(hash_64(1, 32), 0x61C88646);
	CHECK_EQ_UL(hash_64(0x123456789abcdef0ull, 10), 0xdb);
	CHECK_EQ_UL(hash_64(0xdeadbeefcafebabeull, 20), 0xf1136);
	CHECK_EQ_UL(hash_64(3, 64), 0x82208bc1);
	for (i = 0; i < 2000; i++) {
		u64 v = (u64)i * 0x9E3779B97F4A7C15ull;

		CHECK_EQ_UL(hash_64(v, (i % 64) + 1), expect_64(v, (i % 64) + 1));
		CHECK_EQ_UL(hash_long((unsigned long)v, 12), expect_64(v, 12));
	}
	CHECK_EQ_UL(hash_ptr(&reg, 9), expect_64((unsigned long)&reg, 9));
	CHECK_EQ_UL(hash32_ptr(&reg), (u32)((unsigned long)&reg ^ ((unsigned long)&reg >> 32)));
#endif
	CHECK_EQ_UL(hash_ptr(&reg, 9), hash_long((unsigned long)&reg, 9));
	CHECK(hash_ptr(&reg, 9) < 512);

	/* A static table starts empty; so does a declared one after hash_init. */
	CHECK(hash_empty(table) && count_all() == 0);
	hash_init(reg.by_key);
	CHECK(hash_empty(reg.by_key));

	/* NKEYS objects, keys 0..39 times 3: each lands in bucket hash_32(key, 3). */
	for (i = 0; i < NKEYS; i++) {
		objs[i] = kmalloc(sizeof(*objs[i]), GFP_KERNEL);
		objs[i]->key = (u32)i * 3;
		INIT_HLIST_NODE(&objs[i]->node);
		CHECK(!hash_hashed(&objs[i]->node));
		hash_add(table, &objs[i]->node, objs[i]->key);
		CHECK(hash_hashed(&objs[i]->node));
		bucket_sizes[hash_32(objs[i]->key, 3)]++;
	}
	CHECK(!hash_empty(table));
	for (bkt = 0; bkt < 8; bkt++) {
		CHECK_EQ_UL(hlist_count_nodes(&table[bkt]), bucket_sizes[bkt]);
		hlist_for_each_entry(o, &table[bkt], node)
			CHECK_EQ_UL(hash_min(o->key, 3), bkt);
	}

	/* hash_for_each: every object once, bucket by bucket; `bkt` is the bucket (int or
	 * unsigned). */
	memset(seen, 0, sizeof(seen));
	hash_for_each(table, bkt, o, node) {
		CHECK_EQ_UL(hash_32(o->key, 3), bkt);
		seen[o->key / 3]++;
	}
	for (i = 0; i < NKEYS; i++)
		CHECK(seen[i] == 1);
	n = 0;
	hash_for_each(table, ubkt, o, node)
		n++;
	CHECK(n == NKEYS && ubkt == 8 && o == NULL);

	/* A break ends the whole walk, with `o` the object it stopped at. */
	n = 0;
	hash_for_each(table, bkt, o, node) {
		if (++n == 5)
			break;
	}
	CHECK(n == 5 && o != NULL);

	/* hash_for_each_possible visits exactly the bucket of the key: the key's own object and
	 * the others that hash there. */
	for (i = 0; i < NKEYS; i++) {
		u32 key = (u32)i * 3;
		unsigned int b = hash_32(key, 3);
		int found = 0;

		n = 0;
		hash_for_each_possible(table, o, node, key) {
			CHECK_EQ_UL(hash_32(o->key, 3), b);
			if (o->key == key)
				found++;
			n++;
		}
		CHECK(found == 1 && (unsigned int)n == bucket_sizes[b]);
	}
	n = 0;
	hash_for_each_possible(table, o, node, (u32)1000) /* no such key: its bucket's others */
		n++;
	CHECK((unsigned int)n == bucket_sizes[hash_32(1000, 3)]);

	/* hash_for_each_safe deleting the even keys: hash_del leaves them unhashed. */
	hash_for_each_safe(table, bkt, tmp, o, node) {
		if (o->key % 2 == 0)
			hash_del(&o->node);
	}
	CHECK(count_all() == NKEYS / 2);
	for (i = 0; i < NKEYS; i++)
		CHECK(hash_hashed(&objs[i]->node) == (objs[i]->key % 2 == 1));
	hash_del(&objs[0]->node);	/* again: a no-op */
	CHECK(!hash_hashed(&objs[0]->node) && count_all() == NKEYS / 2);

	/* hash_for_each_possible_safe deleting one bucket's objects. */
	k = objs[1]->key;
	n = 0;
	hash_for_each_possible_safe(table, o, tmp, node, k) {
		hash_del(&o->node);
		n++;
	}
	CHECK(n >= 1 && hlist_empty(&table[hash_32(k, 3)]) && !hash_hashed(&objs[1]->node));
	CHECK(count_all() == NKEYS / 2 - n);

	/* The rest go; the table is empty again. */
	hash_for_each_safe(table, bkt, tmp, o, node)
		hash_del(&o->node);
	CHECK(hash_empty(table) && count_all() == 0);
	for (i = 0; i < NKEYS; i++)
		kfree(objs[i]);

	/* 64-bit keys go through hash_long: bucket hash_64(key, 4) on a 64-bit long. */
	for (i = 0; i < 10; i++) {
		w = kmalloc(sizeof(*w), GFP_KERNEL);
		w->key = ((u64)i << 40) | 0xabcdu;
		hash_add(reg.by_key, &w->link, w->key);
		CHECK(hash_hashed(&w->link));
		CHECK(reg.by_key[hash_long(w->key, 4)].first == &w->link);
#if __SIZEOF_LONG__ == 8
		CHECK_EQ_UL(hash_min(w->key, 4), hash_64(w->key, 4));
#endif
	}
	n = 0;
	hash_for_each_possible(reg.by_key, w, link, ((u64)7 << 40) | 0xabcdu)
		if (w->key == (((u64)7 << 40) | 0xabcdu))
			n++;
	CHECK(n == 1);
	n = 0;
	hash_for_each_safe(reg.by_key, ubkt, tmp, w, link) {
		hash_del(&w->link);
		kfree(w);
		n++;
	}
	CHECK(n == 10 && hash_empty(reg.by_key));
	return ktest_result("hashtable");
}
