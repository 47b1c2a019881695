// SPDX-License-Identifier: GPL-2.0
/*
 * CVM rdma transport: the CVM wire protocol over RDMA reliable connections
 * (rdma_cm), framed as include/uapi/linux/cvm_wire.h describes: headers in
 * SEND messages, payloads by RDMA READ/WRITE of registered pages, as
 * drivers/nvme/{host,target}/rdma.c do.
 *
 * Queues.  A struct cvm_rdma_conn is what the core sees as one connection.
 * On the initiator it holds one queue pair per CPU (within the device's
 * completion vectors), each its own rdma_cm connection with its own HELLO;
 * submit() picks the submitting CPU's queue.  On the target each accepted
 * rdma_cm connection is one cvm_rdma_conn with one queue.
 *
 * Initiator requests take a slot of their queue (at most the depth agreed
 * at connect are in flight, so the target's posted receives never run out;
 * the rest wait on the queue's backlog).  A slot owns its DMA-mapped
 * command capsule, scatterlist and, while a payload is registered, a fast
 * registration MR.  A slot completes when its SEND completed and the reply
 * arrived (and, if the target did not invalidate the MR, a LOCAL_INV
 * completed): @pending counts those.
 *
 * Target requests live from the receive of their command to the completion
 * of their reply's SEND; a WRITE payload that was not inline is pulled with
 * RDMA READ (rdma_rw) before the core sees the request, and a reply payload
 * is pushed with RDMA WRITE chained before the reply's SEND.
 *
 * Errors.  Any failed work request, malformed message or rdma_cm
 * disconnect goes to cvm_rdma_fatal(), which marks the whole connection
 * dead once and queues release_work: it disconnects and drains every queue
 * pair (so no completion runs after it), fails what the initiator still
 * has in flight, and reports the death.  Verbs resources are freed by the
 * last reference (free_work), because target requests still in the core
 * hold their pages mapped on the queue pair.
 *
 * RDMA device removal.  An ib_client's remove callback fails every
 * connection on the device and waits until they are freed, and takes the
 * listeners off it; a listener tries to listen again every second, so a
 * device that comes back (rdma link add) is served again.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": rdma: " fmt

#include <linux/bvec.h>
#include <linux/crc32c.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <rdma/ib_cm.h>
#include <rdma/ib_verbs.h>
#include <rdma/mr_pool.h>
#include <rdma/rdma_cm.h>
#include <rdma/rw.h>

#include "transport.h"
#include "transports.h"

#define CVM_RDMA_QUEUE_DEPTH	128	/* requests in flight per queue */
#define CVM_RDMA_MAX_QUEUES	8
#define CVM_RDMA_INLINE_SIZE	4096	/* largest inline WRITE payload */
#define CVM_RDMA_INLINE_SGES	4	/* bio segments sent inline at most */
/* Pages of the largest payload at any offset. */
#define CVM_RDMA_MAX_PAGES	(CVM_WIRE_MAX_DATA_LEN / PAGE_SIZE + 1)
#define CVM_RDMA_RESOLVE_MS	3000
#define CVM_RDMA_CONNECT_TIMEOUT (10 * HZ)
#define CVM_RDMA_RELISTEN_DELAY	HZ
/* Initiator receives carry a reply header and an inline payload. */
#define CVM_RDMA_RSP_SIZE	(CVM_WIRE_HDR_LEN + CVM_RDMA_INLINE_SIZE)
/* Pages of an inline payload. */
#define CVM_RDMA_INLINE_PAGES	DIV_ROUND_UP(CVM_RDMA_INLINE_SIZE, PAGE_SIZE)
/* Slot index in the low bits of a tag, a per-queue sequence above. */
#define CVM_RDMA_TAG_SLOT_BITS	16

struct cvm_rdma_conn;
struct cvm_rdma_queue;

/* A posted receive buffer. */
struct cvm_rdma_rbuf {
	struct cvm_rdma_queue	*queue;
	void			*buf;
	u64			dma;
	struct ib_cqe		cqe;
};

/**
 * struct cvm_rdma_req - rdma request: embeds the core's struct cvm_xprt_req
 * @req: the core's part.
 * @entry: initiator: on the queue's backlog.
 * @submitted: initiator: jiffies when submitted (never 0).
 * @queue: target: the queue it arrived on.
 * @rsp: target: the reply header, and HELLO's payload behind it.
 * @rsp_dma: target: @rsp mapped for the SEND, 0 if not mapped.
 * @hello: HELLO payload (target: received; initiator: sent and received).
 * @sgt: target: the payload pages as a scatterlist.
 * @sg_cnt: target: mapped entries of @sgt.
 * @rw: target: RDMA READ of a WRITE payload, or RDMA WRITE of a reply.
 * @rw_valid: @rw is initialised.
 * @inline_reply: target: the request named no buffer; its reply payload
 *	(at most the inline size) travels in the reply's SEND, from @psge.
 * @nr_psge: target: @psge entries mapped.
 * @remote: target: the initiator's buffer (@sgl of the command).
 * @own_pages: target: @req.bvec pages were allocated here.
 * @close_after_send: target: the reply refuses HELLO; close once sent.
 * @send_cqe, @rw_cqe: target: completions of the reply and of the RDMA
 *	READ of a payload, or the error completion of the RDMA WRITE of one.
 * @send_wr: target: the reply's SEND.
 * @sge: target: its one SGE.
 */
struct cvm_rdma_req {
	struct cvm_xprt_req	req;
	struct list_head	entry;
	unsigned long		submitted;

	struct cvm_rdma_queue	*queue;
	struct {
		struct cvm_wire_hdr	hdr;
		struct cvm_wire_hello	hello;
	} rsp;
	u64			rsp_dma;
	struct cvm_wire_hello	hello;
	struct sg_table		sgt;
	int			sg_cnt;
	struct rdma_rw_ctx	rw;
	bool			rw_valid;
	bool			inline_reply;
	unsigned int		nr_psge;
	struct cvm_wire_rdma_sgl remote;
	bool			own_pages;
	bool			close_after_send;
	struct ib_cqe		send_cqe;
	struct ib_cqe		rw_cqe;
	struct ib_send_wr	send_wr;
	struct ib_sge		sge[1 + CVM_RDMA_INLINE_PAGES];
};

/**
 * struct cvm_rdma_slot - initiator: one request in flight on a queue
 * @queue: its queue.
 * @idx: index in the queue's slots, the low bits of @tag.
 * @rreq: the request, NULL when free.
 * @tag: the request's tag.
 * @entry: on the queue's free list.
 * @cmd: the command capsule, DMA-mapped at @cmd_dma.
 * @sgl: payload scatterlist, @nents mapped, @sg_cnt entries.
 * @mr: fast registration of the payload, NULL if none.
 * @inline_sges: payload SGEs mapped for an inline SEND.
 * @pending: SEND completion + reply + LOCAL_INV still to come.
 * @status, @rsp_len, @rsp_map_epoch: from the reply.
 */
struct cvm_rdma_slot {
	struct cvm_rdma_queue	*queue;
	u16			idx;
	struct cvm_rdma_req	*rreq;
	u64			tag;
	struct list_head	entry;
	struct cvm_wire_rdma_cmd *cmd;
	u64			cmd_dma;
	struct scatterlist	*sgl;
	int			nents;
	int			sg_cnt;
	struct ib_mr		*mr;
	unsigned int		inline_sges;
	bool			replied;
	atomic_t		pending;
	u16			status;
	u32			rsp_len;
	u64			rsp_map_epoch;
	struct ib_cqe		send_cqe;
	struct ib_cqe		reg_cqe;
	struct ib_cqe		inv_cqe;
	struct ib_sge		sge[1 + CVM_RDMA_INLINE_SGES];
	struct ib_send_wr	send_wr;
	struct ib_reg_wr	reg_wr;
	struct ib_send_wr	inv_wr;
};

/**
 * struct cvm_rdma_queue - one queue pair and its rdma_cm connection
 * @rc: the connection it belongs to.
 * @qid: index in @rc.
 * @cm_id: rdma_cm identifier (owns @qp).
 * @dev: the RDMA device, once the address resolved.
 * @pd, @cq, @qp: verbs resources.
 * @depth: requests in flight at most (agreed at connect).
 * @inline_size: largest inline payload (agreed at connect).
 * @rbufs: @nr_rbufs posted receive buffers of @rbuf_size bytes.
 * @lock: initiator: @free_slots, @backlog and slot ownership.
 * @slots: initiator: @depth slots.
 * @mrs: initiator: fast registration MR pool.
 * @cm_done: initiator: connect finished (@cm_error).
 * @hello_done: initiator: HELLO answered.
 * @established: the rdma_cm connection was established (drain it).
 * @budget: initiator: what HELLO on this queue pair agreed, and its use;
 *	a request leaves @backlog only when a slot is free and it fits.
 */
struct cvm_rdma_queue {
	struct cvm_rdma_conn	*rc;
	u16			qid;
	struct rdma_cm_id	*cm_id;
	struct ib_device	*dev;
	u32			port;
	u32			max_send_sge;
	struct ib_pd		*pd;
	struct ib_cq		*cq;
	struct ib_qp		*qp;
	u32			depth;
	u32			inline_size;
	u32			rbuf_size;
	u32			nr_rbufs;
	struct cvm_rdma_rbuf	*rbufs;

	spinlock_t		lock;
	struct cvm_rdma_slot	*slots;
	struct list_head	free_slots;
	struct list_head	backlog;
	struct list_head	mrs;
	bool			mrs_ready;

	struct completion	cm_done;
	int			cm_error;
	struct completion	hello_done;
	bool			established;
	struct cvm_budget	budget;
};

/**
 * struct cvm_rdma_conn - a connection as the core sees it
 * @conn: the core's part.
 * @lock: @conn.state.
 * @release_work: tear-down after death (see the top of the file).
 * @free_work: frees verbs resources and memory after the last reference.
 * @entry: cvm_rdma_conns, every connection of this module.
 * @user_disconnect: initiator: the core called disconnect().
 * @was_live: initiator: connect() handed it to the core (its death is
 *	reported).
 * @nr_queues: entries of @queues.
 */
struct cvm_rdma_conn {
	struct cvm_conn		conn;
	spinlock_t		lock;
	struct work_struct	release_work;
	struct work_struct	free_work;
	struct list_head	entry;
	bool			user_disconnect;
	bool			was_live;
	unsigned int		nr_queues;
	struct cvm_rdma_queue	queues[];
};

struct cvm_rdma_listener {
	struct cvm_listener	l;
	struct rdma_cm_id	*cm_id;		/* NULL while off a device */
	struct mutex		cm_lock;	/* cm_id replacement */
	struct delayed_work	relisten_work;
	bool			stopping;
	struct list_head	entry;		/* cvm_rdma_listeners */
};

static struct workqueue_struct *cvm_rdma_wq;
static const struct cvm_transport_ops cvm_rdma_ops;
static struct ib_client cvm_rdma_ib_client;

/*
 * Every connection and listener, for device removal.  The connection list
 * has a spinlock of its own: a listener's connect handler adds to it while
 * device removal holds the listener mutex and waits for that handler.
 */
