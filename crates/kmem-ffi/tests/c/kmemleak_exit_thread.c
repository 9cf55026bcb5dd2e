/* kmemleak at a program's exit when `exit` is called from a thread other than main
 * (KMEM_KMEMLEAK=1): the exiting thread's live stack is scanned, and main, waiting in
 * pthread_join, is one of the other threads whose stack is read:
 * - main holds a kmalloc-1024 object only in a local: not a leak;
 * - the exiting thread loses a kmalloc-256 object: reported.
 * Expected: 1 leak, size 256. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/slab.h>
#include "kmemleak_test.h"


static void *exiter(void *arg)
{
	(void)arg;
	deep(lose_one);
	printf("kmemleak_exit_thread: exiting from a thread, main waiting\n");
	fflush(stdout);
	exit(0);
}

int main(void)
{
	void *volatile held = kmalloc(900, GFP_KERNEL);
	pthread_t t;

	if (!held || pthread_create(&t, NULL, exiter, NULL))
		return 1;
	pthread_join(t, NULL);
	return 2; /* Never reached: the thread exits the process. */
}
