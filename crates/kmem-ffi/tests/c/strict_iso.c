/* The main headers together under strict ISO C (built with -std=c99 and -std=c11, no
 * _POSIX_C_SOURCE): strscpy's truncation and the delays work without POSIX declarations. */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/vmalloc.h>
#include <linux/mempool.h>
#include <linux/string.h>
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/highmem.h>
#include "ktest.h"

int main(void)
{
	char buf[8];
	char *p = kmalloc(16, GFP_KERNEL);

	CHECK(strscpy(buf, "abc", sizeof(buf)) == 3 && strcmp(buf, "abc") == 0);
	CHECK(strscpy(buf, "abcdefghij", sizeof(buf)) == -E2BIG && strcmp(buf, "abcdefg") == 0);
	CHECK(strscpy(buf, "abcdefg", sizeof(buf)) == 7);	/* fits exactly */
	CHECK(strscpy(buf, "x", 0) == -E2BIG);
	udelay(1);
	ndelay(1);
	mdelay(1);
	CHECK(p != NULL);
	kfree(p);
	return ktest_result("strict_iso");
}
