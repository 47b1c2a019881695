// SPDX-License-Identifier: GPL-2.0
/*
 * Listeners of cvm_target.ko: accept connections through a transport,
 * authenticate each host in HELLO and AUTH with the key cvmd gave for it
 * and the device the connection names (hosts.c), and pass data requests
 * to that device's object store.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/inet.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <net/ipv6.h>

#include "../transport/transport.h"
#include "target.h"

struct cvm_server_listener {
	struct cvm_listener	*l;
	struct list_head	entry;
	struct sockaddr_storage	addr;
};

static DEFINE_MUTEX(cvm_server_lock);
static LIST_HEAD(cvm_server_listeners);

static u16 cvm_server_hello(struct cvm_xprt_req *req)
{
	struct cvm_conn *conn = req->conn;
	struct cvm_store_dev *d;

	if (!cvm_hosts_key(conn->hello.device_id, conn->hello.host_id,
			   conn->hello.key_id, conn->hello.key)) {
		pr_warn_ratelimited("initiator %pISpc: HELLO refused: no key for host %llu on device %u (key id %u)\n",
				    &conn->peer, conn->hello.host_id,
				    conn->hello.device_id, conn->hello.key_id);
		return CVM_WIRE_STATUS_AUTH;
	}
	if (cvm_auth_challenge(conn)) {
		pr_warn_ratelimited("initiator %pISpc: HELLO refused: no HMAC-SHA256\n",
				    &conn->peer);
		return CVM_WIRE_STATUS_BUSY;
	}
	d = cvm_store_get(conn->hello.device_id);
	if (!d) {
		pr_warn_ratelimited("initiator %pISpc: HELLO for device %u, not served here\n",
				    &conn->peer, conn->hello.device_id);
		return CVM_WIRE_STATUS_NOT_FOUND;
	}
	/* Whose volatile cache this connection's FLUSHes reach. */
	conn->hello.instance = cvm_store_instance(d);
	cvm_store_put(d);
	return CVM_WIRE_STATUS_OK;
}

/*
 * AUTH: the host's proof.  Its key may have been taken away since HELLO
 * (TARGET_HOSTS_SET): then it is refused too.
 */
static u16 cvm_server_auth(struct cvm_conn *conn)
{
	bool ok = cvm_hosts_key(conn->hello.device_id, conn->hello.host_id,
				conn->hello.key_id, NULL) &&
		  cvm_auth_host_ok(conn);

	/* Needed no more, whatever the outcome. */
	memzero_explicit(conn->hello.key, sizeof(conn->hello.key));
	if (!ok) {
		pr_warn_ratelimited("initiator %pISpc: AUTH refused: wrong proof for host %llu on device %u (key id %u)\n",
				    &conn->peer, conn->hello.host_id,
				    conn->hello.device_id, conn->hello.key_id);
		return CVM_WIRE_STATUS_AUTH;
	}
	return CVM_WIRE_STATUS_OK;
}

/* io_work of the connection: process context. */
static void cvm_server_recv_req(struct cvm_xprt_req *req)
{
	struct cvm_store_dev *d;

	if (req->hdr.opcode == CVM_WIRE_OP_HELLO) {
		req->rsp_status = cvm_server_hello(req);
		req->rsp_len = 0;
		req->conn->ops->send_reply(req);
		return;
	}
	if (req->hdr.opcode == CVM_WIRE_OP_AUTH) {
		req->rsp_status = cvm_server_auth(req->conn);
		req->rsp_len = 0;
		req->conn->ops->send_reply(req);
		return;
	}
	d = cvm_store_get(req->conn->hello.device_id);
	if (!d) {
		/* The device was removed under the connection. */
		req->rsp_status = CVM_WIRE_STATUS_IO_ERROR;
		req->rsp_len = 0;
		req->conn->ops->send_reply(req);
		return;
	}
	cvm_store_handle(d, req);
}

/*
 * What one initiator connection may hold of this node's memory, granted in
 * HELLO (an initiator may ask for less); see struct cvm_conn_limits for the
 * bound these give.  Taken when a listener starts (TARGET_LISTEN): a
 * change applies from the next one on.
 */
static unsigned int conn_max_inflight = 128;
module_param(conn_max_inflight, uint, 0644);
MODULE_PARM_DESC(conn_max_inflight,
		 "requests in flight per connection (default 128)");
static unsigned int conn_max_data_mib = 32;
module_param(conn_max_data_mib, uint, 0644);
MODULE_PARM_DESC(conn_max_data_mib,
		 "payload MiB in flight per connection, at least 1 (default 32)");
static unsigned int max_conns = 1024;
module_param(max_conns, uint, 0644);
MODULE_PARM_DESC(max_conns, "connections per listener (default 1024)");
static unsigned int hello_timeout_s = 10;
module_param(hello_timeout_s, uint, 0644);
MODULE_PARM_DESC(hello_timeout_s,
		 "seconds a new connection has to say HELLO (default 10)");

/* At most this many connections wait for their HELLO on a listener. */
#define CVM_SERVER_MAX_HELLO_PENDING	64

static struct cvm_conn_limits cvm_server_limits;

static const struct cvm_conn_cb cvm_server_cb = {
	.recv_req	= cvm_server_recv_req,
	.limits		= &cvm_server_limits,
};

