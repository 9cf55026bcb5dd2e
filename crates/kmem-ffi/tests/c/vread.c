/* vread_iter() from C (SEMANTICS §5.4: holes, guard pages and ioremap areas read as zeros):
 * the kernel's signature over <linux/uio.h>'s iterator (one buffer with iov_iter_ubuf, kvecs
 * with iov_iter_kvec); the bytes of an area, zeros for its guard page, a freed area and a
 * VM_IOREMAP area; the overflow clamp; at most iov_iter_count() bytes, the iterator advanced;
 * a source iterator, another iterator type and a NULL iterator refused with a report; a NULL
 * buffer, kvec array or kvec base and an iov_offset past its kvec reported, the read stopping
 * there. */
#include <string.h>
#include <linux/vmalloc.h>
#include <linux/uio.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include "ktest.h"

#define JUNK 0x5c

static char buf[4 * 4096];

static int all(const char *p, size_t n, int c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (char)c)
			return 0;
	return 1;
}

int main(void)
{
	struct iov_iter iter;
	struct kvec kv[3];
	char a[100], b[PAGE_SIZE];
	char *v = vmalloc(2 * PAGE_SIZE), *gone = vmalloc(PAGE_SIZE);
	struct page *page = alloc_page(GFP_KERNEL);
	unsigned long pfn;
	char *io;

	CHECK(v != NULL && gone != NULL && page != NULL);
	memset(v, 0x11, PAGE_SIZE);
	memset(v + PAGE_SIZE, 0x22, PAGE_SIZE);

	/* One buffer: two pages of data, then the guard page as zeros. */
	memset(buf, JUNK, sizeof(buf));
	iov_iter_ubuf(&iter, ITER_DEST, buf, 3 * PAGE_SIZE);
	CHECK_EQ_UL(vread_iter(&iter, v, 3 * PAGE_SIZE), 3 * PAGE_SIZE);
	CHECK(all(buf, PAGE_SIZE, 0x11) && all(buf + PAGE_SIZE, PAGE_SIZE, 0x22));
	CHECK(all(buf + 2 * PAGE_SIZE, PAGE_SIZE, 0));
	CHECK_EQ_UL(iov_iter_count(&iter), 0);
	CHECK_EQ_UL(iter.iov_offset, 3 * PAGE_SIZE);

	/* No more than the iterator holds: min(count, iov_iter_count()). */
	memset(buf, JUNK, sizeof(buf));
	iov_iter_ubuf(&iter, ITER_DEST, buf, 10);
	CHECK_EQ_UL(vread_iter(&iter, v + PAGE_SIZE - 5, 4096), 10);
	CHECK(all(buf, 5, 0x11) && all(buf + 5, 5, 0x22) && buf[10] == JUNK);
	CHECK_EQ_UL(iov_iter_count(&iter), 0);
	CHECK_EQ_UL(vread_iter(&iter, v, 1), 0);	/* no room left */

	/* Kvecs, filled in turn; the iterator steps past the filled ones. */
	memset(a, JUNK, sizeof(a));
	memset(b, JUNK, sizeof(b));
	kv[0].iov_base = a;
	kv[0].iov_len = sizeof(a);
	kv[1].iov_base = NULL;	/* empty: stepped over */
	kv[1].iov_len = 0;
	kv[2].iov_base = b;
	kv[2].iov_len = sizeof(b);
	iov_iter_kvec(&iter, ITER_DEST, kv, 3, sizeof(a) + sizeof(b));
	CHECK_EQ_UL(vread_iter(&iter, v + PAGE_SIZE - 50, 150), 150);
	CHECK(all(a, 50, 0x11) && all(a + 50, 50, 0x22));
	CHECK(all(b, 50, 0x22) && b[50] == JUNK);
	CHECK(iter.kvec == &kv[2] && iter.nr_segs == 1 && iter.iov_offset == 50);
	CHECK_EQ_UL(iov_iter_count(&iter), sizeof(a) + sizeof(b) - 150);

	/* A freed area is a hole; so is a VM_IOREMAP area, mapped or not. */
	memset(gone, 0x33, PAGE_SIZE);
	vfree(gone);
	memset(buf, JUNK, sizeof(buf));
	iov_iter_ubuf(&iter, ITER_DEST, buf, PAGE_SIZE);
	CHECK_EQ_UL(vread_iter(&iter, gone, PAGE_SIZE), PAGE_SIZE);
	CHECK(all(buf, PAGE_SIZE, 0));
	memset(page_address(page), 0x44, PAGE_SIZE);
	pfn = page_to_pfn(page);
	io = vmap_pfn(&pfn, 1, PAGE_KERNEL);
	CHECK(io != NULL && vmalloc_to_page(io) == page);
	memset(buf, JUNK, sizeof(buf));
	iov_iter_ubuf(&iter, ITER_DEST, buf, PAGE_SIZE);
	CHECK_EQ_UL(vread_iter(&iter, io, PAGE_SIZE), PAGE_SIZE);
	CHECK(all(buf, PAGE_SIZE, 0));
	vunmap(io);

	/* addr + count wraps: count becomes -addr. */
	memset(buf, JUNK, sizeof(buf));
	iov_iter_ubuf(&iter, ITER_DEST, buf, sizeof(buf));
	CHECK_EQ_UL(vread_iter(&iter, (const char *)(~0UL - 9), 100), 10);
	CHECK(all(buf, 10, 0) && buf[10] == JUNK);
	CHECK_EQ_UL(iov_iter_count(&iter), sizeof(buf) - 10);

	/* Refused: a source iterator, an unknown type, NULL. Nothing written. */
	memset(buf, JUNK, sizeof(buf));
	iov_iter_ubuf(&iter, ITER_SOURCE, buf, PAGE_SIZE);
	CHECK_EQ_UL(vread_iter(&iter, v, PAGE_SIZE), 0);
	CHECK_LOG("ITER_SOURCE");
	iov_iter_ubuf(&iter, ITER_DEST, buf, PAGE_SIZE);
	iter.iter_type = 1;	/* ITER_IOVEC: not in kmem */
	CHECK_EQ_UL(vread_iter(&iter, v, PAGE_SIZE), 0);
	CHECK_LOG("is not ITER_UBUF or ITER_KVEC");
	CHECK(all(buf, PAGE_SIZE, JUNK));
	CHECK_EQ_UL(vread_iter(NULL, v, PAGE_SIZE), 0);
	CHECK_LOG("NULL struct iov_iter pointer");

	/* Broken iterators: reported, the read stops there, the iterator keeps what was done. */
	iov_iter_ubuf(&iter, ITER_DEST, NULL, PAGE_SIZE);
	CHECK_EQ_UL(vread_iter(&iter, v, PAGE_SIZE), 0);
	CHECK_LOG("NULL ITER_UBUF buffer");
	CHECK_EQ_UL(iov_iter_count(&iter), PAGE_SIZE);
	iov_iter_kvec(&iter, ITER_DEST, NULL, 1, PAGE_SIZE);
	CHECK_EQ_UL(vread_iter(&iter, v, PAGE_SIZE), 0);
	CHECK_LOG("NULL ITER_KVEC array");
	memset(a, JUNK, sizeof(a));
	kv[0].iov_base = a;
	kv[0].iov_len = 10;
	kv[1].iov_base = NULL;	/* not empty: a NULL buffer */
	kv[1].iov_len = 10;
	iov_iter_kvec(&iter, ITER_DEST, kv, 2, 20);
	CHECK_EQ_UL(vread_iter(&iter, v, 20), 10);
	CHECK(all(a, 10, 0x11) && a[10] == JUNK);
	CHECK_LOG("NULL kvec iov_base");
	CHECK(iter.kvec == &kv[1] && iter.nr_segs == 1 && iov_iter_count(&iter) == 10);
	kv[0].iov_base = a;
	kv[0].iov_len = 10;
	iov_iter_kvec(&iter, ITER_DEST, kv, 1, 10);
	iter.iov_offset = 11;	/* past the kvec */
	CHECK_EQ_UL(vread_iter(&iter, v, 10), 0);
	CHECK_LOG("iov_offset is past the end of the current kvec");

	__free_page(page);
	vfree(v);
	return ktest_result("vread");
}
