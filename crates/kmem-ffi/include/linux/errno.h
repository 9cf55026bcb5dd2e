/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* kmem: error numbers: the kernel's uapi values (<asm/errno.h>, the same the C library uses)
 * and the kernel-internal ones (include/linux/errno.h). This header does not include the C
 * library's <errno.h>: that one includes <linux/errno.h>, which is this file. */
#ifndef _KMEM_LINUX_ERRNO_H
#define _KMEM_LINUX_ERRNO_H

#include <asm/errno.h>

#define ERESTARTSYS		512
#define ERESTARTNOINTR		513
#define ERESTARTNOHAND		514
#define ENOIOCTLCMD		515
#define ERESTART_RESTARTBLOCK	516
#define EPROBE_DEFER		517
#define EOPENSTALE		518
#define ENOPARAM		519
#define EBADHANDLE		521
#define ENOTSYNC		522
#define EBADCOOKIE		523
#define ENOTSUPP		524
#define ETOOSMALL		525
#define ESERVERFAULT		526
#define EBADTYPE		527
#define EJUKEBOX		528
#define EIOCBQUEUED		529
#define ERECALLCONFLICT		530
#define ENOGRACE		531

#endif
