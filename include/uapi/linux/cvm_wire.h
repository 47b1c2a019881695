/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * CVM wire protocol: initiator (cvm.ko, cvmd recovery agents) <-> target
 * (cvm_target.ko).
 *
 * Every message is one struct cvm_wire_hdr followed by @length bytes of
 * payload.  All multi-byte fields are little-endian.  A request carries an
 * initiator-chosen @tag; the target answers every request with exactly one
 * reply (CVM_WIRE_F_REPLY set) carrying the same @tag, in any order.
 *
 * Versions.  The first 8 bytes (@magic, @version, @opcode, @flags) keep
 * their layout in every version.  A target that receives a HELLO with a
 * @version it does not speak answers CVM_WIRE_STATUS_VERSION in a header of
 * its own version, then closes the connection; a @version other than the
 * one agreed by HELLO is malformed in any other message.
 *
 * Validation.  The receiver checks, in this order, before it acts on a
 * message: @magic, @version, @hdr_crc, @opcode, @flags against the opcode's
 * allowed set, every reserved field is zero, @length against the opcode's
 * payload rule and CVM_WIRE_MAX_DATA_LEN, @shard < CVM_WIRE_MAX_SHARDS,
 * @offset and @length alignment and @offset + @length <=
 * CVM_WIRE_MAX_OBJECT_SIZE.  A message that fails any of these checks is
 * malformed: the receiver logs the reason and closes the connection without
 * touching data.  No reply is sent for a malformed message.
 *
 * A well-formed request that cannot be carried out is answered with a
 * protocol status (enum cvm_wire_status) in @status.  Protocol status is not
 * an errno; each side converts in one place.
 *
 * Versioning rule.  @version names the whole protocol: header layout,
 * opcodes, flags, payload formats and the meaning of every field.  Any
 * change a peer of the previous version would misread (a new opcode, flag
 * or status, a payload field given meaning, a field that was required to
 * be zero now carrying a value) takes a new CVM_WIRE_VERSION, written down
 * below with what it changed; nothing is ever renumbered, a version's
 * rules are never changed after release.  A feature bit agreed in HELLO
 * (struct cvm_wire_hello @features) may instead add something optional
 * that both sides must opt into.  Peers speak one version at a time: a
 * target refuses a HELLO of another version with CVM_WIRE_STATUS_VERSION
 * (the reply header carries the target's version), both sides log the two
 * versions ("HELLO version 1, we speak 2"), and the initiator gives up with
 * EPROTONOSUPPORT; there is no conversion on the wire, so a cluster is
 * upgraded targets and initiators together (the modules and cvmd come from
 * one package).
 *
 * Version 1: the first version.
 * Version 2: HELLO agrees per-connection limits (struct cvm_wire_hello
 *	@max_inflight and @max_data, reserved in version 1); a target closes a
 *	connection whose initiator exceeds them.
 * Version 3: HELLO's payload grows to 72 bytes: @instance, the device
 *	instance whose volatile cache a FLUSH on the connection reaches.
 *	Targets refuse requests of an older attach epoch than the volume's
 *	(CVM_WIRE_STATUS_STALE_ATTACH), except reads and STAT with attach
 *	epoch 0.
 * Version 4: object shard versions and write intent (persistent records of
 *	missed writes).  The header's former @reserved0 is @shard_version;
 *	opcodes BUMP, SET_VERSION and CLEAN; flags CVM_WIRE_F_VERSIONED
 *	(WRITE) and CVM_WIRE_F_INTENT (LIST); status STALE_VERSION; STAT
 *	reports the version and the intent bit, LIST entries carry both.
 *	A target sets a shard's intent bit, durably, before the first change
 *	to it completes, and keeps it until a CLEAN.
 * Version 5: hosts authenticate (see "Authentication" below).  HELLO's
 *	payload grows to 112 bytes: the cluster token becomes @nonce, and
 *	@key_id, @reserved2 and @proof follow @instance; opcode AUTH; status
 *	DENIED (a host asked for a volume it was not given).
 */
#ifndef _UAPI_LINUX_CVM_WIRE_H
#define _UAPI_LINUX_CVM_WIRE_H

#include <linux/types.h>

/* @magic: the bytes "CVMW" on the wire. */
#define CVM_WIRE_MAGIC		0x574d5643U
#define CVM_WIRE_VERSION	5

/* Size of struct cvm_wire_hdr; fixed for a version. */
#define CVM_WIRE_HDR_LEN	96

/*
 * Limits.
 *
 * CVM_WIRE_MAX_DATA_LEN: largest payload of any message.  READ and WRITE
 *	requests larger than this are split by the initiator.
 * CVM_WIRE_MAX_OBJECT_SIZE: @offset + @length of any ranged opcode must
 *	not exceed this; volume object sizes are at most this.
 * CVM_WIRE_SECTOR_SIZE: @offset and @length of READ, WRITE, WRITE_ZEROES,
 *	DISCARD and PREALLOC are multiples of this.
 * CVM_WIRE_MAX_SHARDS: @shard is below this.
 */
#define CVM_WIRE_MAX_DATA_LEN		(1U << 20)
#define CVM_WIRE_MAX_OBJECT_SIZE	(1ULL << 30)
#define CVM_WIRE_SECTOR_SIZE		512U
#define CVM_WIRE_MAX_SHARDS		32U

/*
 * Opcodes (@opcode).  "Payload" gives the payload of the request and of its
 * OK reply; @length is the payload length in every message.  Opcodes
 * marked "ranged" use @offset/@length as a byte range inside the object
 * shard (volume_id, object_no, shard); the others require @offset == 0.
 *
 * CVM_WIRE_OP_HELLO
 *	First message on a connection, and the only one allowed until the
 *	target has answered it with CVM_WIRE_STATUS_OK.  @version carries the
 *	sender's protocol version.  Payload: struct cvm_wire_hello both ways.
 *	An OK reply carries the target's challenge and proof; the host must
 *	then AUTH before anything else.
 * CVM_WIRE_OP_AUTH
 *	Second message on a connection, after an OK HELLO reply: the host's
 *	proof.  Payload: struct cvm_wire_hello with @proof set and every other
 *	field zero; the reply has none.  OK makes the connection live; any
 *	other status is followed by the target closing it.
 *	@volume_id, @object_no, @shard, the snapshot and epoch fields are zero.
 *
 * CVM_WIRE_OP_READ (ranged)
 *	Read @length bytes at @offset.  @snap_id selects the snapshot to read
 *	(CVM_WIRE_SNAP_HEAD for the live object).  Request payload: none.
 *	Reply payload: @length bytes.  A range never written reads as zeroes.
 *
 * CVM_WIRE_OP_WRITE (ranged)
 *	Write the payload (@length bytes) at @offset.  @snap_seq is the
 *	volume's snapshot sequence: an object last written before a newer
 *	snapshot is preserved for that snapshot before it is overwritten.
 *	Reply payload: none.
 *
 * CVM_WIRE_OP_WRITE_ZEROES (ranged)
 *	Make @length bytes at @offset read as zeroes.  The request has no
 *	payload: its @length is the length of the range.  Without
 *	CVM_WIRE_F_NOUNMAP the target may deallocate the range.
 *
 * CVM_WIRE_OP_DISCARD (ranged)
 *	The range's contents are no longer needed; later reads return zeroes.
 *	Same @length rule as WRITE_ZEROES.
 *
 * CVM_WIRE_OP_FLUSH
 *	Every write the target has completed on this connection before it
 *	received the FLUSH is durable when the reply is sent.  @volume_id,
 *	@object_no, @shard, @offset and @length are zero.
 *
 * CVM_WIRE_OP_REMOVE
 *	Delete the object shard (with @snap_seq semantics as for WRITE).
 *
 * CVM_WIRE_OP_LIST
 *	List object shards of @volume_id with object number >= @object_no.
 *	Request payload: none; request @length is the largest reply payload
 *	wanted (a multiple of sizeof(struct cvm_wire_list_ent)).  Reply
 *	payload: an array of struct cvm_wire_list_ent in ascending order; a
 *	reply with fewer entries than requested ends the listing.
 *
 * CVM_WIRE_OP_STAT
 *	Describe the object shard.  Reply payload: struct cvm_wire_stat.
 *
 * CVM_WIRE_OP_ROLLBACK
 *	Make the live object shard equal to its version at snapshot @snap_id.
 *
 * CVM_WIRE_OP_PREALLOC (ranged)
 *	Allocate backing space for the range without changing its contents
 *	(thick provisioning).  Same @length rule as WRITE_ZEROES.
 *
 * CVM_WIRE_OP_BUMP
 *	A change this shard took was missed by another replica (or shard) of
 *	the object: raise the shard's version by one and set its intent bit,
 *	durable before the reply.  Reply @shard_version: the new version.
 *	A shard the target does not hold is created (zeroes, version 1), so
 *	the record exists even for a stripe chunk or an object never written.
 *
 * CVM_WIRE_OP_SET_VERSION
 *	The shard was just copied whole from a replica at @shard_version
 *	(resync): its data is flushed, then its version set to @shard_version
 *	and made durable.  STALE_VERSION (nothing changed) if the shard's
 *	version is already higher.  Reply @shard_version: the version now.
 *
 * CVM_WIRE_OP_CLEAN
 *	Every replica of the object holds the same data: the shard's data is
 *	flushed, then its intent bit cleared and made durable.  OK also when
 *	the shard does not exist or its bit is clear.
 */
enum cvm_wire_op {
	CVM_WIRE_OP_HELLO		= 1,
	CVM_WIRE_OP_READ		= 2,
	CVM_WIRE_OP_WRITE		= 3,
	CVM_WIRE_OP_WRITE_ZEROES	= 4,
	CVM_WIRE_OP_DISCARD		= 5,
	CVM_WIRE_OP_FLUSH		= 6,
	CVM_WIRE_OP_REMOVE		= 7,
	CVM_WIRE_OP_LIST		= 8,
	CVM_WIRE_OP_STAT		= 9,
	CVM_WIRE_OP_ROLLBACK		= 10,
	CVM_WIRE_OP_PREALLOC		= 11,
	CVM_WIRE_OP_BUMP		= 12,
	CVM_WIRE_OP_SET_VERSION		= 13,
	CVM_WIRE_OP_CLEAN		= 14,
	CVM_WIRE_OP_AUTH		= 15,
	__CVM_WIRE_OP_MAX,
};
#define CVM_WIRE_OP_MAX (__CVM_WIRE_OP_MAX - 1)

/*
 * Flags (@flags).  A bit not listed for the message's opcode and direction
 * makes the message malformed.
 *
 * CVM_WIRE_F_REPLY
 *	The message is a reply to the request with the same @tag.  Set on
 *	every reply, never on a request.  Replies copy @opcode, @volume_id,
 *	@object_no, @shard and @offset from the request.
 *
 * CVM_WIRE_F_DATA_CRC
 *	@data_crc holds the CRC32C of the payload; the receiver verifies it
 *	before using the payload and answers CVM_WIRE_STATUS_DATA_CRC on
 *	mismatch.  Without this flag @data_crc is zero.  Allowed on any
 *	message with a payload.
 *
 * CVM_WIRE_F_FUA
 *	WRITE, WRITE_ZEROES, DISCARD, REMOVE, ROLLBACK, PREALLOC requests: the
 *	change is durable before the reply is sent.
 *
 * CVM_WIRE_F_NOUNMAP
 *	WRITE_ZEROES requests: keep the range allocated.
 *
 * CVM_WIRE_F_VERSIONED
 *	WRITE requests of a resync: the copy is of a replica at
 *	@shard_version; a shard whose version is higher refuses it with
 *	CVM_WIRE_STATUS_STALE_VERSION, so an old copy never lands over a newer
 *	write.
 *
 * CVM_WIRE_F_INTENT
 *	LIST requests: only shards whose intent bit is set.
 */
#define CVM_WIRE_F_REPLY	(1U << 0)
#define CVM_WIRE_F_DATA_CRC	(1U << 1)
#define CVM_WIRE_F_FUA		(1U << 2)
#define CVM_WIRE_F_NOUNMAP	(1U << 3)
#define CVM_WIRE_F_VERSIONED	(1U << 4)
#define CVM_WIRE_F_INTENT	(1U << 5)
#define CVM_WIRE_F_ALL		(CVM_WIRE_F_REPLY | CVM_WIRE_F_DATA_CRC | \
				 CVM_WIRE_F_FUA | CVM_WIRE_F_NOUNMAP | \
				 CVM_WIRE_F_VERSIONED | CVM_WIRE_F_INTENT)

