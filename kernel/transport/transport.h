/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CVM transports: one ops table, one file per transport.
 *
 * The core (cvm.ko's request pipeline, cvm_target.ko's object store) speaks
 * the CVM wire protocol (include/uapi/linux/cvm_wire.h) through a
 * struct cvm_transport_ops that a transport fills as a static const table
 * (tcp.c: cvm_tcp_ops; rdma.c: cvm_rdma_ops) and registers from its own
 * init (transports.h; each module's init calls the inits of the transports
 * it carries).  The core looks a transport up by name ("tcp") and never
 * tests which one it has.
 *
 * The protocol lives in core.c, once: validating headers, HELLO on both
 * ends (versions, status to errno, the limits it agrees), building reply
 * headers and checking replies against their requests, counting requests
 * against the agreed limits (struct cvm_budget), and the lifetime of a
 * listener's connections (struct cvm_listener: caps, HELLO timeout,
 * teardown).  A transport frames and moves bytes and calls those helpers
 * at fixed points; who includes whom:
 *
 *	initiator/, target/ --> transport.h <-- core.c
 *	      main.c --------> transports.h <-- tcp.c, rdma.c --> transport.h
 *
 * core.c includes no transport and calls none by name.
 *
 * Every kernel/transport/ source is compiled into both modules (see Kbuild);
 * each module has its own registry of transports.
 *
 * Objects
 *
 *   struct cvm_conn	one connection to one peer.  The transport's own
 *			connection struct embeds it; the transport gets back
 *			with container_of().  Reference counted (@ref); the
 *			last cvm_conn_put() calls ops->release_conn().
 *   struct cvm_xprt_req	one request and its reply.  The transport's own
 *			per-request struct embeds it (alloc_req()/free_req());
 *			the core never allocates one itself.  A request holds
 *			a reference on its connection.
 *   struct cvm_listener	a listening endpoint (target side).
 *
 * Payload.  Every payload travels in @req->bvec[0 .. nr_bvec - 1];
 * @req->data_len is the sum of the lengths.  Target-side pages are whole
 * pages at offset 0 (the transport allocates them); initiator-side bvecs
 * come straight from bios, so they may start at any offset and span
 * several pages: a transport must accept both (tcp does, through
 * iov_iter_bvec).  Pages are owned by whoever allocated them:
 *   - target side: the transport allocates pages for a WRITE request's
 *     payload (filled before recv_req() is called) and for the reply payload
 *     of a READ/STAT/LIST request (length hdr.length, or the STAT size; the
 *     core fills them); the transport frees them in send_reply()/free_req().
 *     They are not zeroed: the core must write every byte it replies with.
 *   - initiator side: the core owns the pages (the bio's pages for a WRITE,
 *     the pages to fill for a READ) and keeps them alive until done() has
 *     been called.  The transport never frees them.
 * An RDMA transport maps the same bvecs for RDMA READ (target pulls a WRITE
 * payload) and RDMA WRITE (target pushes a READ payload) and sends headers
 * with SEND: the callers do not change.
 *
 * Headers.  @req->hdr is the request header exactly as on the wire (little
 * endian).  On submit() the core fills opcode, flags (FUA, NOUNMAP; not
 * REPLY/DATA_CRC), volume_id, object_no, offset, snap_seq, snap_id,
 * map_epoch, attach_epoch, length and shard; the transport fills magic,
 * version, tag, data_crc and hdr_crc.  Before recv_req() the transport has
 * validated every field of the request header (cvm_xprt_check_req()),
 * charged it to the connection's budget (cvm_xprt_charge_req()) and
 * checked the data CRC if flagged.  On the target the core fills
 * @req->rsp_status and, for a payload reply, @req->rsp_len; the transport
 * has cvm_xprt_reply_hdr() build the reply header from the request (tag,
 * opcode, ids, offset) and those.
 *
 * Limits.  HELLO agrees, per connection, how many requests may be in
 * flight and how many payload bytes they may pin (struct cvm_wire_hello,
 * version 2).  The initiator keeps requests that do not fit on a backlog;
 * the target closes a connection that goes beyond, and a listener keeps
 * at most max_conns connections, max_hello_pending of them without HELLO,
 * each of those for hello_timeout at most (struct cvm_conn_limits).
 *
 * Contexts and lifetimes
 *
 *   Target side:
 *   - cb->recv_req(req) runs in the connection's io_work (process context,
 *     workqueue).  It must not block for long: it submits bios and returns.
 *     The core answers every request exactly once with ops->send_reply(req)
 *     (any context, including bio end_io in softirq/hardirq); send_reply()
 *     takes ownership of req and frees it (and its pages) once sent, or at
 *     once if the connection is already gone.  The first request on a
 *     connection is always HELLO; the transport delivers nothing else until
 *     the core has answered HELLO with CVM_WIRE_STATUS_OK, and closes the
 *     connection after any other HELLO status has been sent.
 *   - cb->conn_closed(conn) runs once per accepted connection, in process
 *     context, after the connection stopped receiving; requests already
 *     handed to the core still hold references and must still be answered
 *     (send_reply() then just frees them).
 *   - unlisten() stops accepting and closes every connection it accepted
 *     (cvm_listener_close_conns(): abort() on each outside the listener's
 *     lock, then wait for each to tear down); it sleeps, and returns when
 *     no callback of that listener runs any more (requests still in the
 *     core keep their connections alive).
 *
 *   Initiator side:
 *   - connect() sleeps (process context): it connects, sends HELLO and
 *     waits for the reply.  Returns the connection or an ERR_PTR: -EPROTO
 *     (bad reply), -EACCES (CVM_WIRE_STATUS_AUTH), -EPROTONOSUPPORT
 *     (CVM_WIRE_STATUS_VERSION), -ECONNREFUSED, -ETIMEDOUT, ... The
 *     target's HELLO status is also stored in *hello_status when not NULL.
 *   - submit(req) may be called from any context that may not sleep
 *     (blk-mq queue_rq included); it returns 0 (done() will be called
 *     exactly once) or -ENOTCONN / -EINVAL (done() will not be called).
 *   - req->done(req) runs in the transport's completion context: for tcp
 *     the connection's io_work (workqueue, process context); for rdma it
 *     may be the CQ's softirq.  Callers must assume softirq: do not sleep,
 *     use blk_mq_complete_request() or queue work.  @req->status holds the
 *     target's protocol status (enum cvm_wire_status) and @req->error an
 *     errno of the transport (0 when a reply arrived; -ENOTCONN when the
 *     connection died first; -EPROTO when the reply was malformed, which
 *     also kills the connection).  Status and errno are never mixed.
 *   - cb->state_change(conn, CVM_CONN_DEAD) is called once, from a
 *     workqueue, after the connection failed (peer closed, malformed
 *     message, socket error) and after every outstanding request has been
 *     completed with -ENOTCONN.  The core marks its path degraded and
 *     reconnects with a new connect(); the dead connection is freed by
 *     disconnect().
 *   - disconnect(conn) sleeps: it shuts the connection down, completes
 *     outstanding requests with -ENOTCONN, waits for io_work and drops the
 *     core's reference.  It is the only way the core gives up a
 *     connection it got from connect(), dead or alive.  Once it returns,
 *     no callback (state_change or done) runs for that connection again;
 *     the initiator's path teardown relies on this.
 *   - free_req(req) frees a request that was never submitted, or whose
 *     done() has run.
 */
