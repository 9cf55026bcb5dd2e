/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: interrupt flags (include/linux/irqflags.h). "Interrupts" are a per-thread flag;
 * turning them off enters atomic context, as on a real CPU. flags holds the previous state
 * (X86_EFLAGS_IF when interrupts were on). */
#ifndef _KMEM_LINUX_IRQFLAGS_H
#define _KMEM_LINUX_IRQFLAGS_H

unsigned long arch_local_irq_save(void);
void arch_local_irq_restore(unsigned long flags);
void arch_local_irq_disable(void);
void arch_local_irq_enable(void);
int arch_irqs_disabled(void);

#define local_irq_save(flags)		do { (flags) = arch_local_irq_save(); } while (0)
#define local_irq_restore(flags)	arch_local_irq_restore(flags)
#define local_irq_disable()		arch_local_irq_disable()
#define local_irq_enable()		arch_local_irq_enable()
#define irqs_disabled()			arch_irqs_disabled()
#define local_bh_disable()		preempt_disable()
#define local_bh_enable()		preempt_enable()

#endif
