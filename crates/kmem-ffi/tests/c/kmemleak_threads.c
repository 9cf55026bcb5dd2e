/* kmemleak at a program's exit scans the stacks of the other threads that allocated through the
 * C ABI, as the kernel's scans every task's stack (KMEM_KMEMLEAK=1):
 * - a thread still sleeping when main exits holds a kmalloc-1024 object only in a local: not a
 *   leak;
 * - a thread that allocated a kmalloc-512 object, dropped it and exited: its stack is gone
 *   (unregistered at its exit), so the object is reported;
 * - main loses a kmalloc-256 object: reported.
 * Expected: 2 leaks, sizes 512 then 256 (allocation order). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/slab.h>
#include "kmemleak_test.h"

static void *dropper(void *arg)
{
	void *volatile dropped = kmalloc(400, GFP_KERNEL);

	(void)arg;
	dropped = NULL;
	return dropped;
}


int main(void)
{
	pthread_t d;

	if (pthread_create(&d, NULL, dropper, NULL) || pthread_join(d, NULL))
		return 1;
	if (start_holder(900))
		return 1;
	deep(lose_one);
	printf("kmemleak_threads: exiting with the holder asleep\n");
	fflush(stdout);
	exit(0);
}