#ifndef _CVM_TRANSPORT_H
#define _CVM_TRANSPORT_H

#include <linux/bvec.h>
#include <linux/cvm_wire.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/socket.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

struct cvm_conn;
struct cvm_listener;
struct cvm_xprt_req;

/* Version of this API; a transport built for another one is refused. */
#define CVM_TRANSPORT_API_VERSION	1

/* Longest transport name ("tcp", "rdma"), with its NUL. */
#define CVM_TRANSPORT_NAME_LEN		16

enum cvm_conn_role {
	CVM_CONN_INITIATOR,	/* we connected: we send requests */
	CVM_CONN_TARGET,	/* we accepted: we answer requests */
};

enum cvm_conn_state {
	CVM_CONN_CONNECTING,	/* initiator: HELLO not yet answered */
	CVM_CONN_HELLO,		/* target: waiting for HELLO / its answer */
	CVM_CONN_AUTH,		/* target: HELLO answered, waiting for AUTH */
	CVM_CONN_LIVE,		/* AUTH answered OK: data requests flow */
	CVM_CONN_DEAD,		/* failed or shut down; no more I/O */
};

/**
 * struct cvm_hello_params - what an initiator announces in HELLO
 * @cluster_id: cvm_wire_hello.cluster_id.
 * @host_id: cvm_wire_hello.host_id.
 * @device_id: backing device at the target this connection addresses
 *	(cvm_wire_hello.device_id; one connection per target device).
 * @key_id: cvm_wire_hello.key_id, the generation of the host's secret.
 * @key: the host's key for this device (cvm_wire.h, "Authentication"):
 *	the initiator derives it from its secret, the target looks it up in
 *	what cvmd loaded (zero until then).
 * @instance: the device's instance (cvm_wire_hello.instance): set by the
 *	target's recv_req() before it answers HELLO; on the initiator, what
 *	the target answered.
 *
 * The volume's attach epoch is not a HELLO field: it travels in every
 * request header (cvm_wire_hdr.attach_epoch), so one connection serves
 * every volume placed on the device.
 */
