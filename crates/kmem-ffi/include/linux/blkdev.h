/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: seed 003 includes <linux/blkdev.h> for its mempool; mempools were made for block
 * drivers. Only the memory-allocation part exists here. */
#ifndef _KMEM_LINUX_BLKDEV_H
#define _KMEM_LINUX_BLKDEV_H

#include <linux/gfp.h>
#include <linux/mempool.h>
#include <linux/slab.h>

#endif
