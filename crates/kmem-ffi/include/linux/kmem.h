/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem's own additions, with no kernel counterpart: reading /proc texts and the log, and
 * kmemleak's debugfs file. */
#ifndef _KMEM_LINUX_KMEM_H
#define _KMEM_LINUX_KMEM_H

#include <linux/types.h>

/* The text of /proc/<name> ("buddyinfo", "zoneinfo", "meminfo", "pagetypeinfo", "vmstat",
 * and "slabinfo", "vmallocinfo"), copied like snprintf. Returns the text's
 * full length, -ENOENT for an unknown name, -EINVAL for a NULL name. */
ssize_t kmem_proc_read(const char *name, char *buf, size_t len);

#define KMEM_DMESG_LEVEL	1u	/* "<level>" before each record, as dmesg -r */
#define KMEM_DMESG_NOTIME	2u	/* no "[seconds.micros] " timestamps, as dmesg -t */
/* The kernel log, one record per line, copied like snprintf; returns its full length. */
ssize_t kmem_dmesg_read(char *buf, size_t len, unsigned int flags);
/* Empties the log (dmesg -C). */
void kmem_dmesg_clear(void);

/* kmemleak on demand, for a program run with KMEM_KMEMLEAK=1 (<linux/kmemleak.h>).
 * kmem_kmemleak_scan is `echo scan > /sys/kernel/debug/kmemleak`: scans now, from the calling
 * thread, while other threads go on; objects younger than 5 s are never reported, and an
 * object is counted by one scan only. Logs "kmemleak: N new suspected memory leaks" when
 * N > 0 and returns N; -EPERM if kmemleak is off, -errno if process_vm_readv is refused.
 * kmem_kmemleak_read is `cat /sys/kernel/debug/kmemleak` (every reported object still
 * unreferenced), copied like snprintf; returns the text's full length.
 * kmem_kmemleak_clear is `echo clear`: the objects reported so far are never reported again. */
int kmem_kmemleak_scan(void);
ssize_t kmem_kmemleak_read(char *buf, size_t len);
void kmem_kmemleak_clear(void);
/* kmemleak's scan thread runs the same scan by itself, 60 s after the program's first call
 * into kmem and then every 600 s, as the kernel's kthread does. kmem_kmemleak_set_scan is
 * `echo scan=<secs>`: the thread restarts, scanning now and then every `secs` seconds (0 is
 * `echo scan=off`: no more automatic scans); KMEM_KMEMLEAK_SCAN=<secs>|off does the same at
 * start. Returns 0, or -EPERM if kmemleak is off. */
int kmem_kmemleak_set_scan(unsigned long secs);

#endif
