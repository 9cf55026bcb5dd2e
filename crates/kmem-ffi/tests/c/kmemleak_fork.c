/* fork while kmemleak scans (KMEM_KMEMLEAK=1): a thread scans in a loop, holding kmemleak's
 * registry of thread stacks much of the time, while main forks 100 children that exit through
 * exit(). A child inherits that registry's lock as it was at the fork; its exit must not wait
 * for it (no thread of the child will ever release it). Each child is waited for with a
 * deadline; the program fails if one hangs. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/kmem.h>
#include <linux/slab.h>

static volatile int stop;

static void *scanner(void *arg)
{
	(void)arg;
	kfree(kmalloc(16, GFP_KERNEL)); /* registers this thread too */
	while (!stop)
		kmem_kmemleak_scan();
	return NULL;
}

int main(void)
{
	void *keep = kmalloc(64, GFP_KERNEL); /* main is registered */
	pthread_t t;
	int hung = 0, forks = 0;

	if (!keep || pthread_create(&t, NULL, scanner, NULL))
		return 1;
	for (int i = 0; i < 100 && !hung; i++) {
		pid_t child = fork();
		int status;

		if (child == 0)
			exit(0);
		if (child < 0)
			break;
		forks++;
		for (int ms = 0;; ms++) {
			pid_t r = waitpid(child, &status, WNOHANG);

			if (r == child)
				break;
			if (ms == 5000) {
				kill(child, SIGKILL);
				waitpid(child, &status, 0);
				hung = 1;
				break;
			}
			usleep(1000);
		}
	}
	stop = 1;
	pthread_join(t, NULL);
	kfree(keep);
	printf("kmemleak_fork: %d forks, %s\n", forks, hung ? "a child hung in exit" : "0 failed");
	return hung;
}
