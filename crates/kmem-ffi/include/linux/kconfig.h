/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/kconfig.h>: IS_ENABLED and friends over CONFIG_* macros, as constant
 * expressions (1 or 0) usable in C conditions as well as in #if. An option is "built in" when
 * its macro is defined as 1 and "a module" when OPTION_MODULE is; kmem defines no CONFIG_*
 * macro itself, so everything is off unless the build passes -DCONFIG_FOO=1. A module's
 * option is reachable only from a module (-DMODULE). */
#ifndef _KMEM_LINUX_KCONFIG_H
#define _KMEM_LINUX_KCONFIG_H

/* Expands to 1 when `x` is a macro defined as 1, else 0: a defined option turns the
 * placeholder into "0," which shifts the 1 into the selected position. */
#define __KMEM_PLACEHOLDER_1			0,
#define __kmem_second(ignored, val, ...)	val
#define __kmem_is_one(x)			__kmem_is_one_(x)
#define __kmem_is_one_(val)			__kmem_is_one__(__KMEM_PLACEHOLDER_##val)
#define __kmem_is_one__(arg_or_junk)		__kmem_second(arg_or_junk 1, 0, 0)

#define IS_BUILTIN(option)	__kmem_is_one(option)
#define IS_MODULE(option)	__kmem_is_one(option##_MODULE)
#define IS_ENABLED(option)	(IS_BUILTIN(option) || IS_MODULE(option))
#define IS_REACHABLE(option)	(IS_BUILTIN(option) || (IS_MODULE(option) && __kmem_is_one(MODULE)))

#endif