static DEFINE_SPINLOCK(cvm_rdma_conns_lock);
static LIST_HEAD(cvm_rdma_conns);
static DEFINE_MUTEX(cvm_rdma_listeners_lock);
static LIST_HEAD(cvm_rdma_listeners);
/*
 * Devices being removed (under cvm_rdma_conns_lock): rdma_cm still
 * resolves addresses to them until its own removal runs after ours, and a
 * connection set up on one would keep our removal waiting.
 */
#define CVM_RDMA_MAX_DYING	8
static struct ib_device *cvm_rdma_dying[CVM_RDMA_MAX_DYING];
static DECLARE_WAIT_QUEUE_HEAD(cvm_rdma_freed_wq);

static inline struct cvm_rdma_conn *to_rdma_conn(struct cvm_conn *conn)
{
	return container_of(conn, struct cvm_rdma_conn, conn);
}

static inline struct cvm_rdma_req *to_rdma_req(struct cvm_xprt_req *req)
{
	return container_of(req, struct cvm_rdma_req, req);
}

static bool cvm_rdma_target(struct cvm_rdma_conn *rc)
{
	return rc->conn.role == CVM_CONN_TARGET;
}

static bool cvm_rdma_dead(struct cvm_rdma_conn *rc)
{
	return READ_ONCE(rc->conn.state) == CVM_CONN_DEAD;
}

/*
 * The one fatal-error path: log which peer and why (unless @why is NULL),
 * mark the connection dead once and queue its tear-down.
 */
static void cvm_rdma_fatal(struct cvm_rdma_conn *rc, const char *why, int err)
{
	unsigned long flags;
	bool was_dead;

	spin_lock_irqsave(&rc->lock, flags);
	was_dead = rc->conn.state == CVM_CONN_DEAD;
	WRITE_ONCE(rc->conn.state, CVM_CONN_DEAD);
	spin_unlock_irqrestore(&rc->lock, flags);
	if (was_dead)
		return;
	if (why)
		pr_err_ratelimited("%s %pISpc: %s (%d), closing the connection\n",
				   cvm_rdma_target(rc) ? "initiator" : "target",
				   &rc->conn.peer, why, err);
	queue_work(cvm_rdma_wq, &rc->release_work);
}

/* A failed work request: flushes after a death are not news. */
static void cvm_rdma_wr_failed(struct cvm_rdma_conn *rc, struct ib_wc *wc,
			       const char *what)
{
	if (wc->status == IB_WC_WR_FLUSH_ERR || cvm_rdma_dead(rc)) {
		cvm_rdma_fatal(rc, NULL, 0);
		return;
	}
	pr_err_ratelimited("%pISpc: %s failed: %s (%d)\n", &rc->conn.peer,
			   what, ib_wc_status_msg(wc->status), wc->status);
	cvm_rdma_fatal(rc, "work request failed", -EIO);
}

/* Receive buffers */

static void cvm_rdma_recv_done(struct ib_cq *cq, struct ib_wc *wc);

static int cvm_rdma_post_recv(struct cvm_rdma_rbuf *rb)
{
	struct cvm_rdma_queue *q = rb->queue;
	struct ib_sge sge = {
		.addr	= rb->dma,
		.length	= q->rbuf_size,
		.lkey	= q->pd->local_dma_lkey,
	};
	struct ib_recv_wr wr = {
		.wr_cqe		= &rb->cqe,
		.sg_list	= &sge,
		.num_sge	= 1,
	};

	ib_dma_sync_single_for_device(q->dev, rb->dma, q->rbuf_size,
				      DMA_FROM_DEVICE);
	return ib_post_recv(q->qp, &wr, NULL);
}

static void cvm_rdma_free_rbufs(struct cvm_rdma_queue *q)
{
	unsigned int i;

	if (!q->rbufs)
		return;
	for (i = 0; i < q->nr_rbufs; i++) {
		struct cvm_rdma_rbuf *rb = &q->rbufs[i];

		if (!rb->buf)
			continue;
		ib_dma_unmap_single(q->dev, rb->dma, q->rbuf_size,
				    DMA_FROM_DEVICE);
		kfree(rb->buf);
	}
	kfree(q->rbufs);
	q->rbufs = NULL;
}

static int cvm_rdma_alloc_rbufs(struct cvm_rdma_queue *q)
{
	unsigned int i;

	q->nr_rbufs = q->depth;
	q->rbufs = kcalloc(q->nr_rbufs, sizeof(*q->rbufs), GFP_KERNEL);
	if (!q->rbufs)
		return -ENOMEM;
	for (i = 0; i < q->nr_rbufs; i++) {
		struct cvm_rdma_rbuf *rb = &q->rbufs[i];

		rb->queue = q;
		rb->cqe.done = cvm_rdma_recv_done;
		rb->buf = kmalloc(q->rbuf_size, GFP_KERNEL);
		if (!rb->buf)
			goto out_free_rbufs;
		rb->dma = ib_dma_map_single(q->dev, rb->buf, q->rbuf_size,
					    DMA_FROM_DEVICE);
		if (ib_dma_mapping_error(q->dev, rb->dma)) {
			kfree(rb->buf);
			rb->buf = NULL;
			goto out_free_rbufs;
		}
	}
	return 0;

out_free_rbufs:
	cvm_rdma_free_rbufs(q);
	return -ENOMEM;
}

/* Initiator slots */

static void cvm_rdma_send_done(struct ib_cq *cq, struct ib_wc *wc);
static void cvm_rdma_inv_done(struct ib_cq *cq, struct ib_wc *wc);
static void cvm_rdma_reg_failed(struct ib_cq *cq, struct ib_wc *wc);

static void cvm_rdma_free_slots(struct cvm_rdma_queue *q)
{
	unsigned int i;

	if (!q->slots)
		return;
	for (i = 0; i < q->depth; i++) {
		struct cvm_rdma_slot *s = &q->slots[i];

		if (s->cmd) {
			ib_dma_unmap_single(q->dev, s->cmd_dma,
					    sizeof(*s->cmd), DMA_TO_DEVICE);
			kfree(s->cmd);
		}
		kfree(s->sgl);
	}
	kfree(q->slots);
	q->slots = NULL;
}

static int cvm_rdma_alloc_slots(struct cvm_rdma_queue *q)
{
	unsigned int i;

	q->slots = kcalloc(q->depth, sizeof(*q->slots), GFP_KERNEL);
	if (!q->slots)
		return -ENOMEM;
	for (i = 0; i < q->depth; i++) {
		struct cvm_rdma_slot *s = &q->slots[i];

		s->queue = q;
		s->idx = i;
		s->send_cqe.done = cvm_rdma_send_done;
		s->reg_cqe.done = cvm_rdma_reg_failed;
		s->inv_cqe.done = cvm_rdma_inv_done;
		s->sgl = kcalloc(CVM_RDMA_MAX_PAGES, sizeof(*s->sgl),
				 GFP_KERNEL);
		s->cmd = kzalloc(sizeof(*s->cmd), GFP_KERNEL);
		if (!s->sgl || !s->cmd)
			goto out_free_slots;
		s->cmd_dma = ib_dma_map_single(q->dev, s->cmd, sizeof(*s->cmd),
					       DMA_TO_DEVICE);
		if (ib_dma_mapping_error(q->dev, s->cmd_dma)) {
			kfree(s->cmd);
			s->cmd = NULL;
			goto out_free_slots;
		}
		list_add_tail(&s->entry, &q->free_slots);
	}
	return 0;

out_free_slots:
	cvm_rdma_free_slots(q);
	return -ENOMEM;
}

static bool cvm_rdma_device_dying(struct ib_device *dev)
{
	bool dying = false;
	unsigned int i;

	spin_lock(&cvm_rdma_conns_lock);
	for (i = 0; i < CVM_RDMA_MAX_DYING; i++)
		dying |= cvm_rdma_dying[i] == dev;
	spin_unlock(&cvm_rdma_conns_lock);
	return dying;
}

/* Verbs resources of a queue */

static int cvm_rdma_create_qp(struct cvm_rdma_queue *q)
{
	bool target = cvm_rdma_target(q->rc);
	struct ib_qp_init_attr attr = {};
	struct ib_device *dev = q->dev;
	u32 send_wr, per_req, sges;
	int ret;

	if (target) {
		/*
		 * The reply's SEND and the RDMA READs or WRITEs of the
		 * largest payload, one per sges pages: accept only as many
		 * requests as the send queue holds.
		 */
		sges = min(dev->attrs.max_send_sge, dev->attrs.max_sge_rd);
		per_req = 1 + DIV_ROUND_UP(CVM_RDMA_MAX_PAGES, max(sges, 1U));
		q->depth = min_t(u32, q->depth,
				 (dev->attrs.max_qp_wr - 1) / per_req);
		if (!q->depth)
			return -EOPNOTSUPP;
		send_wr = q->depth * per_req + 1;
	} else {
		/* REG_MR + SEND + LOCAL_INV per request, and the drain. */
		send_wr = q->depth * 3 + 1;
	}
	q->pd = ib_alloc_pd(dev, 0);
	if (IS_ERR(q->pd)) {
		ret = PTR_ERR(q->pd);
		q->pd = NULL;
		return ret;
	}
	/*
	 * Room for a completion of every work request, flushes included.
	 * The target polls from a bound workqueue, as nvmet-rdma does: the
	 * worker runs on the CPU that took the completion, where an unbound
	 * one costs a wake-up of another CPU per request (measured at qd1
	 * under TCG: milliseconds when the host is busy).
	 */
	q->cq = ib_alloc_cq(dev, q, send_wr + q->depth + 1,
			    q->qid % dev->num_comp_vectors,
			    target ? IB_POLL_WORKQUEUE : IB_POLL_SOFTIRQ);
	if (IS_ERR(q->cq)) {
		ret = PTR_ERR(q->cq);
		q->cq = NULL;
		goto out_dealloc_pd;
	}
	attr.qp_context = q;
	attr.send_cq = q->cq;
	attr.recv_cq = q->cq;
	attr.sq_sig_type = IB_SIGNAL_REQ_WR;
	attr.qp_type = IB_QPT_RC;
	attr.port_num = q->port;
	attr.cap.max_send_wr = send_wr;
	attr.cap.max_recv_wr = q->depth + 1;
	attr.cap.max_recv_sge = 1;
	if (target) {
		/* rdma_rw adds one more per context; it assumes one. */
		attr.cap.max_send_sge = dev->attrs.max_send_sge;
		attr.cap.max_rdma_ctxs = q->depth;
	} else {
		attr.cap.max_send_sge = min_t(u32, 1 + CVM_RDMA_INLINE_SGES,
					      dev->attrs.max_send_sge);
	}
	ret = rdma_create_qp(q->cm_id, q->pd, &attr);
	if (ret)
		goto out_free_cq;
	q->qp = q->cm_id->qp;
	q->max_send_sge = attr.cap.max_send_sge;
	return 0;

out_free_cq:
	ib_free_cq(q->cq);
	q->cq = NULL;
out_dealloc_pd:
	ib_dealloc_pd(q->pd);
	q->pd = NULL;
	return ret;
}

