/* <linux/minmax.h> through <linux/kernel.h>, as kernel code uses it: min, max, min3, max3, umin,
 * umax, min_not_zero, clamp, min_t, max_t, clamp_t, clamp_val, MIN_T, MAX_T and swap give the
 * kernel's values and types; the mixes the signedness check allows (an unsigned value and a
 * non-negative constant, types the integer promotions make signed, two unsigned widths)
 * compile without a warning under -Wall -Wextra -Werror; constants give constant expressions
 * (a fixed-size array, a _Static_assert); every argument with a side effect is evaluated
 * exactly once. The mixes the check refuses are c_abi.rs's compile-failure test. */
#include <linux/kernel.h>
#include "ktest.h"

#define same_type(a, b)	__builtin_types_compatible_p(__typeof__(a), __typeof__(b))

_Static_assert(MIN_T(int, 3, 5) == 3 && MAX_T(u8, 300, 7) == 44, "MIN_T and MAX_T are constants");

static int calls;

/* `v`, counting the call: an argument whose evaluations can be counted. */
static int counted(int v)
{
	calls++;
	return v;
}

static unsigned int ucounted(unsigned int v)
{
	calls++;
	return v;
}

struct pair {
	int a, b;
};

int main(void)
{
	int i = -7, j = 3, k, arr[4] = { 10, 20, 30, 40 }, *p = &arr[1], *q = &arr[3];
	unsigned int u = 9;
	u8 c = 200;
	u16 h = 60000;
	long l = -5000000000L;
	u64 big = 1ull << 40;
	struct pair x = { 1, 2 }, y = { 3, 4 };
	char buf[max(3, 5)];

	/* Constants: constant expressions. */
	_Static_assert(sizeof(buf) == 5, "max of constants is no VLA bound");
	_Static_assert(min(3, 5) == 3 && max(-1, -2) == -1, "min and max of constants");
	_Static_assert(min3(4, 2, 3) == 2 && max3(4, 2, 9u) == 9u && umax(3, 4) == 4, "three");
	_Static_assert(clamp(12, 0, 10) == 10 && clamp(-3, 0, 10) == 0 && clamp(4, 0, 10) == 4, "clamp");
	_Static_assert(clamp_t(u8, 300, 0, 255) == 44, "clamp_t converts first");
	buf[0] = 1;
	CHECK(buf[0] == 1);

	/* Same types. */
	CHECK(min(i, j) == -7 && max(i, j) == 3);
	CHECK(min(u, 4u) == 4 && max(u, 4u) == 9);
	CHECK(min(p, q) == p && max(p, q) == q);	/* pointers of one type */

	/* Allowed mixes, and the type of the result: C's, as in the kernel. */
	CHECK(min(u, 5) == 5 && max(u, 5) == 9);	/* unsigned and a non-negative constant */
	_Static_assert(same_type(min(u, 5), unsigned int), "min(unsigned, 5) is unsigned");
	CHECK(min(c, i) == -7 && max(c, i) == 200);	/* u8 promotes to int */
	_Static_assert(same_type(min(c, i), int), "min(u8, int) is int");
	_Static_assert(same_type(min(c, c), int), "min(u8, u8) is int, as the ?: makes it");
	CHECK(min(h, i) == -7 && max(h, j) == 60000);	/* u16 too */
	CHECK(min(l, i) == -5000000000L && max(l, i) == -7);	/* long and int */
	_Static_assert(same_type(max(l, i), long), "max(long, int) is long");
	CHECK(min(big, u) == 9 && max(big, u) == 1ull << 40);	/* two unsigned widths */
	_Static_assert(same_type(min(big, u), u64), "min(u64, unsigned) is u64");
	CHECK(min(i, 0) == -7 && max(0, i) == 0);

	/* umin/umax: as unsigned long long; a negative value is a huge one (zero-extended from
	 * its unsigned type: an int through unsigned int, as the kernel's + 0u + 0ul + 0ull). */
	CHECK(umin(i, u) == 9 && umax(j, u) == 9 && umin(c, h) == 200);
	CHECK(umax(i, 1) == 0xfffffff9ull && umax(l, 1) == (unsigned long long)l);
	_Static_assert(same_type(umin(c, c), unsigned long long), "umin's type");

	/* min3/max3. */
	CHECK(min3(5, 2, 9) == 2 && max3(5, 2, 9) == 9);
	CHECK(min3(c, i, 4) == -7 && max3(c, h, j) == 60000);
	CHECK(min3(u, 3u, 12u) == 3 && max3(u, 3, 4) == 9);

	/* min_not_zero. */
	CHECK(min_not_zero(0, 5) == 5 && min_not_zero(4, 0) == 4 && min_not_zero(0, 0) == 0);
	CHECK(min_not_zero(u, 3) == 3 && min_not_zero(u, 0) == 9 && min_not_zero(7u, u) == 7);
	CHECK(min_not_zero(i, j) == -7);

	/* clamp, clamp_t, clamp_val. */
	k = 15;
	CHECK(clamp(k, 0, 10) == 10 && clamp(i, 0, 10) == 0 && clamp(j, 0, 10) == 3);
	CHECK(clamp(u, 0, 5) == 5 && clamp(u, 10, 20) == 10 && clamp(u, 2u, 20u) == 9);
	CHECK(clamp(c, 0, 100) == 100 && clamp(i, -10, -8) == -8);
	CHECK(clamp_t(u8, k + 300, 0, 255) == 59);	/* (u8)315 */
	CHECK(clamp_t(int, u, 0, 5) == 5 && clamp_t(long, l, -1, 1) == -1);
	CHECK(clamp_val(c, 0, 150) == 150 && clamp_val(c, 0, 255) == 200);
	/* In val's type, then promoted by the conditional, as in the kernel. */
	_Static_assert(same_type(clamp_val(c, 0, 150), int) && same_type(clamp_val(u, 0, 1), unsigned int),
		       "clamp_val's type");

	/* min_t/max_t: converted first, unchecked. */
	CHECK(min_t(int, i, u) == -7 && max_t(int, i, u) == 9);
	CHECK(min_t(u8, k + 285, 7) == 7 && max_t(u8, k + 285, 7) == 44);	/* (u8)300 */
	CHECK(min_t(unsigned int, i, u) == 9);	/* (unsigned)-7 is huge */
	_Static_assert(same_type(max_t(s16, 1, 2), int) && same_type(max_t(u64, 1, 2), u64), "max_t's type");

	/* Nested: the temporaries do not shadow one another. */
	CHECK(min(min(i, j), max(j, 5)) == -7 && max(clamp(k, 0, 10), min3(1, 2, 3)) == 10);

	/* Once each, side effects and all. */
	calls = 0;
	CHECK(min(counted(4), counted(2)) == 2 && calls == 2);
	calls = 0;
	CHECK(max(counted(4), counted(2)) == 4 && calls == 2);
	calls = 0;
	CHECK(min3(counted(4), counted(2), counted(3)) == 2 && calls == 3);
	calls = 0;
	CHECK(max3(counted(4), counted(2), counted(5)) == 5 && calls == 3);
	calls = 0;
	CHECK(umin(counted(4), ucounted(2)) == 2 && umax(counted(4), ucounted(2)) == 4 && calls == 4);
	calls = 0;
	CHECK(min_not_zero(counted(0), counted(6)) == 6 && calls == 2);
	calls = 0;
	CHECK(clamp(counted(15), counted(0), counted(10)) == 10 && calls == 3);
	calls = 0;
	CHECK(clamp(counted(-3), counted(0), counted(10)) == 0 && calls == 3);
	calls = 0;
	CHECK(clamp_t(int, counted(5), counted(0), counted(10)) == 5 && calls == 3);
	calls = 0;
	CHECK(clamp_val(counted(50), 0, 10) == 10 && calls == 1);
	calls = 0;
	CHECK(min_t(long, counted(-1), ucounted(1)) == -1 && max_t(int, counted(8), counted(9)) == 9);
	CHECK(calls == 4);
	i = 0;
	j = 10;
	CHECK(min(i++, j--) == 0 && i == 1 && j == 9);
	CHECK(max(++i, j++) == 9 && i == 2 && j == 10);
	CHECK(clamp(i++, 5, 8) == 5 && i == 3);

	/* swap: values, pointers, structures; each lvalue evaluated once. */
	i = 1;
	j = 2;
	swap(i, j);
	CHECK(i == 2 && j == 1);
	swap(p, q);
	CHECK(p == &arr[3] && q == &arr[1]);
	swap(x, y);
	CHECK(x.a == 3 && x.b == 4 && y.a == 1 && y.b == 2);
	i = 0;
	j = 3;
	swap(arr[i++], arr[j--]);
	CHECK(i == 1 && j == 2 && arr[0] == 40 && arr[3] == 10);
	swap(arr[i], arr[i]);	/* with itself: unchanged */
	CHECK(arr[1] == 20);

	return ktest_result("minmax");
}
