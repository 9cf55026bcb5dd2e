/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/kmemleak.h>. kmemleak records what the C ABI hands out while it is on
 * (`kmem insmod --kmemleak`) and reports what a module left allocated after its exit. These
 * tell it about memory it cannot see, or that is no leak. A program scans on demand with
 * kmem_kmemleak_scan, kmem_kmemleak_read and kmem_kmemleak_clear (<linux/kmem.h>). */
#ifndef _KMEM_LINUX_KMEMLEAK_H
#define _KMEM_LINUX_KMEMLEAK_H

#include <linux/types.h>

/* A block C manages itself, reported like an allocation unless freed (min_count 0: never, and
 * scanned as kmemleak_not_leak's objects are). */
void kmemleak_alloc(const void *ptr, size_t size, int min_count, gfp_t gfp);
void kmemleak_free(const void *ptr);
/* The object is no leak: never reported, but scanned (what it refers to is no leak either). */
void kmemleak_not_leak(const void *ptr);
/* The object is no leak and holds no references: never reported. */
void kmemleak_ignore(const void *ptr);

#endif