/*
 * Everything a queue needs before it connects: QP, receives posted and,
 * on the initiator, slots and MRs.
 */
static int cvm_rdma_setup_queue(struct cvm_rdma_queue *q)
{
	bool target = cvm_rdma_target(q->rc);
	u32 max_pages;
	unsigned int i;
	int ret;

	q->dev = q->cm_id->device;
	q->port = q->cm_id->port_num;
	if (cvm_rdma_device_dying(q->dev))
		return -ENODEV;
	max_pages = min_t(u32, q->dev->attrs.max_fast_reg_page_list_len,
			  CVM_RDMA_MAX_PAGES);
	if (!target && (max_pages < CVM_RDMA_MAX_PAGES ||
			!(q->dev->attrs.device_cap_flags &
			  IB_DEVICE_MEM_MGT_EXTENSIONS))) {
		pr_err("%s cannot register %lu pages by fast registration\n",
		       dev_name(&q->dev->dev), CVM_RDMA_MAX_PAGES);
		return -EOPNOTSUPP;
	}
	ret = cvm_rdma_create_qp(q);
	if (ret)
		return ret;
	/* A HELLO's payload is always inline, whatever size was agreed. */
	q->rbuf_size = target ? sizeof(struct cvm_wire_rdma_cmd) +
				max_t(u32, q->inline_size,
				      sizeof(struct cvm_wire_hello)) :
				CVM_RDMA_RSP_SIZE;
	ret = cvm_rdma_alloc_rbufs(q);
	if (ret)
		return ret;
	if (!target) {
		ret = cvm_rdma_alloc_slots(q);
		if (ret)
			return ret;
		ret = ib_mr_pool_init(q->qp, &q->mrs, q->depth,
				      IB_MR_TYPE_MEM_REG, max_pages, 0);
		if (ret)
			return ret;
		q->mrs_ready = true;
	}
	for (i = 0; i < q->nr_rbufs; i++) {
		ret = cvm_rdma_post_recv(&q->rbufs[i]);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Frees the cm_id and what cvm_rdma_setup_queue() made; sleeps.  The cm_id
 * goes first: rdma_destroy_id() waits for a running event handler (a late
 * ADDR_RESOLVED may be setting the queue up) and no event follows it.
 * The CQ goes before the buffers its completions point at: a queue that
 * never connected was not drained, and a rejected connect moves its QP to
 * the error state, so flushed receives may still be polled until
 * ib_free_cq() has stopped the poller.
 */
static void cvm_rdma_teardown_queue(struct cvm_rdma_queue *q)
{
	if (q->cm_id)
		rdma_destroy_id(q->cm_id);
	q->cm_id = NULL;
	if (q->mrs_ready)
		ib_mr_pool_destroy(q->qp, &q->mrs);
	q->mrs_ready = false;
	if (q->qp)
		ib_destroy_qp(q->qp);
	q->qp = NULL;
	if (q->cq)
		ib_free_cq(q->cq);
	q->cq = NULL;
	cvm_rdma_free_slots(q);
	cvm_rdma_free_rbufs(q);
	if (q->pd)
		ib_dealloc_pd(q->pd);
	q->pd = NULL;
}

/* Connections */

static void cvm_rdma_release_work(struct work_struct *w);
static void cvm_rdma_free_work(struct work_struct *w);

static struct cvm_rdma_conn *cvm_rdma_conn_alloc(unsigned int nr_queues,
						 enum cvm_conn_role role,
						 const struct cvm_conn_cb *cb,
						 void *core_priv)
{
	struct cvm_rdma_conn *rc;
	unsigned int i;

	rc = kzalloc(struct_size(rc, queues, nr_queues), GFP_KERNEL);
	if (!rc)
		return NULL;
	cvm_conn_init(&rc->conn, &cvm_rdma_ops, role, cb, core_priv);
	spin_lock_init(&rc->lock);
	INIT_WORK(&rc->release_work, cvm_rdma_release_work);
	INIT_WORK(&rc->free_work, cvm_rdma_free_work);
	rc->nr_queues = nr_queues;
	for (i = 0; i < nr_queues; i++) {
		struct cvm_rdma_queue *q = &rc->queues[i];

		q->rc = rc;
		q->qid = i;
		q->depth = CVM_RDMA_QUEUE_DEPTH;
		q->inline_size = CVM_RDMA_INLINE_SIZE;
		spin_lock_init(&q->lock);
		INIT_LIST_HEAD(&q->free_slots);
		INIT_LIST_HEAD(&q->backlog);
		INIT_LIST_HEAD(&q->mrs);
		init_completion(&q->cm_done);
		init_completion(&q->hello_done);
		cvm_budget_init(&q->budget);
	}
	spin_lock(&cvm_rdma_conns_lock);
	list_add_tail(&rc->entry, &cvm_rdma_conns);
	spin_unlock(&cvm_rdma_conns_lock);
	return rc;
}

static void cvm_rdma_free_work(struct work_struct *w)
{
	struct cvm_rdma_conn *rc = container_of(w, struct cvm_rdma_conn,
						free_work);
	unsigned int i;

	for (i = 0; i < rc->nr_queues; i++)
		cvm_rdma_teardown_queue(&rc->queues[i]);
	spin_lock(&cvm_rdma_conns_lock);
	list_del(&rc->entry);
	spin_unlock(&cvm_rdma_conns_lock);
	kfree(rc);
	wake_up_all(&cvm_rdma_freed_wq);
}

/* Last reference, any context: verbs tear-down sleeps, so defer it. */
static void cvm_rdma_release_conn(struct cvm_conn *conn)
{
	queue_work(cvm_rdma_wq, &to_rdma_conn(conn)->free_work);
}

/* Requests */

static struct cvm_xprt_req *cvm_rdma_alloc_req(struct cvm_conn *conn,
					       gfp_t gfp)
{
	struct cvm_rdma_req *rreq = kzalloc(sizeof(*rreq), gfp);

	if (!rreq)
		return NULL;
	INIT_LIST_HEAD(&rreq->entry);
	rreq->req.conn = conn;
	cvm_conn_get(conn);
	return &rreq->req;
}

static void cvm_rdma_free_pages(struct cvm_xprt_req *req)
{
	unsigned int i;

	for (i = 0; i < req->nr_bvec; i++)
		__free_page(req->bvec[i].bv_page);
	kfree(req->bvec);
	req->bvec = NULL;
	req->nr_bvec = 0;
	req->data_len = 0;
}

static void cvm_rdma_free_req(struct cvm_xprt_req *req)
{
	struct cvm_rdma_req *rreq = to_rdma_req(req);
	struct cvm_conn *conn = req->conn;
	struct cvm_rdma_queue *q = rreq->queue;

	/* Target: charged to the connection; initiator: given back already. */
	if (conn->role == CVM_CONN_TARGET)
		cvm_xprt_uncharge_req(conn, req);
	if (rreq->rw_valid)
		rdma_rw_ctx_destroy(&rreq->rw, q->qp, q->port,
				    rreq->sgt.sgl, rreq->sgt.orig_nents,
				    req->hdr.opcode == CVM_WIRE_OP_WRITE ?
				    DMA_FROM_DEVICE : DMA_TO_DEVICE);
	if (rreq->sgt.sgl)
		sg_free_table(&rreq->sgt);
	if (rreq->rsp_dma)
		ib_dma_unmap_single(q->dev, rreq->rsp_dma, sizeof(rreq->rsp),
				    DMA_TO_DEVICE);
	while (rreq->nr_psge) {
		struct ib_sge *sge = &rreq->sge[rreq->nr_psge--];

		ib_dma_unmap_page(q->dev, sge->addr, sge->length,
				  DMA_TO_DEVICE);
	}
	if (rreq->own_pages)
		cvm_rdma_free_pages(req);
	kfree(rreq);
	cvm_conn_put(conn);
}

/* Target side */

/*
 * Pages for @len payload bytes; zeroed unless @dirty_ok (a WRITE payload or
 * READ reply fills every byte; a STAT or LIST reply may not, and the RDMA
 * WRITE sends the whole buffer).
 */
static int cvm_rdma_alloc_pages(struct cvm_rdma_req *rreq, u32 len,
				bool dirty_ok)
{
	struct cvm_xprt_req *req = &rreq->req;
	unsigned int nr = DIV_ROUND_UP(len, PAGE_SIZE), i;
	gfp_t gfp = GFP_KERNEL | (dirty_ok ? 0 : __GFP_ZERO);
	struct scatterlist *sg;

	req->bvec = kcalloc(nr, sizeof(*req->bvec), GFP_KERNEL);
	if (!req->bvec)
		return -ENOMEM;
	rreq->own_pages = true;
	for (i = 0; i < nr; i++) {
		struct page *page = alloc_page(gfp);

		if (!page)
			return -ENOMEM;	/* free_req() frees the rest */
		req->bvec[i].bv_page = page;
		req->bvec[i].bv_offset = 0;
		req->bvec[i].bv_len = min_t(u32, len - i * PAGE_SIZE, PAGE_SIZE);
		req->nr_bvec = i + 1;
	}
	req->data_len = len;
	if (sg_alloc_table(&rreq->sgt, nr, GFP_KERNEL)) {
		rreq->sgt.sgl = NULL;
		return -ENOMEM;
	}
	for_each_sg(rreq->sgt.sgl, sg, nr, i)
		sg_set_page(sg, req->bvec[i].bv_page, req->bvec[i].bv_len, 0);
	return 0;
}

/* Copies an inline payload out of a receive buffer into the pages. */
static void cvm_rdma_copy_inline(struct cvm_xprt_req *req, const u8 *src)
{
	unsigned int i;

	for (i = 0; i < req->nr_bvec; i++) {
		memcpy(page_address(req->bvec[i].bv_page), src,
		       req->bvec[i].bv_len);
		src += req->bvec[i].bv_len;
	}
}

static void cvm_rdma_deliver(struct cvm_rdma_req *rreq);

static void cvm_rdma_read_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_req *rreq = container_of(wc->wr_cqe,
						 struct cvm_rdma_req, rw_cqe);
	struct cvm_rdma_conn *rc = to_rdma_conn(rreq->req.conn);

	if (unlikely(wc->status != IB_WC_SUCCESS)) {
		cvm_rdma_wr_failed(rc, wc, "RDMA READ of a payload");
		cvm_rdma_free_req(&rreq->req);
		return;
	}
	/* The pages now get filled by the core for nothing: drop the rw. */
	rdma_rw_ctx_destroy(&rreq->rw, rreq->queue->qp,
			    rreq->queue->port, rreq->sgt.sgl,
			    rreq->sgt.orig_nents, DMA_FROM_DEVICE);
	rreq->rw_valid = false;
	cvm_rdma_deliver(rreq);
}

/*
 * The RDMA WRITEs of a reply are unsignaled, chained before its SEND: only
 * a failed one completes (a bad key or range the initiator named), and the
 * SEND is then flushed.  Name the cause; the SEND's completion frees.
 */
static void cvm_rdma_write_failed(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_req *rreq = container_of(wc->wr_cqe,
						 struct cvm_rdma_req, rw_cqe);

	cvm_rdma_wr_failed(to_rdma_conn(rreq->req.conn), wc,
			   "RDMA WRITE of a reply payload");
}

/* A whole request with its payload: check its CRC if any, hand it over. */
static void cvm_rdma_deliver(struct cvm_rdma_req *rreq)
{
	struct cvm_xprt_req *req = &rreq->req;
	struct cvm_rdma_conn *rc = to_rdma_conn(req->conn);
	const char *why;

	if (cvm_rdma_dead(rc)) {
		cvm_rdma_free_req(req);
		return;
	}
	if (le16_to_cpu(req->hdr.flags) & CVM_WIRE_F_DATA_CRC &&
	    !cvm_wire_op_handshake(req->hdr.opcode)) {
		u32 len = cvm_wire_payload_len(&req->hdr);

		if (cvm_crc32c_bvec(req->bvec, req->nr_bvec, len) !=
		    le32_to_cpu(req->hdr.data_crc)) {
			pr_warn_ratelimited("%pISpc: payload CRC mismatch on tag %llu\n",
					    &rc->conn.peer,
					    le64_to_cpu(req->hdr.tag));
			req->rsp_status = CVM_WIRE_STATUS_DATA_CRC;
			cvm_rdma_ops.send_reply(req);
			return;
		}
	}
	why = NULL;
	if (req->hdr.opcode == CVM_WIRE_OP_HELLO)
		why = cvm_xprt_hello_recv(&rc->conn, &rreq->hello,
					  rreq->queue->depth);
	else if (req->hdr.opcode == CVM_WIRE_OP_AUTH)
		why = cvm_xprt_auth_recv(&rc->conn, &rreq->hello);
	if (why) {
		cvm_rdma_free_req(req);
		cvm_rdma_fatal(rc, why, -EPROTO);
		return;
	}
	rc->conn.cb->recv_req(req);
}

/*
 * Target: a received command.  Returns NULL if it was handled (or its
 * request is on its way), else a reason to close the connection.  The
 * receive buffer is reposted by the caller as soon as this returns.
 */
static const char *cvm_rdma_handle_cmd(struct cvm_rdma_queue *q,
				       const u8 *buf, u32 len)
{
	const struct cvm_wire_rdma_cmd *cmd = (const void *)buf;
	struct cvm_rdma_conn *rc = q->rc;
	const struct cvm_wire_hdr *hdr;
	struct cvm_rdma_req *rreq;
	struct cvm_xprt_req *req;
	u32 plen, rmax, slen;
	bool refuse_version;
	const char *why;
	int ret;

	if (len < sizeof(*cmd))
		return "short command";
	hdr = &cmd->hdr;
	slen = le32_to_cpu(cmd->sgl.length);

	req = cvm_rdma_alloc_req(&rc->conn, GFP_KERNEL);
	if (!req)
		return "out of memory";
	rreq = to_rdma_req(req);
	rreq->queue = q;
	req->hdr = *hdr;
	rreq->remote = cmd->sgl;

	why = cvm_xprt_check_req(&rc->conn, hdr, &refuse_version);
	if (!why && refuse_version) {
		/* A HELLO in a version we do not speak gets ours back. */
		req->rsp_status = CVM_WIRE_STATUS_VERSION;
		rreq->remote.length = 0;
		cvm_rdma_ops.send_reply(req);
		return NULL;
	}
	if (!why)
		why = cvm_xprt_charge_req(&rc->conn, req);
	if (why)
		goto out_free_req;

	plen = cvm_wire_payload_len(hdr);
	rmax = cvm_wire_op_handshake(hdr->opcode) ? 0 :
	       cvm_wire_reply_max_len(hdr);
	why = "buffer does not fit the request";
	if (cvm_wire_op_handshake(hdr->opcode)) {
		if (slen || len != sizeof(*cmd) + plen)
			goto out_free_req;
		memcpy(&rreq->hello, buf + sizeof(*cmd), plen);
		rreq->remote.length = 0;
		cvm_rdma_deliver(rreq);
		return NULL;
	}
	if (plen && !slen) {
		/* Inline payload. */
		if (plen > q->inline_size || len != sizeof(*cmd) + plen)
			goto out_free_req;
		if (cvm_rdma_alloc_pages(rreq, plen, true))
			goto out_no_memory;
		cvm_rdma_copy_inline(req, buf + sizeof(*cmd));
		cvm_rdma_deliver(rreq);
		return NULL;
	}
	if (len != sizeof(*cmd))
		goto out_free_req;
	if (plen) {
		/* Pull the payload with RDMA READ. */
		if (slen != plen)
			goto out_free_req;
		if (cvm_rdma_alloc_pages(rreq, plen, true))
			goto out_no_memory;
		ret = rdma_rw_ctx_init(&rreq->rw, q->qp, q->port,
				       rreq->sgt.sgl, rreq->sgt.orig_nents, 0,
				       le64_to_cpu(cmd->sgl.addr),
				       le32_to_cpu(cmd->sgl.key),
				       DMA_FROM_DEVICE);
		if (ret < 0)
			goto out_no_memory;
		rreq->rw_valid = true;
		rreq->rw_cqe.done = cvm_rdma_read_done;
		ret = rdma_rw_ctx_post(&rreq->rw, q->qp, q->port,
				       &rreq->rw_cqe, NULL);
		if (ret) {
			why = "posting an RDMA READ failed";
			goto out_free_req;
		}
		return NULL;
	}
	if (rmax && !slen) {
		/* No buffer named: the reply payload goes inline. */
		if (rmax > q->inline_size)
			goto out_free_req;
		if (cvm_rdma_alloc_pages(rreq, rmax, true))
			goto out_no_memory;
		rreq->inline_reply = true;
	} else if (rmax) {
		/* A reply payload goes back by RDMA WRITE: set it up now. */
		if (slen > rmax)
			goto out_free_req;
		if (cvm_rdma_alloc_pages(rreq, slen,
					 hdr->opcode == CVM_WIRE_OP_READ))
			goto out_no_memory;
		ret = rdma_rw_ctx_init(&rreq->rw, q->qp, q->port,
				       rreq->sgt.sgl, rreq->sgt.orig_nents, 0,
				       le64_to_cpu(cmd->sgl.addr),
				       le32_to_cpu(cmd->sgl.key),
				       DMA_TO_DEVICE);
		if (ret < 0)
			goto out_no_memory;
		rreq->rw_valid = true;
	} else if (slen) {
		goto out_free_req;
	}
	cvm_rdma_deliver(rreq);
	return NULL;

out_no_memory:
	why = "out of memory";
out_free_req:
	cvm_rdma_free_req(req);
	return why;
}

static void cvm_rdma_reply_sent(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_req *rreq = container_of(wc->wr_cqe,
						 struct cvm_rdma_req, send_cqe);
	struct cvm_rdma_conn *rc = to_rdma_conn(rreq->req.conn);
	bool close = rreq->close_after_send;

	if (unlikely(wc->status != IB_WC_SUCCESS))
		cvm_rdma_wr_failed(rc, wc, "reply SEND");
	cvm_rdma_free_req(&rreq->req);
	if (close)
		cvm_rdma_fatal(rc, NULL, 0);
}

/* Target: SGEs for the first @len bytes of the reply pages. */
static int cvm_rdma_map_inline_reply(struct cvm_rdma_req *rreq, u32 len)
{
	struct cvm_xprt_req *req = &rreq->req;
	struct cvm_rdma_queue *q = rreq->queue;
	unsigned int i;

	for (i = 0; i < req->nr_bvec && len; i++) {
		u32 l = min(req->bvec[i].bv_len, len);
		u64 dma;

		if (i == CVM_RDMA_INLINE_PAGES)
			return -EINVAL;
		dma = ib_dma_map_page(q->dev, req->bvec[i].bv_page,
				      req->bvec[i].bv_offset, l, DMA_TO_DEVICE);
		if (ib_dma_mapping_error(q->dev, dma))
			return -ENOMEM;
		rreq->sge[1 + i].addr = dma;
		rreq->sge[1 + i].length = l;
		rreq->sge[1 + i].lkey = q->pd->local_dma_lkey;
		rreq->nr_psge = i + 1;
		len -= l;
	}
	return len ? -EINVAL : 0;
}

static void cvm_rdma_send_reply(struct cvm_xprt_req *req)
{
	struct cvm_rdma_conn *rc = to_rdma_conn(req->conn);
	struct cvm_rdma_req *rreq = to_rdma_req(req);
	struct cvm_rdma_queue *q = rreq->queue;
	struct ib_send_wr *first, *wr;
	bool hello = req->hdr.opcode == CVM_WIRE_OP_HELLO;
	u32 len, size = sizeof(rreq->rsp.hdr);
	bool close;
	int ret;

	/* Without a buffer named the payload goes inline, else into it. */
	len = cvm_xprt_reply_hdr(req, &rreq->rsp.hdr,
				 rreq->inline_reply || hello ? U32_MAX :
				 le32_to_cpu(rreq->remote.length), &close);
	rreq->close_after_send |= close;
	if (hello && len) {
		cvm_xprt_hello_reply(&rc->conn, &rreq->rsp.hello);
		size += len;
	}
	if (cvm_rdma_dead(rc))
		goto out_free_req;

	rreq->rsp_dma = ib_dma_map_single(q->dev, &rreq->rsp, sizeof(rreq->rsp),
					  DMA_TO_DEVICE);
	if (ib_dma_mapping_error(q->dev, rreq->rsp_dma)) {
		rreq->rsp_dma = 0;
		cvm_rdma_fatal(rc, "cannot map a reply", -ENOMEM);
		goto out_free_req;
	}
	rreq->sge[0].addr = rreq->rsp_dma;
	rreq->sge[0].length = size;
	rreq->sge[0].lkey = q->pd->local_dma_lkey;
	rreq->send_cqe.done = cvm_rdma_reply_sent;
	rreq->send_wr.wr_cqe = &rreq->send_cqe;
	rreq->send_wr.sg_list = rreq->sge;
	rreq->send_wr.num_sge = 1;
	if (len && rreq->inline_reply) {
		if (cvm_rdma_map_inline_reply(rreq, len)) {
			cvm_rdma_fatal(rc, "cannot map a reply", -ENOMEM);
			goto out_free_req;
		}
		rreq->send_wr.num_sge += rreq->nr_psge;
	}
	rreq->send_wr.send_flags = IB_SEND_SIGNALED;
	/*
	 * The initiator may see this reply and send its next request before
	 * our SEND completes: the request leaves the budget now.  What stays
	 * pinned until then is bounded by the send queue.
	 */
	cvm_xprt_uncharge_req(&rc->conn, req);
	if (rreq->remote.length) {
		/* End the initiator's registration with the reply. */
		rreq->send_wr.opcode = IB_WR_SEND_WITH_INV;
		rreq->send_wr.ex.invalidate_rkey =
			le32_to_cpu(rreq->remote.key);
	} else {
		rreq->send_wr.opcode = IB_WR_SEND;
	}

	first = &rreq->send_wr;
	if (len && !hello && rreq->rw_valid) {
		/* The core filled the pages after rdma_rw mapped them. */
		if (!ib_uses_virt_dma(q->dev))
			dma_sync_sg_for_device(q->dev->dma_device,
					       rreq->sgt.sgl,
					       rreq->sgt.orig_nents,
					       DMA_TO_DEVICE);
		first = rdma_rw_ctx_wrs(&rreq->rw, q->qp, q->port,
					NULL, &rreq->send_wr);
		rreq->rw_cqe.done = cvm_rdma_write_failed;
		for (wr = first; wr != &rreq->send_wr; wr = wr->next)
			wr->wr_cqe = &rreq->rw_cqe;
	}
	ret = ib_post_send(q->qp, first, NULL);
	if (ret) {
		cvm_rdma_fatal(rc, "posting a reply failed", ret);
		goto out_free_req;
	}
	return;

out_free_req:
	cvm_rdma_free_req(req);
}

/* Initiator side: completing slots */

static void cvm_rdma_post_slot(struct cvm_rdma_slot *s);

/* Takes @s's request off it and frees the slot (for the next request). */
static struct cvm_rdma_req *cvm_rdma_slot_finish(struct cvm_rdma_slot *s)
{
	struct cvm_rdma_queue *q = s->queue;
	struct cvm_rdma_req *rreq = s->rreq;
	unsigned int i;

	for (i = 0; i < s->inline_sges; i++)
		ib_dma_unmap_page(q->dev, s->sge[1 + i].addr,
				  s->sge[1 + i].length, DMA_TO_DEVICE);
	s->inline_sges = 0;
	if (s->mr) {
		ib_mr_pool_put(q->qp, &q->mrs, s->mr);
		s->mr = NULL;
	}
	if (s->nents) {
		ib_dma_unmap_sg(q->dev, s->sgl, s->sg_cnt,
				rreq->req.hdr.opcode == CVM_WIRE_OP_WRITE ?
				DMA_TO_DEVICE : DMA_FROM_DEVICE);
		s->nents = 0;
	}
	s->rreq = NULL;
	return rreq;
}

/* The slot's last event: complete its request, start a backlogged one. */
static void cvm_rdma_slot_put(struct cvm_rdma_slot *s)
{
	struct cvm_rdma_queue *q = s->queue;
	struct cvm_rdma_req *rreq, *next = NULL;
	struct cvm_xprt_req *req;
	unsigned long flags;

	if (!atomic_dec_and_test(&s->pending))
		return;
	spin_lock_irqsave(&q->lock, flags);
	rreq = cvm_rdma_slot_finish(s);
	cvm_xprt_budget_give(&q->budget, &rreq->req);
	if (!cvm_rdma_dead(q->rc)) {
		next = list_first_entry_or_null(&q->backlog,
						struct cvm_rdma_req, entry);
		if (next && cvm_xprt_budget_take(&q->budget, &next->req)) {
			list_del_init(&next->entry);
			s->rreq = next;
		} else {
			next = NULL;
		}
	}
	if (!next)
		list_add(&s->entry, &q->free_slots);
	spin_unlock_irqrestore(&q->lock, flags);

	req = &rreq->req;
	req->status = s->status;
	req->rsp_len = s->rsp_len;
	req->rsp_map_epoch = s->rsp_map_epoch;
	req->error = 0;
	req->done(req);
	if (next)
		cvm_rdma_post_slot(s);
}

static void cvm_rdma_send_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_slot *s = container_of(wc->wr_cqe,
					       struct cvm_rdma_slot, send_cqe);

	if (unlikely(wc->status != IB_WC_SUCCESS)) {
		cvm_rdma_wr_failed(s->queue->rc, wc, "request SEND");
		return;		/* release_work fails the request */
	}
	cvm_rdma_slot_put(s);
}

