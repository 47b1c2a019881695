/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cvm_target.ko internals shared between its source files.
 */
#ifndef _CVM_TARGET_H
#define _CVM_TARGET_H

int cvm_target_genl_register(void);
void cvm_target_genl_unregister(void);

#endif /* _CVM_TARGET_H */
