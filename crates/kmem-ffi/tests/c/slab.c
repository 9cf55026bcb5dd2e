/* Slab caches through the C ABI: constructor counts and LIFO reuse, the 2.6 constructor and
 * destructor with their flags, every kmem_cache_create form, size/name/shrink/bulk, and
 * kmem_cache_destroy's int result with the kernel's report for a cache that still has objects. */
#include <stdlib.h>
#include <linux/slab.h>
#include <linux/errno.h>
#include "ktest.h"

struct thing {
	unsigned long magic;
	char payload[120];
};

static int ctor_calls;
static void thing_ctor(void *obj)
{
	((struct thing *)obj)->magic = 0x7e57;
	ctor_calls++;
}

static kmem_cache_t *legacy_cache;
static int legacy_ctor_calls, legacy_dtor_calls, legacy_bad_args;
static unsigned long legacy_ctor_flags;
static void legacy_ctor(void *obj, kmem_cache_t *cache, unsigned long flags)
{
	legacy_ctor_calls++;
	legacy_ctor_flags |= flags;
	if (cache != legacy_cache || !(flags & SLAB_CTOR_CONSTRUCTOR))
		legacy_bad_args++;
	memset(obj, 0xc7, 64);
}
static void legacy_dtor(void *obj, kmem_cache_t *cache, unsigned long flags)
{
	legacy_dtor_calls++;
	if (cache != legacy_cache || flags != 0 || ((unsigned char *)obj)[0] != 0xc7)
		legacy_bad_args++;
}

/* The cache's line of /proc/slabinfo: <active_objs> <num_objs> <objsize> <objperslab>. */
static int slabinfo(const char *name, unsigned long *active, unsigned long *num, unsigned long *perslab)
{
	static char buf[1 << 16];
	char key[64];
	const char *at;
	unsigned long objsize;

	kmem_proc_read("slabinfo", buf, sizeof(buf));
	snprintf(key, sizeof(key), "\n%s ", name);
	at = strstr(buf, key);
	return at && sscanf(at + strlen(key), "%lu %lu %lu %lu", active, num, &objsize, perslab) == 4;
}

