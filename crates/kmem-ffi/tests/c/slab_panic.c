/* SLAB_PANIC from C: a cache that cannot be made is the kernel's panic() (mm/slab_common.c,
 * kernel/panic.c): "Kernel panic - not syncing: __kmem_cache_create_args: Failed to create
 * slab '<name>'. Error <err>" and the process aborts. The argument picks the failure:
 * "size0" (size 0, -EINVAL), "flags" (an invalid flag), "ok" (a cache that can be made: no
 * panic, exit 0). */
#include <linux/slab.h>
#include <stdlib.h>
#include "ktest.h"

int main(int argc, char **argv)
{
	struct kmem_cache *c = NULL;
	const char *what = argc > 1 ? argv[1] : "ok";

	if (!strcmp(what, "size0"))
		c = kmem_cache_create("p", 0, 0, SLAB_PANIC, NULL);
	else if (!strcmp(what, "flags"))
		c = kmem_cache_create("pflags", 64, 0, SLAB_PANIC | (slab_flags_t)__OBJECT_POISON, NULL);
	else
		c = kmem_cache_create("pok", 64, 0, SLAB_PANIC, NULL);
	if (strcmp(what, "ok")) {
		/* Not reached: the panic aborted the process. */
		fprintf(stderr, "slab_panic: kmem_cache_create returned %p\n", (void *)c);
		return 3;
	}
	CHECK(c != NULL);
	CHECK_NOT_LOG("Kernel panic");
	kmem_cache_destroy(c);
	return ktest_result("slab_panic");
}