/* Module parameters to limits, clamped to what the protocol allows. */
static void cvm_server_update_limits(void)
{
	struct cvm_conn_limits *lim = &cvm_server_limits;

	lim->max_inflight = clamp(conn_max_inflight, 1U, (unsigned int)U16_MAX);
	lim->max_data = clamp(conn_max_data_mib, 1U, 4095U) << 20;
	lim->max_conns = max(max_conns, 1U);
	lim->max_hello_pending = CVM_SERVER_MAX_HELLO_PENDING;
	lim->hello_timeout = clamp(hello_timeout_s, 1U, 3600U) * HZ;
}

static int cvm_server_parse(const char *addr, u16 port,
			    struct sockaddr_storage *ss)
{
	char portstr[8];

	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(ss, 0, sizeof(*ss));
	return inet_pton_with_scope(&init_net, AF_UNSPEC, addr, portstr, ss);
}

static bool cvm_server_same_addr(const struct sockaddr_storage *a,
				 const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       ipv6_addr_equal(&x->sin6_addr, &y->sin6_addr);
	}
	return false;
}

static struct cvm_server_listener *
cvm_server_find(const struct sockaddr_storage *ss)
{
	struct cvm_server_listener *sl;

	list_for_each_entry(sl, &cvm_server_listeners, entry)
		if (cvm_server_same_addr(&sl->addr, ss))
			return sl;
	return NULL;
}

int cvm_server_listen(const char *transport, const char *addr, u16 port,
		      struct netlink_ext_ack *extack)
{
	const struct cvm_transport_ops *ops = cvm_transport_find(transport);
	struct cvm_server_listener *sl;
	struct cvm_listener *l;
	int ret;

	if (!ops) {
		NL_SET_ERR_MSG(extack, "unknown transport");
		return -EPROTONOSUPPORT;
	}
	sl = kzalloc(sizeof(*sl), GFP_KERNEL);
	if (!sl)
		return -ENOMEM;
	if (cvm_server_parse(addr, port, &sl->addr)) {
		NL_SET_ERR_MSG(extack, "address is not a numeric IPv4 or IPv6 address");
		ret = -EINVAL;
		goto out_free_sl;
	}

	mutex_lock(&cvm_server_lock);
	if (cvm_server_find(&sl->addr)) {
		NL_SET_ERR_MSG(extack, "already listening on that address and port");
		ret = -EEXIST;
		goto out_unlock;
	}
	cvm_server_update_limits();
	l = ops->listen(&sl->addr, &cvm_server_cb, sl);
	if (IS_ERR(l)) {
		ret = PTR_ERR(l);
		NL_SET_ERR_MSG(extack, "cannot listen on that address and port");
		goto out_unlock;
	}
	sl->l = l;
	list_add_tail(&sl->entry, &cvm_server_listeners);
	mutex_unlock(&cvm_server_lock);
	pr_info("listening on %pISpc (%s)\n", &sl->addr, ops->name);
	return 0;

out_unlock:
	mutex_unlock(&cvm_server_lock);
out_free_sl:
	kfree(sl);
	return ret;
}

static void cvm_server_stop(struct cvm_server_listener *sl)
{
	list_del(&sl->entry);
	sl->l->ops->unlisten(sl->l);
	pr_info("stopped listening on %pISpc\n", &sl->addr);
	kfree(sl);
}

int cvm_server_unlisten(const char *addr, u16 port,
			struct netlink_ext_ack *extack)
{
	struct cvm_server_listener *sl;
	struct sockaddr_storage ss;

	if (cvm_server_parse(addr, port, &ss)) {
		NL_SET_ERR_MSG(extack, "address is not a numeric IPv4 or IPv6 address");
		return -EINVAL;
	}
	mutex_lock(&cvm_server_lock);
	sl = cvm_server_find(&ss);
	if (sl)
		cvm_server_stop(sl);
	mutex_unlock(&cvm_server_lock);
	if (!sl) {
		NL_SET_ERR_MSG(extack, "not listening on that address and port");
		return -ENOENT;
	}
	return 0;
}

/*
 * A connection past HELLO whose host has no key for its device now.  A
 * key id retired by a rotation keeps the connections made with it: the
 * host proved itself then, and a rotation must not cut its I/O.
 */
static bool cvm_server_pick_unkeyed(struct cvm_listener *l,
				    struct cvm_conn *conn)
{
	return READ_ONCE(conn->state) != CVM_CONN_HELLO &&
	       !cvm_hosts_known(conn->hello.device_id, conn->hello.host_id);
}

void cvm_server_drop_unkeyed(u32 device_id)
{
	struct cvm_server_listener *sl;

	mutex_lock(&cvm_server_lock);
	list_for_each_entry(sl, &cvm_server_listeners, entry)
		cvm_listener_abort_each(sl->l, cvm_server_pick_unkeyed,
					"its host's key was withdrawn");
	mutex_unlock(&cvm_server_lock);
}

void cvm_server_unlisten_all(void)
{
	struct cvm_server_listener *sl, *tmp;

	mutex_lock(&cvm_server_lock);
	list_for_each_entry_safe(sl, tmp, &cvm_server_listeners, entry)
		cvm_server_stop(sl);
	mutex_unlock(&cvm_server_lock);
}
