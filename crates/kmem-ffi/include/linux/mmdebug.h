/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/mmdebug.h>: the mm debugging assertions, as with CONFIG_DEBUG_VM=y: the
 * conditions are evaluated and a true one is reported as BUG_ON / WARN_ON report it (kmem is a
 * debugging machine; the kernel without CONFIG_DEBUG_VM only type-checks them). The page
 * forms do not dump the page first. */
#ifndef _KMEM_LINUX_MMDEBUG_H
#define _KMEM_LINUX_MMDEBUG_H

#include <linux/bug.h>
#include <linux/build_bug.h>

#define VM_BUG_ON(cond)				BUG_ON(cond)
#define VM_BUG_ON_PAGE(cond, page)		BUG_ON(cond)
#define VM_BUG_ON_FOLIO(cond, folio)		BUG_ON(cond)
#define VM_WARN_ON(cond)			(void)WARN_ON(cond)
#define VM_WARN_ON_ONCE(cond)			(void)WARN_ON_ONCE(cond)
#define VM_WARN_ON_ONCE_PAGE(cond, page)	WARN_ON_ONCE(cond)
#define VM_WARN_ONCE(cond, format...)		(void)WARN_ONCE(cond, format)
#define VM_WARN(cond, format...)		(void)WARN(cond, format)

#endif
