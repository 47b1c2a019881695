/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * CVM generic netlink interface.
 *
 * Two families share this header:
 *   "cvm"         registered by cvm.ko (initiator: maps, volumes)
 *   "cvm_target"  registered by cvm_target.ko (storage node: devices, listeners)
 *
 * Every command needs CAP_NET_ADMIN (GENL_ADMIN_PERM) and is validated
 * strictly: unknown attributes, wrong types and out-of-range values are
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
 */
enum cvm_cmd {
	CVM_CMD_UNSPEC,
	CVM_CMD_STATUS_GET,
	__CVM_CMD_MAX,
};
#define CVM_CMD_MAX (__CVM_CMD_MAX - 1)

/* Top-level attributes. */
enum cvm_attr {
	CVM_ATTR_UNSPEC,
	CVM_ATTR_STATUS,		/* nested cvm_status_attr */
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
	__CVM_STATUS_ATTR_MAX,
};
#define CVM_STATUS_ATTR_MAX (__CVM_STATUS_ATTR_MAX - 1)

#endif /* _UAPI_LINUX_CVM_H */
