/* BUG_ON from a program (include/asm-generic/bug.h, lib/bug.c): "kernel BUG at <file>:<line>!"
 * and the stack in the log, the line on stderr too (a program has no console to show it),
 * then the process aborts, as the oops kills the task. With an argument the condition holds;
 * without, BUG_ON does nothing and the program exits 0. */
#include <linux/kernel.h>
#include <linux/slab.h>
#include "ktest.h"

int main(int argc, char **argv)
{
	void *p = kmalloc(32, GFP_KERNEL);

	(void)argv;
	printk(KERN_INFO "bug_on: before\n");
	BUG_ON(argc > 1 && p);
	CHECK(p != NULL);
	CHECK_NOT_LOG("kernel BUG");
	kfree(p);
	return ktest_result("bug_on");
}