static void cvm_rdma_reg_failed(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_slot *s = container_of(wc->wr_cqe,
					       struct cvm_rdma_slot, reg_cqe);

	cvm_rdma_wr_failed(s->queue->rc, wc, "memory registration");
}

static void cvm_rdma_inv_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_slot *s = container_of(wc->wr_cqe,
					       struct cvm_rdma_slot, inv_cqe);

	if (unlikely(wc->status != IB_WC_SUCCESS)) {
		cvm_rdma_wr_failed(s->queue->rc, wc, "local invalidation");
		return;
	}
	cvm_rdma_slot_put(s);
}

/* Copies an inline reply payload into the request's (bio) pages. */
static void cvm_rdma_copy_to_bvecs(struct cvm_xprt_req *req, const u8 *src,
				u32 len)
{
	unsigned int i;

	for (i = 0; i < req->nr_bvec && len; i++) {
		struct bio_vec bv = req->bvec[i];

		bv.bv_len = min(bv.bv_len, len);
		memcpy_to_bvec(&bv, src);
		src += bv.bv_len;
		len -= bv.bv_len;
	}
}

/* Initiator: a reply.  NULL if handled, else why the connection closes. */
static const char *cvm_rdma_handle_rsp(struct cvm_rdma_queue *q,
				       const u8 *buf, struct ib_wc *wc)
{
	const struct cvm_wire_hdr *hdr = (const void *)buf;
	u32 len, byte_len = wc->byte_len;
	struct cvm_xprt_req *req;
	struct cvm_rdma_slot *s;
	const char *why;
	u64 tag;
	u32 idx;

	if (byte_len < sizeof(*hdr))
		return "short reply";
	/*
	 * The reply to HELLO is judged by the core once it is in
	 * (cvm_rdma_hello()): a refusal comes in the target's version.
	 */
	why = cvm_wire_check_hdr(hdr, true);
	if (why && !(hdr->opcode == CVM_WIRE_OP_HELLO &&
		     READ_ONCE(q->rc->conn.state) == CVM_CONN_CONNECTING))
		return why;
	tag = le64_to_cpu(hdr->tag);
	idx = tag & ((1U << CVM_RDMA_TAG_SLOT_BITS) - 1);
	if (idx >= q->depth)
		return "reply to no outstanding request";
	s = &q->slots[idx];
	/* Only this CQ's poller completes replies of this queue. */
	if (!s->rreq || s->tag != tag || s->replied)
		return "reply to no outstanding request";
	req = &s->rreq->req;
	len = le32_to_cpu(hdr->length);
	if (cvm_wire_op_handshake(req->hdr.opcode)) {
		if (hdr->opcode != req->hdr.opcode)
			return "reply to HELLO or AUTH of another opcode";
		if (len > sizeof(s->rreq->rsp.hello) ||
		    byte_len != sizeof(*hdr) + len)
			return "HELLO or AUTH reply length";
		s->rreq->rsp.hdr = *hdr;
		memcpy(&s->rreq->rsp.hello, buf + sizeof(*hdr), len);
		goto out_replied;
	}
	why = cvm_xprt_check_rsp(req, hdr);
	if (why)
		return why;
	if (s->mr) {
		if (byte_len != sizeof(*hdr))
			return "reply with inline payload";
	} else {
		/* We named no buffer: the payload is inline. */
		if (byte_len != sizeof(*hdr) + len || len > q->inline_size)
			return "inline reply length";
		if (len)
			cvm_rdma_copy_to_bvecs(req, buf + sizeof(*hdr), len);
	}

	if (s->mr) {
		if (wc->wc_flags & IB_WC_WITH_INVALIDATE) {
			if (wc->ex.invalidate_rkey != s->mr->rkey)
				return "reply invalidated another key";
		} else {
			/* Not invalidated by the target: do it here. */
			s->inv_wr = (struct ib_send_wr) {
				.opcode = IB_WR_LOCAL_INV,
				.wr_cqe = &s->inv_cqe,
				.send_flags = IB_SEND_SIGNALED,
				.ex.invalidate_rkey = s->mr->rkey,
			};
			atomic_inc(&s->pending);
			if (ib_post_send(q->qp, &s->inv_wr, NULL))
				return "posting a local invalidation failed";
		}
	}
out_replied:
	s->replied = true;
	s->status = le16_to_cpu(hdr->status);
	s->rsp_len = len;
	s->rsp_map_epoch = le64_to_cpu(hdr->map_epoch);
	cvm_rdma_slot_put(s);
	return NULL;
}

