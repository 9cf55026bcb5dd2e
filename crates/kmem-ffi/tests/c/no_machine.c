/* With a bad KMEM_* value the machine behind the C ABI cannot start: every call fails the
 * kernel's way (NULL, 0, nothing) and stderr says why, once (DESIGN §3: bad values give a
 * clear error naming the variable). No crash. */
#include <stdio.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/vmalloc.h>

int main(void)
{
	int bad = 0;

	bad |= kmalloc(100, GFP_KERNEL) != NULL;
	bad |= kmalloc(100, GFP_KERNEL) != NULL;
	bad |= vmalloc(4096) != NULL;
	bad |= __get_free_pages(GFP_KERNEL, 0) != 0;
	bad |= kmem_cache_create("nomachine", 64, 0, 0, NULL) != NULL;
	kfree(NULL);
	vfree(NULL);
	printf("no_machine: %s\n", bad ? "an allocation succeeded" : "every allocation failed");
	return bad;
}
