/* kmemleak's on-demand scan (KMEM_KMEMLEAK=1): kmem_kmemleak_scan, kmem_kmemleak_read and
 * kmem_kmemleak_clear, the kernel's `echo scan`, `cat` and `echo clear` on
 * /sys/kernel/debug/kmemleak. Sleeps 5.2 s once: objects younger than 5 s are never reported.
 * - Referenced all along, never reported: a global's object, a chain of two objects from a
 *   global, main's local (the scanning thread's live frames), a sleeping thread's local.
 * - Lost (a kmalloc-256 object with a marker, dropped in a frame 16 KiB deeper): not reported
 *   while young, even by a second scan (its contents are unchanged by then, so only its age
 *   keeps it out); counted by the first scan past 5 s, logged, then not counted again, and
 *   shown by kmem_kmemleak_read in the report format.
 * - Late (a kmalloc-32 object, old, whose global is cleared after the sleep): the first scan
 *   finds its contents changed since the checksum it kept (0), so it is gray for that scan;
 *   the next counts it. Referenced again it leaves the text, not counted again when lost again
 *   (the mark stays, as the kernel's OBJECT_REPORTED); freed, it is gone from the text.
 * - kmem_kmemleak_clear empties the text and no scan counts the lost object again, nor the
 *   exit report (which the test driver checks is empty).
 * Without KMEM_KMEMLEAK: kmem_kmemleak_scan returns -EPERM, the text is empty. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/kmem.h>
#include <linux/slab.h>
#include "kmemleak_test.h"

#define HIDE 0xa5a5a5a5a5a5a5a5ul

static int failed;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); failed++; } } while (0)

struct node {
	struct node *next;
	char payload[];
};

/* Not static: a static written and never read may be optimised away, and its pointer with it. */
void *global_obj;
struct node *chain;
void *late_ref;
unsigned long late_hidden; /* late's address, hidden from the scan */

static char text[1 << 16];

static noinline void lose_marked(void)
{
	char *volatile lost = kmalloc(200, GFP_KERNEL); /* kmalloc-256 */

	memcpy((char *)lost, "kmemleak-scan-lost", 18);
	/* The stores are kept: gcc may drop stores to memory it sees no one read. */
	__asm__ __volatile__("" : : "r"(lost) : "memory");
	lost = NULL;
	(void)lost;
}

static noinline void make_late(void)
{
	char *p = kmalloc(20, GFP_KERNEL); /* kmalloc-32 */

	strcpy(p, "late-object");
	__asm__ __volatile__("" : : "r"(p) : "memory");
	late_ref = p;
	late_hidden = (unsigned long)p ^ HIDE;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static ssize_t read_text(void)
{
	ssize_t n = kmem_kmemleak_read(text, sizeof(text));

	CHECK(n >= 0 && (size_t)n < sizeof(text));
	return n;
}

static int kmemleak_off(void)
{
	CHECK(kmem_kmemleak_scan() == -EPERM);
	CHECK(kmem_kmemleak_read(text, sizeof(text)) == 0 && text[0] == 0);
	kmem_kmemleak_clear();
	printf("kmemleak_scan: off, %d failed\n", failed);
	return failed != 0;
}

int main(void)
{
	void *volatile local_obj;
	struct timespec nap = { 5, 200 * 1000 * 1000 };
	static char log[1 << 16];

	if (!getenv("KMEM_KMEMLEAK"))
		return kmemleak_off();
	global_obj = kmalloc(3000, GFP_KERNEL); /* kmalloc-4096 */
	chain = kmalloc(40, GFP_KERNEL); /* kmalloc-64 */
	chain->next = kmalloc(100, GFP_KERNEL); /* kmalloc-128 */
	chain->next->next = NULL;
	local_obj = kmalloc(1000, GFP_KERNEL); /* kmalloc-1024 */
	make_late();
	if (start_holder(1500)) /* kmalloc-2048 */
		return 1;
	deep(lose_marked);

	/* Young: never reported (the second scan finds the lost object's contents unchanged). */
	CHECK(kmem_kmemleak_scan() == 0);
	CHECK(kmem_kmemleak_scan() == 0);
	CHECK(read_text() == 0);
	nanosleep(&nap, NULL);

	kmem_dmesg_clear();
	CHECK(kmem_kmemleak_scan() == 1);
	CHECK(kmem_dmesg_read(log, sizeof(log), KMEM_DMESG_NOTIME) > 0);
	CHECK(strstr(log, "kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"));
	CHECK(kmem_kmemleak_scan() == 0);
	read_text();
	CHECK(count(text, "unreferenced object 0x") == 1);
	CHECK(strstr(text, " (size 256):\n  comm \""));
	CHECK(strstr(text, "  hex dump (first 32 bytes):\n    6b 6d 65 6d 6c 65 61 6b"));
	CHECK(strstr(text, "kmemleak-scan-lo\n"));
	CHECK(strstr(text, "  backtrace (crc "));
	if (getenv("KMEMLEAK_SCAN_SHOW"))
		fputs(text, stderr);

	/* Late: lost now, gray for one scan (its contents changed since the checksum kept). */
	late_ref = NULL;
	CHECK(kmem_kmemleak_scan() == 0);
	CHECK(kmem_kmemleak_scan() == 1);
	read_text();
	CHECK(count(text, "unreferenced object 0x") == 2);
	CHECK(strstr(text, " (size 32):\n") && strstr(text, "late-object"));
	CHECK(strstr(text, " (size 32):\n") < strstr(text, " (size 256):\n")); /* allocation order */
	/* Referenced again: out of the text; lost again: back, not counted again. */
	late_ref = (void *)(late_hidden ^ HIDE);
	CHECK(kmem_kmemleak_scan() == 0);
	read_text();
	CHECK(count(text, "unreferenced object 0x") == 1 && !strstr(text, "late-object"));
	late_ref = NULL;
	CHECK(kmem_kmemleak_scan() == 0);
	read_text();
	CHECK(count(text, "unreferenced object 0x") == 2 && strstr(text, "late-object"));
	/* Freed: gone. */
	kfree((void *)(late_hidden ^ HIDE));
	read_text();
	CHECK(count(text, "unreferenced object 0x") == 1 && !strstr(text, "late-object"));
	/* A short buffer gets the start of the text and its full length. */
	{
		char small[8];
		ssize_t full = kmem_kmemleak_read(NULL, 0);

		CHECK(full == (ssize_t)strlen(text));
		CHECK(kmem_kmemleak_read(small, sizeof(small)) == full && strcmp(small, "unrefer") == 0);
	}

	/* Cleared: out of the text for good, and not counted again (nor at exit). */
	kmem_kmemleak_clear();
	CHECK(read_text() == 0);
	CHECK(kmem_kmemleak_scan() == 0);
	CHECK(read_text() == 0);

	printf("kmemleak_scan: %d failed\n", failed);
	fflush(stdout);
	(void)local_obj;
	exit(failed != 0); /* main's frame, and local_obj in it, are live during the exit scan. */
}
