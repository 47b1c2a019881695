// SPDX-License-Identifier: GPL-2.0
/*
 * The "cvm_target" generic netlink family (include/uapi/linux/cvm.h).
 *
 * Every command needs CAP_NET_ADMIN (GENL_ADMIN_PERM, checked by the core);
 * DEVICE_ADD, which opens and may format a block device, also needs
 * CAP_SYS_ADMIN (checked in its handler).  Every command has its own strict
 * policy: unknown attributes, attributes a command does not take and
 * malformed values are refused before the handler runs.
 */
#include <linux/build_bug.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "../transport/transport.h"
#include "target.h"

static_assert(sizeof(CVM_VERSION_STRING) <= CVM_VERSION_LEN);

/* Multicast groups, in the order of cvm_target_genl_mcgrps[]. */
enum cvm_target_genl_mcgrp {
	CVM_TARGET_GENL_MCGRP_EVENTS_IDX,
};

static const struct genl_multicast_group cvm_target_genl_mcgrps[] = {
	[CVM_TARGET_GENL_MCGRP_EVENTS_IDX] = { .name = CVM_GENL_MCGRP_EVENTS },
};

/* CVM_CMD_STATUS_GET and CVM_CMD_TARGET_DEVICE_LIST take no attributes. */
static const struct nla_policy cvm_target_status_get_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_STATUS] = {
		.type = NLA_REJECT,
		.reject_message = "CVM_ATTR_STATUS is only sent in replies",
	},
};

static const struct nla_policy cvm_target_device_nl_policy[CVM_TARGET_DEVICE_ATTR_MAX + 1] = {
	[CVM_TARGET_DEVICE_ATTR_ID]	= { .type = NLA_U32 },
	[CVM_TARGET_DEVICE_ATTR_PATH]	= { .type = NLA_NUL_STRING,
					    .len = CVM_TARGET_PATH_LEN - 1 },
	[CVM_TARGET_DEVICE_ATTR_FLAGS]	=
		NLA_POLICY_MASK(NLA_U32, CVM_TARGET_DEVICE_F_ALL),
	[CVM_TARGET_DEVICE_ATTR_CAPACITY] = {
		.type = NLA_REJECT,
		.reject_message = "CAPACITY is only sent in replies",
	},
	[CVM_TARGET_DEVICE_ATTR_USED] = {
		.type = NLA_REJECT,
		.reject_message = "USED is only sent in replies",
	},
	[CVM_TARGET_DEVICE_ATTR_OBJECTS] = {
		.type = NLA_REJECT,
		.reject_message = "OBJECTS is only sent in replies",
	},
	[CVM_TARGET_DEVICE_ATTR_INTENTS] = {
		.type = NLA_REJECT,
		.reject_message = "INTENTS is only sent in replies",
	},
	[CVM_TARGET_DEVICE_ATTR_IO_ERRORS] = {
		.type = NLA_REJECT,
		.reject_message = "IO_ERRORS is only sent in replies",
	},
	[CVM_TARGET_DEVICE_ATTR_COPIED] = {
		.type = NLA_REJECT,
		.reject_message = "COPIED is only sent in replies",
	},
	[CVM_TARGET_DEVICE_ATTR_HOSTS] = {
		.type = NLA_REJECT,
		.reject_message = "HOSTS is only sent in replies",
	},
};

/* One entry of CVM_ATTR_TARGET_HOSTS. */
static const struct nla_policy cvm_target_host_nl_policy[CVM_TARGET_HOST_ATTR_MAX + 1] = {
	[CVM_TARGET_HOST_ATTR_HOST_ID]	= { .type = NLA_U64 },
	[CVM_TARGET_HOST_ATTR_KEY_ID]	= { .type = NLA_U32 },
	[CVM_TARGET_HOST_ATTR_KEY]	= NLA_POLICY_EXACT_LEN(CVM_WIRE_KEY_LEN),
	[CVM_TARGET_HOST_ATTR_FLAGS]	=
		NLA_POLICY_MASK(NLA_U32, CVM_TARGET_HOST_F_ALL),
};