static void cvm_rdma_recv_done(struct ib_cq *cq, struct ib_wc *wc)
{
	struct cvm_rdma_rbuf *rb = container_of(wc->wr_cqe,
						struct cvm_rdma_rbuf, cqe);
	struct cvm_rdma_queue *q = rb->queue;
	struct cvm_rdma_conn *rc = q->rc;
	const char *why;
	int ret;

	if (unlikely(wc->status != IB_WC_SUCCESS)) {
		cvm_rdma_wr_failed(rc, wc, "RECV");
		return;
	}
	if (cvm_rdma_dead(rc))
		return;
	ib_dma_sync_single_for_cpu(q->dev, rb->dma, q->rbuf_size,
				   DMA_FROM_DEVICE);
	if (cvm_rdma_target(rc))
		why = cvm_rdma_handle_cmd(q, rb->buf, wc->byte_len);
	else
		why = cvm_rdma_handle_rsp(q, rb->buf, wc);
	if (why) {
		cvm_rdma_fatal(rc, why, -EPROTO);
		return;
	}
	ret = cvm_rdma_post_recv(rb);
	if (ret)
		cvm_rdma_fatal(rc, "posting a receive failed", ret);
}

/* Initiator side: sending */

/* Maps the first @len payload bytes of @req into @s->sgl. */
static int cvm_rdma_map_sg(struct cvm_rdma_slot *s, struct cvm_xprt_req *req,
			   u32 len, enum dma_data_direction dir)
{
	struct cvm_rdma_queue *q = s->queue;
	unsigned int i, n = min_t(unsigned int, req->nr_bvec,
				  CVM_RDMA_MAX_PAGES);

	/* Only the entries used: the whole table is 8 KiB of memset. */
	sg_init_table(s->sgl, max(n, 1U));
	for (i = 0; i < n && len; i++) {
		u32 l = min(req->bvec[i].bv_len, len);

		sg_set_page(&s->sgl[i], req->bvec[i].bv_page, l,
			    req->bvec[i].bv_offset);
		len -= l;
	}
	if (len || !i)
		return -EINVAL;
	n = i;
	sg_mark_end(&s->sgl[n - 1]);
	s->sg_cnt = n;
	s->nents = ib_dma_map_sg(q->dev, s->sgl, n, dir);
	if (!s->nents)
		return -EIO;
	return 0;
}

