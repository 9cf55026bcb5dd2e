/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: <linux/module.h> for modules run with `kmem insmod ./m.so`.
 *
 * Build a module as a shared object, not linked against anything:
 *     gcc -shared -fPIC -I<kmem>/crates/kmem-ffi/include -o m.so m.c
 * Its undefined symbols resolve against the `kmem` binary when it is loaded, as a kernel
 * module's resolve against the kernel. As in the kernel, module_init(fn) defines
 * init_module() as an alias of fn and module_exit(fn) defines cleanup_module(), so 2.4-style
 * modules that define init_module()/cleanup_module() themselves load too. MODULE_LICENSE and
 * friends are "key=value" strings in the ".modinfo" section. */
#ifndef _KMEM_LINUX_MODULE_H
#define _KMEM_LINUX_MODULE_H

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/types.h>

struct module;
#define THIS_MODULE	((struct module *)0)

#define MODULE_INFO(tag, info)		__MODULE_INFO(tag, tag, info)
#define MODULE_LICENSE(_license)	__MODULE_INFO(license, license, _license)
#define MODULE_AUTHOR(_author)		__MODULE_INFO(author, author, _author)
#define MODULE_DESCRIPTION(_desc)	__MODULE_INFO(description, description, _desc)
#define MODULE_VERSION(_version)	__MODULE_INFO(version, version, _version)
#define MODULE_ALIAS(_alias)		__MODULE_INFO(alias, alias, _alias)
#define MODULE_SOFTDEP(_softdep)	__MODULE_INFO(softdep, softdep, _softdep)
#define MODULE_DEVICE_TABLE(type, name)

#define module_init(initfn)							\
	static inline initcall_t __maybe_unused __inittest(void) { return initfn; }	\
	int init_module(void) __attribute__((__alias__(#initfn)));

#define module_exit(exitfn)							\
	static inline exitcall_t __maybe_unused __exittest(void) { return exitfn; }	\
	void cleanup_module(void) __attribute__((__alias__(#exitfn)));

/* One module is loaded at a time and nothing links against it: exporting is a no-op. */
#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)

static inline bool try_module_get(struct module *module) { (void)module; return true; }
static inline void module_put(struct module *module) { (void)module; }

#endif