struct cvm_hello_params {
	u64	cluster_id;
	u64	host_id;
	u32	device_id;
	u32	key_id;
	u8	key[CVM_WIRE_KEY_LEN];
	u64	instance;
};

/**
 * struct cvm_conn_auth - one connection's handshake (auth.c)
 * @host_nonce: the host's challenge (HELLO).
 * @target_nonce: the target's challenge (HELLO reply).
 * @target_proof: target: the proof it sends back.
 * @host_proof: target: the proof the host sent in AUTH.
 */
struct cvm_conn_auth {
	u8	host_nonce[CVM_WIRE_NONCE_LEN];
	u8	target_nonce[CVM_WIRE_NONCE_LEN];
	u8	target_proof[CVM_WIRE_PROOF_LEN];
	u8	host_proof[CVM_WIRE_PROOF_LEN];
};

/**
 * struct cvm_conn_limits - what a target allows one connection
 * @max_inflight: requests in flight (header received, reply not yet sent).
 * @max_data: payload bytes those requests pin (cvm_wire_req_data()).
 * @max_conns: connections a listener keeps at most.
 * @max_hello_pending: of those, connections that have not said HELLO yet.
 * @hello_timeout: jiffies a connection may take to say HELLO.
 *
 * Per connection a target holds at most @max_inflight request structs,
 * @max_data payload bytes plus a page of rounding per request, and the
 * socket or queue pair buffers; per listener @max_conns of those.
 */
struct cvm_conn_limits {
	u32		max_inflight;
	u32		max_data;
	u32		max_conns;
	u32		max_hello_pending;
	unsigned long	hello_timeout;
};

/* What an initiator asks for in HELLO; the target grants at most that. */
#define CVM_CONN_WANT_INFLIGHT	128
#define CVM_CONN_WANT_DATA	(64U << 20)

/**
 * struct cvm_budget - requests and payload bytes in flight on a connection
 * (or an rdma queue pair) against what HELLO agreed
 * @inflight, @data: in use.
 * @max_inflight, @max_data: agreed (target: granted; initiator: granted to
 *	us).  Zero until HELLO is answered.
 */
struct cvm_budget {
	atomic_t	inflight;
	atomic_t	data;
	u32		max_inflight;
	u32		max_data;
};

/**
 * struct cvm_conn_cb - the core's callbacks for a connection or listener
 * @recv_req: target: a validated request (see above).
 * @conn_closed: target: an accepted connection stopped receiving.
 * @state_change: initiator: the connection changed state (only DEAD is
 *	reported for now).
 * @limits: target: what each accepted connection is allowed (read when a
 *	connection is accepted and when it says HELLO).
 */
struct cvm_conn_cb {
	void	(*recv_req)(struct cvm_xprt_req *req);
	void	(*conn_closed)(struct cvm_conn *conn);
	void	(*state_change)(struct cvm_conn *conn,
				enum cvm_conn_state state);
	const struct cvm_conn_limits	*limits;
};

/**
 * struct cvm_conn - transport-independent part of a connection
 * @ops: the transport.
 * @cb: the core's callbacks.
 * @ref: references: the core's (connect/accept), one per request.
 * @role: initiator or target end.
 * @state: enum cvm_conn_state, READ_ONCE/WRITE_ONCE.
 * @peer: the peer's address, for logs (%pISpc).
 * @hello: target: what the peer announced in HELLO (set before recv_req()
 *	of the HELLO request); initiator: what we announced.
 * @auth: the handshake's challenges and proofs.
 * @core_priv: the core's per-connection data (target: the device served).
 * @listener: target: the listener that accepted it (NULL once it left).
 * @lentry: target: on @listener's list.
 * @accepted: target: jiffies when accepted (the HELLO timeout).
 * @budget: what is in flight against the limits HELLO agreed (tcp; rdma
 *	keeps one per queue pair on the initiator).
 */
