/* vfree with a spin lock held is deferred (VM-7), and the deferred free completes without any
 * further vmalloc call: kswapd runs it promptly (KMEM_KSWAPD on), and with no kswapd the
 * reclaim pass of a GFP_KERNEL | __GFP_NORETRY allocation does. Run by tests/c_abi.rs on a
 * 32 MiB machine, once with kswapd and once without. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <linux/vmalloc.h>
#include <linux/gfp.h>
#include <linux/spinlock.h>
#include "ktest.h"

#define AREA_PAGES 2048

static DEFINE_SPINLOCK(lock);

/* meminfo VmallocUsed in kB, or -1. */
static long vmalloc_used_kb(void)
{
	return ktest_meminfo_kb("VmallocUsed:");
}

/* Takes pages with a reclaiming, non-retrying mask until none is left, then frees them;
 * returns how many it got. The taken pages are chained through their first word. */
static long take_every_page(void)
{
	unsigned long head = 0, page, next;
	long n = 0;

	while ((page = __get_free_pages(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, 0))) {
		*(unsigned long *)page = head;
		head = page;
		n++;
	}
	for (page = head; page; page = next) {
		next = *(unsigned long *)page;
		free_pages(page, 0);
	}
	return n;
}

int main(void)
{
	const char *kswapd = getenv("KMEM_KSWAPD");
	int worker = !(kswapd && kswapd[0] == '0');
	long baseline, after, used = -1;
	struct timespec start, now;
	void *v;

	baseline = take_every_page();
	CHECK(baseline > AREA_PAGES);
	v = vmalloc(AREA_PAGES * PAGE_SIZE);
	CHECK(v != NULL);
	CHECK_EQ_UL(vmalloc_used_kb(), AREA_PAGES * (PAGE_SIZE / 1024));

	spin_lock(&lock);
	vfree(v);
	spin_unlock(&lock);

	if (worker) {
		/* kswapd completes it on its own: poll, with a generous deadline. */
		clock_gettime(CLOCK_MONOTONIC, &start);
		do {
			used = vmalloc_used_kb();
			if (used == 0)
				break;
			usleep(5000);
			clock_gettime(CLOCK_MONOTONIC, &now);
		} while (now.tv_sec - start.tv_sec < 10);
		CHECK_EQ_UL(used, 0);
	} else {
		/* No worker: still queued until reclaim runs. */
		CHECK_EQ_UL(vmalloc_used_kb(), AREA_PAGES * (PAGE_SIZE / 1024));
	}

	after = take_every_page();
	if (after + 64 < baseline)
		fprintf(stderr, "%ld pages after the atomic vfree, %ld before\n", after, baseline);
	CHECK(after + 64 >= baseline);
	CHECK_EQ_UL(vmalloc_used_kb(), 0);
	return ktest_result("vfree_atomic");
}
