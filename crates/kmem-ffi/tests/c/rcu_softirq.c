/* call_rcu as the kernel runs it, with kswapd on (KMEM_KSWAPD, the default): the callbacks run
 * without any rcu_barrier, in kswapd's thread after its once-a-second grace period, oldest first
 * and in softirq context (in_softirq(), in_atomic(); a sleeping allocation in one is reported),
 * while the thread that queued them goes on; a reader that was inside when they were queued
 * holds them back until it leaves. */
#include <unistd.h>
#include <linux/slab.h>
#include <linux/rcupdate.h>
#include <linux/preempt.h>
#include <linux/kernel.h>
#include "ktest.h"

struct obj {
	int value;
	struct rcu_head rcu;
};

static struct kmem_cache *cache;
static int order[8], nr_run, in_softirq_seen, in_atomic_seen, in_task_seen = 1;

static void obj_free_rcu(struct rcu_head *head)
{
	struct obj *o = container_of(head, struct obj, rcu);

	order[__atomic_load_n(&nr_run, __ATOMIC_SEQ_CST)] = o->value;
	in_softirq_seen += !!in_softirq();
	in_atomic_seen += !!in_atomic();
	in_task_seen &= !!in_task();
	if (o->value == 3)
		kfree(kmalloc(64, GFP_KERNEL)); /* may sleep: reported in softirq context */
	kmem_cache_free(cache, o);
	__atomic_add_fetch(&nr_run, 1, __ATOMIC_SEQ_CST);
}

/* Waits up to 10 s for nr_run to reach n; returns whether it did. */
static int wait_for(int n)
{
	for (int i = 0; i < 1000; i++) {
		if (__atomic_load_n(&nr_run, __ATOMIC_SEQ_CST) >= n)
			return 1;
		usleep(10000);
	}
	return 0;
}

static void queue(int value)
{
	struct obj *o = kmem_cache_alloc(cache, GFP_KERNEL);

	o->value = value;
	call_rcu(&o->rcu, obj_free_rcu);
}

int main(void)
{
	cache = kmem_cache_create("rcu_softirq", sizeof(struct obj), 0, 0, NULL);
	CHECK(cache != NULL);
	CHECK(!in_softirq() && !in_interrupt() && in_task());

	/* Under a reader that was inside when they were queued: held back across two passes. */
	rcu_read_lock();
	queue(1);
	queue(2);
	sleep(2);
	CHECK_EQ_UL(__atomic_load_n(&nr_run, __ATOMIC_SEQ_CST), 0);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 2);
	rcu_read_unlock();
	/* No barrier, no synchronize_rcu: kswapd's next passes run them. */
	CHECK(wait_for(2));
	queue(3);
	CHECK(wait_for(3));
	CHECK(order[0] == 1 && order[1] == 2 && order[2] == 3);
	CHECK_EQ_UL(kmem_cache_nr_allocated(cache), 0);
	CHECK(in_softirq_seen == 3 && in_atomic_seen == 3 && !in_task_seen);
	CHECK_LOG("BUG: sleeping function called from invalid context");
	CHECK(!in_softirq() && !in_atomic());

	kmem_cache_destroy(cache);
	return ktest_result("rcu_softirq");
}
