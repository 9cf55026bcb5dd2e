/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/string.h>: the C library's string functions plus the kernel's own.
 * kstrdup, kstrndup, kmemdup and kfree_const are exported by libkmem with kmalloc;
 * kstrdup_const always copies (kfree_const leaves memory kmem did not hand out alone). */
#ifndef _KMEM_LINUX_STRING_H
#define _KMEM_LINUX_STRING_H

#include <string.h>
#include <linux/errno.h>
#include <linux/types.h>
#include <linux/overflow.h>

char *kstrdup(const char *s, gfp_t gfp);
char *kstrndup(const char *s, size_t max, gfp_t gfp);
const char *kstrdup_const(const char *s, gfp_t gfp);
void *kmemdup(const void *src, size_t len, gfp_t gfp);
void kfree_const(const void *x);
/* kmemdup_nul: `len` bytes of `s` and a NUL (mm/util.c); NULL for a NULL `s`. */
char *kmemdup_nul(const char *s, size_t len, gfp_t gfp);
/* kvmemdup(src, len, gfp) (mm/util.c): a kvmalloc copy of `len` bytes (vmalloc memory when
 * kmalloc cannot have it), freed with kvfree; NULL on failure. */
void *kvmalloc(size_t size, gfp_t flags);
static inline void *kvmemdup(const void *src, size_t len, gfp_t gfp)
{
	void *p = kvmalloc(len, gfp);

	if (p && len)
		memcpy(p, src, len);
	return p;
}
/* kmemdup_array(src, count, element_size, gfp): an overflowing size is SIZE_MAX, refused. */
static inline void *kmemdup_array(const void *src, size_t count, size_t element_size, gfp_t gfp)
{
	return kmemdup(src, size_mul(element_size, count), gfp);
}

/* strscpy(dest, src, size): copies at most size - 1 bytes, always terminates; -E2BIG if
 * truncated. As in 6.8+, strscpy(dest, src) takes the size of the array `dest` (a pointer
 * there does not compile: its size is not the buffer's). */
#define __kmem_strscpy_3(dest, src, size)	sized_strscpy(dest, src, size)
#define __kmem_strscpy_2(dest, src)							\
	sized_strscpy(dest, src, sizeof(dest) + 0 * sizeof(char[1 - 2 *			\
		__builtin_types_compatible_p(__typeof__(dest), __typeof__(&(dest)[0]))]))
#define strscpy(...)	__PASTE(__kmem_strscpy_, __KMEM_NARGS(__VA_ARGS__))(__VA_ARGS__)
static inline ssize_t sized_strscpy(char *dest, const char *src, size_t size)
{
	const char *nul;
	size_t len;
	if (size == 0)
		return -E2BIG;
	/* memchr, not POSIX's strnlen: the header stays ISO C (-std=c99/c11). */
	nul = (const char *)memchr(src, '\0', size);
	len = nul ? (size_t)(nul - src) : size;
	if (len == size) {
		memcpy(dest, src, size - 1);
		dest[size - 1] = '\0';
		return -E2BIG;
	}
	memcpy(dest, src, len + 1);
	return (ssize_t)len;
}

static inline void memzero_explicit(void *s, size_t count)
{
	memset(s, 0, count);
	__asm__ __volatile__("" : : "r"(s) : "memory");
}

#endif