/*
 * Object shard versions and write intent (version 4).  Each object shard a
 * target holds carries a 32-bit version and an intent bit, kept on disk
 * with its table entry.  The intent bit says "an initiator may be changing
 * this shard": the target sets it, durably, before the first change
 * (WRITE, WRITE_ZEROES, DISCARD) to a shard without it completes; only
 * CLEAN clears it.  The version orders copies: when a change reached some
 * replicas and missed others, the initiator BUMPs the replicas that took
 * it before acknowledging the change, so the ones that missed it have a
 * lower version; a resync copies from a replica of the highest version and
 * ends with SET_VERSION.  After an initiator crash, the shards with the
 * intent bit (LIST with CVM_WIRE_F_INTENT) are exactly the objects whose
 * replicas may differ; their versions say which replicas missed
 * acknowledged changes.  Steady-state overwrites of a shard with the bit
 * set write no metadata.
 */

/* @snap_id of a READ of the live object. */
#define CVM_WIRE_SNAP_HEAD	0ULL

/*
 * Reply status (@status).  Zero in every request.  These are protocol
 * values, not errnos.
 *
 * CVM_WIRE_STATUS_OK		Done.
 * CVM_WIRE_STATUS_INVALID	Well-formed but not applicable, e.g. a range
 *				beyond the object or a snapshot id the volume
 *				does not have.
 * CVM_WIRE_STATUS_NOT_FOUND	STAT, REMOVE, ROLLBACK: no such object shard
 *				or snapshot version.
 * CVM_WIRE_STATUS_VERSION	HELLO: the target does not speak @version;
 *				the reply's @version is the target's.
 * CVM_WIRE_STATUS_AUTH		HELLO: no key for this host, device and key
 *				id; AUTH: the proof is wrong.
 * CVM_WIRE_STATUS_STALE_ATTACH	@attach_epoch is older than the newest the
 *				target has seen for @volume_id: the sender has
 *				been fenced and must stop writing.
 * CVM_WIRE_STATUS_STALE_MAP	@map_epoch is older than the target's map, or
 *				the target does not hold this shard in that
 *				map: refresh the map and resend.
 * CVM_WIRE_STATUS_NO_SPACE	The backing device is full.
 * CVM_WIRE_STATUS_IO_ERROR	The backing device failed the I/O.
 * CVM_WIRE_STATUS_DATA_CRC	The payload did not match @data_crc.
 * CVM_WIRE_STATUS_UNSUPPORTED	Valid opcode the target does not implement.
 * CVM_WIRE_STATUS_BUSY		Temporarily unable; retry later.
 * CVM_WIRE_STATUS_STALE_VERSION	The shard's version is higher than the
 *				request's @shard_version: an older copy is not
 *				written over it (version 4).
 * CVM_WIRE_STATUS_DENIED	The host is not given @volume_id on this
 *				device (version 5): not retried.
 */
