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

static struct netlink_range_validation cvm_device_id_range = {
	.max = CVM_MAX_DEVICES - 1,
};

static struct netlink_range_validation cvm_map_offset_range = {
	.max = CVM_MAP_MAX_LEN,
};

static struct netlink_range_validation cvm_map_len_range = {
	.min = 1,
	.max = CVM_MAP_MAX_LEN,
};

/* One entry of CVM_ATTR_MAP_PATHS. */
const struct nla_policy cvm_path_nl_policy[CVM_PATH_ATTR_MAX + 1] = {
	[CVM_PATH_ATTR_DEVICE_ID] = NLA_POLICY_FULL_RANGE(NLA_U32,
							  &cvm_device_id_range),
	[CVM_PATH_ATTR_ADDR] = { .type = NLA_NUL_STRING,
				 .len = CVM_PATH_ADDR_LEN - 1 },
	[CVM_PATH_ATTR_PORT] = NLA_POLICY_MIN(NLA_U16, 1),
	[CVM_PATH_ATTR_TRANSPORT] = { .type = NLA_NUL_STRING,
				      .len = CVM_PATH_TRANSPORT_LEN - 1 },
};

static const struct nla_policy cvm_map_set_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_MAP_CHUNK] = { .type = NLA_BINARY,
				 .len = CVM_MAP_CHUNK_MAX },
	[CVM_ATTR_MAP_OFFSET] = NLA_POLICY_FULL_RANGE(NLA_U32,
						      &cvm_map_offset_range),
	[CVM_ATTR_MAP_TOTAL_LEN] = NLA_POLICY_FULL_RANGE(NLA_U32,
							 &cvm_map_len_range),
	[CVM_ATTR_MAP_PATHS] = NLA_POLICY_NESTED_ARRAY(cvm_path_nl_policy),
	[CVM_ATTR_CLUSTER_ID] = { .type = NLA_U64 },
	[CVM_ATTR_HOST_ID] = { .type = NLA_U64 },
	[CVM_ATTR_HOST_KEY] = NLA_POLICY_EXACT_LEN(CVM_WIRE_KEY_LEN),
	[CVM_ATTR_KEY_ID] = { .type = NLA_U32 },
};

static const struct nla_policy cvm_volume_nl_policy[CVM_VOLUME_ATTR_MAX + 1] = {
	[CVM_VOLUME_ATTR_ID] = { .type = NLA_U64 },
	[CVM_VOLUME_ATTR_POOL_ID] = { .type = NLA_U32 },
	[CVM_VOLUME_ATTR_SIZE] = { .type = NLA_U64 },
	[CVM_VOLUME_ATTR_OBJECT_SIZE] = { .type = NLA_U32 },
	[CVM_VOLUME_ATTR_ATTACH_EPOCH] = { .type = NLA_U64 },
	[CVM_VOLUME_ATTR_NAME] = { .type = NLA_NUL_STRING,
				   .len = CVM_VOLUME_NAME_LEN - 1 },
	[CVM_VOLUME_ATTR_MINOR] = {
		.type = NLA_REJECT,
		.reject_message = "CVM_VOLUME_ATTR_MINOR is only sent in replies",
	},
	[CVM_VOLUME_ATTR_FLAGS] = NLA_POLICY_MASK(NLA_U32, CVM_VOLUME_F_ALL),
	[CVM_VOLUME_ATTR_STRIPE_UNIT] = { .type = NLA_U32 },
	[CVM_VOLUME_ATTR_BACKFILLED] = {
		.type = NLA_REJECT,
		.reject_message = "CVM_VOLUME_ATTR_BACKFILLED is only sent in replies",
	},
};

static const struct nla_policy cvm_volume_cmd_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_VOLUME] = NLA_POLICY_NESTED(cvm_volume_nl_policy),
};

