// SPDX-License-Identifier: GPL-2.0
/*
 * The "cvm" generic netlink family (include/uapi/linux/cvm.h).
 *
 * Every command needs CAP_NET_ADMIN (GENL_ADMIN_PERM, checked by the core)
 * and has its own strict policy: unknown attributes, attributes a command
 * does not take and malformed values are refused before the handler runs.
 */
#include <linux/build_bug.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "initiator.h"

static_assert(sizeof(CVM_VERSION_STRING) <= CVM_VERSION_LEN);

/* Multicast groups, in the order of cvm_genl_mcgrps[]. */
enum cvm_genl_mcgrp {
	CVM_GENL_MCGRP_EVENTS_IDX,
};

static const struct genl_multicast_group cvm_genl_mcgrps[] = {
	[CVM_GENL_MCGRP_EVENTS_IDX] = { .name = CVM_GENL_MCGRP_EVENTS },
};

/* CVM_CMD_STATUS_GET takes no attributes. */
static const struct nla_policy cvm_status_get_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_STATUS] = {
		.type = NLA_REJECT,
		.reject_message = "CVM_ATTR_STATUS is only sent in replies",
	},
};

static struct genl_family cvm_genl_family;

static size_t cvm_status_msg_size(void)
{
	return nla_total_size(0) +				/* STATUS */
	       nla_total_size(sizeof(u32)) +			/* ROLE */
	       nla_total_size(sizeof(CVM_VERSION_STRING)) +	/* MODULE_VERSION */
	       nla_total_size(sizeof(u32)) +			/* GENL_VERSION */
	       nla_total_size(sizeof(u32)) +			/* WIRE_VERSION */
	       nla_total_size_64bit(sizeof(u64)) +		/* MAP_EPOCH */
	       nla_total_size(sizeof(u32));			/* OBJECTS */
}

static int cvm_status_fill(struct sk_buff *msg)
{
	struct nlattr *nest;

	nest = nla_nest_start(msg, CVM_ATTR_STATUS);
	if (!nest)
		return -EMSGSIZE;

	/*
	 * No map is installed and no volume attached until the data path
	 * (MAP_SET, VOLUME_ATTACH) exists: epoch 0 means "no map".
	 */
	if (nla_put_u32(msg, CVM_STATUS_ATTR_ROLE, CVM_ROLE_INITIATOR) ||
	    nla_put_string(msg, CVM_STATUS_ATTR_MODULE_VERSION,
			   CVM_VERSION_STRING) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_GENL_VERSION, CVM_GENL_VERSION) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_WIRE_VERSION, CVM_WIRE_VERSION) ||
	    nla_put_u64_64bit(msg, CVM_STATUS_ATTR_MAP_EPOCH, 0,
			      CVM_STATUS_ATTR_PAD) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_OBJECTS, 0)) {
		nla_nest_cancel(msg, nest);
		return -EMSGSIZE;
	}

	nla_nest_end(msg, nest);
	return 0;
}

static int cvm_nl_status_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;
	int ret;

	msg = genlmsg_new(cvm_status_msg_size(), GFP_KERNEL);
	if (!msg)
		return -ENOMEM;

	hdr = genlmsg_put_reply(msg, info, &cvm_genl_family, 0,
				CVM_CMD_STATUS_GET);
	if (!hdr) {
		ret = -EMSGSIZE;
		goto out_free_msg;
	}

	ret = cvm_status_fill(msg);
	if (ret)
		goto out_free_msg;

	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

out_free_msg:
	nlmsg_free(msg);
	return ret;
}

static const struct genl_ops cvm_genl_ops[] = {
	{
		.cmd		= CVM_CMD_STATUS_GET,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_status_get_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_status_get_nl_policy) - 1,
		.doit		= cvm_nl_status_get_doit,
	},
};

/*
 * resv_start_op is left at 0, as for every new family: the core validates
 * the reserved genlmsghdr fields of all commands and applies strict
 * attribute validation to all of them.
 */
static struct genl_family cvm_genl_family __ro_after_init = {
	.name		= CVM_GENL_NAME,
	.version	= CVM_GENL_VERSION,
	.maxattr	= CVM_ATTR_MAX,
	.netnsok	= false,	/* storage is not per network namespace */
	.module		= THIS_MODULE,
	.ops		= cvm_genl_ops,
	.n_ops		= ARRAY_SIZE(cvm_genl_ops),
	.mcgrps		= cvm_genl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(cvm_genl_mcgrps),
};

int __init cvm_genl_register(void)
{
	return genl_register_family(&cvm_genl_family);
}

void cvm_genl_unregister(void)
{
	genl_unregister_family(&cvm_genl_family);
}