static const struct nla_policy cvm_target_listener_nl_policy[CVM_TARGET_LISTENER_ATTR_MAX + 1] = {
	[CVM_TARGET_LISTENER_ATTR_TRANSPORT]	= { .type = NLA_NUL_STRING,
						    .len = CVM_PATH_TRANSPORT_LEN - 1 },
	[CVM_TARGET_LISTENER_ATTR_ADDR]		= { .type = NLA_NUL_STRING,
						    .len = CVM_PATH_ADDR_LEN - 1 },
	[CVM_TARGET_LISTENER_ATTR_PORT]		= NLA_POLICY_MIN(NLA_U16, 1),
};

/* DEVICE_ADD and DEVICE_REMOVE take CVM_ATTR_TARGET_DEVICE only. */
static const struct nla_policy cvm_target_device_cmd_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_TARGET_DEVICE] = NLA_POLICY_NESTED(cvm_target_device_nl_policy),
};

/* LISTEN: the listener. */
static const struct nla_policy cvm_target_listen_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_TARGET_LISTENER] =
		NLA_POLICY_NESTED(cvm_target_listener_nl_policy),
};

/* HOSTS_SET: the device, and who may connect to it. */
static const struct nla_policy cvm_target_hosts_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_TARGET_DEVICE] =
		NLA_POLICY_NESTED(cvm_target_device_nl_policy),
	[CVM_ATTR_TARGET_HOSTS] =
		NLA_POLICY_NESTED_ARRAY(cvm_target_host_nl_policy),
};

static const struct nla_policy cvm_target_unlisten_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_TARGET_LISTENER] =
		NLA_POLICY_NESTED(cvm_target_listener_nl_policy),
};

/* VOLUME_FENCE: the volume's id and attach epoch, nothing else. */
static const struct nla_policy cvm_target_fence_volume_nl_policy[CVM_VOLUME_ATTR_MAX + 1] = {
	[CVM_VOLUME_ATTR_ID]		= { .type = NLA_U64 },
	[CVM_VOLUME_ATTR_ATTACH_EPOCH]	= NLA_POLICY_MIN(NLA_U64, 1),
};

static const struct nla_policy cvm_target_fence_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_VOLUME] =
		NLA_POLICY_NESTED(cvm_target_fence_volume_nl_policy),
	[CVM_ATTR_HOST_ID]	= { .type = NLA_U64 },
	[CVM_ATTR_TARGET_DEVICE] =
		NLA_POLICY_NESTED(cvm_target_device_nl_policy),
};

static struct genl_family cvm_target_genl_family;

/* Parses the nest @attr of @info into @tb; the policy checked it already. */
static int cvm_target_parse_nest(struct genl_info *info, int attr,
				 struct nlattr **tb, int max,
				 const struct nla_policy *policy)
{
	if (GENL_REQ_ATTR_CHECK(info, attr))
		return -EINVAL;
	return nla_parse_nested(tb, max, info->attrs[attr], policy,
				info->extack);
}

static int cvm_target_nl_device_add_doit(struct sk_buff *skb,
					 struct genl_info *info)
{
	struct nlattr *tb[CVM_TARGET_DEVICE_ATTR_MAX + 1];
	struct nlattr *nest = info->attrs[CVM_ATTR_TARGET_DEVICE];
	u32 flags = 0;
	int ret;

	/*
	 * Opening (and formatting) any block device by path is what
	 * CAP_SYS_ADMIN guards; GENL_ADMIN_PERM only checked CAP_NET_ADMIN.
	 */
	if (!netlink_capable(skb, CAP_SYS_ADMIN)) {
		NL_SET_ERR_MSG(info->extack,
			       "DEVICE_ADD opens a block device: needs CAP_SYS_ADMIN");
		return -EPERM;
	}
	ret = cvm_target_parse_nest(info, CVM_ATTR_TARGET_DEVICE, tb,
				    CVM_TARGET_DEVICE_ATTR_MAX,
				    cvm_target_device_nl_policy);
	if (ret)
		return ret;
	nest = info->attrs[CVM_ATTR_TARGET_DEVICE];
	if (NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_TARGET_DEVICE_ATTR_ID) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_TARGET_DEVICE_ATTR_PATH))
		return -EINVAL;
	if (tb[CVM_TARGET_DEVICE_ATTR_FLAGS])
		flags = nla_get_u32(tb[CVM_TARGET_DEVICE_ATTR_FLAGS]);
	return cvm_store_add(nla_get_u32(tb[CVM_TARGET_DEVICE_ATTR_ID]),
			     nla_data(tb[CVM_TARGET_DEVICE_ATTR_PATH]), flags,
			     info->extack);
}

