/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: the compiler attributes kernel-style code uses (linux/compiler.h, compiler_types.h). */
#ifndef _KMEM_LINUX_COMPILER_H
#define _KMEM_LINUX_COMPILER_H

#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)

#undef __always_inline	/* also defined by glibc's <sys/cdefs.h>, the same way */
#define __always_inline		inline __attribute__((__always_inline__))
#define noinline		__attribute__((__noinline__))
#define __maybe_unused		__attribute__((__unused__))
#define __always_unused		__attribute__((__unused__))
#define __used			__attribute__((__used__))
#define __cold			__attribute__((__cold__))
#define __section(s)		__attribute__((__section__(s)))
#define __aligned(x)		__attribute__((__aligned__(x)))
#define __packed		__attribute__((__packed__))
#define __printf(a, b)		__attribute__((__format__(printf, a, b)))
#define __must_check		__attribute__((__warn_unused_result__))
#define __noreturn		__attribute__((__noreturn__))
#define __weak			__attribute__((__weak__))
#define __pure			__attribute__((__pure__))
#define __malloc		__attribute__((__malloc__))

/* Sparse annotations: meaningful to the kernel's checker only. */
#define __bitwise
#define __force
#define __user
#define __kernel
#define __iomem
#define __rcu
#define __percpu

#define barrier()		__asm__ __volatile__("" : : : "memory")
/* READ_ONCE(x): one volatile load, as a value of x's unqualified type (the kernel wraps its
 * __READ_ONCE in a statement expression, so typeof(READ_ONCE(x)) is not const volatile and
 * the result is no lvalue). */
#define READ_ONCE(x)		(__extension__ ({ *(const volatile __typeof__(x) *)&(x); }))
#define WRITE_ONCE(x, val)	do { *(volatile __typeof__(x) *)&(x) = (val); } while (0)

#define ___PASTE(a, b)		a##b
#define __PASTE(a, b)		___PASTE(a, b)
#define __UNIQUE_ID(prefix)	__PASTE(__PASTE(__UNIQUE_ID_, prefix), __COUNTER__)

/* ISO C's __VA_ARGS__ rather than GNU's named `x...`: clean under -pedantic. */
#define __stringify_1(...)	#__VA_ARGS__
#define __stringify(...)	__stringify_1(__VA_ARGS__)

/* compiler_types.h: whether two expressions have the same type. */
#define __same_type(a, b)	__builtin_types_compatible_p(__typeof__(a), __typeof__(b))

/* BUILD_BUG_ON(cond): a statement, as the kernel's (build_bug.h's compiletime_assert, a
 * do-while), so it may be the body of an if or follow a label. An integer constant expression
 * is checked by _Static_assert at every -O level; any other condition, as in the kernel, must
 * be folded to false by the optimizer (a const variable, an inline function's constant
 * argument), else the call to a function declared with the error attribute stays and the
 * compiler reports "BUILD_BUG_ON failed: cond". */
#define __kmem_build_bug_on(cond, msg, fn) do {					\
		extern void fn(void) __attribute__((__error__(msg)));		\
		_Static_assert(!__builtin_choose_expr(__is_constexpr(cond), (cond), 0), msg); \
		if (__builtin_choose_expr(__is_constexpr(cond), 0, (cond)))	\
			fn();							\
	} while (0)
#define BUILD_BUG_ON(cond)							\
	__kmem_build_bug_on(cond, "BUILD_BUG_ON failed: " #cond, __UNIQUE_ID(__kmem_build_bug_on_))

/* compiler_attributes.h: `fallthrough;` between switch cases (what -Wimplicit-fallthrough
 * looks for), and __counted_by(member) on a flexible array, the bound struct_size() allocations
 * give it: the compiler's attribute where it has one (GCC 15, Clang 18), else nothing, as in the
 * kernel. */
#define fallthrough		__attribute__((__fallthrough__))
#if defined(__has_attribute)
#if __has_attribute(__counted_by__)
#define __counted_by(member)	__attribute__((__counted_by__(member)))
#endif
#endif
#ifndef __counted_by
#define __counted_by(member)
#endif

/* Whether `x` is an integer constant expression, as one (the kernel's __is_constexpr): only
 * then is the (void *) cast of x * 0 a null pointer constant, which gives the conditional the
 * type int * rather than void *. `x` is not evaluated. */
#define __is_constexpr(x)						\
	(sizeof(int) == sizeof(*(8 ? ((void *)((long)(x) * 0l)) : (int *)8)))

/* Whether an arithmetic type is signed: a constant expression for an integer type. */
#define is_signed_type(type)	(((type)(-1)) < (type)1)
#define is_unsigned_type(type)	(!is_signed_type(type))

/* Argument counting for the seeds' legacy call forms (1 to 8 arguments). */
#define __KMEM_NARGS(...)	__KMEM_NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define __KMEM_NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N

#endif
