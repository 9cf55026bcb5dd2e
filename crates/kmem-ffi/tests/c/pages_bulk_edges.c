/* alloc_pages_bulk's counts at their edges (PA-19): 0 allocates nothing and returns 0; a count
 * no array of the caller's can have, though its bytes fit in isize (2^59 entries, 4 EiB of
 * pointers: more than any address space, so no host can reserve a copy), is reported and
 * refused before the array is read. kmem copies the array for the core, and the copy's failed
 * allocation aborted the process ("memory allocation of ... bytes failed", also for 2^40
 * entries on a host that does not overcommit); the kernel would run past the array. A
 * program of its own: the case used to abort it. */
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

int main(void)
{
	struct page *arr[4] = { NULL, NULL, NULL, NULL };
	int i;

	CHECK_EQ_UL(alloc_pages_bulk(GFP_KERNEL, 0, arr), 0);
	CHECK(arr[0] == NULL);
	CHECK_EQ_UL(alloc_pages_bulk(GFP_KERNEL, 1UL << 59, arr), 0);
	CHECK_LOG("alloc_pages_bulk() called with 576460752303423488 entries for its page array");
	CHECK(arr[0] == NULL);

	/* The same array with its real length still works. */
	CHECK_EQ_UL(alloc_pages_bulk(GFP_KERNEL, 4, arr), 4);
	for (i = 0; i < 4; i++)
		__free_page(arr[i]);
	CHECK_NOT_LOG("Bad page state");
	return ktest_result("pages_bulk_edges");
}
