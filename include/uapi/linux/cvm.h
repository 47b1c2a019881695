/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * CVM generic netlink interface.
 *
 * Two families share this header:
 *   "cvm"         registered by cvm.ko (initiator: maps, volumes)
 *   "cvm_target"  registered by cvm_target.ko (storage node: devices, listeners)
 *
 * Every command needs CAP_NET_ADMIN (GENL_ADMIN_PERM); TARGET_DEVICE_ADD
 * also needs CAP_SYS_ADMIN.  Every command is validated strictly: unknown attributes, wrong types and out-of-range values are
 * refused with an extack message.  New commands and attributes are only ever
 * appended, never renumbered.
 */
#ifndef _UAPI_LINUX_CVM_H
#define _UAPI_LINUX_CVM_H

#define CVM_GENL_NAME		"cvm"
#define CVM_TARGET_GENL_NAME	"cvm_target"
#define CVM_GENL_VERSION	1
#define CVM_GENL_MCGRP_EVENTS	"events"

/* Longest module version string returned in CVM_STATUS_ATTR_MODULE_VERSION. */
#define CVM_VERSION_LEN		32

/*
 * Commands.
 *
 * CVM_CMD_STATUS_GET (both families)
 *	Request:  no attributes.
 *	Reply:    CVM_ATTR_STATUS (nested, see below).
 *
 * CVM_CMD_MAP_SET ("cvm")
 *	Install a cluster map.  The map travels as the binary blob of
 *	kernel/common/map_codec.h (header, CRC32C, counts, records), which
 *	may be larger than one attribute (at most 64 KiB), so it is uploaded
 *	in chunks:
 *	  CVM_ATTR_MAP_CHUNK	binary, required, at most CVM_MAP_CHUNK_MAX
 *				bytes of the blob
 *	  CVM_ATTR_MAP_OFFSET	u32, where the chunk goes in the blob;
 *				default 0
 *	  CVM_ATTR_MAP_TOTAL_LEN u32, length of the whole blob, at most
 *				CVM_MAP_MAX_LEN; default: the chunk's length
 *				(the whole map in one message)
 *	Chunks come in order (each @offset is the end of the previous chunk)
 *	on one netlink socket.  @offset 0 starts a new upload and discards an
 *	unfinished one of the same socket; an unfinished upload of another
 *	socket makes it fail with EBUSY until that upload has been idle for
 *	CVM_MAP_UPLOAD_IDLE_SECS.  A chunk that does not complete the blob is
 *	only stored.  The chunk that completes it commits the map and must
 *	carry the rest of the map's state (refused on earlier chunks):
 *	  CVM_ATTR_MAP_PATHS	nested, required: how to reach each device
 *				(see CVM_ATTR_MAP_PATHS below)
 *	  CVM_ATTR_CLUSTER_ID	u64, optional (0), announced in HELLO
 *	  CVM_ATTR_HOST_ID	u64, optional (0), this host's id, in HELLO
 *	  CVM_ATTR_HOST_KEY	CVM_WIRE_KEY_LEN bytes, optional: this
 *				host's secret, from which the key for each
 *				device is derived (cvm_wire.h,
 *				"Authentication"); without it no target
 *				lets this host in
 *	  CVM_ATTR_KEY_ID	u32, optional (0), the secret's generation
 *	The commit decodes and validates the blob (the refusal names the
 *	first failed check in the extended ack), refuses an epoch not newer
 *	than the installed one (ESTALE), a map that drops the pool of an
 *	attached volume (EBUSY) and a path for a device the map lacks,
 *	computes every pool's PG table and then swaps the whole state in at
 *	once: I/O in flight finishes with the map it was placed with, new
 *	I/O uses the new one, nothing waits.
 *
 * CVM_CMD_HOST_KEY_SET ("cvm")
 *	Request:  CVM_ATTR_HOST_KEY and CVM_ATTR_KEY_ID (required).
 *	This host's secret changes (a rotation) without a new map: new
 *	connections derive their keys from it; live ones stay up.
 *
 * CVM_CMD_VOLUME_ATTACH ("cvm")
 *	Request:  CVM_ATTR_VOLUME with ID, POOL_ID, SIZE, OBJECT_SIZE,
 *		  ATTACH_EPOCH (required), NAME (optional).
 *	Reply:    CVM_ATTR_VOLUME with every field and MINOR: the volume is
 *		  /dev/cvm<MINOR>.
 *	The pool must exist in the installed map and be replicated; SIZE a
 *	non-zero multiple of 4096; OBJECT_SIZE a power of two from 4 KiB to
 *	64 MiB; ATTACH_EPOCH non-zero; the volume id not attached already
 *	(EEXIST).
 *
 * CVM_CMD_VOLUME_DETACH ("cvm")
 *	Request:  CVM_ATTR_VOLUME with ID (required) and FLAGS (optional).
 *	Removes /dev/cvmN after the I/O in flight has completed.  A device
 *	that is open is refused (EBUSY) unless FLAGS has CVM_VOLUME_F_FORCE:
 *	then the device goes away under its openers, whose later I/O fails.
 *
 * CVM_CMD_VOLUME_LIST ("cvm", dump)
 *	Request:  no attributes.
 *	Reply:    one message per attached volume, CVM_ATTR_VOLUME as in the
 *		  VOLUME_ATTACH reply.
 *
 * CVM_CMD_EVENT_PATH_DOWN, CVM_CMD_EVENT_PATH_UP ("cvm", events only)
 *	Multicast on the CVM_GENL_MCGRP_EVENTS group, never requests (a
 *	request with these commands is refused: EOPNOTSUPP).
 *	PATH_DOWN: the live connection to a device was lost (the target
 *	closed it, or it failed); the initiator reconnects with backoff.
 *	Writes meanwhile complete on the reachable replicas and the objects
 *	the device missed are recorded as stale for it.  PATH_UP: a
 *	connection to a device was made (also the first one after a map
 *	install); stale objects of that device are then resynchronised from
 *	a fresh replica by the initiator.
 *	  CVM_ATTR_EVENT	nested cvm_event_attr (see below)
 */