enum cvm_wire_status {
	CVM_WIRE_STATUS_OK		= 0,
	CVM_WIRE_STATUS_INVALID		= 1,
	CVM_WIRE_STATUS_NOT_FOUND	= 2,
	CVM_WIRE_STATUS_VERSION		= 3,
	CVM_WIRE_STATUS_AUTH		= 4,
	CVM_WIRE_STATUS_STALE_ATTACH	= 5,
	CVM_WIRE_STATUS_STALE_MAP	= 6,
	CVM_WIRE_STATUS_NO_SPACE	= 7,
	CVM_WIRE_STATUS_IO_ERROR	= 8,
	CVM_WIRE_STATUS_DATA_CRC	= 9,
	CVM_WIRE_STATUS_UNSUPPORTED	= 10,
	CVM_WIRE_STATUS_BUSY		= 11,
	CVM_WIRE_STATUS_STALE_VERSION	= 12,
	CVM_WIRE_STATUS_DENIED		= 13,
	__CVM_WIRE_STATUS_MAX,
};
#define CVM_WIRE_STATUS_MAX (__CVM_WIRE_STATUS_MAX - 1)

/**
 * struct cvm_wire_hdr - header of every message
 * @magic: CVM_WIRE_MAGIC.
 * @version: CVM_WIRE_VERSION.
 * @opcode: enum cvm_wire_op.
 * @flags: CVM_WIRE_F_* bits allowed for @opcode.
 * @tag: request identifier chosen by the initiator, unique among its
 *	outstanding requests on the connection; echoed in the reply.
 * @volume_id: volume the object belongs to.
 * @object_no: object number inside the volume.
 * @offset: byte offset inside the object shard (ranged opcodes), else 0.
 * @snap_seq: the volume's snapshot sequence (WRITE, WRITE_ZEROES, DISCARD,
 *	REMOVE, PREALLOC), else 0.
 * @snap_id: snapshot to read (READ) or to roll back to (ROLLBACK), else 0.
 * @map_epoch: epoch of the map the initiator placed this request with.
 * @attach_epoch: epoch of the initiator's attachment of @volume_id; the
 *	target refuses changes from older epochs (fencing).
 * @length: payload length in bytes, at most CVM_WIRE_MAX_DATA_LEN, except
 *	in WRITE_ZEROES, DISCARD, PREALLOC and LIST requests (see above).
 * @shard: erasure-coded chunk index (0 .. k + m - 1); 0 for replicated
 *	pools.
 * @status: enum cvm_wire_status in replies; 0 in requests.
 * @data_crc: CRC32C of the payload if CVM_WIRE_F_DATA_CRC, else 0.
 * @shard_version: the object shard's version (see "Object shard versions"
 *	below): WRITE with CVM_WIRE_F_VERSIONED and SET_VERSION requests, and
 *	the replies of BUMP and SET_VERSION; else 0.
 * @reserved1: must be zero.
 * @hdr_crc: CRC32C (seed ~0, final xor ~0, as crc32c()) of the preceding
 *	CVM_WIRE_HDR_LEN - 4 bytes of this header.
 *
 * Replies carry the request's @tag, @opcode, @volume_id, @object_no,
 * @shard and @offset; the target's @map_epoch; and @length of the reply
 * payload.
 */
