/* Shared by the kmemleak C tests (kmemleak.c, kmemleak_threads.c, kmemleak_exit_thread.c). */
#ifndef KMEMLEAK_TEST_H
#define KMEMLEAK_TEST_H

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

#endif
