/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/numa.h>. The machine has one node (node 0); the _node allocation functions take
 * a node and allocate from it, which is every node there is. */
#ifndef _KMEM_LINUX_NUMA_H
#define _KMEM_LINUX_NUMA_H

#define NUMA_NO_NODE	(-1)
#define MAX_NUMNODES	1

#endif
