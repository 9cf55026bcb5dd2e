/* <linux/list.h> as driver code uses it, over kmalloc'd entries: a queue (list_add_tail) and a
 * stack (list_add), iteration in both directions, list_del's poison, list_del_init, moves,
 * splices and replace, deletion while iterating with the _safe form, and every entry kfree'd
 * (KMEM_KMEMLEAK=1 in the driver finds nothing left). */
#include <linux/list.h>
#include <linux/slab.h>
#include "ktest.h"

struct item {
	int value;
	struct list_head node;
};

static LIST_HEAD(queue);

static struct item *item_new(int value)
{
	struct item *it = kmalloc(sizeof(*it), GFP_KERNEL);

	if (it)
		it->value = value;
	return it;
}

/* The values of `head`'s entries, front to back, as decimal digits. */
static long digits(struct list_head *head)
{
	struct item *it;
	long out = 0;

	list_for_each_entry(it, head, node)
		out = out * 10 + it->value;
	return out;
}

static long digits_reversed(struct list_head *head)
{
	struct item *it;
	long out = 0;

	list_for_each_entry_reverse(it, head, node)
		out = out * 10 + it->value;
	return out;
}

int main(void)
{
	struct list_head stack, other, *pos;
	struct item *it, *next, *a, *lone, *repl;
	int i, n = 0;

	INIT_LIST_HEAD(&stack);
	INIT_LIST_HEAD(&other);
	CHECK(list_empty(&queue) && list_empty(&stack) && list_first_entry_or_null(&queue, struct item, node) == NULL);
	for (i = 1; i <= 4; i++) {
		list_add_tail(&item_new(i)->node, &queue);
		list_add(&item_new(i + 4)->node, &stack);
	}
	CHECK_EQ_UL(digits(&queue), 1234);
	CHECK_EQ_UL(digits_reversed(&queue), 4321);
	CHECK_EQ_UL(digits(&stack), 8765);
	CHECK_EQ_UL(list_count_nodes(&queue), 4);
	list_for_each(pos, &queue)
		n++;
	CHECK(n == 4);
	CHECK(list_first_entry(&queue, struct item, node)->value == 1);
	CHECK(list_last_entry(&queue, struct item, node)->value == 4);
	a = list_first_entry(&queue, struct item, node);
	CHECK(list_is_first(&a->node, &queue) && !list_is_last(&a->node, &queue));
	CHECK(list_next_entry(a, node)->value == 2);

	/* list_del poisons the entry's links; list_del_init leaves it an empty list. */
	list_del(&a->node);
	CHECK(a->node.next == LIST_POISON1 && a->node.prev == LIST_POISON2);
	CHECK_EQ_UL(digits(&queue), 234);
	kfree(a);
	lone = list_last_entry(&queue, struct item, node);
	list_del_init(&lone->node);
	CHECK(list_empty(&lone->node));
	CHECK_EQ_UL(digits(&queue), 23);

	/* Moves between lists, then splices. */
	list_move_tail(&list_first_entry(&stack, struct item, node)->node, &queue); /* 8 */
	list_move(&list_last_entry(&stack, struct item, node)->node, &queue);       /* 5 */
	CHECK_EQ_UL(digits(&queue), 5238);
	CHECK_EQ_UL(digits(&stack), 76);
	list_splice_init(&stack, &other);
	CHECK(list_empty(&stack) && digits(&other) == 76);
	list_splice_tail_init(&other, &queue);
	CHECK(list_empty(&other));
	CHECK_EQ_UL(digits(&queue), 523876);
	list_add(&lone->node, &other);
	CHECK(list_is_singular(&other));
	list_splice(&other, &queue);
	CHECK_EQ_UL(digits(&queue), 4523876);

	/* replace: 9 takes 3's place. */
	repl = item_new(9);
	list_for_each_entry(it, &queue, node)
		if (it->value == 3)
			break;
	list_replace(&it->node, &repl->node);
	kfree(it);
	CHECK_EQ_UL(digits(&queue), 4529876);

	/* Deleting the current entry while iterating: the odd values go. */
	list_for_each_entry_safe(it, next, &queue, node) {
		if (it->value % 2) {
			list_del(&it->node);
			kfree(it);
		}
	}
	CHECK_EQ_UL(digits(&queue), 4286);
	list_for_each_entry_safe(it, next, &queue, node) {
		list_del(&it->node);
		kfree(it);
	}
	CHECK(list_empty(&queue));
	return ktest_result("list");
}
