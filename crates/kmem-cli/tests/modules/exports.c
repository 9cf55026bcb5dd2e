/* Takes the address of every function and object kmem exports: the module loads only if
 * the kmem binary exports each of them (RTLD_NOW resolves them all at load time). */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/spinlock.h>
#include <linux/delay.h>
#include <linux/kmem.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/highmem.h>
#include <linux/mempool.h>
#include <asm/io.h>

static const void *const exported[] = {
	/* pages */
	alloc_pages, __get_free_pages, get_zeroed_page, free_pages, __free_pages, alloc_pages_exact,
	free_pages_exact, alloc_pages_bulk, split_page, page_address, virt_to_page, virt_to_phys,
	phys_to_virt, pfn_to_page, page_to_pfn, pfn_valid, virt_addr_valid, PageHighMem, page_count,
	get_page, virt_to_head_page,
	/* log and /proc */
	kmem_printk_text, dump_stack, kmem_dmesg_read, kmem_dmesg_clear, kmem_proc_read,
	/* kmemleak on demand */
	kmem_kmemleak_scan, kmem_kmemleak_read, kmem_kmemleak_clear,
	/* context */
	arch_local_irq_save, arch_local_irq_restore, arch_local_irq_disable, arch_local_irq_enable,
	arch_irqs_disabled, preempt_disable, preempt_enable, in_atomic, __might_sleep, msleep,
	_cond_resched, _raw_spin_lock, _raw_spin_trylock, _raw_spin_unlock, _raw_spin_lock_irqsave,
	_raw_spin_unlock_irqrestore, _raw_spin_lock_irq, _raw_spin_unlock_irq, spin_is_locked,
	/* module parameters */
	&param_ops_byte, &param_ops_short, &param_ops_ushort, &param_ops_int, &param_ops_uint,
	&param_ops_long, &param_ops_ulong, &param_ops_ullong, &param_ops_hexint, &param_ops_charp,
	&param_ops_bool, &param_ops_invbool,
	param_set_byte, param_get_byte, param_set_short, param_get_short, param_set_ushort,
	param_get_ushort, param_set_int, param_get_int, param_set_uint, param_get_uint,
	param_set_long, param_get_long, param_set_ulong, param_get_ulong, param_set_ullong,
	param_get_ullong, param_set_hexint, param_get_hexint, param_set_charp, param_get_charp,
	param_free_charp, param_set_bool, param_get_bool, param_set_invbool, param_get_invbool,
	/* slab caches */
	__kmem_cache_create, __kmem_cache_create_args, kmem_cache_create_dtor, kmem_cache_destroy,
	kmem_cache_shrink, kmem_cache_size, kmem_cache_name, kmem_cache_alloc, kmem_cache_free,
	kmem_cache_alloc_bulk, kmem_cache_free_bulk,
	/* kmalloc and kvmalloc */
	kmalloc, kmalloc_array, kcalloc, krealloc, krealloc_array, kfree, kfree_sensitive, ksize,
	kmalloc_size_roundup, kvmalloc, kvmalloc_array, kvrealloc, kvfree, kvfree_sensitive,
	kstrdup, kstrndup, kstrdup_const, kmemdup, kfree_const,
	/* vmalloc and kmap */
	vmalloc, vzalloc, vmalloc_user, vmalloc_32, vmalloc_32_user, __vmalloc, __vmalloc_node, vrealloc, vfree,
	vmap, vunmap, vmalloc_to_page, vmalloc_to_pfn, is_vmalloc_addr, kmap, kunmap,
	kmap_local_page, kunmap_local, kmap_atomic, kunmap_atomic,
	/* mempool (mempool_init and mempool_exit have no prototype: taken as functions) */
	(mempool_create), mempool_create_node, mempool_destroy, mempool_init, mempool_init_node, mempool_exit,
	mempool_alloc, mempool_alloc_preallocated, mempool_free, mempool_alloc_bulk,
	mempool_free_bulk, (mempool_resize),
	mempool_resize_gfp, mempool_alloc_slab, mempool_free_slab, mempool_kmalloc, mempool_kfree,
	mempool_alloc_pages, mempool_free_pages,
};

static int __init exports_init(void)
{
	unsigned int i, present = 0;

	for (i = 0; i < sizeof(exported) / sizeof(exported[0]); i++)
		present += exported[i] != NULL;
	pr_info("%u of %zu exports resolved\n", present, sizeof(exported) / sizeof(exported[0]));
	return 0;
}

module_init(exports_init);
MODULE_LICENSE("GPL");
