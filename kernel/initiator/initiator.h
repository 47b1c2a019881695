/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cvm.ko internals shared between its source files.
 */
#ifndef _CVM_INITIATOR_H
#define _CVM_INITIATOR_H

/* Name of the block major and prefix of /dev/cvmN. */
#define CVM_BLKDEV_NAME	"cvm"

/* Dynamic block major of /dev/cvmN, set at module load. */
extern int cvm_major;

int cvm_genl_register(void);
void cvm_genl_unregister(void);

#endif /* _CVM_INITIATOR_H */
