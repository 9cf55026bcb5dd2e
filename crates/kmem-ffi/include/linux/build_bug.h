/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/build_bug.h>: compile-time checks. BUILD_BUG_ON itself is in <linux/compiler.h>
 * (a statement: an integer constant expression is checked by _Static_assert, any other
 * condition must be folded to false by the optimizer, as in the kernel). */
#ifndef _KMEM_LINUX_BUILD_BUG_H
#define _KMEM_LINUX_BUILD_BUG_H

#include <linux/compiler.h>

/* 0 of type int when e is false; a bit-field of negative width (an error) when true. Usable
 * where an expression is needed (a static initializer, an array size). */
#define BUILD_BUG_ON_ZERO(e)		((int)(sizeof(struct { int:(-!!(e)); })))

/* BUILD_BUG_ON with the caller's message. */
#define BUILD_BUG_ON_MSG(cond, msg)	__kmem_build_bug_on(cond, msg, __UNIQUE_ID(__kmem_build_bug_on_))

/* An error unless the optimizer removes the call as dead code (a switch default it proves
 * unreachable, a branch on a constant): the kernel's BUILD_BUG. */
#define __kmem_build_bug(msg, fn) do {						\
		extern void fn(void) __attribute__((__error__(msg)));		\
		fn();								\
	} while (0)
#define BUILD_BUG()	__kmem_build_bug("BUILD_BUG failed", __UNIQUE_ID(__kmem_build_bug_))

#define BUILD_BUG_ON_NOT_POWER_OF_2(n)	BUILD_BUG_ON((n) == 0 || (((n) & ((n) - 1)) != 0))

/* Type-checks e without evaluating it or emitting code (VM_BUG_ON without CONFIG_DEBUG_VM). */
#define BUILD_BUG_ON_INVALID(e)		((void)(sizeof((long)(e))))

/* static_assert(expr) or static_assert(expr, "msg"): the kernel's one- or two-argument form
 * (C11's needs the message). It replaces <assert.h>'s macro of the same name. */
#undef static_assert
#define static_assert(expr, ...)	__kmem_static_assert(expr, ##__VA_ARGS__, #expr)
#define __kmem_static_assert(expr, msg, ...)	_Static_assert(expr, msg)

#endif