int main(void)
{
	struct kmem_cache_args args = { .align = 64, .ctor = thing_ctor };
	struct kmem_cache *c, *d, *e;
	struct thing *a, *b, *x;
	unsigned long active, num, perslab;
	void *objs[40];
	int i, per_slab;

	/* The constructor runs once per slot when a slab is populated, never on reuse. */
	c = kmem_cache_create("ktest_thing", sizeof(struct thing), 0, 0, thing_ctor);
	CHECK(c != NULL);
	CHECK_EQ_UL(kmem_cache_size(c), sizeof(struct thing));
	CHECK(!strcmp(kmem_cache_name(c), "ktest_thing"));
	CHECK_EQ_UL(ctor_calls, 0);
	a = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK(a && a->magic == 0x7e57);
	CHECK(slabinfo("ktest_thing", &active, &num, &perslab));
	per_slab = (int)perslab;
	CHECK(per_slab > 1);
	CHECK_EQ_UL(ctor_calls, per_slab);	/* the whole first slab */
	a->magic = 1;	/* the user changes the object */
	kmem_cache_free(c, a);
	b = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK(b == a);	/* LIFO: the object just freed comes back first */
	CHECK(b->magic == 1);	/* not constructed again */
	b->magic = 0x7e57;	/* objects go back in their constructed state */
	x = kmem_cache_alloc(c, GFP_KERNEL);
	kmem_cache_free(c, x);
	kmem_cache_free(c, b);
	CHECK(kmem_cache_alloc(c, GFP_KERNEL) == b);	/* last in, first out */
	CHECK(kmem_cache_alloc(c, GFP_KERNEL) == x);
	CHECK_EQ_UL(ctor_calls, per_slab);
	kmem_cache_free(c, x);
	kmem_cache_free(c, b);

	/* Bulk: all or nothing; objects of a full second slab run the constructor again. */
	CHECK_EQ_UL(kmem_cache_alloc_bulk(c, GFP_KERNEL, per_slab + 1, objs), per_slab + 1);
	CHECK_EQ_UL(ctor_calls, 2 * per_slab);
	for (i = 0; i <= per_slab; i++)
		CHECK(((struct thing *)objs[i])->magic == 0x7e57);
	kmem_cache_free_bulk(c, per_slab + 1, objs);
	CHECK_EQ_UL(kmem_cache_shrink(c), 0);
	CHECK_EQ_UL(kmem_cache_destroy(c), 0);
	CHECK_EQ_UL(kmem_cache_destroy(NULL), 0);	/* a no-op, as in the kernel */

	/* The book's 6-argument form: ctor and dtor get the cache and SLAB_CTOR_* flags. */
	legacy_cache = kmem_cache_create("ktest_ldd", 64, 0, SLAB_HWCACHE_ALIGN | SLAB_NO_REAP,
					 legacy_ctor, legacy_dtor);
	CHECK(legacy_cache != NULL);
	a = kmem_cache_alloc(legacy_cache, GFP_KERNEL);
	CHECK(a && ((unsigned char *)a)[63] == 0xc7);
	CHECK(legacy_ctor_calls > 0);
	CHECK_EQ_UL(legacy_ctor_flags, SLAB_CTOR_CONSTRUCTOR);	/* GFP_KERNEL may sleep */
	kmem_cache_free(legacy_cache, a);
	CHECK_EQ_UL(legacy_dtor_calls, 0);	/* freeing does not destroy */
	CHECK_EQ_UL(kmem_cache_destroy(legacy_cache), 0);
	CHECK_EQ_UL(legacy_dtor_calls, legacy_ctor_calls);	/* every slot, when the slab goes */
	CHECK_EQ_UL(legacy_bad_args, 0);

	/* An allocation that may not sleep populates with SLAB_CTOR_ATOMIC too. */
	legacy_ctor_flags = 0;
	legacy_cache = kmem_cache_create("ktest_ldd_atomic", 64, 0, 0, legacy_ctor, NULL);
	a = kmem_cache_alloc(legacy_cache, GFP_ATOMIC);
	CHECK(a != NULL);
	CHECK_EQ_UL(legacy_ctor_flags, SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC);
	kmem_cache_free(legacy_cache, a);
	CHECK_EQ_UL(kmem_cache_destroy(legacy_cache), 0);
	CHECK_EQ_UL(legacy_bad_args, 0);

	/* The 6.12 forms, and merging: two compatible caches are one, destroyed twice. */
	ctor_calls = 0;
	d = kmem_cache_create("ktest_args", 100, &args, 0);
	a = kmem_cache_alloc(d, GFP_KERNEL);
	CHECK(a && ((unsigned long)a % 64) == 0 && a->magic == 0x7e57 && ctor_calls > 0);
	kmem_cache_free(d, a);
	CHECK_EQ_UL(kmem_cache_destroy(d), 0);
	d = kmem_cache_create("ktest_merge_a", 200, NULL, 0);
	e = kmem_cache_create("ktest_merge_b", 200, NULL, 0);
	CHECK(d != NULL && e != NULL);
	CHECK_EQ_UL(kmem_cache_size(e), 200);
	CHECK_EQ_UL(kmem_cache_destroy(e), 0);
	a = kmem_cache_alloc(d, GFP_KERNEL);	/* still alive after the alias went */
	CHECK(a != NULL);
	kmem_cache_free(d, a);
	CHECK_EQ_UL(kmem_cache_destroy(d), 0);

	/* kmem_cache_zalloc. */
	d = kmem_cache_create("ktest_zero", 256, 0, 0, NULL);
	a = kmem_cache_alloc(d, GFP_KERNEL);
	memset(a, 0xff, 256);
	kmem_cache_free(d, a);
	b = kmem_cache_zalloc(d, GFP_KERNEL);
	CHECK(b == a && b->magic == 0 && b->payload[119] == 0);
	kmem_cache_free(d, b);

	/* Destroy with an object still allocated: -EBUSY, and the kernel's two reports. */
	a = kmem_cache_alloc(d, GFP_KERNEL);
	kmem_dmesg_clear();
	CHECK_EQ_UL(kmem_cache_destroy(d), -EBUSY);
	CHECK_LOG("BUG ktest_zero (Not tainted): Objects remaining on __kmem_cache_shutdown()");
	CHECK_LOG("kmem_cache_destroy ktest_zero: Slab cache still has objects");
	/* The handle is dead: using it again is reported, not obeyed. */
	kmem_dmesg_clear();
	CHECK(kmem_cache_alloc(d, GFP_KERNEL) == NULL);
	CHECK_LOG("kmem: kmem_cache_alloc() called with a struct kmem_cache pointer that kmem did not hand out; ignored");
	kfree(a);	/* the leaked object can still be given back */

	/* A NULL name fails as the kernel's sanity check does. */
	kmem_dmesg_clear();
	CHECK(kmem_cache_create(NULL, 64, 0, 0, NULL) == NULL);
	CHECK_LOG("kmem_cache_create((null)) integrity check failed");
	CHECK(kmem_cache_create("ktest_bad_flags", 64, 0, 1UL << 30, NULL) == NULL);	/* SL-2 */
	CHECK_LOG("__kmem_cache_create_args(ktest_bad_flags) failed with error -22");

	return ktest_result("slab");
}