static int cvm_target_nl_device_remove_doit(struct sk_buff *skb,
					    struct genl_info *info)
{
	struct nlattr *tb[CVM_TARGET_DEVICE_ATTR_MAX + 1];
	struct nlattr *nest;
	int ret;

	ret = cvm_target_parse_nest(info, CVM_ATTR_TARGET_DEVICE, tb,
				    CVM_TARGET_DEVICE_ATTR_MAX,
				    cvm_target_device_nl_policy);
	if (ret)
		return ret;
	nest = info->attrs[CVM_ATTR_TARGET_DEVICE];
	if (NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_TARGET_DEVICE_ATTR_ID))
		return -EINVAL;
	if (tb[CVM_TARGET_DEVICE_ATTR_PATH] || tb[CVM_TARGET_DEVICE_ATTR_FLAGS]) {
		NL_SET_ERR_MSG(info->extack, "DEVICE_REMOVE takes only the device id");
		return -EINVAL;
	}
	ret = cvm_store_remove(nla_get_u32(tb[CVM_TARGET_DEVICE_ATTR_ID]));
	if (ret == -ENODEV)
		NL_SET_ERR_MSG_ATTR(info->extack, tb[CVM_TARGET_DEVICE_ATTR_ID],
				    "no such device");
	return ret;
}

static int cvm_target_parse_listener(struct genl_info *info, struct nlattr **tb)
{
	struct nlattr *nest;
	int ret;

	ret = cvm_target_parse_nest(info, CVM_ATTR_TARGET_LISTENER, tb,
				    CVM_TARGET_LISTENER_ATTR_MAX,
				    cvm_target_listener_nl_policy);
	if (ret)
		return ret;
	nest = info->attrs[CVM_ATTR_TARGET_LISTENER];
	if (NL_REQ_ATTR_CHECK(info->extack, nest, tb,
			      CVM_TARGET_LISTENER_ATTR_ADDR) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, tb,
			      CVM_TARGET_LISTENER_ATTR_PORT))
		return -EINVAL;
	return 0;
}

static int cvm_target_nl_listen_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *tb[CVM_TARGET_LISTENER_ATTR_MAX + 1];
	const char *transport = "tcp";
	int ret;

	ret = cvm_target_parse_listener(info, tb);
	if (ret)
		return ret;
	if (tb[CVM_TARGET_LISTENER_ATTR_TRANSPORT])
		transport = nla_data(tb[CVM_TARGET_LISTENER_ATTR_TRANSPORT]);
	return cvm_server_listen(transport,
				 nla_data(tb[CVM_TARGET_LISTENER_ATTR_ADDR]),
				 nla_get_u16(tb[CVM_TARGET_LISTENER_ATTR_PORT]),
				 info->extack);
}

/* One HOSTS entry into @e; the policy checked each attribute's type. */
static int cvm_target_parse_host(struct nlattr *entry, struct cvm_host_ent *e,
				 struct netlink_ext_ack *extack)
{
	struct nlattr *tb[CVM_TARGET_HOST_ATTR_MAX + 1];
	int ret;

	ret = nla_parse_nested(tb, CVM_TARGET_HOST_ATTR_MAX, entry,
			       cvm_target_host_nl_policy, extack);
	if (ret)
		return ret;
	if (NL_REQ_ATTR_CHECK(extack, entry, tb, CVM_TARGET_HOST_ATTR_HOST_ID) ||
	    NL_REQ_ATTR_CHECK(extack, entry, tb, CVM_TARGET_HOST_ATTR_KEY_ID) ||
	    NL_REQ_ATTR_CHECK(extack, entry, tb, CVM_TARGET_HOST_ATTR_KEY))
		return -EINVAL;
	e->host_id = nla_get_u64(tb[CVM_TARGET_HOST_ATTR_HOST_ID]);
	e->key_id = nla_get_u32(tb[CVM_TARGET_HOST_ATTR_KEY_ID]);
	nla_memcpy(e->key, tb[CVM_TARGET_HOST_ATTR_KEY], sizeof(e->key));
	if (tb[CVM_TARGET_HOST_ATTR_FLAGS])
		e->flags = nla_get_u32(tb[CVM_TARGET_HOST_ATTR_FLAGS]);
	return 0;
}