struct cvm_conn {
	const struct cvm_transport_ops	*ops;
	const struct cvm_conn_cb	*cb;
	struct kref			ref;
	enum cvm_conn_role		role;
	int				state;
	struct sockaddr_storage		peer;
	struct cvm_hello_params		hello;
	struct cvm_conn_auth		auth;
	void				*core_priv;
	struct cvm_listener		*listener;
	struct list_head		lentry;
	unsigned long			accepted;
	struct cvm_budget		budget;
};

/*
 * No device instance (cvm_wire_hello.instance) is this one: writes of one
 * object acknowledged under two instances of a device (flush.c).
 */
#define CVM_INSTANCE_MIXED	U64_MAX

/**
 * struct cvm_xprt_req - one request on a connection
 * @conn: connection (holds a reference while the request exists).
 * @hdr: request header, little endian, as on the wire.
 * @bvec: payload pages (see "Payload" above).
 * @nr_bvec: entries used in @bvec.
 * @data_len: payload bytes described by @bvec.
 * @rsp_status: target: enum cvm_wire_status of the reply.
 * @rsp_len: target: reply payload length (<= @data_len).
 * @status: initiator: the reply's enum cvm_wire_status.
 * @error: initiator: transport errno (0 when @status is valid).
 * @rsp_map_epoch: initiator: the target's map epoch from the reply.
 * @rsp_version: the reply's @shard_version (BUMP, SET_VERSION): set by the
 *	target, read by the initiator.
 * @done: initiator: completion callback.
 * @core_priv: the core's per-request data.
 * @data_crc, @data_crc_set: initiator: the payload's CRC32C, when the core
 *	computed it once for every replica of a write; else the transport
 *	computes it.
 * @budget_data, @in_budget: what cvm_xprt_budget_take() charged for it
 *	(payload bytes), and whether it holds a charge to give back.
 */
struct cvm_xprt_req {
	struct cvm_conn		*conn;
	struct cvm_wire_hdr	hdr;
	struct bio_vec		*bvec;
	unsigned int		nr_bvec;
	u32			data_len;
	u16			rsp_status;
	u32			rsp_len;
	u16			status;
	int			error;
	u64			rsp_map_epoch;
	u32			rsp_version;
	void			(*done)(struct cvm_xprt_req *req);
	void			*core_priv;
	u32			data_crc;
	bool			data_crc_set;
	u32			budget_data;
	bool			in_budget;
};

/**
 * struct cvm_listener - transport-independent part of a listening endpoint
 * @ops: the transport.
 * @cb: callbacks for every connection it accepts.
 * @addr: address listened on.
 * @core_priv: the core's data.
 * @entry: the core's list of listeners.
 * @lock: @conns, @nr_conns, @stopping.
 * @conns: connections it accepted that have not finished tearing down.
 * @nr_conns: entries on @conns.
 * @stopping: unlisten started: accept nothing more.
 * @wq: unlisten waits here for @conns to empty.
 * @hello_work: closes connections that do not say HELLO in time.
 *
 * The core owns the connection list and its lifetime rules
 * (cvm_listener_*() below); a transport only accepts and tears down.
 */
struct cvm_listener {
	const struct cvm_transport_ops	*ops;
	const struct cvm_conn_cb	*cb;
	struct sockaddr_storage		addr;
	void				*core_priv;
	struct list_head		entry;
	spinlock_t			lock;
	struct list_head		conns;
	unsigned int			nr_conns;
	bool				stopping;
	wait_queue_head_t		wq;
	struct delayed_work		hello_work;
};

/**
 * struct cvm_transport_ops - a transport
 * @name: "tcp", "rdma".
 * @api_version: CVM_TRANSPORT_API_VERSION.
 * @payload_crc: the transport sends a CRC32C of every payload (tcp: the
 *	link has none end to end); the core then computes a write's CRC once
 *	for all its replicas (@data_crc).  rdma leaves it to the link.
 * @listen: target: allocate a listener (embedding struct cvm_listener),
 *	bind and listen on @addr, start accepting.  Sleeps.  ERR_PTR on error
 *	(-EADDRINUSE, -EADDRNOTAVAIL, ...).
 * @unlisten: target: stop and free a listener (see above).  Sleeps.
 * @send_reply: target: send the reply to @req and free it (see above).
 *	Any context.
 * @connect: initiator: connect to @addr and say HELLO (see above).
 * @disconnect: initiator: shut down and drop the core's reference.
 * @submit: initiator: send @req (see above).
 * @oldest_request: initiator: jiffies at which the oldest request still
 *	waiting for its reply was submitted, 0 if none.  Process context.
 * @abort: declare a connection dead (@why is logged unless NULL), as if
 *	the peer had gone: the transport shuts it down and tears it down from
 *	its own work.  Initiator: every request on it completes with an error
 *	and the core's state_change sees CVM_CONN_DEAD (the watchdog, for a
 *	peer that stopped answering without closing).  Target: the listener's
 *	teardown and HELLO timeout.  Process context; never sleeps, so it may
 *	also be called under a spinlock.
 * @alloc_req: allocate a request on @conn (both sides; the target side is
 *	used by the transport itself).  GFP as given.  Sets @req->conn and
 *	takes a reference on it.
 * @free_req: free a request (and, target side, its pages); drops its
 *	reference on the connection.
 * @release_conn: free the connection; called by the last cvm_conn_put().
 */
