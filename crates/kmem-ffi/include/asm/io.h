/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <asm/io.h>: address conversions for the direct map and the MMIO accessors as
 * volatile accesses (the seed's section 5.1.4). virt_to_phys of an address outside the
 * direct map logs the kernel's CONFIG_DEBUG_VIRTUAL warning and returns 0. */
#ifndef _KMEM_ASM_IO_H
#define _KMEM_ASM_IO_H

#include <asm/page.h>
#include <linux/types.h>

#define readb(addr)		(*(const volatile u8 *)(addr))
#define readw(addr)		(*(const volatile u16 *)(addr))
#define readl(addr)		(*(const volatile u32 *)(addr))
#define readq(addr)		(*(const volatile u64 *)(addr))
#define writeb(v, addr)		(*(volatile u8 *)(addr) = (v))
#define writew(v, addr)		(*(volatile u16 *)(addr) = (v))
#define writel(v, addr)		(*(volatile u32 *)(addr) = (v))
#define writeq(v, addr)		(*(volatile u64 *)(addr) = (v))

#define virt_to_bus		virt_to_phys
#define bus_to_virt		phys_to_virt

#endif
