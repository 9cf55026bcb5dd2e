/* The kernel's small common headers as kernel code uses them: <linux/bits.h>, <linux/sizes.h>,
 * <linux/math.h>, <linux/build_bug.h>, <linux/cache.h>, <linux/kconfig.h> and
 * <linux/mmdebug.h>. Values are the kernel's; the constant forms are constant expressions
 * (array bounds, static initializers, #if). Built with -DCONFIG_KMEM_ON=1
 * -DCONFIG_KMEM_MOD_MODULE=1. */
#include <assert.h>	/* its static_assert must not clash with the kernel's */
#include <linux/kernel.h>
#include <linux/bits.h>
#include <linux/sizes.h>
#include <linux/math.h>
#include <linux/build_bug.h>
#include <linux/cache.h>
#include <linux/kconfig.h>
#include <linux/mmdebug.h>
#include "ktest.h"

/* Constant expressions at file scope. */
static_assert(BIT(3) == 8);
static_assert(GENMASK(7, 4) == 0xf0, "GENMASK(7, 4)");
static_assert(SZ_4K == 4096 && SZ_2G == 0x80000000 && SZ_4G == 4294967296ULL);
static char by_size[SZ_1K + BUILD_BUG_ON_ZERO(SZ_1K != 1024)];
static const unsigned long masks[] = { GENMASK(BITS_PER_LONG - 1, 0), BIT_MASK(65), GENMASK(0, 0) };
static int shared_counter ____cacheline_aligned;
static int tuned __read_mostly = 3;

#if IS_ENABLED(CONFIG_KMEM_ON) && IS_ENABLED(CONFIG_KMEM_MOD) && !IS_ENABLED(CONFIG_KMEM_OFF)
static const int preprocessor_saw_them = 1;
#else
static const int preprocessor_saw_them = 0;
#endif

static int order_default(int o)
{
	switch (o) {
	case 0:
		return 1;
	default:
		return 2;
	}
	BUILD_BUG();	/* unreachable: removed by the compiler, no error */
}

int main(void)
{
	volatile unsigned int h = 11, l = 3;
	int calls = 0;

	CHECK_EQ_UL(sizeof(by_size), 1024);
	CHECK_EQ_UL(masks[0], ~0UL);
	CHECK_EQ_UL(masks[1], 2);
	CHECK_EQ_UL(masks[2], 1);
	CHECK_EQ_UL(GENMASK(h, l), 0xff8);
	CHECK_EQ_UL(GENMASK_ULL(63, 60), 0xf000000000000000ULL);
	CHECK_EQ_UL(BIT_ULL(40), 1ULL << 40);
	CHECK_EQ_UL(BIT_WORD(130), 130 / BITS_PER_LONG);
	CHECK_EQ_UL(BITS_PER_LONG, sizeof(long) * 8);
	CHECK_EQ_UL(SZ_64T, 1ULL << 46);

	CHECK_EQ_UL(round_up(13, 8), 16);
	CHECK_EQ_UL(round_up(16, 8), 16);
	CHECK_EQ_UL(round_down(13, 8), 8);
	CHECK_EQ_UL(roundup(13, 5), 15);
	CHECK_EQ_UL(rounddown(13, 5), 10);
	CHECK_EQ_UL(DIV_ROUND_UP(13, 4), 4);
	CHECK_EQ_UL(DIV_ROUND_UP_ULL(1ULL << 40, 3), ((1ULL << 40) + 2) / 3);
	CHECK(DIV_ROUND_CLOSEST(7, 2) == 4);
	CHECK(DIV_ROUND_CLOSEST(5, 4) == 1);
	CHECK(DIV_ROUND_CLOSEST(-7, 2) == -4);	/* halves away from zero */
	CHECK(DIV_ROUND_CLOSEST(7, -2) == -4);
	CHECK(DIV_ROUND_CLOSEST(-5, 4) == -1);
	CHECK(DIV_ROUND_CLOSEST(7u, 2u) == 4u);
	CHECK(DIV_ROUND_CLOSEST_ULL(10, 4) == 3);
	calls = 0;
	CHECK(DIV_ROUND_CLOSEST(calls++ + 9, 2) == 5);
	CHECK_EQ_UL(calls, 1);	/* each argument once */

	/* BUILD_BUG_ON forms as statements, the body of an if included. */
	if (h)
		BUILD_BUG_ON(sizeof(int) < 4);
	BUILD_BUG_ON_MSG(sizeof(long) < sizeof(int), "long narrower than int");
	BUILD_BUG_ON_NOT_POWER_OF_2(SMP_CACHE_BYTES);
	BUILD_BUG_ON_INVALID(calls++);	/* type-checked, never evaluated */
	CHECK_EQ_UL(calls, 1);
	CHECK_EQ_UL(order_default(0) + order_default(5), 3);

	CHECK_EQ_UL(L1_CACHE_BYTES, 64);
	CHECK_EQ_UL(SMP_CACHE_BYTES, 64);
	CHECK_EQ_UL(L1_CACHE_ALIGN(65), 128);
	CHECK_EQ_UL((unsigned long)&shared_counter % 64, 0);
	CHECK_EQ_UL(tuned, 3);

	CHECK_EQ_UL(preprocessor_saw_them, 1);
	CHECK_EQ_UL(IS_BUILTIN(CONFIG_KMEM_ON), 1);
	CHECK_EQ_UL(IS_MODULE(CONFIG_KMEM_ON), 0);
	CHECK_EQ_UL(IS_MODULE(CONFIG_KMEM_MOD), 1);
	CHECK_EQ_UL(IS_ENABLED(CONFIG_KMEM_OFF), 0);
	CHECK_EQ_UL(IS_REACHABLE(CONFIG_KMEM_MOD), 0);	/* a module's option, not built with -DMODULE */
	CHECK_EQ_UL(IS_REACHABLE(CONFIG_KMEM_ON), 1);

	/* CONFIG_DEBUG_VM=y semantics: the conditions run, a false one reports nothing. */
	kmem_dmesg_clear();
	calls = 0;
	VM_BUG_ON(calls++ != 0);
	VM_WARN_ON(calls++ != 1);
	VM_WARN_ON_ONCE(calls++ != 2);
	CHECK_EQ_UL(calls, 3);
	CHECK_NOT_LOG("WARNING");
	VM_WARN_ON(calls == 3);
	CHECK_LOG("WARNING: at ");
	return ktest_result("common_headers");
}
