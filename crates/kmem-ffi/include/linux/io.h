/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#ifndef _KMEM_LINUX_IO_H
#define _KMEM_LINUX_IO_H
#include <asm/io.h>
#endif