struct cvm_wire_hdr {
	__le32	magic;
	__u8	version;
	__u8	opcode;
	__le16	flags;
	__le64	tag;
	__le64	volume_id;
	__le64	object_no;
	__le64	offset;
	__le64	snap_seq;
	__le64	snap_id;
	__le64	map_epoch;
	__le64	attach_epoch;
	__le32	length;
	__le16	shard;
	__le16	status;
	__le32	data_crc;
	__le32	shard_version;
	__le32	reserved1;
	__le32	hdr_crc;
};

/*
 * Authentication (version 5).  Every host has its own secret S (32 random
 * bytes, generation @key_id), made by its cvmd and never sent anywhere.
 * For each target device D the host's cvmd derives
 *
 *	K = HMAC-SHA256(S, "cvm-host-key" || cluster_id || host_id || D)
 *
 * (integers little endian: le64, le64, le32) and gives K to the cvmd of
 * the node serving D, which loads it into cvm_target.ko with the volumes
 * the host may touch there.  A target holds only the keys of the hosts
 * it serves, for its own devices: a stolen K does not open another
 * device, and S cannot be computed back from it.
 *
 * The handshake, with T = cluster_id || host_id || device_id || key_id ||
 * Nh || Nt (le64, le64, le32, le32, 32 bytes, 32 bytes):
 *
 *	host   -> target	HELLO, @nonce = Nh (fresh random, non-zero)
 *	target -> host		OK, @nonce = Nt (fresh random),
 *				@proof = HMAC-SHA256(K, "cvm-target" || T)
 *	host   -> target	AUTH, @proof = HMAC-SHA256(K, "cvm-host" || T),
 *				sent only once the target's proof checked out
 *	target -> host		OK: the connection is live
 *
 * No secret crosses the wire; a replayed AUTH fails (Nt is new on every
 * connection); a reflected proof fails (the two proofs have different
 * labels); a target without K cannot answer, so a host never sends data
 * to an impostor.  This authenticates the peers, it does not encrypt or
 * sign the traffic after AUTH: someone able to rewrite packets on the
 * storage network can still take over a connection once it is live.
 */
