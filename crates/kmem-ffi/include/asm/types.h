/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <asm/types.h> as the book includes it for u8..u64 and __u8..__u64. */
#ifndef _KMEM_ASM_TYPES_H
#define _KMEM_ASM_TYPES_H
#include <linux/types.h>
#endif