enum cvm_cmd {
	CVM_CMD_UNSPEC,
	CVM_CMD_STATUS_GET,
	CVM_CMD_MAP_SET,
	CVM_CMD_VOLUME_ATTACH,
	CVM_CMD_VOLUME_DETACH,
	CVM_CMD_VOLUME_LIST,
	CVM_CMD_TARGET_DEVICE_ADD,
	CVM_CMD_TARGET_DEVICE_REMOVE,
	CVM_CMD_TARGET_LISTEN,
	CVM_CMD_TARGET_UNLISTEN,
	CVM_CMD_EVENT_PATH_DOWN,
	CVM_CMD_EVENT_PATH_UP,
	CVM_CMD_TARGET_VOLUME_FENCE,
	CVM_CMD_TARGET_DEVICE_LIST,
	CVM_CMD_TARGET_HOSTS_SET,
	CVM_CMD_HOST_KEY_SET,
	__CVM_CMD_MAX,
};
#define CVM_CMD_MAX (__CVM_CMD_MAX - 1)

/* Top-level attributes. */
enum cvm_attr {
	CVM_ATTR_UNSPEC,
	CVM_ATTR_STATUS,		/* nested cvm_status_attr */
	CVM_ATTR_MAP_CHUNK,		/* binary, see CVM_CMD_MAP_SET */
	CVM_ATTR_MAP_OFFSET,		/* u32 */
	CVM_ATTR_MAP_TOTAL_LEN,		/* u32 */
	CVM_ATTR_MAP_PATHS,		/* nested, see below */
	CVM_ATTR_CLUSTER_ID,		/* u64 */
	CVM_ATTR_HOST_ID,		/* u64 */
	CVM_ATTR_HOST_KEY,		/* CVM_WIRE_KEY_LEN bytes */
	CVM_ATTR_VOLUME,		/* nested cvm_volume_attr */
	CVM_ATTR_TARGET_DEVICE,		/* nested cvm_target_device_attr */
	CVM_ATTR_TARGET_LISTENER,	/* nested cvm_target_listener_attr */
	CVM_ATTR_EVENT,			/* nested cvm_event_attr, events only */
	CVM_ATTR_KEY_ID,		/* u32 */
	CVM_ATTR_TARGET_HOSTS,		/* nested array of cvm_target_host_attr */
	__CVM_ATTR_MAX,
};
#define CVM_ATTR_MAX (__CVM_ATTR_MAX - 1)

