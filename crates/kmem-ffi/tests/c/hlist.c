/* <linux/list.h>'s hlist (and <linux/log2.h>) as hash-bucket code uses it, over kmalloc'd
 * entries: adds at the head, before and behind a node, iteration (plain, _safe, _continue,
 * _from), hlist_del's poison, hlist_del_init leaving a node unhashed, fake nodes,
 * hlist_move_list and hlist_splice_init, with every node's pprev checked after each change;
 * every entry is kfree'd (KMEM_KMEMLEAK=1 in the driver finds nothing left). */
#include <linux/list.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include "ktest.h"

struct item {
	int value;
	struct hlist_node node;
};

static HLIST_HEAD(bucket);

static struct item *item_new(int value)
{
	struct item *it = kmalloc(sizeof(*it), GFP_KERNEL);

	if (it) {
		it->value = value;
		INIT_HLIST_NODE(&it->node);
	}
	return it;
}

/* The values of `head`'s entries, front to back, as decimal digits. */
static long digits(struct hlist_head *head)
{
	struct item *it;
	long out = 0;

	hlist_for_each_entry(it, head, node)
		out = out * 10 + it->value;
	return out;
}

/* Every node's pprev points at what points at it: the head's first, then each next. */
static int linked(struct hlist_head *head)
{
	struct hlist_node **link = &head->first, *pos;

	for (pos = head->first; pos; pos = pos->next) {
		if (pos->pprev != link || *pos->pprev != pos)
			return 0;
		link = &pos->next;
	}
	return 1;
}

static struct item *find(struct hlist_head *head, int value)
{
	struct item *it;

	hlist_for_each_entry(it, head, node)
		if (it->value == value)
			break;
	return it;
}

static int evaluations;

static struct hlist_node *counted(struct hlist_node *node)
{
	evaluations++;
	return node;
}

static void free_all(struct hlist_head *head)
{
	struct item *it;
	struct hlist_node *tmp;

	hlist_for_each_entry_safe(it, tmp, head, node) {
		hlist_del(&it->node);
		kfree(it);
	}
}

_Static_assert(ilog2(1) == 0 && ilog2(2) == 1 && ilog2(1023) == 9 && ilog2(1024) == 10,
	       "ilog2 of constants is a constant");
_Static_assert(ilog2(0x8000000000000000ull) == 63, "ilog2 of a 64-bit constant");
_Static_assert(order_base_2(1) == 0 && order_base_2(5) == 3 && order_base_2(8) == 3, "order_base_2");

