/* Shared by the kmemleak C tests (kmemleak.c, kmemleak_threads.c, kmemleak_exit_thread.c,
 * kmemleak_scan.c, kmemleak_malloc.c, kmemleak_wrong_free.c). */
#ifndef KMEMLEAK_TEST_H
#define KMEMLEAK_TEST_H

#include <pthread.h>
#include <linux/slab.h>

/* Runs fn 16 KiB deeper in the stack than its caller: a stale copy of an address fn dropped,
 * left in a dead slot of its frames, is then below the live stack kmemleak scans at exit (the
 * frames of exit's callers and of the exit handlers), so it cannot make a lost object look
 * referenced (a false negative the kernel's scan of a task's whole stack can have too). */
static __maybe_unused noinline void deep(void (*fn)(void))
{
	volatile char pad[16384];

	pad[0] = 0;
	fn();
	pad[sizeof(pad) - 1] = pad[0];
}

/* Allocates a kmalloc-256 object (200 bytes) and drops the only pointer to it. */
static __maybe_unused noinline void lose_one(void)
{
	void *volatile lost = kmalloc(200, GFP_KERNEL);

	lost = NULL;
	(void)lost;
}

/* A thread that allocates `size` bytes, keeps the only pointer in a local of its frame and
 * sleeps until the process exits, so only its stack refers to the object. */
static __maybe_unused pthread_mutex_t holder_lock = PTHREAD_MUTEX_INITIALIZER;
static __maybe_unused pthread_cond_t holder_cond = PTHREAD_COND_INITIALIZER;
static __maybe_unused int holder_holding;

static __maybe_unused void *holder_main(void *arg)
{
	void *volatile held = kmalloc((size_t)arg, GFP_KERNEL);

	pthread_mutex_lock(&holder_lock);
	holder_holding = 1;
	pthread_cond_broadcast(&holder_cond);
	for (;;) /* Until the process exits; `held` stays live in this frame. */
		pthread_cond_wait(&holder_cond, &holder_lock);
	return (void *)held;
}

/* Starts the holder of a `size`-byte object and returns once it holds it; 0 on success. */
static __maybe_unused int start_holder(size_t size)
{
	pthread_t h;

	if (pthread_create(&h, NULL, holder_main, (void *)size))
		return -1;
	pthread_mutex_lock(&holder_lock);
	while (!holder_holding)
		pthread_cond_wait(&holder_cond, &holder_lock);
	pthread_mutex_unlock(&holder_lock);
	return 0;
}

#endif