/* HOST_KEY_SET: the secret and its key id, nothing else. */
static const struct nla_policy cvm_host_key_nl_policy[CVM_ATTR_MAX + 1] = {
	[CVM_ATTR_HOST_KEY] = NLA_POLICY_EXACT_LEN(CVM_WIRE_KEY_LEN),
	[CVM_ATTR_KEY_ID] = { .type = NLA_U32 },
};

/* CVM_CMD_VOLUME_LIST takes no attributes. */
static const struct nla_policy cvm_volume_list_nl_policy[CVM_ATTR_STATUS + 1] = {
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
	       nla_total_size(sizeof(u32)) +			/* OBJECTS */
	       nla_total_size_64bit(sizeof(u64));		/* STALE_OBJECTS */
}

static int cvm_status_fill(struct sk_buff *msg)
{
	unsigned int nr_volumes;
	struct nlattr *nest;

	nest = nla_nest_start(msg, CVM_ATTR_STATUS);
	if (!nest)
		return -EMSGSIZE;

	mutex_lock(&cvm_config_mutex);
	nr_volumes = cvm_volume_count();
	mutex_unlock(&cvm_config_mutex);

	/* Epoch 0 means "no map". */
	if (nla_put_u32(msg, CVM_STATUS_ATTR_ROLE, CVM_ROLE_INITIATOR) ||
	    nla_put_string(msg, CVM_STATUS_ATTR_MODULE_VERSION,
			   CVM_VERSION_STRING) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_GENL_VERSION, CVM_GENL_VERSION) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_WIRE_VERSION, CVM_WIRE_VERSION) ||
	    nla_put_u64_64bit(msg, CVM_STATUS_ATTR_MAP_EPOCH, cvm_map_epoch(),
			      CVM_STATUS_ATTR_PAD) ||
	    nla_put_u32(msg, CVM_STATUS_ATTR_OBJECTS, nr_volumes) ||
	    nla_put_u64_64bit(msg, CVM_STATUS_ATTR_STALE_OBJECTS,
			      cvm_stale_count(), CVM_STATUS_ATTR_PAD)) {
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

static int cvm_nl_map_set_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs;
	struct cvm_map_set_req req = {};
	bool committed;
	int ret;

	if (GENL_REQ_ATTR_CHECK(info, CVM_ATTR_MAP_CHUNK))
		return -EINVAL;
	req.portid = info->snd_portid;
	req.chunk = nla_data(attrs[CVM_ATTR_MAP_CHUNK]);
	req.chunk_len = nla_len(attrs[CVM_ATTR_MAP_CHUNK]);
	if (attrs[CVM_ATTR_MAP_OFFSET])
		req.offset = nla_get_u32(attrs[CVM_ATTR_MAP_OFFSET]);
	req.total_len = req.chunk_len;
	if (attrs[CVM_ATTR_MAP_TOTAL_LEN])
		req.total_len = nla_get_u32(attrs[CVM_ATTR_MAP_TOTAL_LEN]);
	req.paths = attrs[CVM_ATTR_MAP_PATHS];
	if (attrs[CVM_ATTR_CLUSTER_ID])
		req.hello.cluster_id = nla_get_u64(attrs[CVM_ATTR_CLUSTER_ID]);
	if (attrs[CVM_ATTR_HOST_ID])
		req.hello.host_id = nla_get_u64(attrs[CVM_ATTR_HOST_ID]);
	/* The host's secret: each connection derives its device's key. */
	req.has_key = attrs[CVM_ATTR_HOST_KEY];
	if (req.has_key)
		nla_memcpy(req.hello.key, attrs[CVM_ATTR_HOST_KEY],
			   sizeof(req.hello.key));
	if (attrs[CVM_ATTR_KEY_ID])
		req.hello.key_id = nla_get_u32(attrs[CVM_ATTR_KEY_ID]);
	req.has_commit_attrs = attrs[CVM_ATTR_MAP_PATHS] ||
			       attrs[CVM_ATTR_CLUSTER_ID] ||
			       attrs[CVM_ATTR_HOST_ID] ||
			       attrs[CVM_ATTR_HOST_KEY] || attrs[CVM_ATTR_KEY_ID];

	mutex_lock(&cvm_config_mutex);
	ret = cvm_map_set(&req, &committed, info->extack);
	mutex_unlock(&cvm_config_mutex);
	memzero_explicit(req.hello.key, sizeof(req.hello.key));
	return ret;
}

