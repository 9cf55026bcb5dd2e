/* BUILD_BUG_ON as kernel code writes it: a statement (the kernel's compiletime_assert is a
 * do-while), so the body of an if or an else, and on a condition the optimizer folds (a const
 * variable, an always-inline function's constant argument) as well as on a constant
 * expression. Built at -O2 as the rest of the suite (the kernel is never built at -O0). */
#include <linux/kernel.h>
#include <linux/bug.h>
#include "ktest.h"

struct hdr {
	u32 magic;
	u16 len;
	u16 flags;
};

static __always_inline unsigned int field_bytes(unsigned int n)
{
	BUILD_BUG_ON(n > 8);
	return n * 8;
}

int main(int argc, char **argv)
{
	const unsigned int width = 4;
	int x = argc;

	(void)argv;
	if (x > 100)
		BUILD_BUG_ON(sizeof(struct hdr) != 8);
	else
		BUILD_BUG_ON(sizeof(u64) != 8);
	switch (x) {
	case 1:
		BUILD_BUG_ON(offsetof(struct hdr, len) != 4);
		x = 2;
		break;
	default:
		break;
	}
	BUILD_BUG_ON(width != 4);
	CHECK(x == 2);
	CHECK(field_bytes(2) == 16);
	return ktest_result("build_bug_on");
}
