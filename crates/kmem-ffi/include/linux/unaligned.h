/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#ifndef _KMEM_LINUX_UNALIGNED_H
#define _KMEM_LINUX_UNALIGNED_H
#include <asm/unaligned.h>
#endif