#define CVM_WIRE_NONCE_LEN	32
#define CVM_WIRE_PROOF_LEN	32
#define CVM_WIRE_KEY_LEN	32

/**
 * struct cvm_wire_hello - HELLO payload, request and reply (and AUTH's)
 * @cluster_id: cluster the sender belongs to (part of the key).
 * @host_id: sender's host id in the cluster map.
 * @features: feature bits; none are defined yet, must be zero.
 * @device_id: request: the target backing device (cvmd's device id, as
 *	given to the target in CVM_TARGET_ATTR_DEVICE_ID) that every request
 *	on this connection addresses; the wire header has no device field, so
 *	an initiator opens one connection per target device.  A target that
 *	does not serve the device answers CVM_WIRE_STATUS_NOT_FOUND.  Reply:
 *	the same value.
 * @max_inflight: request: the requests the initiator would like to keep in
 *	flight on this connection (0: the target's maximum); reply: what the
 *	target grants, at least 1 and at most the request's non-zero value.
 *	A request is in flight at the target from the arrival of its header
 *	until its reply has been sent.
 * @reserved1: must be zero.
 * @max_data: like @max_inflight, for the payload bytes of the requests in
 *	flight, each counted as the larger of its payload and the largest
 *	payload its OK reply may carry (WRITE: @length; READ, LIST: @length;
 *	STAT: the stat size).  The grant is at least CVM_WIRE_MAX_DATA_LEN.
 *	An initiator that sends a request beyond either grant is
 *	disconnected; the target logs why.
 * @nonce: request: the host's challenge Nh (not all zero); reply: the
 *	target's challenge Nt.
 * @instance: request: zero; reply: the device's instance, a non-zero
 *	number the target picks each time it starts serving the device.
 *	Writes a target acknowledged under one instance are in that
 *	instance's volatile cache or durable; a FLUSH answered under the
 *	same instance makes them durable, one answered under another says
 *	nothing of them (the target restarted: its cache may be gone).
 * @key_id: the generation of the host's secret the key comes from
 *	(request; the reply repeats it).
 * @reserved2: must be zero.
 * @proof: HELLO request: zero; HELLO reply: the target's proof; AUTH: the
 *	host's proof.
 */
