/* printk into the machine's log: levels from the KERN_* prefix, the default level, pr_*
 * helpers, KERN_CONT continuation, pr_debug compiled out, and the readers' snprintf-like
 * contract. */
#include <linux/kernel.h>
#include <linux/printk.h>
#include "ktest.h"

int main(void)
{
	char small[8];
	ssize_t full;

	kmem_dmesg_clear();
	/* printk returns the length of the record's text: no level prefix and no trailing
	 * newline (printk_sprint strips both), as counted before the UTF-8 checks. */
	CHECK_EQ_UL(printk(KERN_ERR "an error %d\n", 42), strlen("an error 42"));
	printk("no level\n");
	printk(KERN_DEFAULT "default level\n");
	pr_emerg("emerg\n");
	pr_alert("alert\n");
	pr_crit("crit\n");
	pr_warn("warn\n");
	pr_notice("notice\n");
	pr_info("info %s\n", "text");
	printk(KERN_DEBUG "debug\n");
	pr_debug("never printed without DEBUG\n");
	printk(KERN_INFO "Small Memory ");
	pr_cont("Ok");
	pr_cont("\n");
	printk(KERN_NOTICE "pending");
	printk(KERN_ERR "next record\n");
	printk("two\nlines\n");
	/* An empty line is a record of its own, as vprintk_store commits it. */
	pr_info("\n");
	printk("blank\n\nafter\n");

	CHECK_EQ_UL(strcmp(ktest_dmesg(),
			   "<3>an error 42\n"
			   "<4>no level\n"
			   "<4>default level\n"
			   "<0>emerg\n"
			   "<1>alert\n"
			   "<2>crit\n"
			   "<4>warn\n"
			   "<5>notice\n"
			   "<6>info text\n"
			   "<7>debug\n"
			   "<6>Small Memory Ok\n"
			   "<5>pending\n"
			   "<3>next record\n"
			   "<4>two\n"
			   "<4>lines\n"
			   "<6>\n"
			   "<4>blank\n"
			   "<4>\n"
			   "<4>after\n"), 0);
	CHECK_NOT_LOG("never printed");

	/* The readers copy like snprintf and return the full length. */
	full = kmem_dmesg_read(NULL, 0, KMEM_DMESG_NOTIME);
	CHECK(full > 0);
	CHECK_EQ_UL(kmem_dmesg_read(small, sizeof(small), KMEM_DMESG_NOTIME), full);
	CHECK_EQ_UL(strcmp(small, "an erro"), 0);
	CHECK_EQ_UL(kmem_proc_read("buddyinfo", NULL, 0) > 0, 1);
	CHECK_EQ_UL(kmem_proc_read("/proc/buddyinfo", small, sizeof(small)), kmem_proc_read("buddyinfo", NULL, 0));
	CHECK_EQ_UL(strcmp(small, "Node 0,"), 0);
	CHECK_EQ_UL(kmem_proc_read("no-such-file", small, sizeof(small)), -ENOENT);
	CHECK_EQ_UL(kmem_proc_read("meminfo", NULL, 4), -EFAULT);

	/* Timestamps as dmesg prints them: "[    0.000123] text". */
	kmem_dmesg_clear();
	printk(KERN_INFO "stamped\n");
	kmem_dmesg_read(ktest_log, sizeof(ktest_log), 0);
	CHECK(ktest_log[0] == '[' && strstr(ktest_log, "] stamped\n") != NULL);
	kmem_dmesg_clear();
	CHECK_EQ_UL(kmem_dmesg_read(NULL, 0, 0), 0);
	CHECK_EQ_UL(printk(KERN_INFO "\n"), 0);
	CHECK_EQ_UL(printk(KERN_INFO "a\nb\n"), 3);
	CHECK_EQ_UL(printk(KERN_INFO "bad \xff byte\n"), 10);
	CHECK_EQ_UL(pr_info("no newline"), strlen("no newline"));
	pr_cont("\n");
	kmem_dmesg_clear();
	return ktest_result("printk");
}
