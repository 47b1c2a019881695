/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The transports a module carries.  Each one's init registers it with the
 * core (cvm_transport_register()); the modules' init and exit call these,
 * the core never does: it knows transports only by their ops tables.
 */
#ifndef _CVM_TRANSPORTS_H
#define _CVM_TRANSPORTS_H

/* tcp.c */
int cvm_tcp_init(void);
void cvm_tcp_exit(void);

/* rdma.c */
int cvm_rdma_init(void);
void cvm_rdma_exit(void);

#endif /* _CVM_TRANSPORTS_H */