struct cvm_transport_ops {
	const char	*name;
	unsigned int	api_version;
	bool		payload_crc;

	struct cvm_listener *(*listen)(const struct sockaddr_storage *addr,
				       const struct cvm_conn_cb *cb,
				       void *core_priv);
	void	(*unlisten)(struct cvm_listener *l);
	void	(*send_reply)(struct cvm_xprt_req *req);

	struct cvm_conn *(*connect)(const struct sockaddr_storage *addr,
				    const struct cvm_hello_params *hello,
				    const struct cvm_conn_cb *cb,
				    void *core_priv, u16 *hello_status);
	void	(*disconnect)(struct cvm_conn *conn);
	int	(*submit)(struct cvm_xprt_req *req);
	unsigned long	(*oldest_request)(struct cvm_conn *conn);
	void	(*abort)(struct cvm_conn *conn, const char *why);

	struct cvm_xprt_req *(*alloc_req)(struct cvm_conn *conn, gfp_t gfp);
	void	(*free_req)(struct cvm_xprt_req *req);
	void	(*release_conn)(struct cvm_conn *conn);
};

/* core.c: registry (per module); each transport registers from its init */
int cvm_transport_register(const struct cvm_transport_ops *ops);
void cvm_transport_unregister(const struct cvm_transport_ops *ops);
const struct cvm_transport_ops *cvm_transport_find(const char *name);

static inline void cvm_conn_get(struct cvm_conn *conn)
{
	kref_get(&conn->ref);
}

void cvm_conn_put(struct cvm_conn *conn);

/* core.c: wire header helpers shared by every transport */

/*
 * cvm_wire_check_hdr() - validate a received header, in the order
 * cvm_wire.h gives.  @is_reply: the message must (not) be a reply.
 * Returns NULL if the header is well-formed, else a static string naming
 * the first failed check, for the log.  Never touches anything but @hdr.
 */
const char *cvm_wire_check_hdr(const struct cvm_wire_hdr *hdr, bool is_reply);
u32 cvm_wire_hdr_crc(const struct cvm_wire_hdr *hdr);
void cvm_wire_hdr_seal(struct cvm_wire_hdr *hdr);
/* Payload bytes that follow a header (0 for e.g. WRITE_ZEROES requests). */
u32 cvm_wire_payload_len(const struct cvm_wire_hdr *hdr);
/* Payload bytes an OK reply to this request may carry at most. */
u32 cvm_wire_reply_max_len(const struct cvm_wire_hdr *hdr);
u32 cvm_crc32c_bvec(const struct bio_vec *bv, unsigned int nr, u32 len);

/* Payload bytes a request pins at the target while in flight. */
u32 cvm_wire_req_data(const struct cvm_wire_hdr *hdr);

/*
 * core.c: the protocol, which every transport follows through these calls
 * and none repeats.  "why" strings are static, for the transport's one
 * fatal-error path (it logs them with the peer and closes).
 */

/*
 * Budgets.  take() charges @req if it fits (true) and give() returns its
 * charge, if any.  The initiator serialises the takes of one budget (its
 * queue lock) so that it never goes beyond; on the target a request that
 * does not fit is the peer's fault (cvm_xprt_charge_req()).
 */
void cvm_budget_init(struct cvm_budget *b);
bool cvm_xprt_budget_take(struct cvm_budget *b, struct cvm_xprt_req *req);
void cvm_xprt_budget_give(struct cvm_budget *b, struct cvm_xprt_req *req);

/* Connections: fields every transport sets the same way. */
void cvm_conn_init(struct cvm_conn *conn, const struct cvm_transport_ops *ops,
		   enum cvm_conn_role role, const struct cvm_conn_cb *cb,
		   void *core_priv);

