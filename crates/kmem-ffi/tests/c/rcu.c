/* RCU from C (linux/rcupdate.h): call_rcu, kfree_rcu's two-argument and legacy one-argument forms,
 * kfree_rcu_mightsleep, kvfree_rcu of kmalloc and vmalloc memory, nested read-side sections,
 * the pointer accessors, an object kept while another thread reads it, and the misuse reports
 * (an unbalanced rcu_read_unlock, synchronize_rcu inside a section). */
#include <pthread.h>
#include <unistd.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/rcupdate.h>
#include <linux/kernel.h>
#include "ktest.h"

struct obj {
	int value;
	struct rcu_head rcu;
};

static struct obj __rcu *shared;
static struct kmem_cache *cache;
static volatile int reader_in, reader_go, barrier_done;

static void *reader(void *arg)
{
	struct obj *o;

	(void)arg;
	rcu_read_lock();
	o = rcu_dereference(shared);
	__atomic_store_n(&reader_in, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&reader_go, __ATOMIC_SEQ_CST))
		;
	/* Still a live object of the cache: the grace period waits for this section. */
	CHECK(o && o->value == 42);
	rcu_read_unlock();
	return NULL;
}

static int freed_ids[4], nr_freed;

/* The classic pattern: the callback finds its object and frees it to its cache. */
static void obj_free_rcu(struct rcu_head *head)
{
	struct obj *o = container_of(head, struct obj, rcu);

	freed_ids[nr_freed++] = o->value;
	kmem_cache_free(cache, o);
}

static void *barrier_thread(void *arg)
{
	(void)arg;
	rcu_barrier();
	__atomic_store_n(&barrier_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

int main(void)
{
	struct obj *o, *old;
	void *v;
	pthread_t t, b;

	cache = kmem_cache_create("rcu_obj", sizeof(struct obj), 0, 0, NULL);
	CHECK(cache != NULL);

	/* kfree_rcu(ptr, rhf): freed by the next grace period, not before. */
	o = kmem_cache_alloc(cache, GFP_KERNEL);
	CHECK(o != NULL);
	kfree_rcu(o, rcu);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 1);
	rcu_barrier();
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);

	/* The one-argument form of older kernels, kfree_rcu_mightsleep, and NULL. */
	o = kmem_cache_alloc(cache, GFP_KERNEL);
	kfree_rcu(o);
	o = kmem_cache_alloc(cache, GFP_KERNEL);
	kfree_rcu_mightsleep(o);
	o = NULL;
	kfree_rcu(o, rcu);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 2);
	synchronize_rcu();
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);

	/* call_rcu: the callbacks run at rcu_barrier, oldest first; NULL is reported. */
	for (int i = 1; i <= 3; i++) {
		o = kmem_cache_alloc(cache, GFP_KERNEL);
		o->value = i;
		call_rcu(&o->rcu, obj_free_rcu);
	}
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 3);
	rcu_barrier();
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);
	CHECK(nr_freed == 3 && freed_ids[0] == 1 && freed_ids[1] == 2 && freed_ids[2] == 3);
	kmem_dmesg_clear();
	call_rcu(NULL, obj_free_rcu);
	CHECK(ktest_log_has("call_rcu() called with a NULL rcu_head; ignored"));

	/* kvfree_rcu of a kmalloc object and of a vmalloc area. */
	o = kvmalloc(sizeof(*o), GFP_KERNEL);
	CHECK(o != NULL && !is_vmalloc_addr(o));
	kvfree_rcu(o, rcu);
	v = vmalloc(64 << 10);
	CHECK(v != NULL && is_vmalloc_addr(v));
	kvfree_rcu_mightsleep(v);
	CHECK(vmalloc_to_page(v) == NULL);
	rcu_barrier();

	/* Sections nest; the accessors publish and read a pointer. */
	CHECK(!rcu_read_lock_held());
	rcu_read_lock();
	rcu_read_lock();
	CHECK(rcu_read_lock_held());
	rcu_read_unlock();
	CHECK(rcu_read_lock_held());
	rcu_read_unlock();
	CHECK(!rcu_read_lock_held());

	/* A reader on another thread keeps the object it found: kfree_rcu after unpublishing it,
	 * and an rcu_barrier on a third thread does not return while the reader is inside. */
	o = kmem_cache_alloc(cache, GFP_KERNEL);
	o->value = 42;
	rcu_assign_pointer(shared, o);
	CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
	while (!__atomic_load_n(&reader_in, __ATOMIC_SEQ_CST))
		;
	old = rcu_access_pointer(shared);
	RCU_INIT_POINTER(shared, NULL);
	kfree_rcu(old, rcu);
	CHECK(pthread_create(&b, NULL, barrier_thread, NULL) == 0);
	usleep(50 * 1000);
	CHECK(!__atomic_load_n(&barrier_done, __ATOMIC_SEQ_CST));
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 1);
	__atomic_store_n(&reader_go, 1, __ATOMIC_SEQ_CST);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(pthread_join(b, NULL) == 0);
	CHECK(barrier_done);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);

	/* Misuse: reported in lockdep's words, nothing else happens. */
	kmem_dmesg_clear();
	rcu_read_unlock();
	CHECK(ktest_log_has("WARNING: bad unlock balance detected!"));
	CHECK(ktest_log_has("is trying to release lock (rcu_read_lock) at:"));
	CHECK(!rcu_read_lock_held());
	rcu_read_lock();
	synchronize_rcu();
	rcu_read_unlock();
	CHECK(ktest_log_has("Illegal synchronize_rcu() in RCU read-side critical section!"));

	kmem_cache_destroy(cache);
	return ktest_result("rcu");
}
