/* kmemleak's scan thread (KMEM_KMEMLEAK=1 KMEM_KMEMLEAK_SCAN=1, the kernel's `echo scan=1`): a
 * lost object is counted and logged by the thread once it is 5 s old, with no
 * kmem_kmemleak_scan call; after kmem_kmemleak_set_scan(0) (`echo scan=off`) the thread
 * counts nothing more: an object lost then is still uncounted 6.5 s later, and the next
 * on-demand scan counts it. Without KMEM_KMEMLEAK, kmem_kmemleak_set_scan returns -EPERM.
 * Every lost object is reported again at exit (the driver checks: 2 leaks). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <linux/kmem.h>
#include <linux/slab.h>
#include "kmemleak_test.h"

static int failed;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); failed++; } } while (0)

static char text[1 << 16];

/* Allocates a kmalloc-(size rounded up) object in a thread that drops it and exits: no stale
 * copy of its address is left where a scan looks (a scan reads the whole stack of every other
 * thread that allocated through kmem, dead frames included, as the kernel scans a task's whole
 * stack; an exited thread's is not read). */
static void *lose(void *size)
{
	/* Zeroed: its checksum is the one kept (0), so the first scan that finds it old counts it. */
	void *volatile lost = kzalloc((size_t)size, GFP_KERNEL);

	lost = NULL;
	(void)lost;
	return NULL;
}

static void lose_in_thread(size_t size)
{
	pthread_t t;

	CHECK(pthread_create(&t, NULL, lose, (void *)size) == 0);
	CHECK(pthread_join(t, NULL) == 0);
}

static int log_count(const char *needle)
{
	int n = 0;

	kmem_dmesg_read(text, sizeof(text), KMEM_DMESG_NOTIME);
	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	const char *line = "kmemleak: 1 new suspected memory leaks";

	if (argc > 1 && !strcmp(argv[1], "off")) {
		CHECK(kmem_kmemleak_set_scan(1) == -EPERM);
		printf("kmemleak_periodic: off, %d failed\n", failed);
		return failed != 0;
	}
	lose_in_thread(200); /* kmalloc-256 */
	/* The thread scans every second: the object is counted once it is 5 s old. */
	for (int i = 0; i < 150 && log_count(line) == 0; i++)
		sleep_ms(100);
	CHECK(log_count(line) == 1);
	kmem_kmemleak_read(text, sizeof(text));
	CHECK(strstr(text, "(size 256)") != NULL);

	CHECK(kmem_kmemleak_set_scan(0) == 0);
	lose_in_thread(400); /* kmalloc-512 */
	sleep_ms(6500);
	CHECK(log_count(line) == 1);
	kmem_kmemleak_read(text, sizeof(text));
	CHECK(strstr(text, "(size 512)") == NULL);
	CHECK(kmem_kmemleak_scan() == 1);
	CHECK(log_count(line) == 2);
	printf("kmemleak_periodic: %d failed\n", failed);
	return failed != 0;
}
