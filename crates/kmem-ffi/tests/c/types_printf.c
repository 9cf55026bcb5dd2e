/* The 64-bit types are the kernel's `long long` ones on every arch (asm-generic/int-ll64.h):
 * %llu/%lld/%llx print u64, s64, __u64, __s64, phys_addr_t, dma_addr_t and resource_size_t
 * under -Wall -Werror (-Wformat), through printk and the C library's printf alike. */
#include <linux/kernel.h>
#include <linux/types.h>
#include <asm/page.h>
#include <linux/gfp.h>
#include "ktest.h"

int main(void)
{
	u64 a = 18446744073709551615ULL;
	s64 b = -9223372036854775807LL;
	__u64 c = 42;
	__s64 d = -42;
	phys_addr_t pa;
	dma_addr_t da = 0x1000;
	resource_size_t rs = 0x2000;
	unsigned long page = __get_free_page(GFP_KERNEL);
	char buf[256];

	CHECK(page != 0);
	pa = virt_to_phys((void *)page);
	kmem_dmesg_clear();
	printk(KERN_INFO "u64 %llu s64 %lld __u64 %llu __s64 %lld\n", a, b, c, d);
	printk(KERN_INFO "phys %llx dma %llx res %llx\n", pa, da, rs);
	CHECK_LOG("u64 18446744073709551615 s64 -9223372036854775807 __u64 42 __s64 -42");
	CHECK_LOG("dma 1000 res 2000");
	snprintf(buf, sizeof(buf), "%llu %lld %llx", a, b, pa);
	CHECK(strncmp(buf, "18446744073709551615 -9223372036854775807 ", 42) == 0);
	/* The same types as the kernel's: assigning their addresses needs no cast. */
	{
		unsigned long long *pu = &a;
		long long *ps = &b;
		unsigned long long *pp = &pa;
		CHECK(*pu == a && *ps == b && *pp == pa);
	}
	free_page(page);
	return ktest_result("types_printf");
}
