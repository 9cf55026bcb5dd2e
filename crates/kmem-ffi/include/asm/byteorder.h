/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <asm/byteorder.h>: the host is little-endian (x86-64, like the book's i386). */
#ifndef _KMEM_ASM_BYTEORDER_H
#define _KMEM_ASM_BYTEORDER_H

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kmem's headers describe a little-endian machine"
#endif
#include <linux/byteorder/little_endian.h>

#endif