struct cvm_wire_hello {
	__le64	cluster_id;
	__le64	host_id;
	__le32	features;
	__le32	device_id;
	__le16	max_inflight;
	__le16	reserved1;
	__le32	max_data;
	__u8	nonce[CVM_WIRE_NONCE_LEN];
	__le64	instance;
	__le32	key_id;
	__le32	reserved2;
	__u8	proof[CVM_WIRE_PROOF_LEN];
};

/* struct cvm_wire_stat @flags */
#define CVM_WIRE_STAT_F_INTENT	(1U << 0)	/* write intent bit is set */

/**
 * struct cvm_wire_stat - STAT reply payload
 * @allocated: bytes of backing space held by the live object shard.
 * @snap_seq: snapshot sequence of the last change to the live shard.
 * @flags: CVM_WIRE_STAT_F_* bits.
 * @nr_snaps: number of snapshot versions kept for the shard.
 * @version: the shard's version (version 4).
 * @reserved: must be zero.
 */
struct cvm_wire_stat {
	__le64	allocated;
	__le64	snap_seq;
	__le32	flags;
	__le32	nr_snaps;
	__le32	version;
	__le32	reserved;
};

/**
 * struct cvm_wire_list_ent - one LIST reply entry
 * @object_no: object number.
 * @shard: shard held by the target.
 * @flags: CVM_WIRE_STAT_F_* bits (version 4).
 * @version: the shard's version (version 4).
 * @snap_seq: snapshot sequence of the last change to the live shard.
 */
