/* /proc/vmallocinfo names the C function that made each area, as the kernel's vm->caller
 * (__builtin_return_address(0) in vmalloc, printed %pS): the vmalloc-family macros pass the
 * calling code's address (_THIS_IP_). Built with -rdynamic, so the program's functions are in
 * its dynamic symbol table. A call that bypasses the macro, (vmalloc)(size), names kmem's own
 * export instead, and a later call of the kvmalloc family (no macro) is not named after an
 * earlier macro call. */
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include "ktest.h"

static char text[1 << 16];

/* The vmallocinfo line of the area at `p` (NULL-terminated in place), or NULL. */
static const char *line_of(const void *p)
{
	char start[32];
	char *line, *end;

	snprintf(start, sizeof(start), "0x%016lx-", (unsigned long)p);
	if (kmem_proc_read("vmallocinfo", text, sizeof(text)) <= 0)
		return NULL;
	line = strstr(text, start);
	if (!line)
		return NULL;
	end = strchr(line, '\n');
	if (end)
		*end = '\0';
	return line;
}

noinline void *make_area(void)
{
	return vmalloc(3 * 4096);
}

noinline void *make_zeroed_area(void)
{
	return __vmalloc(2 * 4096, GFP_KERNEL | __GFP_ZERO);
}

int main(void)
{
	void *a = make_area(), *b = make_zeroed_area(), *c = (vmalloc)(4096), *d;
	const char *l;

	CHECK(a && b && c);
	l = line_of(a);
	CHECK(l && strstr(l, " make_area+0x") && strstr(l, " pages=3 vmalloc"));
	if (l)
		printf("%s\n", l);
	l = line_of(b);
	CHECK(l && strstr(l, " make_zeroed_area+0x"));
	l = line_of(c);
	CHECK(l && strstr(l, "vmalloc.rs:"));
	/* kvmalloc has no macro: its vmalloc fallback (past kmalloc's 4 MiB) is kmem's own. */
	d = kvmalloc(1 << 23, GFP_KERNEL);
	l = d ? line_of(d) : NULL;
	CHECK(l && !strstr(l, "make_"));
	kvfree(d);
	vfree(c);
	vfree(b);
	vfree(a);
	return ktest_result("vmallocinfo_caller");
}