/* Registers the payload: REG_MR chained before @s->send_wr. */
static int cvm_rdma_register(struct cvm_rdma_slot *s, struct cvm_xprt_req *req,
			     u32 len, bool to_target)
{
	struct cvm_rdma_queue *q = s->queue;
	int ret, n;

	ret = cvm_rdma_map_sg(s, req, len,
			      to_target ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
	if (ret)
		return ret;
	s->mr = ib_mr_pool_get(q->qp, &q->mrs);
	if (!s->mr)
		return -EAGAIN;
	n = ib_map_mr_sg(s->mr, s->sgl, s->nents, NULL, PAGE_SIZE);
	if (n != s->nents)
		return -EINVAL;	/* a gap inside the payload */
	ib_update_fast_reg_key(s->mr, ib_inc_rkey(s->mr->rkey));
	s->reg_wr = (struct ib_reg_wr) {
		.wr = {
			.opcode = IB_WR_REG_MR,
			.wr_cqe = &s->reg_cqe,
			.next = &s->send_wr,
		},
		.mr = s->mr,
		.key = s->mr->rkey,
		.access = to_target ? IB_ACCESS_REMOTE_READ :
			  IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE,
	};
	s->cmd->sgl.addr = cpu_to_le64(s->mr->iova);
	s->cmd->sgl.length = cpu_to_le32(s->mr->length);
	s->cmd->sgl.key = cpu_to_le32(s->mr->rkey);
	return 0;
}

/* SGEs for an inline payload after the capsule; false if it cannot be. */
static bool cvm_rdma_map_inline(struct cvm_rdma_slot *s,
				struct cvm_xprt_req *req, u32 len)
{
	struct cvm_rdma_queue *q = s->queue;
	unsigned int i, max = q->max_send_sge - 1;

	if (len > q->inline_size || req->nr_bvec > max)
		return false;
	for (i = 0; i < req->nr_bvec && len; i++) {
		u32 l = min(req->bvec[i].bv_len, len);
		u64 dma = ib_dma_map_page(q->dev, req->bvec[i].bv_page,
					  req->bvec[i].bv_offset, l,
					  DMA_TO_DEVICE);

		if (ib_dma_mapping_error(q->dev, dma))
			return false;	/* slot_finish unmaps the others */
		s->sge[1 + i].addr = dma;
		s->sge[1 + i].length = l;
		s->sge[1 + i].lkey = q->pd->local_dma_lkey;
		s->inline_sges = i + 1;
		len -= l;
	}
	return !len;
}

/* Builds and posts @s->rreq's command; failures kill the connection. */
static void cvm_rdma_post_slot(struct cvm_rdma_slot *s)
{
	struct cvm_rdma_queue *q = s->queue;
	struct cvm_rdma_conn *rc = q->rc;
	struct cvm_rdma_req *rreq = s->rreq;
	struct cvm_xprt_req *req = &rreq->req;
	struct ib_send_wr *first = &s->send_wr;
	u32 plen, rlen;
	int ret = 0;

	/* A new generation per use: a late reply never matches. */
	s->tag = (((s->tag >> CVM_RDMA_TAG_SLOT_BITS) + 1) <<
		  CVM_RDMA_TAG_SLOT_BITS) | s->idx;
	s->replied = false;
	s->status = 0;
	s->rsp_len = 0;
	atomic_set(&s->pending, 2);	/* SEND completion + reply */
	req->hdr.tag = cpu_to_le64(s->tag);
	cvm_wire_hdr_seal(&req->hdr);
	memset(s->cmd, 0, sizeof(*s->cmd));
	s->cmd->hdr = req->hdr;
	s->sge[0].length = sizeof(*s->cmd);

	plen = cvm_wire_payload_len(&req->hdr);
	rlen = min(req->data_len, cvm_wire_reply_max_len(&req->hdr));
	if (cvm_wire_op_handshake(req->hdr.opcode)) {
		rlen = 0;
		if (!cvm_rdma_map_inline(s, req, plen))
			ret = -EINVAL;
	} else if (plen) {
		rlen = 0;
		if (!cvm_rdma_map_inline(s, req, plen)) {
			cvm_rdma_slot_finish(s);
			s->rreq = rreq;
			ret = cvm_rdma_register(s, req, plen, true);
			first = &s->reg_wr.wr;
		}
	} else if (rlen && (rlen > q->inline_size ||
			    rlen != cvm_wire_reply_max_len(&req->hdr))) {
		ret = cvm_rdma_register(s, req, rlen, false);
		first = &s->reg_wr.wr;
	}
	/* Else a reply payload, if any, comes inline in the reply. */
	if (ret) {
		cvm_rdma_fatal(rc, "cannot map a request's payload", ret);
		return;		/* release_work fails it */
	}

	ib_dma_sync_single_for_device(q->dev, s->cmd_dma, sizeof(*s->cmd),
				      DMA_TO_DEVICE);
	s->sge[0].addr = s->cmd_dma;
	s->sge[0].lkey = q->pd->local_dma_lkey;
	s->send_wr = (struct ib_send_wr) {
		.opcode = IB_WR_SEND,
		.wr_cqe = &s->send_cqe,
		.sg_list = s->sge,
		.num_sge = 1 + s->inline_sges,
		.send_flags = IB_SEND_SIGNALED,
	};
	ret = ib_post_send(q->qp, first, NULL);
	if (ret)
		cvm_rdma_fatal(rc, "posting a request failed", ret);
}

static int cvm_rdma_queue_submit(struct cvm_rdma_queue *q,
				 struct cvm_rdma_req *rreq, bool hello)
{
	struct cvm_rdma_slot *s;
	unsigned long flags;
	int state;

	spin_lock_irqsave(&q->lock, flags);
	state = READ_ONCE(q->rc->conn.state);
	if (hello ? state == CVM_CONN_DEAD : state != CVM_CONN_LIVE) {
		spin_unlock_irqrestore(&q->lock, flags);
		return -ENOTCONN;
	}
	rreq->submitted = jiffies ?: 1;
	rreq->req.in_budget = false;
	s = list_first_entry_or_null(&q->free_slots, struct cvm_rdma_slot,
				     entry);
	/* HELLO comes before any budget; the rest waits its turn for it. */
	if (s && !hello && (!list_empty(&q->backlog) ||
			    !cvm_xprt_budget_take(&q->budget, &rreq->req)))
		s = NULL;
	if (s) {
		list_del_init(&s->entry);
		s->rreq = rreq;
	} else {
		list_add_tail(&rreq->entry, &q->backlog);
	}
	spin_unlock_irqrestore(&q->lock, flags);
	if (s)
		cvm_rdma_post_slot(s);
	return 0;
}

static int cvm_rdma_submit(struct cvm_xprt_req *req)
{
	struct cvm_rdma_conn *rc = to_rdma_conn(req->conn);
	struct cvm_wire_hdr *hdr = &req->hdr;
	struct cvm_rdma_queue *q;

	if (rc->conn.role != CVM_CONN_INITIATOR || !req->done)
		return -EINVAL;
	hdr->magic = cpu_to_le32(CVM_WIRE_MAGIC);
	hdr->version = CVM_WIRE_VERSION;
	/* The link's CRC covers RDMA payloads: no data CRC. */
	hdr->flags &= cpu_to_le16(~(CVM_WIRE_F_REPLY | CVM_WIRE_F_DATA_CRC));
	hdr->data_crc = 0;
	hdr->status = 0;
	if (cvm_wire_payload_len(hdr) > req->data_len ||
	    cvm_wire_op_handshake(hdr->opcode))
		return -EINVAL;
	q = &rc->queues[raw_smp_processor_id() % rc->nr_queues];
	return cvm_rdma_queue_submit(q, to_rdma_req(req), false);
}

static unsigned long cvm_rdma_oldest_request(struct cvm_conn *conn)
{
	struct cvm_rdma_conn *rc = to_rdma_conn(conn);
	unsigned long at = 0;
	unsigned int i, j;

	for (i = 0; i < rc->nr_queues; i++) {
		struct cvm_rdma_queue *q = &rc->queues[i];
		struct cvm_rdma_req *rreq;

		if (!q->slots)
			continue;
		spin_lock_irq(&q->lock);
		for (j = 0; j < q->depth; j++) {
			rreq = q->slots[j].rreq;
			if (rreq && (!at || time_before(rreq->submitted, at)))
				at = rreq->submitted;
		}
		rreq = list_first_entry_or_null(&q->backlog,
						struct cvm_rdma_req, entry);
		if (rreq && (!at || time_before(rreq->submitted, at)))
			at = rreq->submitted;
		spin_unlock_irq(&q->lock);
	}
	return at;
}

static void cvm_rdma_abort(struct cvm_conn *conn, const char *why)
{
	cvm_rdma_fatal(to_rdma_conn(conn), why, -ETIMEDOUT);
}

/* Tear-down after death */

/* Initiator: fail every request still on @q; nothing completes any more. */
static void cvm_rdma_fail_queue(struct cvm_rdma_queue *q)
{
	struct cvm_rdma_req *rreq, *tmp;
	unsigned long flags;
	LIST_HEAD(failed);
	unsigned int i;

	if (!q->slots)
		return;
	spin_lock_irqsave(&q->lock, flags);
	for (i = 0; i < q->depth; i++) {
		struct cvm_rdma_slot *s = &q->slots[i];

		if (!s->rreq)
			continue;
		rreq = cvm_rdma_slot_finish(s);
		list_add_tail(&rreq->entry, &failed);
		list_add_tail(&s->entry, &q->free_slots);
	}
	list_splice_tail_init(&q->backlog, &failed);
	spin_unlock_irqrestore(&q->lock, flags);

	list_for_each_entry_safe(rreq, tmp, &failed, entry) {
		list_del_init(&rreq->entry);
		rreq->req.error = -ENOTCONN;
		rreq->req.done(&rreq->req);
	}
}

static void cvm_rdma_release_work(struct work_struct *w)
{
	struct cvm_rdma_conn *rc = container_of(w, struct cvm_rdma_conn,
						release_work);
	unsigned int i;

	for (i = 0; i < rc->nr_queues; i++) {
		struct cvm_rdma_queue *q = &rc->queues[i];

		if (!q->established)
			continue;
		rdma_disconnect(q->cm_id);
		/* Every posted work request completes before this returns. */
		ib_drain_qp(q->qp);
	}

	if (cvm_rdma_target(rc)) {
		if (rc->conn.cb->conn_closed)
			rc->conn.cb->conn_closed(&rc->conn);
		cvm_listener_del_conn(&rc->conn);
		cvm_conn_put(&rc->conn);
		return;
	}
	for (i = 0; i < rc->nr_queues; i++) {
		cvm_rdma_fail_queue(&rc->queues[i]);
		complete_all(&rc->queues[i].hello_done);
	}
	if (!rc->user_disconnect && rc->was_live && rc->conn.cb->state_change)
		rc->conn.cb->state_change(&rc->conn, CVM_CONN_DEAD);
}

/* rdma_cm events */

static int cvm_rdma_addr_resolved(struct cvm_rdma_queue *q)
{
	int ret = cvm_rdma_setup_queue(q);

	if (ret)
		return ret;
	return rdma_resolve_route(q->cm_id, CVM_RDMA_RESOLVE_MS);
}

static int cvm_rdma_route_resolved(struct cvm_rdma_queue *q)
{
	struct cvm_wire_rdma_cm_req priv = {
		.recfmt = cpu_to_le16(CVM_WIRE_RDMA_RECFMT),
		.queue_depth = cpu_to_le16(q->depth),
		.inline_size = cpu_to_le32(q->inline_size),
		.qid = cpu_to_le16(q->qid),
	};
	struct rdma_conn_param param = {
		.private_data = &priv,
		.private_data_len = sizeof(priv),
		.flow_control = 1,
		.retry_count = 7,
		.rnr_retry_count = 7,
		.qp_num = q->qp->qp_num,
		.responder_resources = q->dev->attrs.max_qp_rd_atom,
		.initiator_depth = q->dev->attrs.max_qp_init_rd_atom,
	};

	return rdma_connect_locked(q->cm_id, &param);
}

/* Initiator: the target's accept; it may lower depth and inline size. */
static int cvm_rdma_established(struct cvm_rdma_queue *q,
				const struct rdma_cm_event *ev)
{
	const struct cvm_wire_rdma_cm_rep *rep = ev->param.conn.private_data;
	u32 depth, inline_size;

	if (!rep || ev->param.conn.private_data_len < sizeof(*rep) ||
	    le16_to_cpu(rep->recfmt) != CVM_WIRE_RDMA_RECFMT)
		return -EPROTO;
	depth = le16_to_cpu(rep->queue_depth);
	inline_size = le32_to_cpu(rep->inline_size);
	if (!depth || depth > q->depth || inline_size > q->inline_size)
		return -EPROTO;
	/* Slots beyond the accepted depth are never used. */
	while (q->depth > depth) {
		struct cvm_rdma_slot *s = &q->slots[--q->depth];

		list_del_init(&s->entry);
		ib_dma_unmap_single(q->dev, s->cmd_dma, sizeof(*s->cmd),
				    DMA_TO_DEVICE);
		kfree(s->cmd);
		s->cmd = NULL;
		kfree(s->sgl);
		s->sgl = NULL;
	}
	q->inline_size = inline_size;
	q->established = true;
	return 0;
}

static int cvm_rdma_accept(struct rdma_cm_id *cm_id,
			   struct rdma_cm_event *ev);

static int cvm_rdma_cm_handler(struct rdma_cm_id *cm_id,
			       struct rdma_cm_event *ev)
{
	struct cvm_rdma_queue *q = cm_id->context;
	int ret = 0;

	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST)
		return cvm_rdma_accept(cm_id, ev);

	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		ret = cvm_rdma_addr_resolved(q);
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		ret = cvm_rdma_route_resolved(q);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		if (cvm_rdma_target(q->rc)) {
			q->established = true;
			return 0;
		}
		ret = cvm_rdma_established(q, ev);
		q->cm_error = ret;
		complete(&q->cm_done);
		return 0;
	case RDMA_CM_EVENT_REJECTED:
		ret = -ECONNREFUSED;
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		ret = ev->status ?: -EHOSTUNREACH;
		if (ret > 0)
			ret = -EHOSTUNREACH;
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_ADDR_CHANGE:
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		/* An initiator closing is routine; a target going is not. */
		cvm_rdma_fatal(q->rc, q->established &&
			       !cvm_rdma_target(q->rc) ? "disconnected" : NULL,
			       0);
		return 0;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		/* cvm_rdma_remove_one() frees it. */
		cvm_rdma_fatal(q->rc, "RDMA device removed", -ENODEV);
		return 0;
	default:
		return 0;
	}
	if (ret && !cvm_rdma_target(q->rc) && !q->established) {
		q->cm_error = ret < 0 ? ret : -EIO;
		complete(&q->cm_done);
	} else if (ret) {
		cvm_rdma_fatal(q->rc, "connection failed", ret);
	}
	return 0;
}