/* Which module answered a status query. */
enum cvm_role {
	CVM_ROLE_INITIATOR = 1,
	CVM_ROLE_TARGET = 2,
};

/*
 * CVM_ATTR_STATUS
 *	CVM_STATUS_ATTR_ROLE		u32, enum cvm_role
 *	CVM_STATUS_ATTR_MODULE_VERSION	string, at most CVM_VERSION_LEN bytes
 *	CVM_STATUS_ATTR_GENL_VERSION	u32, CVM_GENL_VERSION
 *	CVM_STATUS_ATTR_WIRE_VERSION	u32, CVM_WIRE_VERSION (cvm_wire.h)
 *	CVM_STATUS_ATTR_MAP_EPOCH	u64, epoch of the installed map, 0 = none
 *	CVM_STATUS_ATTR_OBJECTS		u32, volumes attached (initiator) or
 *					backing devices served (target)
 *	CVM_STATUS_ATTR_STALE_OBJECTS	u64, initiator only: (device, volume,
 *					object) copies recorded as stale
 *					(a write missed them) and not yet
 *					resynchronised; 0 when every replica
 *					the initiator wrote is up to date
 *	CVM_STATUS_ATTR_CONNECTIONS	u32, target only: connections its
 *					listeners accepted and still hold
 *	CVM_STATUS_ATTR_PINNED_BYTES	u64, target only: payload bytes of
 *					the requests in flight on them, as
 *					charged against the limits HELLO
 *					agreed (cvm_wire.h)
 */
enum cvm_status_attr {
	CVM_STATUS_ATTR_UNSPEC,
	CVM_STATUS_ATTR_ROLE,
	CVM_STATUS_ATTR_MODULE_VERSION,
	CVM_STATUS_ATTR_GENL_VERSION,
	CVM_STATUS_ATTR_WIRE_VERSION,
	CVM_STATUS_ATTR_MAP_EPOCH,
	CVM_STATUS_ATTR_OBJECTS,
	CVM_STATUS_ATTR_PAD,
	CVM_STATUS_ATTR_STALE_OBJECTS,
	CVM_STATUS_ATTR_CONNECTIONS,
	CVM_STATUS_ATTR_PINNED_BYTES,
	__CVM_STATUS_ATTR_MAX,
};
#define CVM_STATUS_ATTR_MAX (__CVM_STATUS_ATTR_MAX - 1)

/* CVM_CMD_MAP_SET upload limits. */
#define CVM_MAP_CHUNK_MAX		65024
#define CVM_MAP_MAX_LEN			(64U << 20)
#define CVM_MAP_UPLOAD_IDLE_SECS	10

/*
 * CVM_ATTR_MAP_PATHS: a list of CVM_MAP_PATHS_ATTR_PATH, one per device of
 * the map that I/O may be sent to; a device without a path is unreachable.
 *	CVM_MAP_PATHS_ATTR_PATH		nested cvm_path_attr
 *
 *	CVM_PATH_ATTR_DEVICE_ID		u32, device id in the map (required)
 *	CVM_PATH_ATTR_ADDR		string, numeric IPv4 or IPv6 address of
 *					the target serving it (required)
 *	CVM_PATH_ATTR_PORT		u16, its port (required, non-zero)
 *	CVM_PATH_ATTR_TRANSPORT		string, "tcp" (default) or "rdma"
 *
 * One connection is kept per device path (the wire header has no device
 * field: HELLO names the device); it is made when the map is installed and
 * remade with backoff when lost.  A path unchanged between two maps keeps
 * its connection.
 */
enum cvm_map_paths_attr {
	CVM_MAP_PATHS_ATTR_UNSPEC,
	CVM_MAP_PATHS_ATTR_PATH,
	__CVM_MAP_PATHS_ATTR_MAX,
};
#define CVM_MAP_PATHS_ATTR_MAX (__CVM_MAP_PATHS_ATTR_MAX - 1)

