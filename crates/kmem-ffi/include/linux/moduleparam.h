/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: module parameters (include/linux/moduleparam.h).
 *
 * module_param(name, type, perm) places a struct kernel_param in the module's "__param"
 * section, as the kernel does; `kmem insmod m.so name=value` finds it there and calls the
 * type's set function (param_set_int, ...) from libkmem. Types: bool, invbool, charp, byte,
 * short, ushort, int, uint, long, ulong, ullong, hexint. perm is accepted (there is no sysfs).
 * Not supported yet: module_param_array, module_param_string. */
#ifndef _KMEM_LINUX_MODULEPARAM_H
#define _KMEM_LINUX_MODULEPARAM_H

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/types.h>

struct module;
struct kernel_param;

/* A "tag=info" string in the module's .modinfo section (read by the loader, like modinfo). */
#define __MODULE_INFO(tag, name, info)							\
	static const char __UNIQUE_ID(name)[] __used __section(".modinfo") __aligned(1)	\
		= __stringify(tag) "=" info


#define KERNEL_PARAM_OPS_FL_NOARG	(1 << 0)

struct kernel_param_ops {
	unsigned int flags;
	int (*set)(const char *val, const struct kernel_param *kp);
	int (*get)(char *buffer, const struct kernel_param *kp);
	void (*free)(void *arg);
};

struct kernel_param {
	const char *name;
	struct module *mod;
	const struct kernel_param_ops *ops;
	const unsigned short perm;
	signed char level;
	unsigned char flags;
	union {
		void *arg;
		const void *str;
		const void *arr;
	};
};

#define MODULE_PARAM_PREFIX	/* empty: loadable modules take bare names */

#define __module_param_call(prefix, _name, _ops, _arg, _perm, _level, _flags)	\
	static const char __param_str_##_name[] = prefix #_name;		\
	static const struct kernel_param __param_##_name			\
	__used __section("__param") __aligned(__alignof__(struct kernel_param))	\
		= { .name = __param_str_##_name, .mod = (struct module *)0,	\
		    .ops = (_ops), .perm = (_perm), .level = (_level),		\
		    .flags = (_flags), .arg = (_arg) }

#define module_param_cb(_name, _ops, _arg, _perm)				\
	__module_param_call(MODULE_PARAM_PREFIX, _name, _ops, _arg, _perm, -1, 0)

/* The type check the kernel makes: the variable must have the parameter's C type. */
#define __param_check(name, p, type) \
	static inline type __always_unused *__check_##name(void) { return (p); }

#define param_check_byte(name, p)	__param_check(name, p, unsigned char)
#define param_check_short(name, p)	__param_check(name, p, short)
#define param_check_ushort(name, p)	__param_check(name, p, unsigned short)
#define param_check_int(name, p)	__param_check(name, p, int)
#define param_check_uint(name, p)	__param_check(name, p, unsigned int)
#define param_check_long(name, p)	__param_check(name, p, long)
#define param_check_ulong(name, p)	__param_check(name, p, unsigned long)
#define param_check_ullong(name, p)	__param_check(name, p, unsigned long long)
#define param_check_hexint(name, p)	__param_check(name, p, unsigned int)
#define param_check_charp(name, p)	__param_check(name, p, char *)
#define param_check_bool(name, p)	__param_check(name, p, bool)
#define param_check_invbool(name, p)	__param_check(name, p, bool)

extern const struct kernel_param_ops param_ops_byte, param_ops_short, param_ops_ushort,
	param_ops_int, param_ops_uint, param_ops_long, param_ops_ulong, param_ops_ullong,
	param_ops_hexint, param_ops_charp, param_ops_bool, param_ops_invbool;

int param_set_byte(const char *val, const struct kernel_param *kp);
int param_get_byte(char *buffer, const struct kernel_param *kp);
int param_set_short(const char *val, const struct kernel_param *kp);
int param_get_short(char *buffer, const struct kernel_param *kp);
int param_set_ushort(const char *val, const struct kernel_param *kp);
int param_get_ushort(char *buffer, const struct kernel_param *kp);
int param_set_int(const char *val, const struct kernel_param *kp);
int param_get_int(char *buffer, const struct kernel_param *kp);
int param_set_uint(const char *val, const struct kernel_param *kp);
int param_get_uint(char *buffer, const struct kernel_param *kp);
int param_set_long(const char *val, const struct kernel_param *kp);
int param_get_long(char *buffer, const struct kernel_param *kp);
int param_set_ulong(const char *val, const struct kernel_param *kp);
int param_get_ulong(char *buffer, const struct kernel_param *kp);
int param_set_ullong(const char *val, const struct kernel_param *kp);
int param_get_ullong(char *buffer, const struct kernel_param *kp);
int param_set_hexint(const char *val, const struct kernel_param *kp);
int param_get_hexint(char *buffer, const struct kernel_param *kp);
int param_set_charp(const char *val, const struct kernel_param *kp);
int param_get_charp(char *buffer, const struct kernel_param *kp);
void param_free_charp(void *arg);
int param_set_bool(const char *val, const struct kernel_param *kp);
int param_get_bool(char *buffer, const struct kernel_param *kp);
int param_set_invbool(const char *val, const struct kernel_param *kp);
int param_get_invbool(char *buffer, const struct kernel_param *kp);

/* The type is pasted right here, before any macro expansion could turn `bool` into `_Bool`. */
#define __module_param_typed(name, value, check, ops, typestr, perm)		\
	check(name, &(value));							\
	module_param_cb(name, &ops, &(value), perm);				\
	__MODULE_INFO(parmtype, name##type, #name ":" typestr)

#define module_param_named(name, value, type, perm)				\
	__module_param_typed(name, value, param_check_##type, param_ops_##type, #type, perm)

#define module_param(name, type, perm)						\
	__module_param_typed(name, name, param_check_##type, param_ops_##type, #type, perm)

#define MODULE_PARM_DESC(_parm, desc)	__MODULE_INFO(parm, _parm, #_parm ":" desc)

#endif