/* Target: receiving requests */
const char *cvm_xprt_check_req(struct cvm_conn *conn,
			       const struct cvm_wire_hdr *hdr,
			       bool *refuse_version);
const char *cvm_xprt_charge_req(struct cvm_conn *conn,
				struct cvm_xprt_req *req);
void cvm_xprt_uncharge_req(struct cvm_conn *conn, struct cvm_xprt_req *req);
/* What this module's listeners hold: connections, and bytes charged. */
u32 cvm_xprt_target_conns(void);
u64 cvm_xprt_target_pinned(void);
const char *cvm_xprt_hello_recv(struct cvm_conn *conn,
				const struct cvm_wire_hello *h,
				u32 cap_inflight);
const char *cvm_xprt_auth_recv(struct cvm_conn *conn,
			       const struct cvm_wire_hello *h);
u32 cvm_xprt_reply_hdr(struct cvm_xprt_req *req, struct cvm_wire_hdr *w,
		       u32 room, bool *close_after);
void cvm_xprt_hello_reply(const struct cvm_conn *conn,
			  struct cvm_wire_hello *out);

/* Target: listeners and the connections they accepted */
void cvm_listener_init(struct cvm_listener *l,
		       const struct cvm_transport_ops *ops,
		       const struct sockaddr_storage *addr,
		       const struct cvm_conn_cb *cb, void *core_priv);
int cvm_listener_add_conn(struct cvm_listener *l, struct cvm_conn *conn);
void cvm_listener_del_conn(struct cvm_conn *conn);
void cvm_listener_close_conns(struct cvm_listener *l);
/* Aborts each connection of @l that @pick (called under @l's lock) names. */
void cvm_listener_abort_each(struct cvm_listener *l,
			     bool (*pick)(struct cvm_listener *l,
					  struct cvm_conn *conn),
			     const char *why);

/* Initiator: HELLO and replies */
void cvm_xprt_hello_req(const struct cvm_hello_params *p,
			struct cvm_wire_hdr *hdr, struct cvm_wire_hello *h,
			u32 want_inflight);
int cvm_xprt_hello_rsp_hdr(struct cvm_conn *conn,
			   const struct cvm_wire_hdr *rsp, u16 *hello_status);
int cvm_xprt_hello_done(struct cvm_conn *conn, const struct cvm_wire_hdr *rsp,
			const struct cvm_wire_hello *rh,
			const struct cvm_wire_hello *asked,
			struct cvm_budget *b);
int cvm_xprt_auth_req(struct cvm_conn *conn, struct cvm_wire_hdr *hdr,
		      struct cvm_wire_hello *h);
int cvm_xprt_auth_rsp_hdr(struct cvm_conn *conn,
			  const struct cvm_wire_hdr *rsp, u16 *hello_status);

/*
 * Authentication (auth.c; the scheme is in cvm_wire.h).  HMAC-SHA256 by
 * the kernel crypto API; process context.  Proofs are compared in
 * constant time.
 */
int cvm_auth_derive_key(const u8 *secret, u64 cluster_id, u64 host_id,
			u32 device_id, u8 *key);
/* Target: a fresh challenge and our proof into @conn->auth. */
int cvm_auth_challenge(struct cvm_conn *conn);
/* Target: is the proof the host sent in AUTH the right one? */
bool cvm_auth_host_ok(struct cvm_conn *conn);
/* Initiator: is the target's proof the right one; our own proof. */
bool cvm_auth_target_ok(struct cvm_conn *conn, const u8 *proof);
int cvm_auth_host_proof(struct cvm_conn *conn, u8 *proof);

/* HELLO and AUTH: payload struct cvm_wire_hello, always inline. */
static inline bool cvm_wire_op_handshake(u8 op)
{
	return op == CVM_WIRE_OP_HELLO || op == CVM_WIRE_OP_AUTH;
}

/* Target: the connection has not finished HELLO and AUTH yet. */
static inline bool cvm_conn_handshaking(const struct cvm_conn *conn)
{
	int state = READ_ONCE(conn->state);

	return state == CVM_CONN_HELLO || state == CVM_CONN_AUTH;
}
const char *cvm_xprt_check_rsp(const struct cvm_xprt_req *req,
			       const struct cvm_wire_hdr *hdr);
void cvm_xprt_complete(struct cvm_xprt_req *req,
		       const struct cvm_wire_hdr *hdr);

#endif /* _CVM_TRANSPORT_H */
