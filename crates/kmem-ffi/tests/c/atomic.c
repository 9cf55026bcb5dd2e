/* Atomic context from C: interrupts off or a spin lock held make a sleeping allocation a
 * "BUG: sleeping function called from invalid context" report, and it does not sleep;
 * might_sleep() names the C line; spin locks exclude each other across threads. */
#include <pthread.h>
#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/spinlock.h>
#include <linux/delay.h>
#include "ktest.h"

static DEFINE_SPINLOCK(counter_lock);
static DEFINE_SPINLOCK(inner_lock);
static unsigned long counter;

static void *worker(void *arg)
{
	int i;
	(void)arg;
	for (i = 0; i < 20000; i++) {
		unsigned long flags;
		spin_lock_irqsave(&counter_lock, flags);
		counter++;
		spin_unlock_irqrestore(&counter_lock, flags);
	}
	return NULL;
}

int main(void)
{
	unsigned long flags, outer, page;
	pthread_t threads[3];
	char expected[128];
	int line, i;

	CHECK(!in_atomic() && !irqs_disabled());

	/* might_sleep() with interrupts off names this file and line. */
	kmem_dmesg_clear();
	local_irq_save(flags);
	CHECK(in_atomic() && irqs_disabled());
	line = __LINE__ + 1;
	might_sleep();
	local_irq_restore(flags);
	CHECK(!in_atomic() && !irqs_disabled());
	snprintf(expected, sizeof(expected), "BUG: sleeping function called from invalid context at %s:%d", __FILE__, line);
	CHECK_LOG(expected);
	CHECK_LOG("in_atomic(): 1, irqs_disabled(): 1");
	/* Interrupts off are not in the kernel's preempt_count. */
	CHECK_LOG("preempt_count: 0, expected: 0");

	/* A GFP_KERNEL allocation under a spin lock is reported and does not sleep. */
	kmem_dmesg_clear();
	spin_lock_irqsave(&counter_lock, flags);
	spin_lock(&inner_lock);
	page = __get_free_pages(GFP_KERNEL, 0);
	spin_unlock(&inner_lock);
	spin_unlock_irqrestore(&counter_lock, flags);
	CHECK_LOG("BUG: sleeping function called from invalid context at");
	/* The allocator's report says interrupts are off and two locks are held, as
	 * __might_resched's does. */
	CHECK_LOG("in_atomic(): 1, irqs_disabled(): 1,");
	CHECK_LOG("preempt_count: 2, expected: 0");
	free_pages(page, 0);

	/* GFP_ATOMIC there is fine. */
	kmem_dmesg_clear();
	spin_lock(&counter_lock);
	page = __get_free_pages(GFP_ATOMIC, 0);
	spin_unlock(&counter_lock);
	CHECK(page != 0);
	free_pages(page, 0);
	CHECK_NOT_LOG("BUG");

	/* Nested saves restore the outer state, as the CPU flag does. */
	local_irq_save(outer);
	local_irq_save(flags);
	local_irq_restore(flags);
	CHECK(irqs_disabled() && in_atomic());
	local_irq_restore(outer);
	CHECK(!irqs_disabled() && !in_atomic());
	preempt_disable();
	preempt_disable();
	preempt_enable();
	CHECK(in_atomic());
	preempt_enable();
	CHECK(!in_atomic());

	/* Outside atomic context, sleeping is quiet. */
	kmem_dmesg_clear();
	might_sleep();
	msleep(1);
	CHECK(cond_resched() == 0);
	page = __get_free_pages(GFP_KERNEL, 0);
	free_pages(page, 0);
	CHECK_NOT_LOG("BUG");

	/* Mutual exclusion across threads. */
	for (i = 0; i < 3; i++)
		CHECK(pthread_create(&threads[i], NULL, worker, NULL) == 0);
	for (i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	CHECK_EQ_UL(counter, 3 * 20000);
	CHECK_NOT_LOG("BUG");
	return ktest_result("atomic");
}
