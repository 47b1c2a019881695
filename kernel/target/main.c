// SPDX-License-Identifier: GPL-2.0
/*
 * cvm_target.ko: the CVM storage node.
 *
 * Serves object shards from backing block devices to initiators over the
 * CVM wire protocol (include/uapi/linux/cvm_wire.h); cvmd drives it through
 * the "cvm_target" generic netlink family (netlink.c).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/init.h>
#include <linux/limits.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/stddef.h>
#include <net/genetlink.h>

#include "../transport/transport.h"
#include "../transport/transports.h"
#include "target.h"

/*
 * The wire format is fixed for a protocol version: pin its layout here so
 * that an accidental change to cvm_wire.h fails the build instead of the
 * cluster.
 */
#define CVM_WIRE_FIELD(type, field, off)				\
	static_assert(offsetof(struct type, field) == (off))

static_assert(sizeof(struct cvm_wire_hdr) == CVM_WIRE_HDR_LEN);
CVM_WIRE_FIELD(cvm_wire_hdr, magic, 0);
CVM_WIRE_FIELD(cvm_wire_hdr, version, 4);
CVM_WIRE_FIELD(cvm_wire_hdr, opcode, 5);
CVM_WIRE_FIELD(cvm_wire_hdr, flags, 6);
CVM_WIRE_FIELD(cvm_wire_hdr, tag, 8);
CVM_WIRE_FIELD(cvm_wire_hdr, volume_id, 16);
CVM_WIRE_FIELD(cvm_wire_hdr, object_no, 24);
CVM_WIRE_FIELD(cvm_wire_hdr, offset, 32);
CVM_WIRE_FIELD(cvm_wire_hdr, snap_seq, 40);
CVM_WIRE_FIELD(cvm_wire_hdr, snap_id, 48);
CVM_WIRE_FIELD(cvm_wire_hdr, map_epoch, 56);
CVM_WIRE_FIELD(cvm_wire_hdr, attach_epoch, 64);
CVM_WIRE_FIELD(cvm_wire_hdr, length, 72);
CVM_WIRE_FIELD(cvm_wire_hdr, shard, 76);
CVM_WIRE_FIELD(cvm_wire_hdr, status, 78);
CVM_WIRE_FIELD(cvm_wire_hdr, data_crc, 80);
CVM_WIRE_FIELD(cvm_wire_hdr, shard_version, 84);
CVM_WIRE_FIELD(cvm_wire_hdr, reserved1, 88);
CVM_WIRE_FIELD(cvm_wire_hdr, hdr_crc, CVM_WIRE_HDR_LEN - 4);

static_assert(sizeof(struct cvm_wire_hello) == 112);
CVM_WIRE_FIELD(cvm_wire_hello, features, 16);
CVM_WIRE_FIELD(cvm_wire_hello, device_id, 20);
CVM_WIRE_FIELD(cvm_wire_hello, max_inflight, 24);
CVM_WIRE_FIELD(cvm_wire_hello, max_data, 28);
CVM_WIRE_FIELD(cvm_wire_hello, nonce, 32);
CVM_WIRE_FIELD(cvm_wire_hello, instance, 64);
CVM_WIRE_FIELD(cvm_wire_hello, key_id, 72);
CVM_WIRE_FIELD(cvm_wire_hello, reserved2, 76);
CVM_WIRE_FIELD(cvm_wire_hello, proof, 80);

static_assert(sizeof(struct cvm_wire_stat) == 32);
static_assert(sizeof(struct cvm_wire_list_ent) == 24);

/* Opcodes travel in a __u8, status codes in a __le16. */
static_assert(CVM_WIRE_OP_MAX <= U8_MAX);
static_assert(CVM_WIRE_STATUS_MAX <= U16_MAX);

static int __init cvm_target_init(void)
{
	int ret;

	/* The transports this module carries register themselves. */
	ret = cvm_tcp_init();
	if (ret)
		return ret;
	ret = cvm_rdma_init();
	if (ret)
		goto out_tcp_exit;
	ret = cvm_store_init();
	if (ret)
		goto out_rdma_exit;
	/* Last step: it opens the module to userspace. */
	ret = cvm_target_genl_register();
	if (ret)
		goto out_store_exit;

	pr_info("version %s\n", CVM_VERSION_STRING);
	return 0;

out_store_exit:
	cvm_store_exit();
out_rdma_exit:
	cvm_rdma_exit();
out_tcp_exit:
	cvm_tcp_exit();
	return ret;
}

static void __exit cvm_target_exit(void)
{
	cvm_target_genl_unregister();
	/* Listeners first: no request reaches a device being removed. */
	cvm_server_unlisten_all();
	cvm_store_exit();
	cvm_hosts_exit();
	cvm_rdma_exit();
	cvm_tcp_exit();
}

module_init(cvm_target_init);
module_exit(cvm_target_exit);

MODULE_DESCRIPTION("CVM distributed block storage target");
MODULE_LICENSE("GPL");
MODULE_VERSION(CVM_VERSION_STRING);
MODULE_ALIAS_GENL_FAMILY(CVM_TARGET_GENL_NAME);
