/* scullc.c: a scullc-style device (LDD3 chapter 8, seed 002) for kmem insmod: scull's
 * quantum store, each quantum an object of the slab cache "scullc", created with the book's
 * 6-argument kmem_cache_create. There is no character device here: the module's init plays the
 * part of a user process (write 10000 bytes, read them back, lseek across a quantum boundary)
 * through scullc_write/scullc_read, which memcpy where the driver would copy_{from,to}_user,
 * and reports what the allocator holds; its exit is scullc_cleanup. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/kmem.h>

int scullc_quantum = 4000;	/* SCULLC_QUANTUM */
int scullc_qset = 1000;		/* SCULLC_QSET */
module_param(scullc_quantum, int, 0);
module_param(scullc_qset, int, 0);

struct scullc_dev {
	void **data;
	struct scullc_dev *next;	/* next listitem */
	int quantum;			/* the current allocation size */
	int qset;			/* the current array size */
	size_t size;			/* 32-bit will suffice */
};

kmem_cache_t *scullc_cache;
static struct scullc_dev *scullc_device;

int scullc_trim(struct scullc_dev *dev)
{
	struct scullc_dev *next, *dptr;
	int qset = dev->qset;
	int i;

	for (dptr = dev; dptr; dptr = next) {	/* all the list items */
		if (dptr->data) {
			for (i = 0; i < qset; i++)
				if (dptr->data[i])
					kmem_cache_free(scullc_cache, dptr->data[i]);
			kfree(dptr->data);
			dptr->data = NULL;
		}
		next = dptr->next;
		if (dptr != dev)
			kfree(dptr);	/* all of them but the first */
	}
	dev->size = 0;
	dev->qset = scullc_qset;
	dev->quantum = scullc_quantum;
	dev->next = NULL;
	return 0;
}

struct scullc_dev *scullc_follow(struct scullc_dev *dev, int n)
{
	while (n--) {
		if (!dev->next) {
			dev->next = kmalloc(sizeof(struct scullc_dev), GFP_KERNEL);
			if (!dev->next)
				return NULL;
			memset(dev->next, 0, sizeof(struct scullc_dev));
		}
		dev = dev->next;
	}
	return dev;
}

ssize_t scullc_read(struct scullc_dev *dev, char *buf, size_t count, loff_t *f_pos)
{
	struct scullc_dev *dptr;
	int quantum = dev->quantum;
	int qset = dev->qset;
	int itemsize = quantum * qset;	/* how many bytes in the listitem */
	int item, s_pos, q_pos, rest;

	if (*f_pos >= dev->size)
		return 0;
	if (*f_pos + count > dev->size)
		count = dev->size - *f_pos;

	/* find listitem, qset index and offset in the quantum */
	item = ((long) *f_pos) / itemsize;
	rest = ((long) *f_pos) % itemsize;
	s_pos = rest / quantum; q_pos = rest % quantum;

	/* follow the list up to the right position */
	dptr = scullc_follow(dev, item);

	if (!dptr || !dptr->data)
		return 0;	/* don't fill holes */
	if (!dptr->data[s_pos])
		return 0;
	if (count > quantum - q_pos)
		count = quantum - q_pos;	/* read only up to the end of this quantum */
	memcpy(buf, (char *)dptr->data[s_pos] + q_pos, count);	/* copy_to_user */
	*f_pos += count;
	return count;
}

ssize_t scullc_write(struct scullc_dev *dev, const char *buf, size_t count, loff_t *f_pos)
{
	struct scullc_dev *dptr;
	int quantum = dev->quantum;
	int qset = dev->qset;
	int itemsize = quantum * qset;
	int item, s_pos, q_pos, rest;

	/* find listitem, qset index and offset in the quantum */
	item = ((long) *f_pos) / itemsize;
	rest = ((long) *f_pos) % itemsize;
	s_pos = rest / quantum; q_pos = rest % quantum;

	/* follow the list up to the right position */
	dptr = scullc_follow(dev, item);
	if (!dptr)
		return -ENOMEM;
	if (!dptr->data) {
		dptr->data = kmalloc(qset * sizeof(void *), GFP_KERNEL);
		if (!dptr->data)
			return -ENOMEM;
		memset(dptr->data, 0, qset * sizeof(void *));
	}
	/* Allocate a quantum using the memory cache */
	if (!dptr->data[s_pos]) {
		dptr->data[s_pos] = kmem_cache_alloc(scullc_cache, GFP_KERNEL);
		if (!dptr->data[s_pos])
			return -ENOMEM;
		memset(dptr->data[s_pos], 0, scullc_quantum);
	}
	if (count > quantum - q_pos)
		count = quantum - q_pos;	/* write only up to the end of this quantum */
	memcpy((char *)dptr->data[s_pos] + q_pos, buf, count);	/* copy_from_user */
	*f_pos += count;

	/* update the size */
	if (dev->size < *f_pos)
		dev->size = *f_pos;
	return count;
}

