/* A minimal test harness for the C suite: CHECK() prints the failing expression with its
 * line and counts it; main() returns ktest_result(), non-zero if anything failed. The Rust
 * driver (tests/c_abi.rs) compiles each file with gcc and checks the exit status. */
#ifndef KTEST_H
#define KTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kmem.h>

static int ktest_failures;
static int ktest_checks;

#define CHECK(cond) do {								\
		ktest_checks++;								\
		if (!(cond)) {								\
			ktest_failures++;						\
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);	\
		}									\
	} while (0)

#define CHECK_EQ_UL(a, b) do {								\
		unsigned long __a = (unsigned long)(a), __b = (unsigned long)(b);	\
		ktest_checks++;								\
		if (__a != __b) {							\
			ktest_failures++;						\
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%#lx != %#lx)\n",	\
				__FILE__, __LINE__, #a, #b, __a, __b);			\
		}									\
	} while (0)

/* `n` rounds of a loop that only repeats the same checks, scaled by KTEST_SCALE (a percentage,
 * default 100; .ci/valgrind-c lowers it, as memcheck serialises the threads), at least 1. A bad
 * value is reported and ignored. */
static __attribute__((unused)) int ktest_rounds(int n)
{
	const char *s = getenv("KTEST_SCALE");
	char *end;
	long pct;

	if (!s)
		return n;
	pct = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || pct < 1 || pct > 100) {
		fprintf(stderr, "ktest: KTEST_SCALE must be a percentage 1..100, got \"%s\"; ignored\n", s);
		return n;
	}
	return n * pct / 100 > 0 ? (int)(n * pct / 100) : 1;
}

/* The whole log as "<level>text" lines without timestamps. */
static char ktest_log[1 << 20];
static __attribute__((unused)) const char *ktest_dmesg(void)
{
	ssize_t n = kmem_dmesg_read(ktest_log, sizeof(ktest_log), KMEM_DMESG_LEVEL | KMEM_DMESG_NOTIME);
	if (n < 0)
		ktest_log[0] = '\0';
	return ktest_log;
}

static __attribute__((unused)) int ktest_log_has(const char *needle)
{
	return strstr(ktest_dmesg(), needle) != NULL;
}

/* How many times the log holds `needle`. */
static __attribute__((unused)) int ktest_log_count(const char *needle)
{
	const char *p = ktest_dmesg();
	int n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

#define CHECK_LOG(needle) do {								\
		ktest_checks++;								\
		if (!ktest_log_has(needle)) {						\
			ktest_failures++;						\
			fprintf(stderr, "%s:%d: the log lacks \"%s\"; log:\n%s\n",		\
				__FILE__, __LINE__, needle, ktest_log);			\
		}									\
	} while (0)

#define CHECK_NOT_LOG(needle) do {							\
		ktest_checks++;								\
		if (ktest_log_has(needle)) {						\
			ktest_failures++;						\
			fprintf(stderr, "%s:%d: the log has \"%s\"; log:\n%s\n",		\
				__FILE__, __LINE__, needle, ktest_log);			\
		}									\
	} while (0)

/* The value of /proc/meminfo's `key` line ("MemFree:", "VmallocUsed:", ...) in kB, or -1. */
static __attribute__((unused)) long ktest_meminfo_kb(const char *key)
{
	static char buf[8192];
	const char *line;

	if (kmem_proc_read("meminfo", buf, sizeof(buf)) <= 0)
		return -1;
	line = strstr(buf, key);
	return line ? strtol(line + strlen(key), NULL, 10) : -1;
}

static int ktest_result(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, ktest_checks, ktest_failures);
	return ktest_failures ? 1 : 0;
}

#endif
