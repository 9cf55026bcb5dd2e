/* A process forked from one that uses kmem: the machine's memory is a shared mapping of its
 * memfd, so the child must not change it under the parent. Every kmem call in the child fails
 * (allocations return NULL, frees do nothing), with one message on stderr; the parent's
 * objects keep their contents, are not handed out again, and its allocator goes on as before,
 * also after the child has exited through exit(): its thread-exit hand-back of the CPU slot
 * it inherited, which would drain the parent thread's per-CPU lists from under it (and leave
 * the parent's page allocator failing), is dropped. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/gfp.h>
#include "ktest.h"

int main(void)
{
	char *a = kmalloc(64, GFP_KERNEL);
	char *v = vmalloc(8192);
	int status = -1;
	pid_t child;

	CHECK(a && v);
	memset(a, 'A', 64);
	memset(v, 'V', 8192);
	/* Pages on this thread's per-CPU lists: the child's exit must not drain them. */
	for (int i = 0; i < 8; i++)
		free_page(__get_free_pages(GFP_KERNEL, 0));
	fflush(NULL);
	child = fork();
	if (child == 0) {
		int bad = 0;

		bad |= kmalloc(64, GFP_KERNEL) != NULL;
		bad |= vmalloc(4096) != NULL;
		bad |= __get_free_pages(GFP_KERNEL, 0) != 0;
		kfree(a);	/* would hand the parent's object out again */
		vfree(v);	/* would unmap the parent's area */
		bad |= kzalloc(32, GFP_KERNEL) != NULL;
		exit(bad ? 2 : 0);
	}
	CHECK(child > 0);
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* The parent's objects are intact and still its own. */
	for (int i = 0; i < 64; i++)
		CHECK(a[i] == 'A');
	for (int i = 0; i < 8192; i += 512)
		CHECK(v[i] == 'V');
	for (int i = 0; i < 100; i++) {
		char *b = kmalloc(64, GFP_KERNEL);

		CHECK(b && b != a);
		kfree(b);
	}
	/* The parent's page allocator works on (no page is handed out twice, none is reported). */
	{
		static unsigned long pages[512];

		for (int round = 0; round < 4; round++) {
			for (int i = 0; i < 512; i++) {
				pages[i] = __get_free_pages(GFP_KERNEL, i % 3);
				CHECK(pages[i] != 0);
				if (pages[i])
					memset((void *)pages[i], i & 0xff, 4096 << (i % 3));
			}
			for (int i = 0; i < 512; i++) {
				if (pages[i])
					CHECK(*(unsigned char *)(pages[i] + (4096 << (i % 3)) - 1) == (i & 0xff));
				free_pages(pages[i], i % 3);
			}
		}
		CHECK_NOT_LOG("BUG");
	}
	kfree(a);
	vfree(v);
	return ktest_result("fork_child");
}
