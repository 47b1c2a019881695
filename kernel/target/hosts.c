// SPDX-License-Identifier: GPL-2.0
/*
 * The hosts each device lets in: their keys (cvm_wire.h,
 * "Authentication") and whether they may touch every volume, as cvmd
 * gave them (TARGET_HOSTS_SET).  One table per device id, replaced whole
 * and read under RCU: HELLO looks a key up, every request asks whether
 * its host is an agent.  Kept in memory only; cvmd gives them again when
 * it starts, and until then nobody gets in.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/xarray.h>

#include "target.h"

/* device id -> struct cvm_host_table */
static DEFINE_XARRAY(cvm_hosts);

struct cvm_host_table *cvm_hosts_alloc(u32 nr)
{
	struct cvm_host_table *t;

	/* CVM_TARGET_MAX_HOSTS entries make some 48 KiB: kvzalloc. */
	t = kvzalloc(struct_size(t, ents, nr), GFP_KERNEL);
	if (t)
		t->nr = nr;
	return t;
}

void cvm_hosts_free(struct cvm_host_table *t)
{
	if (t)
		kvfree_sensitive(t, struct_size(t, ents, t->nr));
}

static void cvm_hosts_free_rcu(struct rcu_head *head)
{
	cvm_hosts_free(container_of(head, struct cvm_host_table, rcu));
}

/* Replaces device @device_id's table with @t (NULL: none), which it owns. */
int cvm_hosts_set(u32 device_id, struct cvm_host_table *t)
{
	struct cvm_host_table *old;

	/* The xarray's own lock: the swap is one step, readers use RCU. */
	if (t && t->nr)
		old = xa_store(&cvm_hosts, device_id, t, GFP_KERNEL);
	else
		old = xa_erase(&cvm_hosts, device_id);
	if (xa_is_err(old)) {
		cvm_hosts_free(t);
		return xa_err(old);
	}
	if (t && !t->nr)
		cvm_hosts_free(t);
	if (old)
		call_rcu(&old->rcu, cvm_hosts_free_rcu);
	return 0;
}

static const struct cvm_host_ent *
cvm_hosts_find(const struct cvm_host_table *t, u64 host_id, u32 key_id,
	       bool any_key)
{
	u32 i;

	for (i = 0; t && i < t->nr; i++)
		if (t->ents[i].host_id == host_id &&
		    (any_key || t->ents[i].key_id == key_id))
			return &t->ents[i];
	return NULL;
}

bool cvm_hosts_key(u32 device_id, u64 host_id, u32 key_id, u8 *key)
{
	const struct cvm_host_ent *e;
	bool found;

	rcu_read_lock();
	e = cvm_hosts_find(xa_load(&cvm_hosts, device_id), host_id, key_id,
			   false);
	found = e;
	if (e && key)
		memcpy(key, e->key, CVM_WIRE_KEY_LEN);
	rcu_read_unlock();
	return found;
}

/* Has @host_id any key for @device_id, with all of @flags? */
static bool cvm_hosts_has(u32 device_id, u64 host_id, u32 flags)
{
	const struct cvm_host_ent *e;
	bool has;

	rcu_read_lock();
	e = cvm_hosts_find(xa_load(&cvm_hosts, device_id), host_id, 0, true);
	has = e && (e->flags & flags) == flags;
	rcu_read_unlock();
	return has;
}

bool cvm_hosts_known(u32 device_id, u64 host_id)
{
	return cvm_hosts_has(device_id, host_id, 0);
}

bool cvm_hosts_agent(u32 device_id, u64 host_id)
{
	return cvm_hosts_has(device_id, host_id, CVM_TARGET_HOST_F_ALL_VOLUMES);
}

u32 cvm_hosts_count(u32 device_id)
{
	const struct cvm_host_table *t;
	u32 nr;

	rcu_read_lock();
	t = xa_load(&cvm_hosts, device_id);
	nr = t ? t->nr : 0;
	rcu_read_unlock();
	return nr;
}

void cvm_hosts_exit(void)
{
	struct cvm_host_table *t;
	unsigned long id;

	xa_for_each(&cvm_hosts, id, t)
		cvm_hosts_free(t);
	xa_destroy(&cvm_hosts);
	rcu_barrier();
}
