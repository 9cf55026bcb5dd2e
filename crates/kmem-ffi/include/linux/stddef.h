/* SPDX-License-Identifier: MIT OR Apache-2.0 */
#ifndef _KMEM_LINUX_STDDEF_H
#define _KMEM_LINUX_STDDEF_H
#include <stddef.h>
#include <stdbool.h>
#endif
