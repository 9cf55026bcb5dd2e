/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: WARN_ON, WARN, their _ONCE forms and BUG_ON (include/asm-generic/bug.h), reported through printk.
 * BUG() aborts the process after its report, as the kernel oopses (libkmem's kmem_bug). */
#ifndef _KMEM_LINUX_BUG_H
#define _KMEM_LINUX_BUG_H

#include <stdlib.h>
#include <linux/compiler.h>
#include <linux/printk.h>

#define __WARN_printf(fmt, ...) do {							\
		printk(KERN_WARNING "WARNING: at %s:%d %s()\n", __FILE__, __LINE__, __func__);	\
		printk(KERN_WARNING fmt, ##__VA_ARGS__);					\
		dump_stack();								\
	} while (0)

#define WARN_ON(condition) ({								\
		int __ret_warn_on = !!(condition);					\
		if (unlikely(__ret_warn_on)) {						\
			printk(KERN_WARNING "WARNING: at %s:%d %s()\n", __FILE__, __LINE__, __func__);	\
			dump_stack();							\
		}									\
		unlikely(__ret_warn_on);						\
	})

#define WARN(condition, fmt, ...) ({							\
		int __ret_warn_on = !!(condition);					\
		if (unlikely(__ret_warn_on))						\
			__WARN_printf(fmt, ##__VA_ARGS__);				\
		unlikely(__ret_warn_on);						\
	})

#define WARN_ON_ONCE(condition) ({							\
		static bool __warned;							\
		int __ret_warn_once = !!(condition);					\
		if (unlikely(__ret_warn_once && !__warned)) {				\
			__warned = true;						\
			WARN_ON(1);							\
		}									\
		unlikely(__ret_warn_once);						\
	})

#define WARN_ONCE(condition, fmt, ...) ({						\
		static bool __warned;							\
		int __ret_warn_once = !!(condition);					\
		if (unlikely(__ret_warn_once && !__warned)) {				\
			__warned = true;						\
			WARN(1, fmt, ##__VA_ARGS__);					\
		}									\
		unlikely(__ret_warn_once);						\
	})

/* libkmem: "kernel BUG at <file>:<line>!" and the stack in the log (the line on stderr too),
 * then abort(); under `kmem insmod` the log is printed first. */
void kmem_bug(const char *file, int line) __attribute__((__noreturn__, __cold__));
#define BUG()		kmem_bug(__FILE__, __LINE__)

#define BUG_ON(condition) do { if (unlikely(condition)) BUG(); } while (0)

#endif