static size_t cvm_volume_msg_size(void)
{
	return nla_total_size(0) +				/* VOLUME */
	       nla_total_size_64bit(sizeof(u64)) +		/* ID */
	       nla_total_size(sizeof(u32)) +			/* POOL_ID */
	       nla_total_size_64bit(sizeof(u64)) +		/* SIZE */
	       nla_total_size(sizeof(u32)) +			/* OBJECT_SIZE */
	       nla_total_size(sizeof(u32)) +			/* STRIPE_UNIT */
	       nla_total_size_64bit(sizeof(u64)) +		/* ATTACH_EPOCH */
	       nla_total_size(CVM_VOLUME_NAME_LEN) +		/* NAME */
	       nla_total_size(sizeof(u32));			/* MINOR */
}

static int cvm_volume_fill(struct sk_buff *msg, const struct cvm_volume *vol)
{
	struct nlattr *nest;

	nest = nla_nest_start(msg, CVM_ATTR_VOLUME);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u64_64bit(msg, CVM_VOLUME_ATTR_ID, vol->id,
			      CVM_VOLUME_ATTR_PAD) ||
	    nla_put_u32(msg, CVM_VOLUME_ATTR_POOL_ID, vol->pool_id) ||
	    nla_put_u64_64bit(msg, CVM_VOLUME_ATTR_SIZE, vol->layout.size,
			      CVM_VOLUME_ATTR_PAD) ||
	    nla_put_u32(msg, CVM_VOLUME_ATTR_OBJECT_SIZE,
			(u32)cvm_object_size(&vol->layout)) ||
	    nla_put_u64_64bit(msg, CVM_VOLUME_ATTR_ATTACH_EPOCH,
			      vol->attach_epoch, CVM_VOLUME_ATTR_PAD) ||
	    nla_put_string(msg, CVM_VOLUME_ATTR_NAME, vol->name) ||
	    nla_put_u32(msg, CVM_VOLUME_ATTR_MINOR, vol->minor) ||
	    nla_put_u64_64bit(msg, CVM_VOLUME_ATTR_BACKFILLED,
			      cvm_backfill_done(vol), CVM_VOLUME_ATTR_PAD) ||
	    (vol->layout.ec_k &&
	     nla_put_u32(msg, CVM_VOLUME_ATTR_STRIPE_UNIT,
			 1U << vol->layout.unit_shift))) {
		nla_nest_cancel(msg, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, nest);
	return 0;
}

/* Parse CVM_ATTR_VOLUME into @tb; it is required. */
static int cvm_nl_parse_volume(struct genl_info *info, struct nlattr **tb)
{
	if (GENL_REQ_ATTR_CHECK(info, CVM_ATTR_VOLUME))
		return -EINVAL;
	return nla_parse_nested(tb, CVM_VOLUME_ATTR_MAX,
				info->attrs[CVM_ATTR_VOLUME],
				cvm_volume_nl_policy, info->extack);
}

static int cvm_nl_volume_attach_doit(struct sk_buff *skb,
				     struct genl_info *info)
{
	struct nlattr *tb[CVM_VOLUME_ATTR_MAX + 1];
	const struct nlattr *nest = info->attrs[CVM_ATTR_VOLUME];
	struct cvm_volume_spec spec = {};
	struct cvm_volume *vol;
	struct sk_buff *msg;
	void *hdr;
	int ret;

