/* The allocation scopes of linux/sched/mm.h (GFP-7): memalloc_noio/nofs_save and _restore
 * nest, current_gfp_context shows the mask every allocation of the thread gets, and
 * memalloc_noreclaim_save saves and restores PF_MEMALLOC. */
#include <linux/gfp.h>
#include <linux/slab.h>
#include <linux/sched/mm.h>
#include "ktest.h"

int main(void)
{
	unsigned int noio, nofs, inner, reclaim, again;
	void *p;

	CHECK_EQ_UL(current_gfp_context(GFP_KERNEL), GFP_KERNEL);

	nofs = memalloc_nofs_save();
	CHECK_EQ_UL(nofs, 0);
	CHECK_EQ_UL(current_gfp_context(GFP_KERNEL), GFP_NOFS);

	noio = memalloc_noio_save();
	CHECK_EQ_UL(noio, 0);
	CHECK_EQ_UL(current_gfp_context(GFP_KERNEL), GFP_NOIO);
	inner = memalloc_noio_save();
	CHECK_EQ_UL(inner, PF_MEMALLOC_NOIO);
	/* Allocations still work inside the scope (the mask only loses IO and FS). */
	p = kmalloc(64, GFP_KERNEL);
	CHECK(p != NULL);
	kfree(p);
	memalloc_noio_restore(inner);
	CHECK_EQ_UL(current_gfp_context(GFP_KERNEL), GFP_NOIO);
	memalloc_noio_restore(noio);
	CHECK_EQ_UL(current_gfp_context(GFP_KERNEL), GFP_NOFS);
	/* A mask without the bits is left alone; GFP_ATOMIC has neither. */
	CHECK_EQ_UL(current_gfp_context(GFP_ATOMIC), GFP_ATOMIC);

	memalloc_nofs_restore(nofs);
	CHECK_EQ_UL(current_gfp_context(GFP_KERNEL), GFP_KERNEL);

	reclaim = memalloc_noreclaim_save();
	CHECK_EQ_UL(reclaim, 0);
	again = memalloc_noreclaim_save();
	CHECK_EQ_UL(again, PF_MEMALLOC);
	memalloc_noreclaim_restore(again);
	memalloc_noreclaim_restore(reclaim);
	CHECK_EQ_UL(memalloc_noreclaim_save(), 0);
	memalloc_noreclaim_restore(0);

	return ktest_result("scopes");
}
