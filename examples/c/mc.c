/* mc.c: seed 003's slab-backed memory pool ("Linux内核模块实现内存池(mempool_t)"), as printed,
 * for kmem insmod. The web page's listing lost its line breaks and doubled the backslash of
 * every "\n"; both are restored, nothing else is changed. */
/* 头文件和全局变量地声明*/
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/module.h>
#include <linux/mempool.h>
#include <linux/blkdev.h>

static int __init mempool_create_InitFunc(void);
static void __exit mempool_create_ExitFunc(void);

struct kmem_cache *pmycache = NULL;
static mempool_t *mypool=NULL;
#define MEMSIZE 10240

// 模块初始化函数
int __init mempool_create_InitFunc(void)
{
	pmycache = kmem_cache_create("MyselfCache",10240,0, SLAB_HWCACHE_ALIGN, NULL);
	if(NULL==pmycache)
	{
		printk("执行:kmem_cache_create(...)函数失败,请重新检查?\n");
	}
	else
	{
		printk("创建slab缓存成功!\n");
		printk("MyselfCache Cache大小为: %d\n", kmem_cache_size(pmycache));
		// 基于slab缓存创建6个初始元素的内存池
		mypool=mempool_create(6, mempool_alloc_slab, mempool_free_slab, pmycache);
		if(NULL == mypool)
		{
			printk("执行:mempool_create()函数失败,请重新检查?\n");
			return 0;
		}
		else
		{
			printk("创建内存池成功!\n");
			printk("内存池中元素最大个数,min_nr = %d\n", mypool->min_nr);
		}
	}
	return 0;
}

// 模块退出函数
void __exit mempool_create_ExitFunc(void)
{
	// 释放内存池
	if(NULL != mypool)
	{
		mempool_destroy(mypool);
		printk("执行:mempool_destroy()函数释放内存池成功!\n");
	}
	// 释放slab缓存
	if(NULL != pmycache)
	{
		kmem_cache_destroy(pmycache);
		printk("执行:kmem_cache_destroy()函数释放slab缓存成功!\n");
	}
	printk("内核模块退出成功!\n");
}

/* 模块初始化操作和退出函数调用 */
module_init(mempool_create_InitFunc);
module_exit(mempool_create_ExitFunc);

MODULE_LICENSE("GPL"); /* 描述模块代码接受的软件许可协议 */
MODULE_AUTHOR("Lion Long"); /* 描述模块的作者信息:包括作者姓名及邮箱等等 */
MODULE_DESCRIPTION(" kernel module : mempool_create/mempool_destroy"); /* 简要描述此模块用途及功能介绍*/
