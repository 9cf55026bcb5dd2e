/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/instruction_pointer.h>. _RET_IP_ is the caller's return address; _THIS_IP_ an
 * address inside the code that uses it (a local label's), which names that function as %pS
 * does. kmem's vmalloc-family macros pass _THIS_IP_ so that /proc/vmallocinfo names the C
 * function that made an area, as the kernel's vm->caller does. */
#ifndef _KMEM_LINUX_INSTRUCTION_POINTER_H
#define _KMEM_LINUX_INSTRUCTION_POINTER_H

#define _RET_IP_	((unsigned long)__builtin_return_address(0))
#define _THIS_IP_	__extension__ ({ __label__ __here; __here: (unsigned long)&&__here; })

#endif
