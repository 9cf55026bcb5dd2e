/* kmemleak for a program on libkmem (KMEM_KMEMLEAK=1): at exit, objects nothing refers to are
 * reported on stderr. Reachable: from a global (directly, through another object, or by an
 * interior pointer), from a live stack frame of exit's caller, or marked kmemleak_not_leak (and
 * what such an object refers to: it is still scanned).
 * A live pool's reserve elements, which C's alloc_fn kmallocs, are the pool's (reachable too).
 * Lost: a two-object chain whose head pointer was dropped, a vmalloc area, an object only
 * a malloc'd block refers to (malloc memory is not scanned), and a vmalloc area given to vunmap
 * by mistake (refused: only vfree frees its pages, so it is still allocated). Sizes tell them
 * apart. Gone, so not reported: the element a custom pool's free_fn mempool_kfree frees at its
 * destroy. */
#include <stdio.h>
#include <stdlib.h>
#include <linux/slab.h>
#include "kmemleak_test.h"
#include <linux/vmalloc.h>
#include <linux/kmemleak.h>
#include <linux/mempool.h>

struct node {
	struct node *next;
	char payload[];
};

static void *pool_alloc(gfp_t gfp, void *data)
{
	(void)data;
	return kmalloc(72, gfp);
}

static void pool_free(void *element, void *data)
{
	(void)data;
	kfree(element);
}

/* Not static: a static written and never read may be optimised away, and its pointer with it. */
mempool_t *live_pool;
struct node *global_list;
char *interior;
void *held_area;

static noinline void lose_a_chain(void)
{
	struct node *c = kmalloc(100, GFP_KERNEL);
	struct node *d = kmalloc(50, GFP_KERNEL);

	c->next = d;
	d->next = NULL;
	/* c goes out of scope: c and d are unreachable. */
}

static noinline void keep_a_chain(void)
{
	struct node *kept = kmalloc(40, GFP_KERNEL);

	kept->next = kmalloc(800, GFP_KERNEL);
	kept->next->next = NULL;
	kmemleak_not_leak(kept);
	/* kept goes out of scope: no leak, and neither is the object it refers to. */
}


static noinline void lose_them(void)
{
	void **malloced;

	lose_a_chain();
	(void)vmalloc(5000);
	malloced = malloc(sizeof(void *));
	*malloced = kmalloc(200, GFP_KERNEL);
}

static noinline void finish(void)
{
	void *volatile on_stack = kmalloc(3000, GFP_KERNEL);

	(void)on_stack;
	fflush(stdout);
	exit(0); /* on_stack's frame is live while the exit handlers run. */
}

int main(void)
{
	global_list = kmalloc(300, GFP_KERNEL);
	global_list->next = kmalloc(600, GFP_KERNEL);
	global_list->next->next = NULL;
	interior = (char *)kmalloc(1500, GFP_KERNEL) + 10;
	held_area = vmalloc(3 * 4096);
	live_pool = mempool_create(2, pool_alloc, pool_free, NULL);
	deep(lose_them);
	kmemleak_not_leak(kmalloc(20, GFP_KERNEL));
	keep_a_chain();
	kfree(kmalloc(700, GFP_KERNEL));
	mempool_destroy(mempool_create(1, pool_alloc, mempool_kfree, NULL));
	vunmap(vmalloc(4096));
	printf("kmemleak: allocated\n");
	finish();
}
