/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: the kernel's fixed-size types (linux/types.h, asm-generic/int-ll64.h). */
#ifndef _KMEM_LINUX_TYPES_H
#define _KMEM_LINUX_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/compiler.h>
#include <linux/stddef.h>	/* sizeof_field, offsetofend, as through the kernel's uapi types */
/* The uapi types (__kernel_long_t, __kernel_loff_t, ...) as the uapi <linux/types.h> has
 * them, for the system's uapi headers that include <linux/types.h> and get kmem's
 * (<linux/sysinfo.h>). kmem has no asm/posix_types.h: this is the system's. */
#include <asm/posix_types.h>

typedef int8_t		__s8;
typedef uint8_t		__u8;
typedef int16_t		__s16;
typedef uint16_t	__u16;
typedef int32_t		__s32;
typedef uint32_t	__u32;
/* long long on every arch, as asm-generic/int-ll64.h: %llu/%lld print them everywhere. */
__extension__ typedef signed long long	__s64;
__extension__ typedef unsigned long long	__u64;

typedef __s8		s8;
typedef __u8		u8;
typedef __s16		s16;
typedef __u16		u16;
typedef __s32		s32;
typedef __u32		u32;
typedef __s64		s64;
typedef __u64		u64;

typedef __u16 __bitwise	__le16;
typedef __u16 __bitwise	__be16;
typedef __u32 __bitwise	__le32;
typedef __u32 __bitwise	__be32;
typedef __u64 __bitwise	__le64;
typedef __u64 __bitwise	__be64;

/* gfp_t: allocation flags (linux/gfp_types.h). */
typedef unsigned int __bitwise gfp_t;
/* slab_flags_t: kmem_cache flags (linux/slab.h). */
typedef unsigned int __bitwise slab_flags_t;
/* fmode_t, as modules pass it around. */
typedef unsigned int __bitwise fmode_t;

typedef u64		phys_addr_t;
typedef u64		dma_addr_t;
typedef phys_addr_t	resource_size_t;
typedef unsigned long	pgoff_t;

typedef struct {
	int counter;
} atomic_t;

typedef struct {
	long counter;
} atomic_long_t;

struct list_head {
	struct list_head *next, *prev;
};

/* The hash-bucket list (<linux/list.h>'s hlist): a head of one pointer; each node's pprev
 * points at whatever points at the node (the head's first or the previous node's next). */
struct hlist_head {
	struct hlist_node *first;
};

struct hlist_node {
	struct hlist_node *next, **pprev;
};

#endif
