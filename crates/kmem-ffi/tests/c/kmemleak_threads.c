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

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int holding;

static void *holder(void *arg)
{
	void *volatile held = kmalloc(900, GFP_KERNEL);

	(void)arg;
	pthread_mutex_lock(&lock);
	holding = 1;
	pthread_cond_broadcast(&cond);
	for (;;) /* Until the process exits; `held` stays live in this frame. */
		pthread_cond_wait(&cond, &lock);
	return (void *)held;
}

static void *dropper(void *arg)
{
	void *volatile dropped = kmalloc(400, GFP_KERNEL);

	(void)arg;
	dropped = NULL;
	return dropped;
}


int main(void)
{
	pthread_t h, d;

	if (pthread_create(&d, NULL, dropper, NULL) || pthread_join(d, NULL))
		return 1;
	if (pthread_create(&h, NULL, holder, NULL))
		return 1;
	pthread_mutex_lock(&lock);
	while (!holding)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	deep(lose_one);
	printf("kmemleak_threads: exiting with the holder asleep\n");
	fflush(stdout);
	exit(0);
}