/* Target: an initiator connects through @cm_id (a listener's child). */
static int cvm_rdma_accept(struct rdma_cm_id *cm_id, struct rdma_cm_event *ev)
{
	struct cvm_rdma_listener *rl = cm_id->context;
	const struct cvm_wire_rdma_cm_req *creq = ev->param.conn.private_data;
	struct cvm_wire_rdma_cm_rep rep = {
		.recfmt = cpu_to_le16(CVM_WIRE_RDMA_RECFMT),
	};
	struct rdma_conn_param param = {
		.private_data = &rep,
		.private_data_len = sizeof(rep),
		.flow_control = 1,
		.rnr_retry_count = 7,
	};
	struct cvm_rdma_queue *q;
	struct cvm_rdma_conn *rc;
	u32 depth;
	int ret;

	/*
	 * A rejected request's cm_id is ours to free: returning non-zero
	 * makes rdma_cm destroy it, as nvmet-rdma does.
	 */
	if (!creq || ev->param.conn.private_data_len < sizeof(*creq) ||
	    le16_to_cpu(creq->recfmt) != CVM_WIRE_RDMA_RECFMT ||
	    !le16_to_cpu(creq->queue_depth) ||
	    memchr_inv(creq->reserved, 0, sizeof(creq->reserved))) {
		pr_err_ratelimited("connect request with bad private data\n");
		rdma_reject(cm_id, NULL, 0, IB_CM_REJ_CONSUMER_DEFINED);
		return -ECONNREFUSED;
	}
	if (READ_ONCE(rl->stopping)) {
		rdma_reject(cm_id, NULL, 0, IB_CM_REJ_CONSUMER_DEFINED);
		return -ECONNREFUSED;
	}
	rc = cvm_rdma_conn_alloc(1, CVM_CONN_TARGET, rl->l.cb,
				 rl->l.core_priv);
	if (!rc)
		return -ENOMEM;		/* rdma_cm destroys cm_id */
	memcpy(&rc->conn.peer, &cm_id->route.addr.dst_addr,
	       sizeof(rc->conn.peer));
	q = &rc->queues[0];
	depth = min_t(u32, le16_to_cpu(creq->queue_depth),
		      CVM_RDMA_QUEUE_DEPTH);
	q->depth = depth;
	q->inline_size = min_t(u32, le32_to_cpu(creq->inline_size),
			       CVM_RDMA_INLINE_SIZE);
	q->cm_id = cm_id;
	cm_id->context = q;
	ret = cvm_rdma_setup_queue(q);
	if (ret)
		goto out_free_conn;

	rep.queue_depth = cpu_to_le16(depth);
	rep.inline_size = cpu_to_le32(q->inline_size);
	param.initiator_depth = min_t(u8, ev->param.conn.initiator_depth,
				      q->dev->attrs.max_qp_init_rd_atom);
	ret = cvm_listener_add_conn(&rl->l, &rc->conn);
	if (ret) {
		rdma_reject(cm_id, NULL, 0, IB_CM_REJ_CONSUMER_DEFINED);
		goto out_free_conn;
	}
	ret = rdma_accept(cm_id, &param);
	if (ret) {
		cvm_listener_del_conn(&rc->conn);
		goto out_free_conn;
	}
	q->established = true;	/* the QP is ready to send */
	return 0;

out_free_conn:
	/* rdma_cm destroys cm_id when we return non-zero. */
	q->cm_id = NULL;
	if (q->qp)
		rdma_destroy_qp(cm_id);
	q->qp = NULL;
	cvm_rdma_teardown_queue(q);
	spin_lock(&cvm_rdma_conns_lock);
	list_del(&rc->entry);
	spin_unlock(&cvm_rdma_conns_lock);
	kfree(rc);
	wake_up_all(&cvm_rdma_freed_wq);
	return ret ?: -EIO;
}

/* Target side: listening */

static int cvm_rdma_listener_cm_handler(struct rdma_cm_id *cm_id,
					struct rdma_cm_event *ev)
{
	if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST)
		return cvm_rdma_accept(cm_id, ev);
	/*
	 * An accepted connection's cm_id inherits this handler: its events
	 * (DISCONNECTED above all) are the connection's.  Only it has a QP.
	 */
	if (cm_id->qp)
		return cvm_rdma_cm_handler(cm_id, ev);
	/* DEVICE_REMOVAL: cvm_rdma_remove_one() takes the listener off. */
	return 0;
}

static struct rdma_cm_id *cvm_rdma_bind_listen(struct cvm_rdma_listener *rl)
{
	struct rdma_cm_id *cm_id;
	int ret;

	cm_id = rdma_create_id(&init_net, cvm_rdma_listener_cm_handler, rl,
			       RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(cm_id))
		return cm_id;
	ret = rdma_set_afonly(cm_id, 1);
	if (!ret)
		ret = rdma_bind_addr(cm_id, (struct sockaddr *)&rl->l.addr);
	if (!ret)
		ret = rdma_listen(cm_id, 128);
	if (ret) {
		rdma_destroy_id(cm_id);
		return ERR_PTR(ret);
	}
	return cm_id;
}

/* The listener's device went away and maybe came back: listen again. */
static void cvm_rdma_relisten_work(struct work_struct *w)
{
	struct cvm_rdma_listener *rl =
		container_of(to_delayed_work(w), struct cvm_rdma_listener,
			     relisten_work);
	struct rdma_cm_id *cm_id;

	mutex_lock(&rl->cm_lock);
	if (rl->cm_id || rl->stopping) {
		mutex_unlock(&rl->cm_lock);
		return;
	}
	cm_id = cvm_rdma_bind_listen(rl);
	if (IS_ERR(cm_id)) {
		queue_delayed_work(cvm_rdma_wq, &rl->relisten_work,
				   CVM_RDMA_RELISTEN_DELAY);
	} else {
		rl->cm_id = cm_id;
		pr_info("listening on %pISpc again\n", &rl->l.addr);
	}
	mutex_unlock(&rl->cm_lock);
}

static struct cvm_listener *cvm_rdma_listen(const struct sockaddr_storage *addr,
					    const struct cvm_conn_cb *cb,
					    void *core_priv)
{
	struct cvm_rdma_listener *rl;
	struct rdma_cm_id *cm_id;

	if (addr->ss_family != AF_INET && addr->ss_family != AF_INET6)
		return ERR_PTR(-EAFNOSUPPORT);
	rl = kzalloc(sizeof(*rl), GFP_KERNEL);
	if (!rl)
		return ERR_PTR(-ENOMEM);
	cvm_listener_init(&rl->l, &cvm_rdma_ops, addr, cb, core_priv);
	mutex_init(&rl->cm_lock);
	INIT_DELAYED_WORK(&rl->relisten_work, cvm_rdma_relisten_work);

	cm_id = cvm_rdma_bind_listen(rl);
	if (IS_ERR(cm_id)) {
		kfree(rl);
		return ERR_CAST(cm_id);
	}
	mutex_lock(&cvm_rdma_listeners_lock);
	rl->cm_id = cm_id;
	list_add_tail(&rl->entry, &cvm_rdma_listeners);
	mutex_unlock(&cvm_rdma_listeners_lock);
	return &rl->l;
}

static void cvm_rdma_unlisten(struct cvm_listener *l)
{
	struct cvm_rdma_listener *rl = container_of(l, struct cvm_rdma_listener,
						    l);
	struct rdma_cm_id *cm_id;

	mutex_lock(&cvm_rdma_listeners_lock);
	list_del(&rl->entry);
	mutex_unlock(&cvm_rdma_listeners_lock);

	mutex_lock(&rl->cm_lock);
	WRITE_ONCE(rl->stopping, true);
	cm_id = rl->cm_id;
	rl->cm_id = NULL;
	mutex_unlock(&rl->cm_lock);
	cancel_delayed_work_sync(&rl->relisten_work);
	/* Waits for a connect request being accepted. */
	if (cm_id)
		rdma_destroy_id(cm_id);
	cvm_listener_close_conns(&rl->l);
	kfree(rl);
}

