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
#include <linux/ratelimit_types.h>

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

/* As the kernel's: the format is checked against the arguments, which are never evaluated
 * (a statement expression around if (0)); the value is 0. */
#define no_printk(fmt, ...) __extension__ ({					\
		if (0)								\
			printk(fmt, ##__VA_ARGS__);				\
		0;								\
	})

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


/* printk_ratelimit(): at most 10 calls per 5 s over the whole process (printk_ratelimit_state);
 * printk_timed_ratelimit(): one per interval_msecs for the caller's own timestamp. */
int __printk_ratelimit(const char *func);
#define printk_ratelimit() __printk_ratelimit(__func__)
static inline bool printk_timed_ratelimit(unsigned long *caller_jiffies, unsigned int interval_msecs)
{
	unsigned long now = jiffies, elapsed = now - *caller_jiffies;

	if (*caller_jiffies && elapsed <= msecs_to_jiffies(interval_msecs))
		return false;
	*caller_jiffies = now;
	return true;
}

/* The _once forms print the first time the statement runs (DO_ONCE_LITE) and evaluate to
 * true; the _ratelimited forms keep a static DEFAULT_RATELIMIT_INTERVAL/BURST state each. */
#define printk_once(fmt, ...) ({							\
		static bool __already_done;						\
		if (unlikely(!__already_done)) {					\
			__already_done = true;						\
			printk(fmt, ##__VA_ARGS__);					\
		}									\
		true;									\
	})
#define printk_deferred_once(fmt, ...)	printk_once(fmt, ##__VA_ARGS__)
#define printk_deferred(fmt, ...)	printk(fmt, ##__VA_ARGS__)

#define printk_ratelimited(fmt, ...) ({						\
		static DEFINE_RATELIMIT_STATE(_rs, DEFAULT_RATELIMIT_INTERVAL,		\
					      DEFAULT_RATELIMIT_BURST);			\
		if (__ratelimit(&_rs))							\
			printk(fmt, ##__VA_ARGS__);					\
	})

#define pr_emerg_once(fmt, ...)		printk_once(KERN_EMERG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_alert_once(fmt, ...)		printk_once(KERN_ALERT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_crit_once(fmt, ...)		printk_once(KERN_CRIT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_err_once(fmt, ...)		printk_once(KERN_ERR pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn_once(fmt, ...)		printk_once(KERN_WARNING pr_fmt(fmt), ##__VA_ARGS__)
#define pr_notice_once(fmt, ...)	printk_once(KERN_NOTICE pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info_once(fmt, ...)		printk_once(KERN_INFO pr_fmt(fmt), ##__VA_ARGS__)
#define pr_cont_once(fmt, ...)		printk_once(KERN_CONT pr_fmt(fmt), ##__VA_ARGS__)

#define pr_emerg_ratelimited(fmt, ...)	printk_ratelimited(KERN_EMERG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_alert_ratelimited(fmt, ...)	printk_ratelimited(KERN_ALERT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_crit_ratelimited(fmt, ...)	printk_ratelimited(KERN_CRIT pr_fmt(fmt), ##__VA_ARGS__)
#define pr_err_ratelimited(fmt, ...)	printk_ratelimited(KERN_ERR pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn_ratelimited(fmt, ...)	printk_ratelimited(KERN_WARNING pr_fmt(fmt), ##__VA_ARGS__)
#define pr_notice_ratelimited(fmt, ...)	printk_ratelimited(KERN_NOTICE pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info_ratelimited(fmt, ...)	printk_ratelimited(KERN_INFO pr_fmt(fmt), ##__VA_ARGS__)

#ifdef DEBUG
#define pr_debug_once(fmt, ...)		printk_once(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_debug_ratelimited(fmt, ...)	printk_ratelimited(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#else
#define pr_debug_once(fmt, ...)		no_printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#define pr_debug_ratelimited(fmt, ...)	no_printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__)
#endif

#endif