/* Longest CVM_PATH_ATTR_ADDR and CVM_PATH_ATTR_TRANSPORT, with the NUL. */
#define CVM_PATH_ADDR_LEN		48
#define CVM_PATH_TRANSPORT_LEN		16

enum cvm_path_attr {
	CVM_PATH_ATTR_UNSPEC,
	CVM_PATH_ATTR_DEVICE_ID,
	CVM_PATH_ATTR_ADDR,
	CVM_PATH_ATTR_PORT,
	CVM_PATH_ATTR_TRANSPORT,
	__CVM_PATH_ATTR_MAX,
};
#define CVM_PATH_ATTR_MAX (__CVM_PATH_ATTR_MAX - 1)

/* Longest CVM_VOLUME_ATTR_NAME, with its NUL. */
#define CVM_VOLUME_NAME_LEN		64

/*
 * /sys/block/cvmN/cvm/latency: the volume's request latency, from the
 * request's start in the block layer (when cvm.ko first takes it if the
 * queue keeps no timestamps) to its end, time held through an outage
 * included, since attach.  Two lines, "read" and "write", each:
 *	<name> <count> <sum_ns> <b0> ... <b(CVM_LATENCY_BUCKETS - 1)>
 * Bucket i counts the requests of more than 2^(i-1) and at most 2^i
 * microseconds (b0: at most 1 us), the last one everything longer too;
 * Prometheus's cumulative buckets are their running sum.
 */
#define CVM_LATENCY_BUCKETS		24

/*
 * CVM_VOLUME_ATTR_FLAGS bits.
 *
 * CVM_VOLUME_F_FORCE	VOLUME_DETACH: detach even while the device is open.
 *			Refused in VOLUME_ATTACH.
 */
#define CVM_VOLUME_F_FORCE		(1U << 0)
#define CVM_VOLUME_F_ALL		CVM_VOLUME_F_FORCE

/*
 * CVM_ATTR_VOLUME
 *	CVM_VOLUME_ATTR_ID		u64, volume id (cvmd's)
 *	CVM_VOLUME_ATTR_POOL_ID		u32, pool in the map
 *	CVM_VOLUME_ATTR_SIZE		u64, bytes, multiple of 4096
 *	CVM_VOLUME_ATTR_OBJECT_SIZE	u32, bytes, power of two, 4 KiB..64 MiB
 *	CVM_VOLUME_ATTR_ATTACH_EPOCH	u64, non-zero, sent with every request
 *					(targets fence older epochs)
 *	CVM_VOLUME_ATTR_NAME		string, at most CVM_VOLUME_NAME_LEN
 *					bytes with the NUL
 *	CVM_VOLUME_ATTR_MINOR		u32, replies only: /dev/cvm<MINOR>
 *	CVM_VOLUME_ATTR_FLAGS		u32, CVM_VOLUME_F_* (requests only)
 *	CVM_VOLUME_ATTR_STRIPE_UNIT	u32, bytes: the EC stripe unit, a power
 *					of two from 4 KiB to 1 MiB and at most
 *					OBJECT_SIZE; required to attach a
 *					volume of an EC pool, refused for a
 *					replicated one
 *	CVM_VOLUME_ATTR_BACKFILLED	u64, replies only: the map epoch
 *					whose pinned PGs this host has
 *					copied to their up rows for the
 *					volume (0: not yet); see
 *					kernel/initiator/backfill.c
 */
enum cvm_volume_attr {
	CVM_VOLUME_ATTR_UNSPEC,
	CVM_VOLUME_ATTR_ID,
	CVM_VOLUME_ATTR_POOL_ID,
	CVM_VOLUME_ATTR_SIZE,
	CVM_VOLUME_ATTR_OBJECT_SIZE,
	CVM_VOLUME_ATTR_ATTACH_EPOCH,
	CVM_VOLUME_ATTR_NAME,
	CVM_VOLUME_ATTR_MINOR,
	CVM_VOLUME_ATTR_FLAGS,
	CVM_VOLUME_ATTR_PAD,
	CVM_VOLUME_ATTR_STRIPE_UNIT,
	CVM_VOLUME_ATTR_BACKFILLED,
	__CVM_VOLUME_ATTR_MAX,
};
#define CVM_VOLUME_ATTR_MAX (__CVM_VOLUME_ATTR_MAX - 1)

