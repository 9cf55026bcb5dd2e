/* Uses a function kmem does not export: loading fails as with an unknown kernel symbol. */
#include <linux/module.h>

extern int kmem_there_is_no_such_function(void);

static int __init unknown_init(void)
{
	return kmem_there_is_no_such_function();
}

module_init(unknown_init);
MODULE_LICENSE("GPL");
