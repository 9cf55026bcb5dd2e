/* Allocation scopes of the current task (the kernel's include/linux/sched/mm.h): inside a
 * memalloc_noio_save() / memalloc_noio_restore() pair every allocation of this thread loses
 * __GFP_IO and __GFP_FS, inside memalloc_nofs_save() it loses __GFP_FS (GFP-7); nest them
 * as the kernel requires (the last saved is the first restored). memalloc_noreclaim_save()
 * marks the thread as reclaiming (PF_MEMALLOC: the reserves, no recursion into reclaim). */
#ifndef _LINUX_SCHED_MM_H
#define _LINUX_SCHED_MM_H

#include <linux/gfp_types.h>

#define PF_MEMALLOC		0x00000800
#define PF_MEMALLOC_NOFS	0x00040000
#define PF_MEMALLOC_NOIO	0x00080000

unsigned int memalloc_noio_save(void);
void memalloc_noio_restore(unsigned int flags);
unsigned int memalloc_nofs_save(void);
void memalloc_nofs_restore(unsigned int flags);
unsigned int memalloc_noreclaim_save(void);
void memalloc_noreclaim_restore(unsigned int flags);
/* flags as this thread's scopes leave them. */
gfp_t current_gfp_context(gfp_t flags);

#endif