struct cvm_wire_list_ent {
	__le64	object_no;
	__le16	shard;
	__le16	flags;
	__le32	version;
	__le64	snap_seq;
};

/*
 * RDMA framing (kernel/transport/rdma.c).  Over RDMA (rdma_cm, RC queue
 * pairs) the same headers travel in SEND messages and payloads move by
 * RDMA READ and WRITE, as NVMe-oF/RDMA does:
 *
 *   request	SEND of struct cvm_wire_rdma_cmd, followed in the same SEND
 *		by the payload when it is at most the inline size agreed at
 *		connect (HELLO always, small WRITEs) and @sgl.length is 0.
 *		Otherwise @sgl names a buffer the initiator registered:
 *		the target RDMA READs a WRITE payload from it, or RDMA
 *		WRITEs a reply payload (READ, STAT, LIST) of at most
 *		@sgl.length bytes into it.  A request whose reply payload
 *		is at most the inline size may name no buffer.
 *   reply	SEND of struct cvm_wire_hdr, followed in the same SEND by
 *		the reply payload when the request named no buffer (HELLO,
 *		small READs and STAT); otherwise the payload has been RDMA
 *		WRITten before it.  When the request named a buffer the
 *		reply is a SEND with Invalidate of @sgl.key, so the
 *		initiator's registration ends with it.
 *
 * Payload CRCs are not used: the RDMA link's own CRC covers every packet
 * (CVM_WIRE_F_DATA_CRC is still checked if a sender sets it).  Each queue
 * pair is its own connection with its own HELLO.
 */

/**
 * struct cvm_wire_rdma_sgl - a registered initiator buffer
 * @addr: remote address (the registration's iova).
 * @length: bytes; 0 when the payload is inline or there is none.
 * @key: remote key.
 */
struct cvm_wire_rdma_sgl {
	__le64	addr;
	__le32	length;
	__le32	key;
};

/* A request as SENT over RDMA. */
struct cvm_wire_rdma_cmd {
	struct cvm_wire_hdr		hdr;
	struct cvm_wire_rdma_sgl	sgl;
};

#define CVM_WIRE_RDMA_RECFMT	0

/**
 * struct cvm_wire_rdma_cm_req - rdma_cm private data of a connect request
 * @recfmt: CVM_WIRE_RDMA_RECFMT.
 * @queue_depth: requests the initiator keeps in flight on this queue pair
 *	at most (the target posts as many receives).
 * @inline_size: largest inline payload the initiator would like to send.
 * @qid: queue index on the initiator (for logs).
 * @reserved: must be zero.
 */
struct cvm_wire_rdma_cm_req {
	__le16	recfmt;
	__le16	queue_depth;
	__le32	inline_size;
	__le16	qid;
	__le16	reserved[3];
};

/**
 * struct cvm_wire_rdma_cm_rep - private data of the target's accept
 * @recfmt: CVM_WIRE_RDMA_RECFMT.
 * @queue_depth: accepted depth, at most the requested one.
 * @inline_size: accepted inline size, at most the requested one.
 * @reserved: must be zero.
 */
struct cvm_wire_rdma_cm_rep {
	__le16	recfmt;
	__le16	queue_depth;
	__le32	inline_size;
	__le64	reserved;
};

#endif /* _UAPI_LINUX_CVM_WIRE_H */
