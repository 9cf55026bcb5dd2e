/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem's own additions, with no kernel counterpart: reading /proc texts and the log. */
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

#endif
