/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/uio.h>, as much of struct iov_iter as vread_iter() needs (SEMANTICS §5.4).
 *
 * Decision: the kernel's name and signature, long vread_iter(struct iov_iter *iter,
 * const char *addr, size_t count), with an honest but small iterator: two kinds of
 * destination, both plain memory of the caller's, set up with the kernel's initialisers and
 * advanced as the kernel's copy_to_iter() advances them:
 *   ITER_UBUF  one buffer       iov_iter_ubuf(i, ITER_DEST, buf, count)
 *   ITER_KVEC  array of kvecs   iov_iter_kvec(i, ITER_DEST, kvec, nr_segs, count)
 * (kmem has no user/kernel split: a "user" buffer is an ordinary pointer here). After a call
 * iov_iter_count() is what is left and iov_offset where the next byte goes (within the current
 * kvec, which `kvec` and `nr_segs` step past as they fill). Other iterator kinds (IOVEC, BVEC,
 * XARRAY, ...) do not exist in kmem; an iterator of another type, or a source iterator
 * (ITER_SOURCE), is reported with a WARNING and nothing is copied, as copy_to_iter() refuses one.
 * The kernel keeps kvec and ubuf in an anonymous union; they are two fields here so that the
 * header stays strict ISO C99. Set iterators up with the initialisers, not by hand. */
#ifndef _KMEM_LINUX_UIO_H
#define _KMEM_LINUX_UIO_H

#include <linux/compiler.h>
#include <linux/types.h>

struct kvec {
	void	*iov_base;
	size_t	iov_len;
};

/* The kernel's values (enum iter_type); only these two are implemented. */
enum iter_type {
	ITER_UBUF = 0,
	ITER_KVEC = 3,
};

#define ITER_SOURCE	1	/* == WRITE: data is read from the iterator */
#define ITER_DEST	0	/* == READ: data is written to the iterator */

struct iov_iter {
	u8			iter_type;
	bool			nofault;
	bool			data_source;
	size_t			iov_offset;
	const struct kvec	*kvec;		/* ITER_KVEC */
	void			*ubuf;		/* ITER_UBUF */
	size_t			count;
	unsigned long		nr_segs;
};

static inline void iov_iter_kvec(struct iov_iter *i, unsigned int direction,
				 const struct kvec *kvec, unsigned long nr_segs, size_t count)
{
	struct iov_iter it = { 0 };

	it.iter_type = ITER_KVEC;
	it.data_source = direction != 0;
	it.kvec = kvec;
	it.nr_segs = nr_segs;
	it.count = count;
	*i = it;
}

static inline void iov_iter_ubuf(struct iov_iter *i, unsigned int direction,
				 void __user *buf, size_t count)
{
	struct iov_iter it = { 0 };

	it.iter_type = ITER_UBUF;
	it.data_source = direction != 0;
	it.ubuf = buf;
	it.nr_segs = 1;
	it.count = count;
	*i = it;
}

static inline size_t iov_iter_count(const struct iov_iter *i)
{
	return i->count;
}

static inline bool iter_is_ubuf(const struct iov_iter *i)
{
	return i->iter_type == ITER_UBUF;
}

static inline bool iov_iter_is_kvec(const struct iov_iter *i)
{
	return i->iter_type == ITER_KVEC;
}

#endif
