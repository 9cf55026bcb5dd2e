/* kmem's headers next to glibc's that define the same names: <sys/param.h>'s roundup,
 * <sys/user.h>'s PAGE_MASK, and <sys/sysinfo.h>, which includes <linux/kernel.h> (kmem's,
 * with -I include) for struct sysinfo. Built with KMEM_GLIBC_FIRST defined and not, so both
 * include orders compile under -Werror; the values are the same either way. */
#ifdef KMEM_GLIBC_FIRST
#include <sys/param.h>
#include <sys/user.h>
#include <sys/sysinfo.h>
#endif
#include <linux/kernel.h>
#include <asm/page.h>
#include <linux/compiler.h>
#ifndef KMEM_GLIBC_FIRST
#include <sys/param.h>
#include <sys/user.h>
#include <sys/sysinfo.h>
#endif
#include "ktest.h"

int main(void)
{
	struct sysinfo si;
	unsigned long x = 4097;

	CHECK(roundup(x, PAGE_SIZE) == 8192);
	CHECK(roundup(10, 3) == 12);
	CHECK(roundup(x, 4096UL) == 8192);
	CHECK(PAGE_MASK == ~4095UL);
	CHECK((x & PAGE_MASK) == 4096);
	CHECK(PAGE_ALIGN(x) == 8192);
	CHECK(sysinfo(&si) == 0 && si.mem_unit >= 1 && si.totalram > 0);
	CHECK(strcmp(__stringify(PAGE_SHIFT), "12") == 0);
	CHECK(strcmp(__stringify(a, b), "a, b") == 0);
	return ktest_result("glibc_mix");
}
