// SPDX-License-Identifier: GPL-2.0
/*
 * Per-volume request latency for monitoring: a log2 histogram per CPU,
 * summed when /sys/block/cvmN/cvm/latency is read (its format is in
 * <linux/cvm.h>).  The block layer's own counters (/sys/block/cvmN/stat)
 * give IOPS and bytes; only the distribution of latency is ours.
 */
#include <linux/log2.h>
#include <linux/percpu.h>
#include <linux/sysfs.h>

#include "initiator.h"

struct cvm_latency {
	u64	count[2][CVM_LATENCY_BUCKETS];
	u64	sum_ns[2];
};

int cvm_stats_init(struct cvm_volume *vol)
{
	vol->latency = alloc_percpu(struct cvm_latency);
	return vol->latency ? 0 : -ENOMEM;
}

void cvm_stats_free(struct cvm_volume *vol)
{
	free_percpu(vol->latency);
	vol->latency = NULL;
}

/* A request of @vol that started at @start_ns ended now. */
void cvm_stats_record(struct cvm_volume *vol, struct request *rq,
		      u64 start_ns)
{
	enum req_op op = req_op(rq);
	unsigned int dir, bucket;
	u64 ns, us;

	if (op != REQ_OP_READ && op != REQ_OP_WRITE)
		return;
	dir = op == REQ_OP_WRITE;
	ns = ktime_get_ns() - start_ns;
	us = div_u64(ns + NSEC_PER_USEC - 1, NSEC_PER_USEC);
	bucket = us <= 1 ? 0 : order_base_2(us);
	if (bucket >= CVM_LATENCY_BUCKETS)
		bucket = CVM_LATENCY_BUCKETS - 1;
	this_cpu_inc(vol->latency->count[dir][bucket]);
	this_cpu_add(vol->latency->sum_ns[dir], ns);
}

static ssize_t latency_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	static const char * const names[2] = { "read", "write" };
	struct cvm_volume *vol = dev_to_disk(dev)->private_data;
	u64 count[CVM_LATENCY_BUCKETS];
	ssize_t len = 0;
	unsigned int dir, i;
	int cpu;

	for (dir = 0; dir < 2; dir++) {
		u64 total = 0, sum_ns = 0;

		memset(count, 0, sizeof(count));
		for_each_possible_cpu(cpu) {
			const struct cvm_latency *l = per_cpu_ptr(vol->latency, cpu);

			for (i = 0; i < CVM_LATENCY_BUCKETS; i++)
				count[i] += READ_ONCE(l->count[dir][i]);
			sum_ns += READ_ONCE(l->sum_ns[dir]);
		}
		for (i = 0; i < CVM_LATENCY_BUCKETS; i++)
			total += count[i];
		len += sysfs_emit_at(buf, len, "%s %llu %llu", names[dir], total,
				     sum_ns);
		for (i = 0; i < CVM_LATENCY_BUCKETS; i++)
			len += sysfs_emit_at(buf, len, " %llu", count[i]);
		len += sysfs_emit_at(buf, len, "\n");
	}
	return len;
}
static DEVICE_ATTR_RO(latency);

static struct attribute *cvm_disk_attrs[] = {
	&dev_attr_latency.attr,
	NULL,
};

static const struct attribute_group cvm_disk_attr_group = {
	.name	= "cvm",
	.attrs	= cvm_disk_attrs,
};

const struct attribute_group *cvm_disk_attr_groups[] = {
	&cvm_disk_attr_group,
	NULL,
};