/* Quanta the device holds. */
static int scullc_quanta(struct scullc_dev *dev)
{
	int i, n = 0;

	for (; dev; dev = dev->next)
		for (i = 0; dev->data && i < dev->qset; i++)
			n += dev->data[i] != NULL;
	return n;
}

/* What a process would do: write(2) until done, read(2) until end of file, lseek(2), read. */
static int scullc_exercise(struct scullc_dev *dev)
{
	static const char line[] = "scull: the quantum of data lives in kernel memory. ";
	const size_t len = 10000;
	char *data, *back, piece[17] = { 0 };
	static char slabinfo[1 << 16];
	unsigned long active = 0, num = 0, stride = 0, perslab = 0, pages = 0;
	const char *at;
	loff_t pos;
	ssize_t r;
	size_t i, done;
	int quanta;

	data = kmalloc(len, GFP_KERNEL);
	back = kmalloc(len, GFP_KERNEL);
	if (!data || !back) {
		kfree(data);
		kfree(back);
		return -ENOMEM;
	}
	for (i = 0; i < len; i++)
		data[i] = line[i % (sizeof(line) - 1)];
	printk(KERN_WARNING "scullc: quantum %d bytes\n", dev->quantum);

	for (pos = 0, done = 0; done < len; done += r)
		if ((r = scullc_write(dev, data + done, len - done, &pos)) <= 0)
			break;
	quanta = scullc_quanta(dev);
	printk(KERN_WARNING "scullc: wrote %zu bytes into %d quanta\n", dev->size, quanta);

	for (pos = 0, done = 0; (r = scullc_read(dev, back + done, len - done, &pos)) > 0; done += r)
		;
	printk(KERN_WARNING "scullc: read back %zu bytes: %s\n", done,
	       done == len && !memcmp(data, back, len) ? "identical" : "DIFFERENT");

	pos = dev->quantum - 8;	/* lseek(fd, quantum - 8, SEEK_SET) */
	for (done = 0; done < 16 && (r = scullc_read(dev, piece + done, 16 - done, &pos)) > 0; done += r)
		;
	printk(KERN_WARNING "scullc: lseek(%d) across a quantum boundary reads \"%s\"\n",
	       dev->quantum - 8, piece);

	/* /proc/slabinfo: name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> ... */
	kmem_proc_read("slabinfo", slabinfo, sizeof(slabinfo));
	at = strstr(slabinfo, "\nscullc ");
	if (at)
		sscanf(at, " scullc %lu %lu %lu %lu %lu", &active, &num, &stride, &perslab, &pages);
	printk(KERN_WARNING "scullc: cache %s: object size %u, stride %lu, %lu objects per slab of %lu pages; "
	       "slabinfo: %lu active of %lu objects (%d quanta in use, %lu free in this CPU's array)\n",
	       kmem_cache_name(scullc_cache), kmem_cache_size(scullc_cache), stride, perslab, pages,
	       active, num, quanta, active - quanta);
	kfree(data);
	kfree(back);
	return 0;
}

int scullc_init(void)
{
	int result;

	/* scullc_cache = kmem_cache_create(...) as LDD3 writes it: no ctor/dtor */
	scullc_cache = kmem_cache_create("scullc", scullc_quantum, 0, SLAB_HWCACHE_ALIGN, NULL, NULL);
	if (!scullc_cache)
		return -ENOMEM;

	scullc_device = kmalloc(sizeof(struct scullc_dev), GFP_KERNEL);
	if (!scullc_device) {
		result = -ENOMEM;
		goto fail_malloc;
	}
	memset(scullc_device, 0, sizeof(struct scullc_dev));
	scullc_device->quantum = scullc_quantum;
	scullc_device->qset = scullc_qset;

	result = scullc_exercise(scullc_device);
	if (result)
		goto fail_exercise;
	return 0;

fail_exercise:
	scullc_trim(scullc_device);
	kfree(scullc_device);
fail_malloc:
	kmem_cache_destroy(scullc_cache);
	return result;
}

void scullc_cleanup(void)
{
	scullc_trim(scullc_device);
	kfree(scullc_device);
	if (kmem_cache_destroy(scullc_cache))
		printk(KERN_ERR "scullc: cache still has objects\n");
	else
		printk(KERN_WARNING "scullc: trimmed and released\n");
}

module_init(scullc_init);
module_exit(scullc_cleanup);
MODULE_AUTHOR("Alessandro Rubini");
MODULE_LICENSE("Dual BSD/GPL");