/* No host twice with one key id; one host's entries agree on FLAGS. */
static const char *cvm_target_check_hosts(const struct cvm_host_table *t)
{
	u32 i, j;

	for (i = 0; i < t->nr; i++)
		for (j = 0; j < i; j++) {
			if (t->ents[i].host_id != t->ents[j].host_id)
				continue;
			if (t->ents[i].key_id == t->ents[j].key_id)
				return "a host appears twice with one key id";
			if (t->ents[i].flags != t->ents[j].flags)
				return "a host's entries differ in FLAGS";
		}
	return NULL;
}

/*
 * A CVM_ATTR_TARGET_DEVICE that names a device by ID and nothing else
 * (VOLUME_FENCE, HOSTS_SET) into *@device.
 */
static int cvm_target_parse_device_id(struct nlattr *nest, u32 *device,
				      struct netlink_ext_ack *extack)
{
	struct nlattr *dtb[CVM_TARGET_DEVICE_ATTR_MAX + 1];
	int ret;

	ret = nla_parse_nested(dtb, CVM_TARGET_DEVICE_ATTR_MAX, nest,
			       cvm_target_device_nl_policy, extack);
	if (ret)
		return ret;
	if (NL_REQ_ATTR_CHECK(extack, nest, dtb, CVM_TARGET_DEVICE_ATTR_ID))
		return -EINVAL;
	if (dtb[CVM_TARGET_DEVICE_ATTR_PATH] ||
	    dtb[CVM_TARGET_DEVICE_ATTR_FLAGS]) {
		NL_SET_ERR_MSG(extack, "the device is named by ID only");
		return -EINVAL;
	}
	*device = nla_get_u32(dtb[CVM_TARGET_DEVICE_ATTR_ID]);
	return 0;
}

static int cvm_target_nl_hosts_set_doit(struct sk_buff *skb,
					struct genl_info *info)
{
	struct nlattr *hosts = info->attrs[CVM_ATTR_TARGET_HOSTS];
	struct cvm_host_table *t;
	struct nlattr *entry;
	const char *why;
	int ret, rem;
	u32 nr = 0, device;

	if (GENL_REQ_ATTR_CHECK(info, CVM_ATTR_TARGET_DEVICE))
		return -EINVAL;
	ret = cvm_target_parse_device_id(info->attrs[CVM_ATTR_TARGET_DEVICE],
					 &device, info->extack);
	if (ret)
		return ret;
	if (hosts)
		nla_for_each_nested(entry, hosts, rem)
			nr++;
	if (nr > CVM_TARGET_MAX_HOSTS) {
		NL_SET_ERR_MSG(info->extack, "more than CVM_TARGET_MAX_HOSTS hosts");
		return -E2BIG;
	}
	t = cvm_hosts_alloc(nr);
	if (!t)
		return -ENOMEM;
	nr = 0;
	if (hosts) {
		nla_for_each_nested(entry, hosts, rem) {
			ret = cvm_target_parse_host(entry, &t->ents[nr++],
						    info->extack);
			if (ret)
				goto out_free_table;
		}
	}
	why = cvm_target_check_hosts(t);
	if (why) {
		if (info->extack)
			info->extack->_msg = why;
		ret = -EINVAL;
		goto out_free_table;
	}
	ret = cvm_hosts_set(device, t);
	if (ret)
		return ret;
	/* A host whose key went away keeps no connection it made with it. */
	cvm_server_drop_unkeyed(device);
	return 0;

out_free_table:
	cvm_hosts_free(t);
	return ret;
}

static int cvm_target_nl_unlisten_doit(struct sk_buff *skb,
				       struct genl_info *info)
{
	struct nlattr *tb[CVM_TARGET_LISTENER_ATTR_MAX + 1];
	int ret;

	ret = cvm_target_parse_listener(info, tb);
	if (ret)
		return ret;
	return cvm_server_unlisten(nla_data(tb[CVM_TARGET_LISTENER_ATTR_ADDR]),
				   nla_get_u16(tb[CVM_TARGET_LISTENER_ATTR_PORT]),
				   info->extack);
}

