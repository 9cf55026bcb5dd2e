/* kasprintf, kvasprintf and kvasprintf_const (lib/kasprintf.c), which driver code gets from
 * <linux/kernel.h>: a kmalloc object of exactly the text and its NUL (ksize is that size's
 * class), freed with kfree; NULL and the allocator's report when kmalloc fails; the _const
 * form copies a format without conversions, or the argument of a plain "%s". */
#include <stdarg.h>
#include <linux/kernel.h>
#include <linux/slab.h>
#include "ktest.h"

static __printf(2, 3) const char *dup_const(gfp_t gfp, const char *fmt, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, fmt);
	s = kvasprintf_const(gfp, fmt, ap);
	va_end(ap);
	return s;
}

static __printf(2, 3) char *twice(gfp_t gfp, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = kvasprintf(gfp, fmt, ap);
	va_end(ap);
	return s;
}

int main(void)
{
	char big[300];
	char *s;
	const char *c;

	s = kasprintf(GFP_KERNEL, "%s-%d", "cache", 42);
	CHECK(s != NULL && strcmp(s, "cache-42") == 0);
	CHECK_EQ_UL(ksize(s), 16);	/* 9 bytes asked: kmalloc-16 */
	kfree(s);

	s = kasprintf(GFP_KERNEL, "%s", "");
	CHECK(s != NULL && s[0] == '\0');
	CHECK_EQ_UL(ksize(s), 8);	/* one byte, never ZERO_SIZE_PTR */
	kfree(s);

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = twice(GFP_KERNEL, "<%s>", big);
	CHECK(s != NULL && strlen(s) == sizeof(big) + 1 && s[0] == '<' && s[sizeof(big)] == '>');
	CHECK_EQ_UL(ksize(s), 512);
	kfree(s);

	/* kmalloc's own limit: a text of 4 MiB + 1 is refused, with __GFP_NOWARN silently. */
	{
		static char huge[(4 << 20) + 1];
		memset(huge, 'y', sizeof(huge) - 1);
		CHECK(kasprintf(GFP_KERNEL | __GFP_NOWARN, "%s!", huge) == NULL);
		CHECK_NOT_LOG("MAX_PAGE_ORDER");
	}

	c = dup_const(GFP_KERNEL, "no conversions");
	CHECK(c != NULL && strcmp(c, "no conversions") == 0);
	kfree_const(c);
	c = dup_const(GFP_KERNEL, "%s", "just the argument");
	CHECK(c != NULL && strcmp(c, "just the argument") == 0);
	kfree_const(c);
	c = dup_const(GFP_KERNEL, "%s/%u", "a", 7u);
	CHECK(c != NULL && strcmp(c, "a/7") == 0);
	kfree_const(c);
	CHECK_NOT_LOG("WARNING");
	return ktest_result("kasprintf");
}
