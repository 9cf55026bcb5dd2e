/* kmemleak's on-demand scan while other threads run (KMEM_KMEMLEAK=1): two threads replace
 * objects in their global slots in a loop (kmalloc/kfree, vmalloc/vfree, which unmaps,
 * kmem_cache_alloc/kmem_cache_free, filling each new object; a 6 MiB vzalloc area every 32
 * rounds, which vfree unmaps at once) and a third loads and unloads a library (its writable
 * segments, roots of the scan, come and go) while main scans in a loop, and
 * now and then reads the text, for 5.5 s: past the 5 s before which no object is reported, so
 * that objects referenced all along (a chain from a global through a kmalloc, a vmalloc and a
 * cache object; each worker's local) are old enough to be reported if the scan missed them.
 * No crash, no memcheck error; exactly one object is ever reported: the kmalloc-256 one main
 * lost before the threads started. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/kmem.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "kmemleak_test.h"

#define SLOTS 48
/* Big enough that kmem's vmalloc frame cache (16 MiB on this machine) cannot keep every freed
 * one mapped: vfree unmaps most of them at once, as the kernel's does. */
#define BIG (6 << 20)

static int failed;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); failed++; } } while (0)

struct node {
	struct node *next;
	char payload[];
};

/* Not static: a static written and never read may be optimised away, and its pointers with it. */
void *slots[2][SLOTS];
void *big[2];
struct node *kept;
struct kmem_cache *cache;
static volatile int stop;
static unsigned long loads;
static char text[1 << 16];

/* Slot s holds a kmalloc object (s % 3 == 0; sizes up to kmalloc-128), a vmalloc area of one to
 * three pages (1) or a cache object (2). */
static void *alloc_kind(unsigned int s, unsigned int i, size_t *size)
{
	switch (s % 3) {
	case 0:
		*size = 16 + i % 100;
		return kmalloc(*size, GFP_KERNEL);
	case 1:
		*size = 4096 * (1 + i % 3);
		return vmalloc(*size);
	default:
		*size = 88;
		return kmem_cache_alloc(cache, GFP_KERNEL);
	}
}

static void free_kind(unsigned int s, void *p)
{
	switch (s % 3) {
	case 0:
		kfree(p);
		break;
	case 1:
		vfree(p);
		break;
	default:
		kmem_cache_free(cache, p);
	}
}

static void *worker(void *arg)
{
	int t = (int)(long)arg;
	void *volatile mine = kmalloc(600, GFP_KERNEL); /* on this thread's stack all along */
	unsigned int i;

	for (i = 0; !stop; i++) {
		unsigned int s = (i * 7 + t) % SLOTS;
		size_t size;
		void *new = alloc_kind(s, i, &size), *old = slots[t][s];

		if (!new) {
			failed++;
			break;
		}
		memset(new, (int)i, size);
		slots[t][s] = new;
		if (old)
			free_kind(s, old);
		if (i % 32 == 0) {
			old = big[t];
			big[t] = vzalloc(BIG);
			vfree(old);
		}
	}
	kfree(mine);
	vfree(big[t]);
	return NULL;
}

/* dlopen and dlclose glibc's libresolv in a loop (if it cannot be loaded, nothing). */
static void *loader(void *arg)
{
	(void)arg;
	while (!stop) {
		void *h = dlopen("libresolv.so.2", RTLD_NOW | RTLD_LOCAL);

		if (!h)
			break;
		dlclose(h);
		loads++;
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	pthread_t w[2], l;
	double start = now();
	int total = 0, scans = 0, n, t, s;

	cache = kmem_cache_create("kmemleak_race", 88, 0, 0, NULL);
	kept = kmalloc(24, GFP_KERNEL);
	kept->next = vmalloc(3 * 4096);
	kept->next->next = kmem_cache_alloc(cache, GFP_KERNEL);
	kept->next->next->next = NULL;
	deep(lose_one);
	for (t = 0; t < 2; t++)
		if (pthread_create(&w[t], NULL, worker, (void *)(long)t))
			return 1;
	if (pthread_create(&l, NULL, loader, NULL))
		return 1;
	while (now() - start < 5.5 || scans < 3) {
		n = kmem_kmemleak_scan();
		CHECK(n >= 0);
		total += n > 0 ? n : 0;
		if (++scans % 4 == 0)
			CHECK(kmem_kmemleak_read(text, sizeof(text)) >= 0);
	}
	stop = 1;
	for (t = 0; t < 2; t++)
		pthread_join(w[t], NULL);
	pthread_join(l, NULL);
	n = kmem_kmemleak_scan();
	CHECK(n >= 0);
	total += n > 0 ? n : 0;
	CHECK(total == 1);
	CHECK(kmem_kmemleak_read(text, sizeof(text)) > 0);
	CHECK(strstr(text, "unreferenced object 0x") && strstr(text, " (size 256):\n"));
	CHECK(!strstr(strstr(text, "unreferenced object 0x") + 1, "unreferenced object 0x"));

	for (t = 0; t < 2; t++)
		for (s = 0; s < SLOTS; s++)
			if (slots[t][s])
				free_kind(s, slots[t][s]);
	kmem_cache_free(cache, kept->next->next);
	vfree(kept->next);
	kfree(kept);
	kmem_kmemleak_clear();
	kmem_cache_destroy(cache);
	printf("kmemleak_scan_race: %d scans, %lu loads, %d failed\n", scans, loads, failed);
	return failed != 0;
}
