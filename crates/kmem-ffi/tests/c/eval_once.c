/* Function-like macros evaluate each argument once, as the kernel's do for non-constant
 * arguments (include/linux/log2.h, list.h): `ilog2(n++)` or
 * `list_first_entry_or_null(next_queue(), ...)` runs the side effect once. With constant
 * arguments ilog2, roundup_pow_of_two and order_base_2 stay integer constant expressions. */
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/log2.h>
#include "ktest.h"

static int evals;
#define E(v)	(evals++, (v))
/* The value of `expr`, which must evaluate E(...) exactly once. */
#define ONCE(expr) ({ evals = 0; __typeof__(expr) __v = (expr); CHECK_EQ_UL(evals, 1); __v; })

_Static_assert(ilog2(4096) == 12 && roundup_pow_of_two(5) == 8, "constant");
_Static_assert(rounddown_pow_of_two(9) == 8 && order_base_2(9) == 4, "constant");
static char sized[roundup_pow_of_two(10) + order_base_2(10) + ilog2(64)];

struct item {
	int v;
	struct list_head node;
};

static struct list_head *lists[2];
static int calls;
static struct list_head *next_list(void)
{
	return lists[calls++ % 2];
}

int main(void)
{
	unsigned long n = 100;
	unsigned int small = 3;
	struct list_head a, b;
	struct item it = { .v = 7 };
	struct item *e;

	CHECK(sizeof(sized) == 16 + 4 + 6);
	CHECK_EQ_UL(ONCE(ilog2(E(n))), 6);
	CHECK_EQ_UL(ONCE(ilog2(E(small))), 1);
	CHECK_EQ_UL(ONCE(ilog2(E(1UL << 40))), 40);
	CHECK_EQ_UL(ONCE(roundup_pow_of_two(E(n))), 128);
	CHECK_EQ_UL(ONCE(roundup_pow_of_two(E(1UL))), 1);
	CHECK_EQ_UL(ONCE(rounddown_pow_of_two(E(n))), 64);
	CHECK_EQ_UL(ONCE(order_base_2(E(n))), 7);
	CHECK_EQ_UL(ONCE(order_base_2(E(1UL))), 0);
	CHECK_EQ_UL(ONCE(order_base_2(E(128UL))), 7);

	INIT_LIST_HEAD(&a);
	INIT_LIST_HEAD(&b);
	list_add(&it.node, &b);
	lists[0] = &a;
	lists[1] = &b;
	calls = 0;
	e = list_first_entry_or_null(next_list(), struct item, node);
	CHECK(e == NULL && calls == 1);
	e = list_first_entry_or_null(next_list(), struct item, node);
	CHECK(e == &it && e->v == 7 && calls == 2);
	return ktest_result("eval_once");
}
