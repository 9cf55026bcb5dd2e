/* Without DEBUG, pr_debug and its forms are the kernel's no_printk: a statement expression
 * whose printk sits under if (0), so the arguments are type-checked against the format but
 * never evaluated (a side effect or an expensive call in them does not run), and the value
 * is 0. */
#include <linux/kernel.h>
#include <linux/printk.h>
#include "ktest.h"

static int evals;

static int count(void)
{
	return ++evals;
}

int main(void)
{
	int n = 0;

	kmem_dmesg_clear();
	pr_debug("debug %d\n", count());
	pr_devel("devel %d\n", n++);
	pr_debug_once("once %d\n", count());
	pr_debug_ratelimited("ratelimited %d\n", count());
	CHECK(no_printk("direct %d %d\n", count(), n++) == 0);
	CHECK_EQ_UL(evals, 0);
	CHECK_EQ_UL(n, 0);
	CHECK(strstr(ktest_dmesg(), "debug") == NULL);
	CHECK(strstr(ktest_dmesg(), "direct") == NULL);
	return ktest_result("pr_debug_args");
}
