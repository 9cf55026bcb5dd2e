/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#ifndef _KMEM_LINUX_STDDEF_H
#define _KMEM_LINUX_STDDEF_H
/* kmem: <linux/stddef.h> (and the uapi one's flexible-array helper), which the kernel's
 * <linux/types.h> brings along: the field size and end offset of a struct member. */
#include <stddef.h>
#include <stdbool.h>

#define sizeof_field(TYPE, MEMBER)	sizeof((((TYPE *)0)->MEMBER))
#define offsetofend(TYPE, MEMBER)	(offsetof(TYPE, MEMBER) + sizeof_field(TYPE, MEMBER))
/* A flexible array where C does not allow one alone (in a union, or as the only member). */
#define DECLARE_FLEX_ARRAY(TYPE, NAME)	struct { struct { } __empty_ ## NAME; TYPE NAME[]; }
#endif
