// SPDX-License-Identifier: GPL-2.0
/*
 * cvm.ko: the CVM initiator.
 *
 * Attached volumes appear as /dev/cvmN under a dynamic block major; cvmd
 * drives the module through the "cvm" generic netlink family (netlink.c).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/cvm.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <net/genetlink.h>

#include "../transport/transports.h"
#include "initiator.h"

int cvm_major;

static int __init cvm_init(void)
{
	int ret;

	ret = register_blkdev(0, CVM_BLKDEV_NAME);
	if (ret < 0)
		return ret;
	cvm_major = ret;

	ret = cvm_stale_init();
	if (ret)
		goto out_unregister_blkdev;

	ret = cvm_ec_init();
	if (ret)
		goto out_stale_exit;

	ret = cvm_map_init();
	if (ret)
		goto out_ec_exit;

	/* The transports this module carries register themselves. */
	ret = cvm_tcp_init();
	if (ret)
		goto out_map_exit;
	ret = cvm_rdma_init();
	if (ret)
		goto out_tcp_exit;

	/* Last: userspace may issue commands as soon as the family exists. */
	ret = cvm_genl_register();
	if (ret)
		goto out_rdma_exit;

	pr_info("version %s, block major %d\n", CVM_VERSION_STRING, cvm_major);
	return 0;

out_rdma_exit:
	cvm_rdma_exit();
out_tcp_exit:
	cvm_tcp_exit();
out_map_exit:
	cvm_map_exit();
out_ec_exit:
	cvm_ec_exit();
out_stale_exit:
	cvm_stale_exit();
out_unregister_blkdev:
	unregister_blkdev(cvm_major, CVM_BLKDEV_NAME);
	return ret;
}

static void __exit cvm_exit(void)
{
	/* No new commands, then no volumes, then no map or connections. */
	cvm_genl_unregister();
	cvm_volume_exit();
	cvm_map_exit();
	cvm_stale_exit();
	cvm_ec_exit();
	cvm_rdma_exit();
	cvm_tcp_exit();
	unregister_blkdev(cvm_major, CVM_BLKDEV_NAME);
}

module_init(cvm_init);
module_exit(cvm_exit);

MODULE_DESCRIPTION("CVM distributed block storage initiator");
MODULE_LICENSE("GPL");
MODULE_VERSION(CVM_VERSION_STRING);
MODULE_ALIAS_GENL_FAMILY(CVM_GENL_NAME);