/*
 * Target commands ("cvm_target" family).
 *
 * CVM_CMD_TARGET_DEVICE_ADD
 *	Request:  CVM_ATTR_TARGET_DEVICE with ID, PATH (required), FLAGS
 *		  (optional).
 *	Opens PATH exclusively and serves its object store as device ID.  A
 *	device without a valid CVM superblock is refused (ENOMEDIUM) unless
 *	FLAGS has CVM_TARGET_DEVICE_F_FORMAT; a device that has one (valid
 *	or damaged) is never reformatted unless FLAGS has FORMAT and FORCE
 *	(EEXIST otherwise).  A superblock or object table that fails its
 *	checks is refused (EUCLEAN) with the reason in the extended ack and
 *	the kernel log.  An ID or PATH already served: EEXIST.  Needs
 *	CAP_SYS_ADMIN (EPERM without), checked before anything else.
 *
 * CVM_CMD_TARGET_DEVICE_REMOVE
 *	Request:  CVM_ATTR_TARGET_DEVICE with ID (required).
 *	New requests for the device fail; waits for those in flight, then
 *	closes the backing device.  Unknown ID: ENODEV.
 *
 * CVM_CMD_TARGET_LISTEN
 *	Request:  CVM_ATTR_TARGET_LISTENER with ADDR, PORT (required),
 *		  TRANSPORT (optional, "tcp").
 *	The same ADDR and PORT twice: EEXIST.  Every connection must
 *	authenticate its host with a key given by TARGET_HOSTS_SET for the
 *	device it names (CVM_WIRE_STATUS_AUTH otherwise): there is no
 *	unauthenticated mode.
 *
 * CVM_CMD_TARGET_HOSTS_SET
 *	Request:  CVM_ATTR_TARGET_DEVICE with ID (required);
 *		  CVM_ATTR_TARGET_HOSTS (optional: absent or empty, no host
 *		  may connect to the device), at most CVM_TARGET_MAX_HOSTS
 *		  entries, each nested:
 *		    CVM_TARGET_HOST_ATTR_HOST_ID  u64, required (0: a node
 *						  that is none of the cluster's
 *						  hosts, with the RocksDB store)
 *		    CVM_TARGET_HOST_ATTR_KEY_ID   u32, required
 *		    CVM_TARGET_HOST_ATTR_KEY      CVM_WIRE_KEY_LEN bytes,
 *						  required: the host's key for
 *						  this device
 *		    CVM_TARGET_HOST_ATTR_FLAGS    u32, CVM_TARGET_HOST_F_*
 *	Replaces the hosts that may connect to device ID (which need not be
 *	served yet) and their keys; a host may appear once per key id (two
 *	while its key is rotated), with the same FLAGS.  A host without
 *	CVM_TARGET_HOST_F_ALL_VOLUMES may touch only the volumes fenced for
 *	it (TARGET_VOLUME_FENCE with HOST_ID), and of volume 0 only STAT it
 *	(keep-alives);
 *	other requests are answered CVM_WIRE_STATUS_DENIED.  Connections of a
 *	host no longer listed are closed (those made with a key id no longer
 *	listed stay: a rotation does not cut a host's I/O).  Keys are never
 *	returned.
 *	DEVICE_LIST reports how many entries a device has (HOSTS).
 *
 * CVM_CMD_TARGET_UNLISTEN
 *	Request:  CVM_ATTR_TARGET_LISTENER with ADDR, PORT (required).
 *	Stops listening and closes the connections it accepted.  Unknown
 *	listener: ENOENT.
 *
 * CVM_CMD_TARGET_VOLUME_FENCE
 *	Request:  CVM_ATTR_VOLUME with ID and ATTACH_EPOCH (required, non-
 *		  zero), CVM_ATTR_HOST_ID (optional: the attaching host, the
 *		  only one without CVM_TARGET_HOST_F_ALL_VOLUMES let at the
 *		  volume; 0 or absent, none); CVM_ATTR_TARGET_DEVICE with ID
 *		  (optional: one device; absent: every device served).
 *	The volume's newest attachment is ATTACH_EPOCH: from now on the
 *	device(s) answer requests of the volume that carry an older attach
 *	epoch CVM_WIRE_STATUS_STALE_ATTACH (reads and STAT with attach epoch
 *	0, which names no attachment, still pass).  Returns once the epoch is
 *	on the device(s) and every request accepted before has been
 *	answered.  An epoch older than one the device knows: ESTALE; the
 *	device's fence table full: ENOSPC; requests still in flight after
 *	30 s: ETIMEDOUT.  The same epoch again succeeds.
 *
 * CVM_CMD_TARGET_DEVICE_LIST (dump)
 *	Request:  no attributes.
 *	Reply:    one message per device served, CVM_ATTR_TARGET_DEVICE with
 *		  ID, PATH, CAPACITY, USED, OBJECTS and INTENTS.  Every object
 *		  shard takes one whole extent, so USED is OBJECTS times the
 *		  extent size; it goes down when whole objects are discarded.
 *
 * CVM_STATUS_ATTR_OBJECTS of the target's STATUS_GET is the number of
 * backing devices served.
 */

