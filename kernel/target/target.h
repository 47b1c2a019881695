/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cvm_target.ko internals shared between its source files.
 */
#ifndef _CVM_TARGET_H
#define _CVM_TARGET_H

#include <linux/blk_types.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/netlink.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

struct cvm_xprt_req;
struct cvm_store_dev;

int cvm_target_genl_register(void);
void cvm_target_genl_unregister(void);

/* store.c: object stores on backing block devices */
int cvm_store_init(void);
void cvm_store_exit(void);
int cvm_store_add(u32 id, const char *path, u32 flags,
		  struct netlink_ext_ack *extack);
int cvm_store_remove(u32 id);
void cvm_store_remove_all(void);
unsigned int cvm_store_count(void);
struct cvm_store_dev *cvm_store_get(u32 id);
void cvm_store_put(struct cvm_store_dev *d);
u64 cvm_store_instance(const struct cvm_store_dev *d);
/* One device's figures for CVM_CMD_TARGET_DEVICE_LIST. */
struct cvm_store_usage {
	u32	id;
	char	path[CVM_TARGET_PATH_LEN];
	u64	capacity;	/* bytes of extents */
	u64	used;		/* bytes of allocated extents */
	u64	objects;	/* object shards held */
	u64	intents;	/* of them, with their write-intent bit set */
	u64	io_errors;	/* requests failed with IO_ERROR */
	u64	copied;		/* bytes written by resync and backfill */
};
int cvm_store_usage_next(unsigned long *index, struct cvm_store_usage *u);
/* Carries out a validated data request and answers it (send_reply). */
void cvm_store_handle(struct cvm_store_dev *d, struct cvm_xprt_req *req);
#define CVM_STORE_ALL	U32_MAX		/* cvm_store_fence(): every device */
int cvm_store_fence(u32 id, u64 volume_id, u64 epoch, u64 host_id,
		    struct netlink_ext_ack *extack);
int cvm_bdev_rw_block(struct block_device *bdev, u64 block, void *buf,
		      blk_opf_t opf);

/* server.c: listeners */
int cvm_server_listen(const char *transport, const char *addr, u16 port,
		      struct netlink_ext_ack *extack);
int cvm_server_unlisten(const char *addr, u16 port,
			struct netlink_ext_ack *extack);
void cvm_server_unlisten_all(void);
/* Closes connections to @device_id of hosts that lost their key. */
void cvm_server_drop_unkeyed(u32 device_id);

/* hosts.c: the hosts each device lets in (TARGET_HOSTS_SET) */
struct cvm_host_ent {
	u64	host_id;
	u32	key_id;
	u32	flags;			/* CVM_TARGET_HOST_F_* */
	u8	key[CVM_WIRE_KEY_LEN];
};

struct cvm_host_table {
	struct rcu_head		rcu;
	u32			nr;
	struct cvm_host_ent	ents[];
};

struct cvm_host_table *cvm_hosts_alloc(u32 nr);
void cvm_hosts_free(struct cvm_host_table *t);
int cvm_hosts_set(u32 device_id, struct cvm_host_table *t);
bool cvm_hosts_key(u32 device_id, u64 host_id, u32 key_id, u8 *key);
bool cvm_hosts_known(u32 device_id, u64 host_id);
bool cvm_hosts_agent(u32 device_id, u64 host_id);
u32 cvm_hosts_count(u32 device_id);
void cvm_hosts_exit(void);

#endif /* _CVM_TARGET_H */
