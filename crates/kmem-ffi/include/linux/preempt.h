/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: preemption control (include/linux/preempt.h). preempt_disable() enters atomic
 * context: an allocation that may sleep there is reported, and does not sleep. */
#ifndef _KMEM_LINUX_PREEMPT_H
#define _KMEM_LINUX_PREEMPT_H

void preempt_disable(void);
void preempt_enable(void);
int in_atomic(void);
int kmem_in_softirq(void);

#define preempt_enable_no_resched()	preempt_enable()
/* kmem runs no interrupt handlers: code is never in hard interrupt context. Its only softirq
 * work is RCU callbacks (call_rcu), which run in softirq context as the kernel's do. */
#define in_softirq()			kmem_in_softirq()
#define in_interrupt()			in_softirq()
#define in_irq()			0
#define in_task()			(!in_interrupt())

#endif