	ret = cvm_nl_parse_volume(info, tb);
	if (ret)
		return ret;
	if (NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_VOLUME_ATTR_ID) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_VOLUME_ATTR_POOL_ID) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_VOLUME_ATTR_SIZE) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, tb,
			      CVM_VOLUME_ATTR_OBJECT_SIZE) ||
	    NL_REQ_ATTR_CHECK(info->extack, nest, tb,
			      CVM_VOLUME_ATTR_ATTACH_EPOCH))
		return -EINVAL;
	if (tb[CVM_VOLUME_ATTR_FLAGS] && nla_get_u32(tb[CVM_VOLUME_ATTR_FLAGS])) {
		NL_SET_ERR_MSG_ATTR(info->extack, tb[CVM_VOLUME_ATTR_FLAGS],
				    "no flags are defined for attach");
		return -EINVAL;
	}
	spec.id = nla_get_u64(tb[CVM_VOLUME_ATTR_ID]);
	spec.pool_id = nla_get_u32(tb[CVM_VOLUME_ATTR_POOL_ID]);
	spec.size = nla_get_u64(tb[CVM_VOLUME_ATTR_SIZE]);
	spec.object_size = nla_get_u32(tb[CVM_VOLUME_ATTR_OBJECT_SIZE]);
	spec.attach_epoch = nla_get_u64(tb[CVM_VOLUME_ATTR_ATTACH_EPOCH]);
	if (tb[CVM_VOLUME_ATTR_STRIPE_UNIT])
		spec.stripe_unit = nla_get_u32(tb[CVM_VOLUME_ATTR_STRIPE_UNIT]);
	if (tb[CVM_VOLUME_ATTR_NAME])
		spec.name = nla_data(tb[CVM_VOLUME_ATTR_NAME]);

	/* Allocated first: an attached volume always gets its reply. */
	msg = genlmsg_new(cvm_volume_msg_size(), GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &cvm_genl_family, 0,
				CVM_CMD_VOLUME_ATTACH);
	if (!hdr) {
		ret = -EMSGSIZE;
		goto out_free_msg;
	}

	mutex_lock(&cvm_config_mutex);
	ret = cvm_volume_attach(&spec, &vol, info->extack);
	if (!ret)
		ret = cvm_volume_fill(msg, vol);
	mutex_unlock(&cvm_config_mutex);
	if (ret)
		goto out_free_msg;

	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

out_free_msg:
	nlmsg_free(msg);
	return ret;
}

static int cvm_nl_volume_detach_doit(struct sk_buff *skb,
				     struct genl_info *info)
{
	struct nlattr *tb[CVM_VOLUME_ATTR_MAX + 1];
	const struct nlattr *nest = info->attrs[CVM_ATTR_VOLUME];
	u32 flags = 0;
	int ret;

	ret = cvm_nl_parse_volume(info, tb);
	if (ret)
		return ret;
	if (NL_REQ_ATTR_CHECK(info->extack, nest, tb, CVM_VOLUME_ATTR_ID))
		return -EINVAL;
	if (tb[CVM_VOLUME_ATTR_FLAGS])
		flags = nla_get_u32(tb[CVM_VOLUME_ATTR_FLAGS]);

	mutex_lock(&cvm_config_mutex);
	ret = cvm_volume_detach(nla_get_u64(tb[CVM_VOLUME_ATTR_ID]), flags,
				info->extack);
	mutex_unlock(&cvm_config_mutex);
	return ret;
}

/* cb->args[0]: volumes already dumped. */
static int cvm_nl_volume_list_dumpit(struct sk_buff *skb,
				     struct netlink_callback *cb)
{
	struct cvm_volume *vol;
	long idx = 0;
	void *hdr;

	mutex_lock(&cvm_config_mutex);
	list_for_each_entry(vol, &cvm_volumes, entry) {
		if (idx++ < cb->args[0])
			continue;
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &cvm_genl_family,
				  NLM_F_MULTI, CVM_CMD_VOLUME_LIST);
		if (!hdr)
			break;
		if (cvm_volume_fill(skb, vol)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] = idx;
	}
	mutex_unlock(&cvm_config_mutex);
	return skb->len;
}