/* Longest CVM_TARGET_DEVICE_ATTR_PATH, with its NUL. */
#define CVM_TARGET_PATH_LEN		256

/*
 * CVM_TARGET_DEVICE_ATTR_FLAGS bits; unknown bits are refused.
 *
 * CVM_TARGET_DEVICE_F_FORMAT	DEVICE_ADD: write a new, empty object store.
 * CVM_TARGET_DEVICE_F_FORCE	DEVICE_ADD with FORMAT: even over an
 *				existing CVM superblock (destroys its data).
 */
#define CVM_TARGET_DEVICE_F_FORMAT	(1U << 0)
#define CVM_TARGET_DEVICE_F_FORCE	(1U << 1)
#define CVM_TARGET_DEVICE_F_ALL		(CVM_TARGET_DEVICE_F_FORMAT | \
					 CVM_TARGET_DEVICE_F_FORCE)

/*
 * CVM_ATTR_TARGET_DEVICE
 *	CVM_TARGET_DEVICE_ATTR_ID	u32, the device id (cvmd's), named by
 *					initiators in HELLO (cvm_wire.h)
 *	CVM_TARGET_DEVICE_ATTR_PATH	string, block device path, at most
 *					CVM_TARGET_PATH_LEN bytes with the NUL
 *	CVM_TARGET_DEVICE_ATTR_FLAGS	u32, CVM_TARGET_DEVICE_F_*
 *	CVM_TARGET_DEVICE_ATTR_CAPACITY	u64, DEVICE_LIST replies only: bytes
 *					of object space (whole extents)
 *	CVM_TARGET_DEVICE_ATTR_USED	u64, replies only: bytes allocated
 *	CVM_TARGET_DEVICE_ATTR_OBJECTS	u64, replies only: object shards held
 *	CVM_TARGET_DEVICE_ATTR_INTENTS	u64, replies only: of them, those
 *					whose write-intent bit is set (being
 *					written, or missed by a replica)
 *	CVM_TARGET_DEVICE_ATTR_IO_ERRORS u64, replies only: requests the
 *					device failed (CVM_WIRE_STATUS_IO_ERROR)
 *					since it was added
 *	CVM_TARGET_DEVICE_ATTR_HOSTS	u32, replies only: entries of the
 *					device's TARGET_HOSTS_SET
 *	CVM_TARGET_DEVICE_ATTR_COPIED	u64, replies only: bytes of copies
 *					written to the device since it was
 *					added (WRITE with CVM_WIRE_F_VERSIONED:
 *					cvm.ko's replicated resync and backfill,
 *					cvmd's backfill; cvm.ko's EC shard
 *					rebuilds are not counted)
 */
