/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/cleanup.h>, scope-based freeing (6.5+) as driver code writes it:
 *
 *	struct foo *p __free(kfree) = kzalloc(sizeof(*p), GFP_KERNEL);
 *	if (!p)
 *		return -ENOMEM;
 *	...
 *	return_ptr(p);		(or: q = no_free_ptr(p);)
 *
 * A variable declared with __free(name) is handed to the freeing statement of
 * DEFINE_FREE(name, type, statement) when it goes out of scope, its value named _T there.
 * no_free_ptr(p) takes the pointer out (p becomes NULL, so nothing is freed) and must be used;
 * return_ptr(p) returns it; retain_and_null_ptr(p) only empties p. <linux/slab.h> defines the
 * kfree and kvfree classes, <linux/vmalloc.h> vfree. GNU C (the cleanup attribute,
 * __auto_type, statement expressions), as the kernel's; unused, the header is plain ISO C. */
#ifndef _KMEM_LINUX_CLEANUP_H
#define _KMEM_LINUX_CLEANUP_H

#include <stddef.h>
#include <linux/compiler.h>

#define __cleanup(func)		__attribute__((__cleanup__(func)))

/* The function the cleanup attribute calls with the variable's address. */
#define DEFINE_FREE(_name, _type, _free)						\
	static __always_inline void __free_##_name(void *__kmem_var)			\
	{										\
		_type _T = *(_type *)__kmem_var;					\
		_free;									\
	}

#define __free(_name)		__cleanup(__free_##_name)

/* The value of `p`, leaving `nullvalue` in it. */
#define __get_and_null(p, nullvalue) ({							\
		__auto_type __kmem_where = &(p);					\
		__auto_type __kmem_value = *__kmem_where;				\
		*__kmem_where = (nullvalue);						\
		__kmem_value;								\
	})

static inline __must_check const volatile void *__must_check_fn(const volatile void *val)
{
	return val;
}

#define no_free_ptr(p)								\
	((__typeof__(p))__must_check_fn((const volatile void *)__get_and_null(p, NULL)))
#define return_ptr(p)		return no_free_ptr(p)
#define retain_and_null_ptr(p)	((void)__get_and_null(p, NULL))

#endif