/* Initiator side: connecting */

static void cvm_rdma_hello_done(struct cvm_xprt_req *req)
{
	complete(&to_rdma_conn(req->conn)->queues[0].hello_done);
}

/*
 * Sends @req (HELLO or AUTH, its payload @rreq->hello) on queue @q and
 * sleeps until it is answered.  0 or an errno.
 */
static int cvm_rdma_handshake(struct cvm_rdma_queue *q,
			      struct cvm_rdma_req *rreq)
{
	struct cvm_rdma_conn *rc = q->rc;
	struct cvm_xprt_req *req = &rreq->req;
	struct cvm_wire_hello *hello = &rreq->hello;
	struct bio_vec bv;
	int ret;

	/* The request is one kmalloc'ed object: the hello is in one page. */
	bv.bv_page = virt_to_page(hello);
	bv.bv_offset = offset_in_page(hello);
	bv.bv_len = sizeof(*hello);
	req->bvec = &bv;
	req->nr_bvec = 1;
	req->data_len = sizeof(*hello);
	req->done = cvm_rdma_hello_done;
	req->error = 0;

	reinit_completion(&rc->queues[0].hello_done);
	ret = cvm_rdma_queue_submit(q, rreq, true);
	if (!ret && !wait_for_completion_timeout(&rc->queues[0].hello_done,
						 CVM_RDMA_CONNECT_TIMEOUT)) {
		/* Fail it through release_work before freeing it. */
		rc->user_disconnect = true;
		cvm_rdma_fatal(rc, "no answer to HELLO or AUTH", -ETIMEDOUT);
		flush_work(&rc->release_work);
		ret = -ETIMEDOUT;
	}
	if (!ret)
		ret = req->error;
	req->bvec = NULL;
	return ret;
}

/* HELLO and AUTH on queue @q; sleeps until answered. */
static int cvm_rdma_hello(struct cvm_rdma_queue *q,
			  const struct cvm_hello_params *p, u16 *hello_status)
{
	struct cvm_rdma_conn *rc = q->rc;
	struct cvm_wire_hello asked;
	struct cvm_xprt_req *req;
	struct cvm_rdma_req *rreq;
	int ret;

	req = cvm_rdma_alloc_req(&rc->conn, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	rreq = to_rdma_req(req);
	cvm_xprt_hello_req(p, &req->hdr, &rreq->hello, q->depth);
	asked = rreq->hello;
	ret = cvm_rdma_handshake(q, rreq);
	if (ret)
		goto out_free_req;
	ret = cvm_xprt_hello_rsp_hdr(&rc->conn, &rreq->rsp.hdr, hello_status);
	if (ret <= 0)
		goto out_free_req;
	ret = cvm_xprt_hello_done(&rc->conn, &rreq->rsp.hdr, &rreq->rsp.hello,
				  &asked, &q->budget);
	if (ret)
		goto out_free_req;
	cvm_rdma_free_req(req);

	/* AUTH in a request of its own: the HELLO's slot is done with. */
	req = cvm_rdma_alloc_req(&rc->conn, GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	rreq = to_rdma_req(req);
	ret = cvm_xprt_auth_req(&rc->conn, &req->hdr, &rreq->hello);
	if (!ret)
		ret = cvm_rdma_handshake(q, rreq);
	if (!ret)
		ret = cvm_xprt_auth_rsp_hdr(&rc->conn, &rreq->rsp.hdr,
					    hello_status);

out_free_req:
	cvm_rdma_free_req(req);
	return ret;
}

static int cvm_rdma_connect_queue(struct cvm_rdma_queue *q,
				  const struct sockaddr_storage *addr)
{
	int ret;

	q->cm_id = rdma_create_id(&init_net, cvm_rdma_cm_handler, q,
				  RDMA_PS_TCP, IB_QPT_RC);
	if (IS_ERR(q->cm_id)) {
		ret = PTR_ERR(q->cm_id);
		q->cm_id = NULL;
		return ret;
	}
	ret = rdma_resolve_addr(q->cm_id, NULL, (struct sockaddr *)addr,
				CVM_RDMA_RESOLVE_MS);
	if (ret)
		return ret;
	if (!wait_for_completion_timeout(&q->cm_done,
					 CVM_RDMA_CONNECT_TIMEOUT))
		return -ETIMEDOUT;
	return q->cm_error;
}

static struct cvm_conn *cvm_rdma_connect(const struct sockaddr_storage *addr,
					 const struct cvm_hello_params *hello,
					 const struct cvm_conn_cb *cb,
					 void *core_priv, u16 *hello_status)
{
	unsigned int nr = min_t(unsigned int, num_online_cpus(),
				CVM_RDMA_MAX_QUEUES);
	struct cvm_rdma_conn *rc;
	unsigned int i;
	int ret;

	if (addr->ss_family != AF_INET && addr->ss_family != AF_INET6)
		return ERR_PTR(-EAFNOSUPPORT);
	rc = cvm_rdma_conn_alloc(nr, CVM_CONN_INITIATOR, cb, core_priv);
	if (!rc)
		return ERR_PTR(-ENOMEM);
	rc->conn.peer = *addr;
	rc->conn.hello = *hello;

	for (i = 0; i < nr; i++) {
		ret = cvm_rdma_connect_queue(&rc->queues[i], addr);
		if (ret)
			goto out_kill_conn;
		/* One queue per completion vector of the device at most. */
		if (i == 0)
			rc->nr_queues = nr = min_t(unsigned int, nr,
				rc->queues[0].dev->num_comp_vectors);
	}
	for (i = 0; i < nr; i++) {
		ret = cvm_rdma_hello(&rc->queues[i], hello, hello_status);
		if (ret)
			goto out_kill_conn;
	}
	spin_lock_irq(&rc->lock);
	if (rc->conn.state != CVM_CONN_DEAD) {
		WRITE_ONCE(rc->conn.state, CVM_CONN_LIVE);
		rc->was_live = true;
	}
	spin_unlock_irq(&rc->lock);
	if (!rc->was_live) {
		ret = -ECONNRESET;
		goto out_kill_conn;
	}
	return &rc->conn;

out_kill_conn:
	rc->user_disconnect = true;
	cvm_rdma_fatal(rc, NULL, 0);
	flush_work(&rc->release_work);
	cvm_conn_put(&rc->conn);
	return ERR_PTR(ret);
}

static void cvm_rdma_disconnect(struct cvm_conn *conn)
{
	struct cvm_rdma_conn *rc = to_rdma_conn(conn);

	rc->user_disconnect = true;
	cvm_rdma_fatal(rc, NULL, 0);
	flush_work(&rc->release_work);
	cvm_conn_put(conn);
}

/* RDMA device removal */

static bool cvm_rdma_conn_on(struct cvm_rdma_conn *rc, struct ib_device *dev)
{
	unsigned int i;

	for (i = 0; i < rc->nr_queues; i++)
		if (rc->queues[i].dev == dev)
			return true;
	return false;
}

static bool cvm_rdma_device_unused(struct ib_device *dev)
{
	struct cvm_rdma_conn *rc;
	bool unused = true;

	spin_lock(&cvm_rdma_conns_lock);
	list_for_each_entry(rc, &cvm_rdma_conns, entry)
		if (cvm_rdma_conn_on(rc, dev))
			unused = false;
	spin_unlock(&cvm_rdma_conns_lock);
	return unused;
}

static void cvm_rdma_remove_one(struct ib_device *dev, void *client_data)
{
	struct cvm_rdma_listener *rl;
	struct cvm_rdma_conn *rc;
	unsigned int i;

	mutex_lock(&cvm_rdma_listeners_lock);
	list_for_each_entry(rl, &cvm_rdma_listeners, entry) {
		struct rdma_cm_id *cm_id = NULL;

		mutex_lock(&rl->cm_lock);
		if (rl->cm_id && rl->cm_id->device == dev) {
			cm_id = rl->cm_id;
			rl->cm_id = NULL;
		}
		mutex_unlock(&rl->cm_lock);
		if (!cm_id)
			continue;
		pr_info("%s removed: no longer listening on %pISpc\n",
			dev_name(&dev->dev), &rl->l.addr);
		rdma_destroy_id(cm_id);
		queue_delayed_work(cvm_rdma_wq, &rl->relisten_work,
				   CVM_RDMA_RELISTEN_DELAY);
	}
	mutex_unlock(&cvm_rdma_listeners_lock);

	spin_lock(&cvm_rdma_conns_lock);
	for (i = 0; i < CVM_RDMA_MAX_DYING; i++) {
		if (!cvm_rdma_dying[i]) {
			cvm_rdma_dying[i] = dev;
			break;
		}
	}
	list_for_each_entry(rc, &cvm_rdma_conns, entry)
		if (cvm_rdma_conn_on(rc, dev))
			cvm_rdma_fatal(rc, "RDMA device removed", -ENODEV);
	spin_unlock(&cvm_rdma_conns_lock);

	/* The core lets go of dead connections; they free their verbs. */
	wait_event(cvm_rdma_freed_wq, cvm_rdma_device_unused(dev));

	spin_lock(&cvm_rdma_conns_lock);
	for (i = 0; i < CVM_RDMA_MAX_DYING; i++)
		if (cvm_rdma_dying[i] == dev)
			cvm_rdma_dying[i] = NULL;
	spin_unlock(&cvm_rdma_conns_lock);
}

static struct ib_client cvm_rdma_ib_client = {
	.name	= KBUILD_MODNAME "_rdma",
	.remove	= cvm_rdma_remove_one,
};

static const struct cvm_transport_ops cvm_rdma_ops = {
	.name		= "rdma",
	.api_version	= CVM_TRANSPORT_API_VERSION,
	.listen		= cvm_rdma_listen,
	.unlisten	= cvm_rdma_unlisten,
	.send_reply	= cvm_rdma_send_reply,
	.connect	= cvm_rdma_connect,
	.disconnect	= cvm_rdma_disconnect,
	.submit		= cvm_rdma_submit,
	.oldest_request	= cvm_rdma_oldest_request,
	.abort		= cvm_rdma_abort,
	.alloc_req	= cvm_rdma_alloc_req,
	.free_req	= cvm_rdma_free_req,
	.release_conn	= cvm_rdma_release_conn,
};

int cvm_rdma_init(void)
{
	int ret;

	cvm_rdma_wq = alloc_workqueue("cvm_rdma", WQ_MEM_RECLAIM | WQ_UNBOUND,
				      0);
	if (!cvm_rdma_wq)
		return -ENOMEM;
	ret = ib_register_client(&cvm_rdma_ib_client);
	if (ret)
		goto out_destroy_wq;
	ret = cvm_transport_register(&cvm_rdma_ops);
	if (ret)
		goto out_unregister_client;
	return 0;

out_unregister_client:
	ib_unregister_client(&cvm_rdma_ib_client);
out_destroy_wq:
	destroy_workqueue(cvm_rdma_wq);
	return ret;
}

void cvm_rdma_exit(void)
{
	cvm_transport_unregister(&cvm_rdma_ops);
	ib_unregister_client(&cvm_rdma_ib_client);
	destroy_workqueue(cvm_rdma_wq);
}