enum cvm_target_device_attr {
	CVM_TARGET_DEVICE_ATTR_UNSPEC,
	CVM_TARGET_DEVICE_ATTR_ID,
	CVM_TARGET_DEVICE_ATTR_PATH,
	CVM_TARGET_DEVICE_ATTR_FLAGS,
	CVM_TARGET_DEVICE_ATTR_PAD,
	CVM_TARGET_DEVICE_ATTR_CAPACITY,
	CVM_TARGET_DEVICE_ATTR_USED,
	CVM_TARGET_DEVICE_ATTR_OBJECTS,
	CVM_TARGET_DEVICE_ATTR_INTENTS,
	CVM_TARGET_DEVICE_ATTR_IO_ERRORS,
	CVM_TARGET_DEVICE_ATTR_COPIED,
	CVM_TARGET_DEVICE_ATTR_HOSTS,
	__CVM_TARGET_DEVICE_ATTR_MAX,
};
#define CVM_TARGET_DEVICE_ATTR_MAX (__CVM_TARGET_DEVICE_ATTR_MAX - 1)

/* Most entries of one device's TARGET_HOSTS_SET. */
#define CVM_TARGET_MAX_HOSTS		1024

/*
 * CVM_TARGET_HOST_ATTR_FLAGS bits; unknown bits are refused.
 *
 * CVM_TARGET_HOST_F_ALL_VOLUMES	the host may touch every volume on the
 *					device (cvmd's recovery agent)
 */
#define CVM_TARGET_HOST_F_ALL_VOLUMES	(1U << 0)
#define CVM_TARGET_HOST_F_ALL		CVM_TARGET_HOST_F_ALL_VOLUMES

enum cvm_target_host_attr {
	CVM_TARGET_HOST_ATTR_UNSPEC,
	CVM_TARGET_HOST_ATTR_HOST_ID,
	CVM_TARGET_HOST_ATTR_KEY_ID,
	CVM_TARGET_HOST_ATTR_KEY,
	CVM_TARGET_HOST_ATTR_FLAGS,
	CVM_TARGET_HOST_ATTR_PAD,
	__CVM_TARGET_HOST_ATTR_MAX,
};
#define CVM_TARGET_HOST_ATTR_MAX (__CVM_TARGET_HOST_ATTR_MAX - 1)

/*
 * CVM_ATTR_TARGET_LISTENER
 *	CVM_TARGET_LISTENER_ATTR_TRANSPORT	string, "tcp" (default); at
 *						most CVM_PATH_TRANSPORT_LEN
 *	CVM_TARGET_LISTENER_ATTR_ADDR		string, numeric IPv4 or IPv6
 *						address, at most
 *						CVM_PATH_ADDR_LEN
 *	CVM_TARGET_LISTENER_ATTR_PORT		u16, non-zero
 */
enum cvm_target_listener_attr {
	CVM_TARGET_LISTENER_ATTR_UNSPEC,
	CVM_TARGET_LISTENER_ATTR_TRANSPORT,
	CVM_TARGET_LISTENER_ATTR_ADDR,
	CVM_TARGET_LISTENER_ATTR_PORT,
	__CVM_TARGET_LISTENER_ATTR_MAX,
};
#define CVM_TARGET_LISTENER_ATTR_MAX (__CVM_TARGET_LISTENER_ATTR_MAX - 1)

/*
 * CVM_ATTR_EVENT (CVM_CMD_EVENT_PATH_DOWN / _UP)
 *	CVM_EVENT_ATTR_DEVICE_ID	u32, the device of the path
 *	CVM_EVENT_ATTR_ADDR		string, the target's address and port
 *					as the kernel prints them
 *					("127.0.0.1:7001", "[::1]:7001")
 *	CVM_EVENT_ATTR_STALE_OBJECTS	u64, objects recorded as stale for
 *					the device when the event was sent
 */
enum cvm_event_attr {
	CVM_EVENT_ATTR_UNSPEC,
	CVM_EVENT_ATTR_DEVICE_ID,
	CVM_EVENT_ATTR_ADDR,
	CVM_EVENT_ATTR_STALE_OBJECTS,
	CVM_EVENT_ATTR_PAD,
	__CVM_EVENT_ATTR_MAX,
};
#define CVM_EVENT_ATTR_MAX (__CVM_EVENT_ATTR_MAX - 1)

#endif /* _UAPI_LINUX_CVM_H */
