/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/sprintf.h>: the allocating printf forms of lib/kasprintf.c, which the kernel's
 * <linux/kernel.h> brings along. kasprintf(gfp, fmt, ...) and kvasprintf(gfp, fmt, ap) return a
 * kmalloc object holding the formatted text and its NUL (exactly that many bytes asked of
 * kmalloc), to be freed with kfree; NULL when kmalloc fails (its own report, or none with
 * __GFP_NOWARN) or the C library cannot format the text. kvasprintf_const copies a format
 * without conversions, or the string of a plain "%s", with kstrdup_const (free it with
 * kfree_const). Formatting is the C library's vsnprintf, as printk's: none of the kernel's %p
 * extensions. */
#ifndef _KMEM_LINUX_SPRINTF_H
#define _KMEM_LINUX_SPRINTF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/compiler.h>
#include <linux/types.h>

/* As <linux/slab.h> and <linux/string.h> declare them (libkmem's exports). */
void *kmalloc(size_t size, gfp_t flags) __malloc;
const char *kstrdup_const(const char *s, gfp_t gfp);

static inline __printf(2, 0) char *kvasprintf(gfp_t gfp, const char *fmt, va_list ap)
{
	va_list measure;
	char *buf;
	int len;

	va_copy(measure, ap);
	len = vsnprintf(NULL, 0, fmt, measure);
	va_end(measure);
	if (len < 0)
		return NULL;
	buf = (char *)kmalloc((size_t)len + 1, gfp);
	if (buf)
		vsnprintf(buf, (size_t)len + 1, fmt, ap);
	return buf;
}

static inline __printf(2, 3) char *kasprintf(gfp_t gfp, const char *fmt, ...)
{
	va_list ap;
	char *buf;

	va_start(ap, fmt);
	buf = kvasprintf(gfp, fmt, ap);
	va_end(ap);
	return buf;
}

static inline __printf(2, 0) const char *kvasprintf_const(gfp_t gfp, const char *fmt, va_list ap)
{
	if (!strchr(fmt, '%'))
		return kstrdup_const(fmt, gfp);
	if (strcmp(fmt, "%s") == 0)
		return kstrdup_const(va_arg(ap, const char *), gfp);
	return kvasprintf(gfp, fmt, ap);
}

#endif
