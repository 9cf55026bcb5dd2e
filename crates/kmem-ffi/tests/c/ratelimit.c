/* printk's _once and _ratelimited forms, WARN_ONCE, printk_ratelimit, printk_timed_ratelimit,
 * and struct ratelimit_state with lib/ratelimit.c's rules: `burst` per `interval` jiffies,
 * "<func>: N callbacks suppressed" when a new interval begins after suppressions (not with
 * RATELIMIT_MSG_ON_RELEASE, which reports at ratelimit_state_exit instead), interval 0 never
 * limits. Intervals are an hour, and a test that needs a new one moves the start of the
 * current one back: no assertion depends on how fast the calls run.
 *
 * <sys/param.h> comes first on purpose: glibc's copy of <asm/param.h> defines HZ as 100 when
 * nothing defined it before, and kmem's jiffies are milliseconds whatever the include order. */
#include <sys/param.h>
#include <linux/kernel.h>
#include <linux/ratelimit.h>
#include <linux/jiffies.h>
#include "ktest.h"

static int allowed(struct ratelimit_state *rs, int calls)
{
	int i, n = 0;

	for (i = 0; i < calls; i++)
		n += __ratelimit(rs);
	return n;
}

/* Moves the start of `rs`'s interval back by more than the interval, as if it had passed. */
static void rewind_rs(struct ratelimit_state *rs)
{
	rs->begin = jiffies - (unsigned long)rs->interval - 1;
	if (rs->begin == 0)
		rs->begin--;
}

static void say_once(int i)
{
	pr_warn_once("once-only line %d\n", i);
	pr_info_ratelimited("limited line %d\n", i);
	WARN_ONCE(i >= 3, "warn-once at %d\n", i);
}

int main(void)
{
	DEFINE_RATELIMIT_STATE(hour, 3600 * HZ, 3);
	DEFINE_RATELIMIT_STATE(off, 0, 1);
	struct ratelimit_state short_rs, quiet;
	unsigned long stamp = 0, stamp2 = 0, j0, j1;
	int i, n, within;

	kmem_dmesg_clear();
	j0 = jiffies;
	CHECK(HZ == 250);
	/* Counted from INITIAL_JIFFIES, as the kernel's: never 0 ("not started" to a state). */
	CHECK(j0 - INITIAL_JIFFIES < 3600UL * HZ);
	CHECK_EQ_UL(DEFAULT_RATELIMIT_INTERVAL, 1250);
	CHECK_EQ_UL(jiffies_to_msecs(HZ), 1000);
	CHECK_EQ_UL(msecs_to_jiffies(1), 1);	/* rounds up */
	CHECK_EQ_UL(msecs_to_jiffies(1000), HZ);
	/* No 32-bit wrap in the rounding up (the kernel computes in long). */
	CHECK_EQ_UL(usecs_to_jiffies(4294967295u), 1073742UL);
	CHECK_EQ_UL(msecs_to_jiffies(-1), MAX_JIFFY_OFFSET);
	CHECK(time_after_eq(jiffies, j0));
	CHECK(!time_after(j0, jiffies));

	/* The _once forms print the first time only; the _ratelimited ones 10 per 5 s. Those
	 * 5 s are the header's, not the test's: exactly 10 only when the calls took less (a
	 * loaded machine or valgrind may take longer, and then a second interval may begin). */
	j1 = jiffies;
	for (i = 0; i < 25; i++)
		say_once(i);
	within = time_before(jiffies, j1 + DEFAULT_RATELIMIT_INTERVAL);
	CHECK_EQ_UL(ktest_log_count("once-only line"), 1);
	CHECK_LOG("once-only line 0");
	if (within)
		CHECK_EQ_UL(ktest_log_count("limited line"), DEFAULT_RATELIMIT_BURST);
	else
		CHECK(ktest_log_count("limited line") >= DEFAULT_RATELIMIT_BURST);
	CHECK_EQ_UL(ktest_log_count("warn-once at"), 1);
	CHECK_LOG("warn-once at 3");

	/* burst per interval; interval 0 never limits. */
	CHECK_EQ_UL(allowed(&hour, 10), 3);
	CHECK_EQ_UL(hour.missed, 7);
	CHECK_EQ_UL(allowed(&off, 10), 10);

	/* A new interval reports what the last one suppressed, naming the caller. The interval
	 * is an hour; "an hour later" is made by moving its start back (rewind()). */
	ratelimit_state_init(&short_rs, 3600 * HZ, 1);
	CHECK_EQ_UL(__ratelimit(&short_rs), 1);
	CHECK_EQ_UL(__ratelimit(&short_rs), 0);
	CHECK_EQ_UL(__ratelimit(&short_rs), 0);
	kmem_dmesg_clear();
	rewind_rs(&short_rs);
	CHECK_EQ_UL(__ratelimit(&short_rs), 1);
	CHECK_LOG("main: 2 callbacks suppressed");
	CHECK_EQ_UL(short_rs.missed, 0);

	/* RATELIMIT_MSG_ON_RELEASE: no report per interval; ratelimit_state_exit reports. */
	ratelimit_state_init(&quiet, 3600 * HZ, 1);
	ratelimit_set_flags(&quiet, RATELIMIT_MSG_ON_RELEASE);
	CHECK_EQ_UL(allowed(&quiet, 4), 1);
	kmem_dmesg_clear();
	rewind_rs(&quiet);
	CHECK_EQ_UL(__ratelimit(&quiet), 1);
	CHECK_NOT_LOG("callbacks suppressed");
	ratelimit_state_exit(&quiet);
	CHECK_LOG(": 3 output lines suppressed due to ratelimiting");	/* "<comm>: ..." */
	CHECK_EQ_UL(quiet.missed, 0);

	/* printk_timed_ratelimit allows again once its interval has passed (moved back, not
	 * slept through: the interval is an hour). */
	CHECK(printk_timed_ratelimit(&stamp2, 3600 * 1000));
	CHECK(!printk_timed_ratelimit(&stamp2, 3600 * 1000));
	stamp2 -= msecs_to_jiffies(3600 * 1000) + 1;
	CHECK(printk_timed_ratelimit(&stamp2, 3600 * 1000));

	/* printk_ratelimit: the process-wide state, 10 per 5 s (exactly 10 when the calls took
	 * less, as above). */
	j1 = jiffies;
	n = 0;
	for (i = 0; i < 15; i++)
		n += printk_ratelimit();
	if (time_before(jiffies, j1 + DEFAULT_RATELIMIT_INTERVAL))
		CHECK_EQ_UL(n, 10);
	else
		CHECK(n >= 10);
	/* printk_timed_ratelimit: once per interval of the caller's timestamp. */
	CHECK(printk_timed_ratelimit(&stamp, 3600 * 1000));
	CHECK(!printk_timed_ratelimit(&stamp, 3600 * 1000));

	/* A NULL state is reported and suppresses. */
	kmem_dmesg_clear();
	CHECK_EQ_UL(___ratelimit(NULL, "x"), 0);
	CHECK_LOG("___ratelimit() called with a NULL ratelimit state");
	return ktest_result("ratelimit");
}