static int cvm_nl_host_key_set_doit(struct sk_buff *skb,
				    struct genl_info *info)
{
	u8 secret[CVM_WIRE_KEY_LEN];

	if (GENL_REQ_ATTR_CHECK(info, CVM_ATTR_HOST_KEY) ||
	    GENL_REQ_ATTR_CHECK(info, CVM_ATTR_KEY_ID))
		return -EINVAL;
	nla_memcpy(secret, info->attrs[CVM_ATTR_HOST_KEY], sizeof(secret));
	cvm_cred_set_key(secret, nla_get_u32(info->attrs[CVM_ATTR_KEY_ID]));
	memzero_explicit(secret, sizeof(secret));
	return 0;
}

static const struct genl_ops cvm_genl_ops[] = {
	{
		.cmd		= CVM_CMD_STATUS_GET,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_status_get_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_status_get_nl_policy) - 1,
		.doit		= cvm_nl_status_get_doit,
	},
	{
		.cmd		= CVM_CMD_MAP_SET,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_map_set_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_map_set_nl_policy) - 1,
		.doit		= cvm_nl_map_set_doit,
	},
	{
		.cmd		= CVM_CMD_VOLUME_ATTACH,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_volume_cmd_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_volume_cmd_nl_policy) - 1,
		.doit		= cvm_nl_volume_attach_doit,
	},
	{
		.cmd		= CVM_CMD_VOLUME_DETACH,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_volume_cmd_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_volume_cmd_nl_policy) - 1,
		.doit		= cvm_nl_volume_detach_doit,
	},
	{
		.cmd		= CVM_CMD_VOLUME_LIST,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_volume_list_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_volume_list_nl_policy) - 1,
		.dumpit		= cvm_nl_volume_list_dumpit,
	},
	{
		.cmd		= CVM_CMD_HOST_KEY_SET,
		.flags		= GENL_ADMIN_PERM,
		.policy		= cvm_host_key_nl_policy,
		.maxattr	= ARRAY_SIZE(cvm_host_key_nl_policy) - 1,
		.doit		= cvm_nl_host_key_set_doit,
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

/*
 * cvm_genl_path_event() - multicast CVM_CMD_EVENT_PATH_DOWN or _UP
 *
 * Process context.  Nobody listening is not an error; nor is a lost event
 * (cvmd also polls).
 */
void cvm_genl_path_event(u8 cmd, u32 device_id,
			 const struct sockaddr_storage *addr)
{
	char text[CVM_PATH_ADDR_LEN + 8];
	struct nlattr *nest;
	struct sk_buff *msg;
	void *hdr;

	snprintf(text, sizeof(text), "%pISpc", addr);
	msg = genlmsg_new(nla_total_size(0) + nla_total_size(sizeof(u32)) +
			  nla_total_size(sizeof(text)) +
			  nla_total_size_64bit(sizeof(u64)), GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &cvm_genl_family, 0, cmd);
	if (!hdr)
		goto out_free_msg;
	nest = nla_nest_start(msg, CVM_ATTR_EVENT);
	if (!nest ||
	    nla_put_u32(msg, CVM_EVENT_ATTR_DEVICE_ID, device_id) ||
	    nla_put_string(msg, CVM_EVENT_ATTR_ADDR, text) ||
	    nla_put_u64_64bit(msg, CVM_EVENT_ATTR_STALE_OBJECTS,
			      cvm_stale_dev_count(device_id),
			      CVM_EVENT_ATTR_PAD))
		goto out_free_msg;
	nla_nest_end(msg, nest);
	genlmsg_end(msg, hdr);
	genlmsg_multicast(&cvm_genl_family, msg, 0, CVM_GENL_MCGRP_EVENTS_IDX,
			  GFP_KERNEL);
	return;

out_free_msg:
	nlmsg_free(msg);
}

int __init cvm_genl_register(void)
{
	return genl_register_family(&cvm_genl_family);
}

void cvm_genl_unregister(void)
{
	genl_unregister_family(&cvm_genl_family);
}