static size_t cvm_target_status_msg_size(void)
{
	return nla_total_size(0) +				/* STATUS */
	       nla_total_size(sizeof(u32)) +			/* ROLE */
	       nla_total_size(sizeof(CVM_VERSION_STRING)) +	/* MODULE_VERSION */
	       nla_total_size(sizeof(u32)) +			/* GENL_VERSION */
	       nla_total_size(sizeof(u32)) +			/* WIRE_VERSION */
	       nla_total_size_64bit(sizeof(u64)) +		/* MAP_EPOCH */
	       nla_total_size(sizeof(u32)) +			/* OBJECTS */
	       nla_total_size(sizeof(u32)) +			/* CONNECTIONS */
	       nla_total_size_64bit(sizeof(u64));		/* PINNED_BYTES */
}

static int cvm_target_status_fill(struct sk_buff *msg)
{
	struct nlattr *nest;

	nest = nla_nest_start(msg, CVM_ATTR_STATUS);
	if (!nest)
		return -EMSGSIZE;

	/* The target holds no map yet: epoch 0 means "no map". */
	if (nla_put_u32(msg, CVM_STATUS_ATTR_ROLE, CVM_ROLE_TARGET) ||
	    nla_put_string(msg, CVM_STATUS_ATTR_MODULE_VERSION,
			   CVM_VERSION_STRING) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_GENL_VERSION, CVM_GENL_VERSION) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_WIRE_VERSION, CVM_WIRE_VERSION) ||
	    nla_put_u64_64bit(msg, CVM_STATUS_ATTR_MAP_EPOCH, 0,
			      CVM_STATUS_ATTR_PAD) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_OBJECTS, cvm_store_count()) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_CONNECTIONS,
			cvm_xprt_target_conns()) ||
	    nla_put_u64_64bit(msg, CVM_STATUS_ATTR_PINNED_BYTES,
			      cvm_xprt_target_pinned(), CVM_STATUS_ATTR_PAD)) {
		nla_nest_cancel(msg, nest);
		return -EMSGSIZE;
	}

	nla_nest_end(msg, nest);
	return 0;
}

static int cvm_target_nl_status_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;
	int ret;

	msg = genlmsg_new(cvm_target_status_msg_size(), GFP_KERNEL);
	if (!msg)
		return -ENOMEM;

	hdr = genlmsg_put_reply(msg, info, &cvm_target_genl_family, 0,
				CVM_CMD_STATUS_GET);
	if (!hdr) {
		ret = -EMSGSIZE;
		goto out_free_msg;
	}

	ret = cvm_target_status_fill(msg);
	if (ret)
		goto out_free_msg;

	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

out_free_msg:
	nlmsg_free(msg);
	return ret;
}

static int cvm_target_nl_volume_fence_doit(struct sk_buff *skb,
					   struct genl_info *info)
{
	struct nlattr *vtb[CVM_VOLUME_ATTR_MAX + 1];
	struct nlattr *nest;
	u32 device = CVM_STORE_ALL;
	int ret;

	ret = cvm_target_parse_nest(info, CVM_ATTR_VOLUME, vtb,
				    CVM_VOLUME_ATTR_MAX,
				    cvm_target_fence_volume_nl_policy);
	if (ret)
		return ret;
	nest = info->attrs[CVM_ATTR_VOLUME];
	if (NL_REQ_ATTR_CHECK(info->extack, nest, vtb, CVM_VOLUME_ATTR_ID) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, vtb,
			      CVM_VOLUME_ATTR_ATTACH_EPOCH))
		return -EINVAL;
	nest = info->attrs[CVM_ATTR_TARGET_DEVICE];
	if (nest) {
		ret = cvm_target_parse_device_id(nest, &device, info->extack);
		if (ret)
			return ret;
		if (device == CVM_STORE_ALL) {
			NL_SET_ERR_MSG(info->extack, "no such device id");
			return -EINVAL;
		}
	}
	return cvm_store_fence(device,
			       nla_get_u64(vtb[CVM_VOLUME_ATTR_ID]),
			       nla_get_u64(vtb[CVM_VOLUME_ATTR_ATTACH_EPOCH]),
			       info->attrs[CVM_ATTR_HOST_ID] ?
			       nla_get_u64(info->attrs[CVM_ATTR_HOST_ID]) : 0,
			       info->extack);
}

