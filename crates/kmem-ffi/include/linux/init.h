/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/init.h>. The section markers are accepted and mean nothing in userspace:
 * init code is not discarded after loading. module_init/module_exit are in <linux/module.h>. */
#ifndef _KMEM_LINUX_INIT_H
#define _KMEM_LINUX_INIT_H

#include <linux/compiler.h>

#define __init
#define __exit
#define __initdata
#define __exitdata
#define __initconst
#define __devinit
#define __devexit
#define __devinitdata
#define __exit_p(x)	x
#define __devexit_p(x)	x

typedef int (*initcall_t)(void);
typedef void (*exitcall_t)(void);

#endif