int main(void)
{
	struct hlist_head other, third;
	struct hlist_node *pos, *tmp, fake;
	struct item *it, *a, *b, *c, *d, *e, *lone;
	int n;

	/* Empty heads and unhashed nodes. */
	INIT_HLIST_HEAD(&other);
	third = (struct hlist_head)HLIST_HEAD_INIT;
	CHECK(hlist_empty(&bucket) && hlist_empty(&other) && hlist_empty(&third));
	CHECK_EQ_UL(hlist_count_nodes(&bucket), 0);
	it = (struct item *)1;
	hlist_for_each_entry(it, &bucket, node)
		CHECK(0);
	CHECK(it == NULL);

	/* hlist_add_head is a stack. */
	a = item_new(1);
	b = item_new(2);
	c = item_new(3);
	CHECK(hlist_unhashed(&a->node) && hlist_unhashed_lockless(&a->node));
	hlist_add_head(&a->node, &bucket);
	CHECK(!hlist_unhashed(&a->node) && !hlist_empty(&bucket));
	CHECK(hlist_is_singular_node(&a->node, &bucket) && !hlist_is_singular_node(&a->node, &other));
	hlist_add_head(&b->node, &bucket);
	hlist_add_head(&c->node, &bucket);
	CHECK(!hlist_is_singular_node(&a->node, &bucket) && !hlist_is_singular_node(&c->node, &bucket));
	CHECK_EQ_UL(digits(&bucket), 321);
	CHECK(linked(&bucket));
	CHECK_EQ_UL(hlist_count_nodes(&bucket), 3);
	n = 0;
	hlist_for_each(pos, &bucket)
		n++;
	CHECK(n == 3 && pos == NULL);
	CHECK(hlist_entry(bucket.first, struct item, node) == c);

	/* hlist_entry_safe: NULL for NULL, its argument evaluated once. */
	CHECK(hlist_entry_safe((struct hlist_node *)NULL, struct item, node) == NULL);
	evaluations = 0;
	CHECK(hlist_entry_safe(counted(&b->node), struct item, node) == b);
	CHECK(evaluations == 1);

	/* Before and behind: at the front, in the middle, at the end. */
	d = item_new(4);
	hlist_add_before(&d->node, &c->node);		/* before the first */
	CHECK_EQ_UL(digits(&bucket), 4321);
	CHECK(bucket.first == &d->node && linked(&bucket));
	e = item_new(5);
	hlist_add_before(&e->node, &b->node);		/* in the middle */
	CHECK_EQ_UL(digits(&bucket), 43521);
	CHECK(linked(&bucket));
	hlist_add_behind(&item_new(6)->node, &a->node);	/* behind the last */
	CHECK_EQ_UL(digits(&bucket), 435216);
	hlist_add_behind(&item_new(7)->node, &d->node);	/* in the middle */
	CHECK_EQ_UL(digits(&bucket), 4735216);
	CHECK(linked(&bucket));
	CHECK_EQ_UL(hlist_count_nodes(&bucket), 7);

	/* _continue starts after `pos`, _from at it; both end with `pos` NULL. */
	it = e;
	n = 0;
	hlist_for_each_entry_continue(it, node)
		n = n * 10 + it->value;
	CHECK(n == 216 && it == NULL);
	it = e;
	n = 0;
	hlist_for_each_entry_from(it, node)
		n = n * 10 + it->value;
	CHECK(n == 5216 && it == NULL);
	it = find(&bucket, 6);
	n = 0;
	hlist_for_each_entry_continue(it, node)
		n++;
	CHECK(n == 0 && it == NULL);
	CHECK(find(&bucket, 9) == NULL);

	/* hlist_del poisons the node; hlist_del_init leaves it unhashed, and again is a no-op. */
	hlist_del(&e->node);
	CHECK(e->node.next == LIST_POISON1 && (void *)e->node.pprev == LIST_POISON2);
	CHECK_EQ_UL(digits(&bucket), 473216);
	CHECK(linked(&bucket));
	kfree(e);
	hlist_del(&d->node);				/* the first */
	CHECK(d->node.next == LIST_POISON1 && (void *)d->node.pprev == LIST_POISON2);
	CHECK(linked(&bucket) && digits(&bucket) == 73216);
	kfree(d);
	lone = find(&bucket, 6);			/* the last */
	hlist_del_init(&lone->node);
	CHECK(hlist_unhashed(&lone->node) && lone->node.next == NULL);
	CHECK_EQ_UL(digits(&bucket), 7321);
	CHECK(linked(&bucket));
	hlist_del_init(&lone->node);
	CHECK(hlist_unhashed(&lone->node) && digits(&bucket) == 7321);

	/* A fake node looks hashed, is on no list, and hlist_del_init of it touches nothing. */
	INIT_HLIST_NODE(&fake);
	CHECK(!hlist_fake(&fake));
	hlist_add_fake(&fake);
	CHECK(hlist_fake(&fake) && !hlist_unhashed(&fake));
	hlist_del_init(&fake);
	CHECK(hlist_unhashed(&fake) && !hlist_fake(&fake));
	CHECK_EQ_UL(digits(&bucket), 7321);

	/* hlist_move_list: `other` takes every node, `bucket` is left empty; of an empty list, the
	 * target is left empty. */
	hlist_move_list(&bucket, &other);
	CHECK(hlist_empty(&bucket) && digits(&other) == 7321);
	CHECK(linked(&other) && other.first->pprev == &other.first);
	hlist_move_list(&bucket, &third);
	CHECK(hlist_empty(&third) && hlist_empty(&bucket));

	/* hlist_splice_init to an empty list, then in front of a non-empty one. */
	hlist_add_head(&lone->node, &bucket);
	hlist_splice_init(&other, &find(&other, 1)->node, &bucket);
	CHECK(hlist_empty(&other) && digits(&bucket) == 73216);
	CHECK(linked(&bucket));
	hlist_add_head(&item_new(8)->node, &third);
	hlist_add_head(&item_new(9)->node, &third);
	hlist_splice_init(&bucket, &lone->node, &third);
	CHECK(hlist_empty(&bucket) && digits(&third) == 7321698);
	CHECK(linked(&third));
	hlist_splice_init(&third, &find(&third, 8)->node, &bucket);
	CHECK(hlist_empty(&third) && digits(&bucket) == 7321698);
	CHECK(linked(&bucket));

	/* hlist_for_each_safe may delete the current node: 3 and 9 go. */
	hlist_for_each_safe(pos, tmp, &bucket) {
		it = hlist_entry(pos, struct item, node);
		if (it->value == 3 || it->value == 9) {
			hlist_del(pos);
			kfree(it);
		}
	}
	CHECK(pos == NULL && digits(&bucket) == 72168);
	CHECK(linked(&bucket));

	/* Deleting the current entry while iterating: the odd values go, the first among them. */
	hlist_for_each_entry_safe(it, tmp, &bucket, node) {
		if (it->value % 2) {
			hlist_del(&it->node);
			kfree(it);
		}
	}
	CHECK(it == NULL && digits(&bucket) == 268);
	CHECK(linked(&bucket) && hlist_count_nodes(&bucket) == 3);
	free_all(&bucket);
	CHECK(hlist_empty(&bucket));

	/* <linux/log2.h> at run time. */
	n = 1000;
	CHECK(ilog2(n) == 9 && ilog2((u64)1 << 40) == 40 && ilog2(3UL) == 1);
	CHECK(roundup_pow_of_two(1) == 1 && roundup_pow_of_two(5) == 8 && roundup_pow_of_two(8) == 8);
	CHECK(rounddown_pow_of_two(5) == 4 && rounddown_pow_of_two(n) == 512);
	CHECK(order_base_2(n) == 10 && order_base_2(1024) == 10 && order_base_2(1025) == 11);
	CHECK(is_power_of_2(1) && is_power_of_2(4096) && !is_power_of_2(0) && !is_power_of_2(6));
	return ktest_result("hlist");
}