static int cvm_target_device_fill(struct sk_buff *msg,
				  const struct cvm_store_usage *u)
{
	struct nlattr *nest;

	nest = nla_nest_start(msg, CVM_ATTR_TARGET_DEVICE);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u32(msg, CVM_TARGET_DEVICE_ATTR_ID, u->id) ||
	    nla_put_string(msg, CVM_TARGET_DEVICE_ATTR_PATH, u->path) ||
	    nla_put_u64_64bit(msg, CVM_TARGET_DEVICE_ATTR_CAPACITY, u->capacity,
			      CVM_TARGET_DEVICE_ATTR_PAD) ||
	    nla_put_u64_64bit(msg, CVM_TARGET_DEVICE_ATTR_USED, u->used,
			      CVM_TARGET_DEVICE_ATTR_PAD) ||
	    nla_put_u64_64bit(msg, CVM_TARGET_DEVICE_ATTR_OBJECTS, u->objects,
			      CVM_TARGET_DEVICE_ATTR_PAD) ||
	    nla_put_u64_64bit(msg, CVM_TARGET_DEVICE_ATTR_INTENTS, u->intents,
			      CVM_TARGET_DEVICE_ATTR_PAD) ||
	    nla_put_u64_64bit(msg, CVM_TARGET_DEVICE_ATTR_IO_ERRORS,
			      u->io_errors, CVM_TARGET_DEVICE_ATTR_PAD) ||
	    nla_put_u64_64bit(msg, CVM_TARGET_DEVICE_ATTR_COPIED, u->copied,
			      CVM_TARGET_DEVICE_ATTR_PAD) ||
	    nla_put_u32(msg, CVM_TARGET_DEVICE_ATTR_HOSTS,
			cvm_hosts_count(u->id))) {
		nla_nest_cancel(msg, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

/* cb->args[0]: the lowest device id not dumped yet. */
static int cvm_target_nl_device_list_dumpit(struct sk_buff *skb,
					    struct netlink_callback *cb)
{
	unsigned long index = cb->args[0];
	struct cvm_store_usage *u;
	void *hdr;

	u = kmalloc(sizeof(*u), GFP_KERNEL);
	if (!u)
		return -ENOMEM;
	while (!cvm_store_usage_next(&index, u)) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &cvm_target_genl_family,
				  NLM_F_MULTI, CVM_CMD_TARGET_DEVICE_LIST);
		if (!hdr)
			break;
		if (cvm_target_device_fill(skb, u)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] = index;
	}
	kfree(u);
	return skb->len;
}

static const struct genl_ops cvm_target_genl_ops[] = {
	{
		.cmd		= CVM_CMD_STATUS_GET,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_status_get_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_status_get_nl_policy) - 1,
		.doit		= cvm_target_nl_status_get_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_DEVICE_ADD,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_device_cmd_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_device_cmd_nl_policy) - 1,
		.doit		= cvm_target_nl_device_add_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_DEVICE_REMOVE,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_device_cmd_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_device_cmd_nl_policy) - 1,
		.doit		= cvm_target_nl_device_remove_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_LISTEN,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_listen_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_listen_nl_policy) - 1,
		.doit		= cvm_target_nl_listen_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_UNLISTEN,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_unlisten_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_unlisten_nl_policy) - 1,
		.doit		= cvm_target_nl_unlisten_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_VOLUME_FENCE,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_fence_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_fence_nl_policy) - 1,
		.doit		= cvm_target_nl_volume_fence_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_HOSTS_SET,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_hosts_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_hosts_nl_policy) - 1,
		.doit		= cvm_target_nl_hosts_set_doit,
	},
	{
		.cmd		= CVM_CMD_TARGET_DEVICE_LIST,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_target_status_get_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_target_status_get_nl_policy) - 1,
		.dumpit		= cvm_target_nl_device_list_dumpit,
	},
};

/*
 * resv_start_op is left at 0, as for every new family: the core validates
 * the reserved genlmsghdr fields of all commands and applies strict
 * attribute validation to all of them.
 */
static struct genl_family cvm_target_genl_family __ro_after_init = {
	.name		= CVM_TARGET_GENL_NAME,
	.version	= CVM_GENL_VERSION,
	.maxattr	= CVM_ATTR_MAX,
	.netnsok	= false,	/* storage is not per network namespace */
	.module		= THIS_MODULE,
	.ops		= cvm_target_genl_ops,
	.n_ops		= ARRAY_SIZE(cvm_target_genl_ops),
	.mcgrps		= cvm_target_genl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(cvm_target_genl_mcgrps),
};

int __init cvm_target_genl_register(void)
{
	return genl_register_family(&cvm_target_genl_family);
}

void cvm_target_genl_unregister(void)
{
	genl_unregister_family(&cvm_target_genl_family);
}
