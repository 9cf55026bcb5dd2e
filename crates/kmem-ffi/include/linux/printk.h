/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: printk and its levels (include/linux/printk.h, kern_levels.h).
 *
 * printk formats with the C library's vsnprintf (so the kernel-only %p extensions such as
 * %pS or %pGg are not available) and hands the text to kmem_printk_text(), which parses the
 * KERN_* prefix and logs each line into the machine's log at that level (default
 * KERN_WARNING). A line without '\n' waits for a KERN_CONT continuation, as in the kernel.
 * Records are cut at 1023 bytes. */
#ifndef _KMEM_LINUX_PRINTK_H
#define _KMEM_LINUX_PRINTK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/compiler.h>

#define KERN_SOH	"\001"
#define KERN_SOH_ASCII	'\001'
#define KERN_EMERG	KERN_SOH "0"	/* system is unusable */
#define KERN_ALERT	KERN_SOH "1"	/* action must be taken immediately */
#define KERN_CRIT	KERN_SOH "2"	/* critical conditions */
#define KERN_ERR	KERN_SOH "3"	/* error conditions */
#define KERN_WARNING	KERN_SOH "4"	/* warning conditions */
#define KERN_NOTICE	KERN_SOH "5"	/* normal but significant condition */
#define KERN_INFO	KERN_SOH "6"	/* informational */
#define KERN_DEBUG	KERN_SOH "7"	/* debug-level messages */
#define KERN_DEFAULT	""		/* the default kernel loglevel */
#define KERN_CONT	KERN_SOH "c"	/* continues the previous line */

#define LOGLEVEL_SCHED		-2
#define LOGLEVEL_DEFAULT	-1
#define LOGLEVEL_EMERG		0
#define LOGLEVEL_ALERT		1
#define LOGLEVEL_CRIT		2
#define LOGLEVEL_ERR		3
#define LOGLEVEL_WARNING	4
#define LOGLEVEL_NOTICE		5
#define LOGLEVEL_INFO		6
#define LOGLEVEL_DEBUG		7

#define MESSAGE_LOGLEVEL_DEFAULT	4
#define KMEM_PRINTK_MAX			1024

/* libkmem: logs one printk's formatted text (prefixes included). */
int kmem_printk_text(const char *text, size_t len);
void dump_stack(void);

static inline int vprintk(const char *fmt, va_list args)
{
	char buf[KMEM_PRINTK_MAX];
	int n = vsnprintf(buf, sizeof(buf), fmt, args);
	if (n < 0)
		return n;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	return kmem_printk_text(buf, (size_t)n);
}

static inline __printf(1, 2) int printk(const char *fmt, ...)
{
	va_list args;
	int r;
	va_start(args, fmt);
	r = vprintk(fmt, args);
	va_end(args);
	return r;
}

#define _printk printk

static inline __printf(1, 2) int no_printk(const char *fmt, ...) { (void)fmt; return 0; }

#ifndef pr_fmt
#define pr_fmt(fmt) fmt
#endif

#define pr_emerg(fmt, ...)	printk(KERN_EMERG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_alert(fmt, ...)	printk(KERN_ALERT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_crit(fmt, ...)	printk(KERN_CRIT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_err(fmt, ...)	printk(KERN_ERR pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn(fmt, ...)	printk(KERN_WARNING pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warning		pr_warn
#define pr_notice(fmt, ...)	printk(KERN_NOTICE pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info(fmt, ...)	printk(KERN_INFO pr_fmt(fmt), ##__VA_ARGS__)
#define pr_cont(fmt, ...)	printk(KERN_CONT fmt, ##__VA_ARGS__)
/* As in the kernel without dynamic debug: pr_debug prints only when DEBUG is defined. */
#ifdef DEBUG
#define pr_debug(fmt, ...)	printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_devel(fmt, ...)	printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#else
#define pr_debug(fmt, ...)	no_printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_devel(fmt, ...)	no_printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#endif

#endif
