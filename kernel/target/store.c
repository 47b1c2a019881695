// SPDX-License-Identifier: GPL-2.0
/*
 * The target's object store: object shards (volume id, object number,
 * shard) kept on a backing block device.
 *
 * Versioning rule.  CVM_STORE_VERSION (superblock @version) names the whole
 * on-disk format: layout, magic numbers, entry and tail formats and the
 * meaning of every field and flag.  Any change an older build would misread
 * takes a new version, described here with what changed; a version's
 * format is never changed after release.  A build reads exactly the
 * versions it lists here and refuses any other device at TARGET_DEVICE_ADD
 * (EUCLEAN), logging both versions ("on-disk format version 2, this build
 * reads 1") and writing nothing.  Where a build can read an older version
 * it converts it explicitly, in one step that ends with the new superblock
 * written last; it never writes an older version.  FORMAT always writes
 * the current version.
 *
 * Versions:
 *   1	superblock, object table, allocation bitmap, extents.
 *   2	adds the fence table (fence.c): the superblock's former reserved
 *	word is @fence_blocks, and the table sits between the bitmap and the
 *	data.  A version-1 build would serve a device without refusing the
 *	older attachments it records, so version 1 is not read: reformat.
 *   3	object shard versions and write intent (cvm_wire.h, "Object shard
 *	versions"): the table entry's former reserved word is @version and
 *	flag bit 1 is CVM_OBJ_F_INTENT.  Table and bitmap blocks are sealed
 *	per 512-byte sector (a tail and CRC in each, entries never crossing
 *	one), so a write torn at any sector boundary leaves every sector old
 *	or new and the device loadable: 120 entries and 30720 bits per block.
 *	The table's size changes, so version 2 is not read: reformat.
 *
 * On-disk format, version 3 (all fields little endian, 4 KiB blocks):
 *
 *	block 0			superblock (struct cvm_sb_disk, CRC32C)
 *	table_start ..		object table: one 32-byte entry per extent;
 *				each 512-byte sector holds 15 entries and a
 *				struct cvm_meta_tail (magic, sector number in
 *				the region, CRC32C): 120 entries per block
 *	bitmap_start ..		allocation bitmap: one bit per extent, 3840
 *				bits and a tail per sector, 30720 per block
 *	bitmap_start +		fence table: fence_blocks blocks of 32-byte
 *	 bitmap_blocks ..	entries (volume id, attach epoch, CRC32C each),
 *				16 per sector (fence.c)
 *	data_start (1 MiB	extents, each CVM_EXTENT_SIZE (4 MiB) long
 *	 aligned) ..
 *
 * Extents have one fixed size, the largest object shard this store holds:
 * an object shard is one extent, so the table is indexed by extent number
 * and needs no extent lists.  Requests beyond 4 MiB inside an object are
 * answered CVM_WIRE_STATUS_INVALID.
 *
 * Allocation is thin: an object shard's extent is taken on its first
 * write.  Never-written ranges read as zeroes: an extent is zeroed
 * (blkdev_issue_zeroout(), WRITE_ZEROES where the device has it) when it
 * is allocated, before its table entry is written; this costs one zeroing
 * per allocation and keeps overwrites free of metadata, where a written-
 * sector bitmap per extent would need a metadata write on the first write
 * of every sector.  A READ of an object that has no extent returns zeroes
 * without I/O.
 *
 * Ordering, so that a crash at any point leaves a loadable store:
 *   allocate:	set bitmap bit, write bitmap block; zero the extent; write
 *		the table block with PREFLUSH|FUA (the bitmap and the zeroes
 *		are durable before the entry is); then the data write.
 *   remove:	clear the entry, write the table block with FUA; clear the
 *		bit, write the bitmap block.
 *   intent:	the first change (WRITE, WRITE_ZEROES, DISCARD) to a shard
 *		without its intent bit sets the bit and writes the table block
 *		with FUA before the change is carried out; allocation by a
 *		WRITE sets it in the new entry.  BUMP (PREFLUSH|FUA), and
 *		SET_VERSION and CLEAN (after a flush of the device, so the data
 *		they vouch for is durable first) rewrite the entry likewise.
 *		Overwrites of a shard whose bit is set write no metadata.
 * So the on-disk bitmap always covers the table.  At load a bit without an
 * entry (a crash between the two writes) is reclaimed; an entry without a
 * bit, a bad CRC, a bad sector number or a duplicate key refuses the
 * device.  Each change rewrites one 4 KiB block of which one sector
 * changes; the device's sector is the unit of atomicity, so a power cut
 * tearing that write leaves each sector whole, old or new: never a bad CRC.
 *
 * The index is a hash table (key -> extent) rebuilt from the table at load.
 * Data requests are bios submitted asynchronously from the connection's
 * io_work; their end_io sends the reply.  Allocation, REMOVE, WRITE_ZEROES,
 * DISCARD and PREALLOC run on cvm_store_wq (process context), serialised
 * per device by @meta_lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/log2.h>
#include <linux/min_heap.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uuid.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "../transport/transport.h"
#include "fence.h"
#include "target.h"

#define CVM_SB_MAGIC		0x31305342544d5643ULL	/* "CVMTSB01" */
#define CVM_TABLE_MAGIC		0x4c4254544d5643ULL	/* "CVMTTBL" */
#define CVM_BITMAP_MAGIC	0x504d42544d5643ULL	/* "CVMTBMP" */
#define CVM_STORE_VERSION	3
#define CVM_BLK_SIZE		4096U
#define CVM_BLK_SECTORS		(CVM_BLK_SIZE >> SECTOR_SHIFT)
#define CVM_EXTENT_SHIFT	22
#define CVM_EXTENT_SIZE		(1U << CVM_EXTENT_SHIFT)
#define CVM_EXTENT_BLOCKS	(CVM_EXTENT_SIZE / CVM_BLK_SIZE)
#define CVM_EXTENT_SECTORS	(CVM_EXTENT_SIZE >> SECTOR_SHIFT)
#define CVM_DATA_ALIGN_BLOCKS	256U			/* 1 MiB */
#define CVM_FENCE_BLOCKS	16U	/* 2048 volumes per device */

/**
 * struct cvm_sb_disk - superblock, at the start of block 0
 * @crc: CRC32C of the preceding bytes of this struct.
 * Block and extent numbers are in 4 KiB blocks from the device start.
 */
struct cvm_sb_disk {
	__le64	magic;
	__le32	version;
	__le32	device_id;
	u8	uuid[16];
	__le64	dev_sectors;
	__le32	block_size;
	__le32	extent_shift;
	__le64	nr_extents;
	__le64	table_start;
	__le64	table_blocks;
	__le64	bitmap_start;
	__le64	bitmap_blocks;
	__le64	data_start;
	__le32	fence_blocks;
	__le32	crc;
};

#define CVM_OBJ_F_USED		(1U << 0)
#define CVM_OBJ_F_INTENT	(1U << 1)	/* version 3 */
#define CVM_OBJ_F_ALL		(CVM_OBJ_F_USED | CVM_OBJ_F_INTENT)

/*
 * struct cvm_obj_disk - object table entry of one extent
 * @version: the shard's version (version 3; zero in version 2)
 */
struct cvm_obj_disk {
	__le64	volume_id;
	__le64	object_no;
	__le64	snap_seq;
	__le16	shard;
	__le16	flags;
	__le32	version;
};

/* struct cvm_meta_tail - last 32 bytes of every table and bitmap sector */
struct cvm_meta_tail {
	__le64	magic;
	__le64	sector_no;	/* index inside its region */
	__le32	reserved[3];
	__le32	crc;		/* CRC32C of the sector's preceding bytes */
};

#define CVM_META_SECTOR		512U
#define CVM_META_SECTORS	(CVM_BLK_SIZE / CVM_META_SECTOR)
#define CVM_META_PAYLOAD	(CVM_META_SECTOR - sizeof(struct cvm_meta_tail))
#define CVM_ENTS_PER_SECTOR	(CVM_META_PAYLOAD / sizeof(struct cvm_obj_disk))
#define CVM_ENTS_PER_BLOCK	(CVM_ENTS_PER_SECTOR * CVM_META_SECTORS)
#define CVM_BITS_PER_SECTOR	(CVM_META_PAYLOAD * 8)
#define CVM_BITS_PER_BLOCK	(CVM_BITS_PER_SECTOR * CVM_META_SECTORS)

static_assert(sizeof(struct cvm_sb_disk) == 104);
static_assert(sizeof(struct cvm_obj_disk) == 32);
static_assert(sizeof(struct cvm_meta_tail) == 32);
static_assert(CVM_ENTS_PER_BLOCK == 120);
static_assert(CVM_BITS_PER_BLOCK == 30720);

struct cvm_store_obj {
	struct hlist_node	node;
	u64			volume_id;
	u64			object_no;
	u64			snap_seq;
	u16			shard;
	u32			extent;
	atomic_t		inflight;
	u32			version;	/* changed under meta_lock */
	bool			intent;		/* set under meta_lock */
};

struct cvm_store_dev {
	u32			id;
	char			path[CVM_TARGET_PATH_LEN];
	struct block_device	*bdev;
	refcount_t		ref;
	u64			nr_extents;
	u64			table_start;
	u64			table_blocks;
	u64			bitmap_start;
	u64			bitmap_blocks;
	u64			data_start;
	u8			*table;		/* image of the table blocks */
	u8			*bitmap;	/* image of the bitmap blocks */
	struct mutex		meta_lock;	/* table, bitmap, allocation */
	spinlock_t		idx_lock;
	struct hlist_head	*buckets;
	unsigned int		hash_bits;
	u64			nr_objects;
	u64			nr_intents;	/* changed under meta_lock */
	u64			fence_start;
	struct cvm_fence_table	fence;
	u64			instance;	/* cvm_wire_hello.instance */
	atomic64_t		io_errors;	/* replies of IO_ERROR */
	atomic64_t		copied;		/* bytes of VERSIONED WRITEs */
};

/* Per-request state of the store. */
struct cvm_store_io {
	struct work_struct	work;
	struct cvm_store_dev	*d;
	struct cvm_xprt_req	*req;
	struct cvm_store_obj	*obj;
	int			gate;	/* cvm_fence_enter()'s, or -1 */
};

static DEFINE_MUTEX(cvm_store_lock);	/* add/remove */
static DEFINE_XARRAY(cvm_store_devs);
static DECLARE_WAIT_QUEUE_HEAD(cvm_store_waitq);
static struct workqueue_struct *cvm_store_wq;

/* Devices and references */

struct cvm_store_dev *cvm_store_get(u32 id)
{
	struct cvm_store_dev *d;

	rcu_read_lock();
	d = xa_load(&cvm_store_devs, id);
	if (d && !refcount_inc_not_zero(&d->ref))
		d = NULL;
	rcu_read_unlock();
	return d;
}

void cvm_store_put(struct cvm_store_dev *d)
{
	if (refcount_dec_and_test(&d->ref))
		wake_up_all(&cvm_store_waitq);
}

u64 cvm_store_instance(const struct cvm_store_dev *d)
{
	return d->instance;
}

unsigned int cvm_store_count(void)
{
	struct cvm_store_dev *d;
	unsigned long id;
	unsigned int n = 0;

	xa_for_each(&cvm_store_devs, id, d)
		n++;
	return n;
}

/*
 * cvm_store_usage_next() - usage of the first device served with an id of
 * at least *@index; advances *@index past it.  -ENOENT when there is none.
 * The figures are read without a lock: a moment's view, not a
 * transaction.
 */
int cvm_store_usage_next(unsigned long *index, struct cvm_store_usage *u)
{
	struct cvm_store_dev *d;

	rcu_read_lock();
	d = xa_find(&cvm_store_devs, index, U32_MAX, XA_PRESENT);
	if (d && !refcount_inc_not_zero(&d->ref))
		d = NULL;
	rcu_read_unlock();
	if (!d)
		return -ENOENT;

	memset(u, 0, sizeof(*u));
	u->id = d->id;
	strscpy(u->path, d->path, sizeof(u->path));
	u->capacity = d->nr_extents << CVM_EXTENT_SHIFT;
	u->objects = READ_ONCE(d->nr_objects);
	u->intents = READ_ONCE(d->nr_intents);
	u->io_errors = atomic64_read(&d->io_errors);
	u->copied = atomic64_read(&d->copied);
	/* Every object shard is one extent. */
	u->used = u->objects << CVM_EXTENT_SHIFT;
	cvm_store_put(d);
	(*index)++;
	return 0;
}

/* Index */

/* The shard's intent bit in memory, and the device's count of them. */
static void cvm_store_obj_set_intent(struct cvm_store_dev *d,
				     struct cvm_store_obj *obj, bool intent)
{
	lockdep_assert_held(&d->meta_lock);
	if (obj->intent != intent)
		WRITE_ONCE(d->nr_intents, d->nr_intents + (intent ? 1 : -1));
	WRITE_ONCE(obj->intent, intent);
}

static u32 cvm_store_hash(struct cvm_store_dev *d, u64 vol, u64 obj, u16 shard)
{
	return hash_64(vol ^ (obj * GOLDEN_RATIO_64) ^ ((u64)shard << 56),
		       d->hash_bits);
}

static struct cvm_store_obj *cvm_store_find(struct cvm_store_dev *d, u64 vol,
					    u64 objno, u16 shard)
{
	struct cvm_store_obj *obj;

	hlist_for_each_entry(obj, &d->buckets[cvm_store_hash(d, vol, objno, shard)],
			     node)
		if (obj->volume_id == vol && obj->object_no == objno &&
		    obj->shard == shard)
			return obj;
	return NULL;
}

static void cvm_store_insert(struct cvm_store_dev *d, struct cvm_store_obj *obj)
{
	spin_lock(&d->idx_lock);
	hlist_add_head(&obj->node, &d->buckets[cvm_store_hash(d, obj->volume_id,
							      obj->object_no,
							      obj->shard)]);
	d->nr_objects++;
	spin_unlock(&d->idx_lock);
}

/* Finds the request's object and holds it against REMOVE. */
static struct cvm_store_obj *cvm_store_lookup_get(struct cvm_store_dev *d,
						  const struct cvm_wire_hdr *h)
{
	struct cvm_store_obj *obj;

	spin_lock(&d->idx_lock);
	obj = cvm_store_find(d, le64_to_cpu(h->volume_id),
			     le64_to_cpu(h->object_no), le16_to_cpu(h->shard));
	if (obj)
		atomic_inc(&obj->inflight);
	spin_unlock(&d->idx_lock);
	return obj;
}

static void cvm_store_obj_put(struct cvm_store_obj *obj)
{
	if (atomic_dec_and_test(&obj->inflight))
		wake_up_all(&cvm_store_waitq);
}

/* Metadata blocks (synchronous; process context only) */

/* One 4 KiB block of @bdev to or from @buf; synchronous. */
int cvm_bdev_rw_block(struct block_device *bdev, u64 block, void *buf,
		      blk_opf_t opf)
{
	struct page *page = alloc_page(GFP_KERNEL);
	struct bio *bio;
	int ret;

	if (!page)
		return -ENOMEM;
	if (op_is_write(opf))
		memcpy(page_address(page), buf, CVM_BLK_SIZE);
	bio = bio_alloc(bdev, 1, opf, GFP_KERNEL);
	bio->bi_iter.bi_sector = block * CVM_BLK_SECTORS;
	__bio_add_page(bio, page, CVM_BLK_SIZE, 0);
	ret = submit_bio_wait(bio);
	bio_put(bio);
	if (!ret && !op_is_write(opf))
		memcpy(buf, page_address(page), CVM_BLK_SIZE);
	__free_page(page);
	return ret;
}

static int cvm_store_rw_block(struct cvm_store_dev *d, u64 block, void *buf,
			      blk_opf_t opf)
{
	return cvm_bdev_rw_block(d->bdev, block, buf, opf);
}

static u32 cvm_crc(const void *buf, size_t len)
{
	return crc32c(~0U, buf, len) ^ ~0U;
}

/* Seals each sector of metadata block @block_no of its region. */
static void cvm_meta_seal(u8 *blk, u64 magic, u64 block_no)
{
	unsigned int i;

	for (i = 0; i < CVM_META_SECTORS; i++) {
		u8 *sec = blk + i * CVM_META_SECTOR;
		struct cvm_meta_tail *t = (void *)(sec + CVM_META_PAYLOAD);

		memset(t, 0, sizeof(*t));
		t->magic = cpu_to_le64(magic);
		t->sector_no = cpu_to_le64(block_no * CVM_META_SECTORS + i);
		t->crc = cpu_to_le32(cvm_crc(sec, CVM_META_SECTOR -
					     sizeof(t->crc)));
	}
}

static const char *cvm_meta_check(const u8 *blk, u64 magic, u64 block_no)
{
	unsigned int i;

	for (i = 0; i < CVM_META_SECTORS; i++) {
		const u8 *sec = blk + i * CVM_META_SECTOR;
		const struct cvm_meta_tail *t = (const void *)(sec +
							       CVM_META_PAYLOAD);

		if (le32_to_cpu(t->crc) !=
		    cvm_crc(sec, CVM_META_SECTOR - sizeof(t->crc)))
			return "metadata sector CRC mismatch";
		if (le64_to_cpu(t->magic) != magic)
			return "metadata sector has the wrong magic";
		if (le64_to_cpu(t->sector_no) != block_no * CVM_META_SECTORS + i)
			return "metadata sector is out of place";
		if (t->reserved[0] || t->reserved[1] || t->reserved[2])
			return "metadata sector reserved field is not zero";
	}
	return NULL;
}

static int cvm_store_write_table(struct cvm_store_dev *d, u64 ext, blk_opf_t f)
{
	u64 b = ext / CVM_ENTS_PER_BLOCK;
	u8 *blk = d->table + b * CVM_BLK_SIZE;

	cvm_meta_seal(blk, CVM_TABLE_MAGIC, b);
	return cvm_store_rw_block(d, d->table_start + b, blk,
				  REQ_OP_WRITE | REQ_SYNC | f);
}

static int cvm_store_write_bitmap(struct cvm_store_dev *d, u64 ext,
				  blk_opf_t f)
{
	u64 b = ext / CVM_BITS_PER_BLOCK;
	u8 *blk = d->bitmap + b * CVM_BLK_SIZE;

	cvm_meta_seal(blk, CVM_BITMAP_MAGIC, b);
	return cvm_store_rw_block(d, d->bitmap_start + b, blk,
				  REQ_OP_WRITE | REQ_SYNC | f);
}

static struct cvm_obj_disk *cvm_store_ent(struct cvm_store_dev *d, u64 ext)
{
	u64 sector = ext / CVM_ENTS_PER_SECTOR;

	return (struct cvm_obj_disk *)(d->table + sector * CVM_META_SECTOR) +
	       ext % CVM_ENTS_PER_SECTOR;
}

/* The bitmap sector holding @ext's bit. */
static unsigned long *cvm_store_bits(struct cvm_store_dev *d, u64 ext)
{
	return (unsigned long *)(d->bitmap +
				 (ext / CVM_BITS_PER_SECTOR) * CVM_META_SECTOR);
}

static bool cvm_store_bit(struct cvm_store_dev *d, u64 ext)
{
	return test_bit_le(ext % CVM_BITS_PER_SECTOR, cvm_store_bits(d, ext));
}

static void cvm_store_set_bit(struct cvm_store_dev *d, u64 ext, bool on)
{
	if (on)
		__set_bit_le(ext % CVM_BITS_PER_SECTOR, cvm_store_bits(d, ext));
	else
		__clear_bit_le(ext % CVM_BITS_PER_SECTOR,
			       cvm_store_bits(d, ext));
}

/* Geometry */

static void cvm_store_geometry(struct cvm_store_dev *d, u64 nr)
{
	d->nr_extents = nr;
	d->table_start = 1;
	d->table_blocks = DIV_ROUND_UP_ULL(nr, CVM_ENTS_PER_BLOCK);
	d->bitmap_start = d->table_start + d->table_blocks;
	d->bitmap_blocks = DIV_ROUND_UP_ULL(nr, CVM_BITS_PER_BLOCK);
	d->fence_start = d->bitmap_start + d->bitmap_blocks;
	d->data_start = round_up(d->fence_start + CVM_FENCE_BLOCKS,
				 CVM_DATA_ALIGN_BLOCKS);
}

static u64 cvm_store_fit_extents(u64 dev_blocks)
{
	u64 nr = dev_blocks / CVM_EXTENT_BLOCKS;
	struct cvm_store_dev g;

	for (; nr; nr--) {
		cvm_store_geometry(&g, nr);
		if (g.data_start + nr * CVM_EXTENT_BLOCKS <= dev_blocks)
			break;
	}
	return nr;
}

static int cvm_store_alloc_images(struct cvm_store_dev *d)
{
	d->table = kvzalloc(d->table_blocks * CVM_BLK_SIZE, GFP_KERNEL);
	d->bitmap = kvzalloc(d->bitmap_blocks * CVM_BLK_SIZE, GFP_KERNEL);
	d->hash_bits = clamp_t(unsigned int, order_base_2(d->nr_extents), 4, 20);
	d->buckets = kvcalloc(1U << d->hash_bits, sizeof(*d->buckets),
			      GFP_KERNEL);
	if (!d->table || !d->bitmap || !d->buckets)
		return -ENOMEM;
	return 0;
}

static void cvm_store_free_images(struct cvm_store_dev *d)
{
	struct cvm_store_obj *obj;
	struct hlist_node *tmp;
	unsigned int i;

	if (d->buckets) {
		for (i = 0; i < (1U << d->hash_bits); i++)
			hlist_for_each_entry_safe(obj, tmp, &d->buckets[i], node) {
				hlist_del(&obj->node);
				kfree(obj);
			}
	}
	cvm_fence_destroy(&d->fence);
	kvfree(d->buckets);
	kvfree(d->bitmap);
	kvfree(d->table);
	d->buckets = NULL;
	d->bitmap = NULL;
	d->table = NULL;
}

/* Format and load */

static int cvm_store_format(struct cvm_store_dev *d, u32 id, const char **why)
{
	u64 dev_sectors = bdev_nr_sectors(d->bdev), nr, b;
	struct cvm_sb_disk *sb;
	u8 *blk;
	int ret;

	nr = cvm_store_fit_extents(dev_sectors / CVM_BLK_SECTORS);
	if (!nr) {
		*why = "device too small for one extent";
		return -ENOSPC;
	}
	cvm_store_geometry(d, nr);
	ret = cvm_store_alloc_images(d);
	if (ret)
		return ret;
	blk = kzalloc(CVM_BLK_SIZE, GFP_KERNEL);
	if (!blk)
		return -ENOMEM;

	/* The old superblock goes first: a torn format is never loaded. */
	ret = cvm_store_rw_block(d, 0, blk, REQ_OP_WRITE | REQ_SYNC | REQ_FUA);
	if (ret)
		goto out_write_failed;
	for (b = 0; b < d->table_blocks; b++) {
		ret = cvm_store_write_table(d, b * CVM_ENTS_PER_BLOCK, 0);
		if (ret)
			goto out_write_failed;
	}
	for (b = 0; b < d->bitmap_blocks; b++) {
		ret = cvm_store_write_bitmap(d, b * CVM_BITS_PER_BLOCK, 0);
		if (ret)
			goto out_write_failed;
	}
	ret = cvm_fence_format(&d->fence, d->bdev, d->fence_start,
			       CVM_FENCE_BLOCKS);
	if (ret)
		goto out_write_failed;

	sb = (struct cvm_sb_disk *)blk;
	sb->magic = cpu_to_le64(CVM_SB_MAGIC);
	sb->version = cpu_to_le32(CVM_STORE_VERSION);
	sb->device_id = cpu_to_le32(id);
	generate_random_uuid(sb->uuid);
	sb->dev_sectors = cpu_to_le64(dev_sectors);
	sb->block_size = cpu_to_le32(CVM_BLK_SIZE);
	sb->extent_shift = cpu_to_le32(CVM_EXTENT_SHIFT);
	sb->nr_extents = cpu_to_le64(nr);
	sb->table_start = cpu_to_le64(d->table_start);
	sb->table_blocks = cpu_to_le64(d->table_blocks);
	sb->bitmap_start = cpu_to_le64(d->bitmap_start);
	sb->bitmap_blocks = cpu_to_le64(d->bitmap_blocks);
	sb->data_start = cpu_to_le64(d->data_start);
	sb->fence_blocks = cpu_to_le32(CVM_FENCE_BLOCKS);
	sb->crc = cpu_to_le32(cvm_crc(sb, offsetof(struct cvm_sb_disk, crc)));
	ret = cvm_store_rw_block(d, 0, blk,
				 REQ_OP_WRITE | REQ_SYNC | REQ_PREFLUSH | REQ_FUA);
	if (ret)
		goto out_write_failed;
	kfree(blk);
	pr_info("device %u (%s): formatted, %llu extents of %u KiB\n", id,
		d->path, nr, CVM_EXTENT_SIZE >> 10);
	return 0;

out_write_failed:
	*why = "writing the new format failed";
	kfree(blk);
	return ret;
}

/*
 * Reads and checks the superblock.  0: valid; -ENOMEDIUM: no CVM magic;
 * -EUCLEAN: a CVM superblock that fails a check (*why says which).
 */
static int cvm_store_read_sb(struct cvm_store_dev *d, const char **why)
{
	u64 dev_sectors = bdev_nr_sectors(d->bdev);
	struct cvm_sb_disk *sb;
	struct cvm_store_dev g;
	u8 *blk;
	int ret = -EUCLEAN;

	blk = kzalloc(CVM_BLK_SIZE, GFP_KERNEL);
	if (!blk)
		return -ENOMEM;
	if (dev_sectors < CVM_BLK_SECTORS) {
		ret = -ENOMEDIUM;
		*why = "device smaller than one block";
		goto out_free_blk;
	}
	ret = cvm_store_rw_block(d, 0, blk, REQ_OP_READ);
	if (ret) {
		*why = "reading the superblock failed";
		goto out_free_blk;
	}
	sb = (struct cvm_sb_disk *)blk;
	ret = -EUCLEAN;
	if (le64_to_cpu(sb->magic) != CVM_SB_MAGIC) {
		ret = -ENOMEDIUM;
		*why = "no CVM superblock";
	} else if (le32_to_cpu(sb->crc) !=
		   cvm_crc(sb, offsetof(struct cvm_sb_disk, crc))) {
		*why = "superblock CRC mismatch";
	} else if (le32_to_cpu(sb->version) != CVM_STORE_VERSION) {
		pr_err("device %u (%s): on-disk format version %u, this build reads %u\n",
		       d->id, d->path, le32_to_cpu(sb->version),
		       CVM_STORE_VERSION);
		*why = "on-disk format version this build does not read";
	} else if (le32_to_cpu(sb->block_size) != CVM_BLK_SIZE ||
		   le32_to_cpu(sb->extent_shift) != CVM_EXTENT_SHIFT ||
		   le32_to_cpu(sb->fence_blocks) != CVM_FENCE_BLOCKS) {
		*why = "unsupported block, extent or fence table size";
	} else if (le64_to_cpu(sb->dev_sectors) > dev_sectors) {
		*why = "device is smaller than when it was formatted";
	} else {
		cvm_store_geometry(&g, le64_to_cpu(sb->nr_extents));
		if (!g.nr_extents ||
		    g.table_start != le64_to_cpu(sb->table_start) ||
		    g.table_blocks != le64_to_cpu(sb->table_blocks) ||
		    g.bitmap_start != le64_to_cpu(sb->bitmap_start) ||
		    g.bitmap_blocks != le64_to_cpu(sb->bitmap_blocks) ||
		    g.data_start != le64_to_cpu(sb->data_start) ||
		    le64_to_cpu(sb->dev_sectors) <
		    (g.data_start + g.nr_extents * CVM_EXTENT_BLOCKS) *
		    CVM_BLK_SECTORS) {
			*why = "superblock geometry is inconsistent";
		} else {
			cvm_store_geometry(d, g.nr_extents);
			if (le32_to_cpu(sb->device_id) != d->id) {
				ret = -EINVAL;
				*why = "device was formatted with another device id";
			} else {
				ret = 0;
			}
		}
	}

out_free_blk:
	kfree(blk);
	return ret;
}

static int cvm_store_load_entry(struct cvm_store_dev *d, u64 ext,
				const char **why)
{
	struct cvm_obj_disk *e = cvm_store_ent(d, ext);
	u16 flags = le16_to_cpu(e->flags);
	struct cvm_store_obj *obj;

	if (flags & ~CVM_OBJ_F_ALL) {
		*why = "object table entry has unknown flags";
		return -EUCLEAN;
	}
	if (!(flags & CVM_OBJ_F_USED)) {
		if (flags || e->volume_id || e->object_no || e->snap_seq ||
		    e->shard || e->version) {
			*why = "free object table entry is not zero";
			return -EUCLEAN;
		}
		return 0;
	}
	if (le16_to_cpu(e->shard) >= CVM_WIRE_MAX_SHARDS) {
		*why = "object table entry has a bad shard";
		return -EUCLEAN;
	}
	if (!cvm_store_bit(d, ext)) {
		*why = "allocation bitmap misses an allocated extent";
		return -EUCLEAN;
	}
	if (cvm_store_find(d, le64_to_cpu(e->volume_id),
			   le64_to_cpu(e->object_no), le16_to_cpu(e->shard))) {
		*why = "object table holds an object twice";
		return -EUCLEAN;
	}
	obj = kzalloc(sizeof(*obj), GFP_KERNEL);
	if (!obj)
		return -ENOMEM;
	obj->volume_id = le64_to_cpu(e->volume_id);
	obj->object_no = le64_to_cpu(e->object_no);
	obj->snap_seq = le64_to_cpu(e->snap_seq);
	obj->shard = le16_to_cpu(e->shard);
	obj->extent = ext;
	obj->version = le32_to_cpu(e->version);
	obj->intent = flags & CVM_OBJ_F_INTENT;
	d->nr_intents += obj->intent;	/* loading: no request yet */
	cvm_store_insert(d, obj);
	return 0;
}

static int cvm_store_load(struct cvm_store_dev *d, const char **why)
{
	u64 b, ext, leaked = 0;
	int ret;

	ret = cvm_store_alloc_images(d);
	if (ret)
		return ret;
	for (b = 0; b < d->table_blocks; b++) {
		u8 *blk = d->table + b * CVM_BLK_SIZE;

		ret = cvm_store_rw_block(d, d->table_start + b, blk, REQ_OP_READ);
		if (ret) {
			*why = "reading the object table failed";
			return ret;
		}
		*why = cvm_meta_check(blk, CVM_TABLE_MAGIC, b);
		if (*why)
			return -EUCLEAN;
	}
	for (b = 0; b < d->bitmap_blocks; b++) {
		u8 *blk = d->bitmap + b * CVM_BLK_SIZE;

		ret = cvm_store_rw_block(d, d->bitmap_start + b, blk,
					 REQ_OP_READ);
		if (ret) {
			*why = "reading the allocation bitmap failed";
			return ret;
		}
		*why = cvm_meta_check(blk, CVM_BITMAP_MAGIC, b);
		if (*why)
			return -EUCLEAN;
	}
	/* Table slots past the last extent are never used. */
	for (ext = d->nr_extents; ext < d->table_blocks * CVM_ENTS_PER_BLOCK;
	     ext++) {
		if (cvm_store_ent(d, ext)->flags) {
			*why = "object table entry beyond the last extent";
			return -EUCLEAN;
		}
	}
	for (ext = 0; ext < d->nr_extents; ext++) {
		ret = cvm_store_load_entry(d, ext, why);
		if (ret)
			return ret;
	}
	/* A bit without an entry: a crash between allocation's writes. */
	for (ext = 0; ext < d->nr_extents; ext++) {
		if (cvm_store_bit(d, ext) && !cvm_store_ent(d, ext)->flags) {
			cvm_store_set_bit(d, ext, false);
			ret = cvm_store_write_bitmap(d, ext, REQ_FUA);
			if (ret) {
				*why = "writing the allocation bitmap failed";
				return ret;
			}
			leaked++;
		}
	}
	if (leaked)
		pr_info("device %u (%s): reclaimed %llu unused extents\n",
			d->id, d->path, leaked);
	return cvm_fence_load(&d->fence, d->bdev, d->fence_start,
			      CVM_FENCE_BLOCKS, why);
}

int cvm_store_add(u32 id, const char *path, u32 flags,
		  struct netlink_ext_ack *extack)
{
	const char *why = NULL;
	struct cvm_store_dev *d;
	int ret;

	if ((flags & CVM_TARGET_DEVICE_F_FORCE) &&
	    !(flags & CVM_TARGET_DEVICE_F_FORMAT)) {
		NL_SET_ERR_MSG(extack, "FORCE only goes with FORMAT");
		return -EINVAL;
	}
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->id = id;
	/* A new instance each time a device is served: its cache is new. */
	d->instance = get_random_u64() | 1;
	strscpy(d->path, path, sizeof(d->path));
	refcount_set(&d->ref, 1);
	mutex_init(&d->meta_lock);
	spin_lock_init(&d->idx_lock);

	mutex_lock(&cvm_store_lock);
	if (xa_load(&cvm_store_devs, id)) {
		NL_SET_ERR_MSG(extack, "device id is already served");
		ret = -EEXIST;
		goto out_unlock;
	}
	d->bdev = blkdev_get_by_path(path, FMODE_READ | FMODE_WRITE | FMODE_EXCL,
				     d);
	if (IS_ERR(d->bdev)) {
		ret = PTR_ERR(d->bdev);
		d->bdev = NULL;
		why = ret == -EBUSY ? "device is in use (already served?)" :
				      "cannot open the device";
		goto out_refuse;
	}
	if (bdev_logical_block_size(d->bdev) > CVM_BLK_SIZE) {
		why = "logical block size above 4096";
		ret = -EINVAL;
		goto out_refuse;
	}

	ret = cvm_store_read_sb(d, &why);
	if (flags & CVM_TARGET_DEVICE_F_FORMAT) {
		if (ret != -ENOMEDIUM && !(flags & CVM_TARGET_DEVICE_F_FORCE)) {
			why = "device has a CVM superblock: FORMAT needs FORCE";
			ret = -EEXIST;
			goto out_refuse;
		}
		ret = cvm_store_format(d, id, &why);
	} else if (ret == -ENOMEDIUM) {
		why = "no CVM superblock (format with FORMAT)";
	} else if (!ret) {
		ret = cvm_store_load(d, &why);
		if (ret == -EUCLEAN)
			why = why ?: "object table is corrupt";
	}
	if (ret)
		goto out_refuse;

	ret = xa_err(xa_store(&cvm_store_devs, id, d, GFP_KERNEL));
	if (ret)
		goto out_close;
	mutex_unlock(&cvm_store_lock);
	pr_info("device %u (%s): serving %llu objects, %llu of %llu extents free\n",
		id, path, d->nr_objects, d->nr_extents - d->nr_objects,
		d->nr_extents);
	return 0;

out_refuse:
	if (why) {
		pr_err("device %u (%s): refused: %s (%d)\n", id, path, why, ret);
		/* NL_SET_ERR_MSG() takes literals; @why is a static string. */
		if (extack)
			extack->_msg = why;
	}
out_close:
	if (d->bdev)
		blkdev_put(d->bdev, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
	cvm_store_free_images(d);
out_unlock:
	mutex_unlock(&cvm_store_lock);
	kfree(d);
	return ret;
}

static void cvm_store_destroy(struct cvm_store_dev *d)
{
	cvm_store_put(d);
	wait_event(cvm_store_waitq, !refcount_read(&d->ref));
	synchronize_rcu();
	blkdev_put(d->bdev, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
	pr_info("device %u (%s): removed\n", d->id, d->path);
	cvm_store_free_images(d);
	kfree(d);
}

int cvm_store_remove(u32 id)
{
	struct cvm_store_dev *d;

	mutex_lock(&cvm_store_lock);
	d = xa_erase(&cvm_store_devs, id);
	if (d)
		cvm_store_destroy(d);
	mutex_unlock(&cvm_store_lock);
	return d ? 0 : -ENODEV;
}

void cvm_store_remove_all(void)
{
	struct cvm_store_dev *d;
	unsigned long id;

	xa_for_each(&cvm_store_devs, id, d)
		cvm_store_remove(id);
}

/*
 * cvm_store_fence() - raise @volume_id's attach epoch to @epoch on device
 * @id, or on every device served when @id is CVM_STORE_ALL (fence.c)
 */
int cvm_store_fence(u32 id, u64 volume_id, u64 epoch, u64 host_id,
		    struct netlink_ext_ack *extack)
{
	ktime_t start = ktime_get();
	const char *why = NULL;
	struct cvm_store_dev *d;
	unsigned long i;
	int ret = 0, n = 0;

	if (id != CVM_STORE_ALL) {
		d = cvm_store_get(id);
		if (!d) {
			NL_SET_ERR_MSG(extack, "device is not served here");
			return -ENODEV;
		}
		ret = cvm_fence_set(&d->fence, volume_id, epoch, host_id, &why);
		cvm_store_put(d);
		n = 1;
	} else {
		/* No device comes or goes meanwhile. */
		mutex_lock(&cvm_store_lock);
		xa_for_each(&cvm_store_devs, i, d) {
			ret = cvm_fence_set(&d->fence, volume_id, epoch,
					    host_id, &why);
			n++;
			if (ret)
				break;
		}
		mutex_unlock(&cvm_store_lock);
	}
	if (ret) {
		pr_err("volume %llu: attach epoch %llu not set: %s (%d)\n",
		       volume_id, epoch, why ?: "", ret);
		if (extack && why)
			extack->_msg = why;
		return ret;
	}
	pr_info("volume %llu: attach epoch %llu on %d device(s) in %lld us\n",
		volume_id, epoch, n, ktime_us_delta(ktime_get(), start));
	return 0;
}

/* The data path */

/* Reply pages come unzeroed from the transport. */
static void cvm_store_zero_payload(struct cvm_xprt_req *req, u32 len)
{
	unsigned int i;

	for (i = 0; i < req->nr_bvec && len; i++) {
		u32 n = min(len, req->bvec[i].bv_len);

		memzero_page(req->bvec[i].bv_page, req->bvec[i].bv_offset, n);
		len -= n;
	}
}

static void cvm_store_reply(struct cvm_store_io *io, u16 status, u32 len)
{
	struct cvm_xprt_req *req = io->req;
	struct cvm_store_dev *d = io->d;

	if (io->obj)
		cvm_store_obj_put(io->obj);
	if (io->gate >= 0)
		cvm_fence_exit(&d->fence, io->gate);
	kfree(io);
	/* cvmd marks a device out that keeps failing (down_out.h). */
	if (status == CVM_WIRE_STATUS_IO_ERROR)
		atomic64_inc(&d->io_errors);
	/* What resync and backfill sent, to show what a device received. */
	if (status == CVM_WIRE_STATUS_OK &&
	    req->hdr.opcode == CVM_WIRE_OP_WRITE &&
	    (le16_to_cpu(req->hdr.flags) & CVM_WIRE_F_VERSIONED))
		atomic64_add(le32_to_cpu(req->hdr.length), &d->copied);
	req->rsp_status = status;
	req->rsp_len = len;
	req->conn->ops->send_reply(req);
	cvm_store_put(d);
}

static void cvm_store_data_end_io(struct bio *bio)
{
	struct cvm_store_io *io = bio->bi_private;
	bool read = bio_op(bio) == REQ_OP_READ;
	u32 len = le32_to_cpu(io->req->hdr.length);

	if (bio->bi_status) {
		pr_err_ratelimited("device %u: I/O error %d\n", io->d->id,
				   blk_status_to_errno(bio->bi_status));
		bio_put(bio);
		cvm_store_reply(io, CVM_WIRE_STATUS_IO_ERROR, 0);
		return;
	}
	bio_put(bio);
	cvm_store_reply(io, CVM_WIRE_STATUS_OK, read ? len : 0);
}

static sector_t cvm_store_sector(struct cvm_store_dev *d, u32 ext, u64 off)
{
	return (d->data_start + (u64)ext * CVM_EXTENT_BLOCKS) * CVM_BLK_SECTORS +
	       (off >> SECTOR_SHIFT);
}

static void cvm_store_submit_data(struct cvm_store_io *io)
{
	struct cvm_xprt_req *req = io->req;
	const struct cvm_wire_hdr *h = &req->hdr;
	bool write = h->opcode == CVM_WIRE_OP_WRITE;
	u32 len = le32_to_cpu(h->length), done = 0;
	blk_opf_t opf = REQ_OP_READ;
	struct bio *bio;
	unsigned int i;

	if (write) {
		opf = REQ_OP_WRITE | REQ_SYNC;
		if (le16_to_cpu(h->flags) & CVM_WIRE_F_FUA)
			opf |= REQ_FUA;
	}
	bio = bio_alloc(io->d->bdev, req->nr_bvec, opf, GFP_NOIO);
	bio->bi_iter.bi_sector = cvm_store_sector(io->d, io->obj->extent,
						  le64_to_cpu(h->offset));
	bio->bi_private = io;
	bio->bi_end_io = cvm_store_data_end_io;
	for (i = 0; i < req->nr_bvec && done < len; i++) {
		u32 n = min(len - done, req->bvec[i].bv_len);

		if (bio_add_page(bio, req->bvec[i].bv_page, n,
				 req->bvec[i].bv_offset) != n)
			break;
		done += n;
	}
	if (done != len) {
		bio_put(bio);
		cvm_store_reply(io, CVM_WIRE_STATUS_INVALID, 0);
		return;
	}
	submit_bio(bio);
}

static void cvm_store_flush_end_io(struct bio *bio)
{
	struct cvm_store_io *io = bio->bi_private;
	u16 status = bio->bi_status ? CVM_WIRE_STATUS_IO_ERROR :
				      CVM_WIRE_STATUS_OK;

	bio_put(bio);
	cvm_store_reply(io, status, 0);
}

static void cvm_store_submit_flush(struct cvm_store_io *io)
{
	struct bio *bio = bio_alloc(io->d->bdev, 0,
				    REQ_OP_WRITE | REQ_PREFLUSH, GFP_NOIO);

	bio->bi_private = io;
	bio->bi_end_io = cvm_store_flush_end_io;
	submit_bio(bio);
}

/* Allocates the request's object; returns a wire status.  meta_lock held. */
static u16 cvm_store_alloc_obj(struct cvm_store_dev *d,
			       const struct cvm_wire_hdr *h,
			       struct cvm_store_obj **objp)
{
	struct cvm_store_obj *obj;
	struct cvm_obj_disk *e;
	u64 ext, b;
	int ret;

	for (ext = d->nr_extents, b = 0;
	     b * CVM_BITS_PER_SECTOR < d->nr_extents; b++) {
		unsigned long *bits = cvm_store_bits(d, b * CVM_BITS_PER_SECTOR);
		u64 lim = min_t(u64, CVM_BITS_PER_SECTOR,
				d->nr_extents - b * CVM_BITS_PER_SECTOR);
		u64 bit = find_next_zero_bit_le(bits, lim, 0);

		if (bit < lim) {
			ext = b * CVM_BITS_PER_SECTOR + bit;
			break;
		}
	}
	if (ext >= d->nr_extents)
		return CVM_WIRE_STATUS_NO_SPACE;

	obj = kzalloc(sizeof(*obj), GFP_KERNEL);
	if (!obj)
		return CVM_WIRE_STATUS_BUSY;

	cvm_store_set_bit(d, ext, true);
	ret = cvm_store_write_bitmap(d, ext, 0);
	if (ret)
		goto out_clear_bit;
	ret = blkdev_issue_zeroout(d->bdev, cvm_store_sector(d, ext, 0),
				   CVM_EXTENT_SECTORS, GFP_KERNEL, 0);
	if (ret)
		goto out_clear_bit;

	e = cvm_store_ent(d, ext);
	e->volume_id = h->volume_id;
	e->object_no = h->object_no;
	e->snap_seq = h->snap_seq;
	e->shard = h->shard;
	e->flags = cpu_to_le16(CVM_OBJ_F_USED);
	/* A WRITE or BUMP changes it: its intent bit goes with the entry. */
	if (h->opcode == CVM_WIRE_OP_WRITE || h->opcode == CVM_WIRE_OP_BUMP)
		e->flags |= cpu_to_le16(CVM_OBJ_F_INTENT);
	e->version = 0;
	ret = cvm_store_write_table(d, ext, REQ_PREFLUSH | REQ_FUA);
	if (ret)
		goto out_clear_entry;

	obj->volume_id = le64_to_cpu(h->volume_id);
	obj->object_no = le64_to_cpu(h->object_no);
	obj->snap_seq = le64_to_cpu(h->snap_seq);
	obj->shard = le16_to_cpu(h->shard);
	obj->extent = ext;
	cvm_store_obj_set_intent(d, obj, h->opcode == CVM_WIRE_OP_WRITE ||
					 h->opcode == CVM_WIRE_OP_BUMP);
	atomic_set(&obj->inflight, 1);
	cvm_store_insert(d, obj);
	*objp = obj;
	return CVM_WIRE_STATUS_OK;

out_clear_entry:
	memset(e, 0, sizeof(*e));
out_clear_bit:
	/* On disk the bit may stay set: the next load reclaims it. */
	cvm_store_set_bit(d, ext, false);
	kfree(obj);
	pr_err_ratelimited("device %u: allocating an extent failed (%d)\n",
			   d->id, ret);
	return CVM_WIRE_STATUS_IO_ERROR;
}

/* WRITE to an object without extent, and PREALLOC. */
static void cvm_store_alloc_work(struct work_struct *w)
{
	struct cvm_store_io *io = container_of(w, struct cvm_store_io, work);
	struct cvm_store_dev *d = io->d;
	u16 status = CVM_WIRE_STATUS_OK;

	mutex_lock(&d->meta_lock);
	io->obj = cvm_store_lookup_get(d, &io->req->hdr);
	if (!io->obj)
		status = cvm_store_alloc_obj(d, &io->req->hdr, &io->obj);
	mutex_unlock(&d->meta_lock);

	if (status || io->req->hdr.opcode != CVM_WIRE_OP_WRITE)
		cvm_store_reply(io, status, 0);
	else
		cvm_store_submit_data(io);
}

static void cvm_store_remove_work(struct work_struct *w)
{
	struct cvm_store_io *io = container_of(w, struct cvm_store_io, work);
	const struct cvm_wire_hdr *h = &io->req->hdr;
	struct cvm_store_dev *d = io->d;
	struct cvm_obj_disk *e, saved;
	struct cvm_store_obj *obj;
	u16 status = CVM_WIRE_STATUS_OK;
	int ret;

	mutex_lock(&d->meta_lock);
	spin_lock(&d->idx_lock);
	obj = cvm_store_find(d, le64_to_cpu(h->volume_id),
			     le64_to_cpu(h->object_no), le16_to_cpu(h->shard));
	if (obj) {
		hlist_del_init(&obj->node);
		d->nr_objects--;
	}
	spin_unlock(&d->idx_lock);
	if (!obj) {
		status = CVM_WIRE_STATUS_NOT_FOUND;
		goto out_unlock;
	}
	/* I/O already on the extent finishes before it can be reused. */
	wait_event(cvm_store_waitq, !atomic_read(&obj->inflight));

	e = cvm_store_ent(d, obj->extent);
	saved = *e;
	memset(e, 0, sizeof(*e));
	ret = cvm_store_write_table(d, obj->extent, REQ_FUA);
	if (ret) {
		*e = saved;
		cvm_store_insert(d, obj);
		status = CVM_WIRE_STATUS_IO_ERROR;
		goto out_unlock;
	}
	cvm_store_obj_set_intent(d, obj, false);
	cvm_store_set_bit(d, obj->extent, false);
	if (cvm_store_write_bitmap(d, obj->extent, 0))
		pr_warn_ratelimited("device %u: bitmap write failed; extent reclaimed at next load\n",
				    d->id);
	kfree(obj);
out_unlock:
	mutex_unlock(&d->meta_lock);
	cvm_store_reply(io, status, 0);
}

/*
 * Sets @obj's intent bit on disk before a change to it is carried out.
 * meta_lock held.  Returns a wire status.
 */
static u16 cvm_store_set_intent(struct cvm_store_dev *d,
				struct cvm_store_obj *obj)
{
	struct cvm_obj_disk *e = cvm_store_ent(d, obj->extent);

	if (obj->intent)
		return CVM_WIRE_STATUS_OK;
	e->flags |= cpu_to_le16(CVM_OBJ_F_INTENT);
	if (cvm_store_write_table(d, obj->extent, REQ_FUA)) {
		e->flags &= ~cpu_to_le16(CVM_OBJ_F_INTENT);
		pr_err_ratelimited("device %u: writing an intent bit failed\n",
				   d->id);
		return CVM_WIRE_STATUS_IO_ERROR;
	}
	cvm_store_obj_set_intent(d, obj, true);
	return CVM_WIRE_STATUS_OK;
}

/* A WRITE of a resync refused when the shard holds a newer version. */
static bool cvm_store_version_stale(const struct cvm_store_obj *obj,
				    const struct cvm_wire_hdr *h)
{
	return (le16_to_cpu(h->flags) & CVM_WIRE_F_VERSIONED) &&
	       READ_ONCE(obj->version) > le32_to_cpu(h->shard_version);
}

/*
 * WRITE to a shard whose intent bit is clear: set it, then write.  The
 * shard is looked up again under meta_lock, holding no reference before:
 * REMOVE waits for references under that lock.
 */
static void cvm_store_intent_work(struct work_struct *w)
{
	struct cvm_store_io *io = container_of(w, struct cvm_store_io, work);
	const struct cvm_wire_hdr *h = &io->req->hdr;
	struct cvm_store_dev *d = io->d;
	u16 status;

	mutex_lock(&d->meta_lock);
	io->obj = cvm_store_lookup_get(d, h);
	if (!io->obj)
		status = cvm_store_alloc_obj(d, h, &io->obj);
	else if (cvm_store_version_stale(io->obj, h))
		status = CVM_WIRE_STATUS_STALE_VERSION;
	else
		status = cvm_store_set_intent(d, io->obj);
	mutex_unlock(&d->meta_lock);
	if (status)
		cvm_store_reply(io, status, 0);
	else
		cvm_store_submit_data(io);
}

/* Rewrites the entry of @obj with @flags and @version.  meta_lock held. */
static u16 cvm_store_write_ent(struct cvm_store_dev *d,
			       struct cvm_store_obj *obj, bool intent,
			       u32 version, blk_opf_t opf)
{
	struct cvm_obj_disk *e = cvm_store_ent(d, obj->extent), saved = *e;

	if (intent)
		e->flags |= cpu_to_le16(CVM_OBJ_F_INTENT);
	else
		e->flags &= ~cpu_to_le16(CVM_OBJ_F_INTENT);
	e->version = cpu_to_le32(version);
	if (cvm_store_write_table(d, obj->extent, opf)) {
		*e = saved;
		pr_err_ratelimited("device %u: writing an object entry failed\n",
				   d->id);
		return CVM_WIRE_STATUS_IO_ERROR;
	}
	cvm_store_obj_set_intent(d, obj, intent);
	WRITE_ONCE(obj->version, version);
	return CVM_WIRE_STATUS_OK;
}

/* BUMP, SET_VERSION, CLEAN (cvm_wire.h, "Object shard versions"). */
static void cvm_store_version_work(struct work_struct *w)
{
	struct cvm_store_io *io = container_of(w, struct cvm_store_io, work);
	struct cvm_xprt_req *req = io->req;
	const struct cvm_wire_hdr *h = &req->hdr;
	u32 want = le32_to_cpu(h->shard_version);
	struct cvm_store_dev *d = io->d;
	struct cvm_store_obj *obj;
	u16 status = CVM_WIRE_STATUS_OK;

	mutex_lock(&d->meta_lock);
	obj = cvm_store_lookup_get(d, h);
	/* The record of a missed write needs a shard to live in. */
	if (!obj && h->opcode == CVM_WIRE_OP_BUMP) {
		status = cvm_store_alloc_obj(d, h, &obj);
		if (status)
			goto out_unlock;
	}
	io->obj = obj;
	if (!obj) {
		if (h->opcode != CVM_WIRE_OP_CLEAN)
			status = CVM_WIRE_STATUS_NOT_FOUND;
		goto out_unlock;
	}
	switch (h->opcode) {
	case CVM_WIRE_OP_BUMP:
		if (obj->version == U32_MAX) {
			status = CVM_WIRE_STATUS_INVALID;
			break;
		}
		/* The write it records may still be in the device's cache. */
		status = cvm_store_write_ent(d, obj, true, obj->version + 1,
					     REQ_PREFLUSH | REQ_FUA);
		break;
	case CVM_WIRE_OP_SET_VERSION:
		if (obj->version > want) {
			status = CVM_WIRE_STATUS_STALE_VERSION;
			break;
		}
		if (obj->version == want)
			break;
		status = cvm_store_write_ent(d, obj, obj->intent, want,
					     REQ_PREFLUSH | REQ_FUA);
		break;
	case CVM_WIRE_OP_CLEAN:
		if (!obj->intent)
			break;
		status = cvm_store_write_ent(d, obj, false, obj->version,
					     REQ_PREFLUSH | REQ_FUA);
		break;
	}
	req->rsp_version = obj->version;
out_unlock:
	mutex_unlock(&d->meta_lock);
	cvm_store_reply(io, status, 0);
}

/* Copies @len bytes of @buf into the reply payload pages of @req. */
static void cvm_store_copy_payload(struct cvm_xprt_req *req, const void *buf,
				   u32 len)
{
	unsigned int i;

	for (i = 0; i < req->nr_bvec && len; i++) {
		u32 n = min(len, req->bvec[i].bv_len);

		memcpy_to_page(req->bvec[i].bv_page, req->bvec[i].bv_offset,
			       buf, n);
		buf += n;
		len -= n;
	}
}

static int cvm_store_list_cmp(const void *a, const void *b)
{
	const struct cvm_wire_list_ent *x = a, *y = b;
	u64 xo = le64_to_cpu(x->object_no), yo = le64_to_cpu(y->object_no);

	if (xo != yo)
		return xo < yo ? -1 : 1;
	return (int)le16_to_cpu(x->shard) - (int)le16_to_cpu(y->shard);
}

/* The heap of cvm_store_list_work() keeps the largest key on top. */
static bool cvm_store_list_greater(const void *a, const void *b)
{
	return cvm_store_list_cmp(a, b) > 0;
}

static void cvm_store_list_swap(void *a, void *b)
{
	swap(*(struct cvm_wire_list_ent *)a, *(struct cvm_wire_list_ent *)b);
}

static const struct min_heap_callbacks cvm_store_list_heap = {
	.elem_size	= sizeof(struct cvm_wire_list_ent),
	.less		= cvm_store_list_greater,
	.swp		= cvm_store_list_swap,
};

/*
 * LIST: the shards of a volume from @object_no on, in ascending order, at
 * most as many as the request's @length holds.  The index is a hash, so
 * every call walks it whole (262,144 extents per TiB), keeping the smallest
 * keys in a heap of the reply's size: memory is bounded by the reply, not
 * by the device.
 */
static void cvm_store_list_work(struct work_struct *w)
{
	struct cvm_store_io *io = container_of(w, struct cvm_store_io, work);
	struct cvm_xprt_req *req = io->req;
	const struct cvm_wire_hdr *h = &req->hdr;
	bool intent_only = le16_to_cpu(h->flags) & CVM_WIRE_F_INTENT;
	u64 vol = le64_to_cpu(h->volume_id), from = le64_to_cpu(h->object_no);
	u32 room = min(le32_to_cpu(h->length), req->data_len) /
		   sizeof(struct cvm_wire_list_ent);
	struct cvm_store_dev *d = io->d;
	struct cvm_wire_list_ent ent;
	struct cvm_store_obj *obj;
	struct min_heap heap;
	unsigned int b;

	if (!room) {
		cvm_store_reply(io, CVM_WIRE_STATUS_OK, 0);
		return;
	}
	heap.data = kvcalloc(room, sizeof(ent), GFP_KERNEL);
	if (!heap.data) {
		cvm_store_reply(io, CVM_WIRE_STATUS_BUSY, 0);
		return;
	}
	heap.nr = 0;
	heap.size = room;

	/* Under meta_lock no entry appears, goes or changes its bit. */
	mutex_lock(&d->meta_lock);
	for (b = 0; b < (1U << d->hash_bits); b++) {
		hlist_for_each_entry(obj, &d->buckets[b], node) {
			if (obj->volume_id != vol || obj->object_no < from ||
			    (intent_only && !obj->intent))
				continue;
			ent.object_no = cpu_to_le64(obj->object_no);
			ent.shard = cpu_to_le16(obj->shard);
			ent.flags = cpu_to_le16(obj->intent ?
						CVM_WIRE_STAT_F_INTENT : 0);
			ent.version = cpu_to_le32(obj->version);
			ent.snap_seq = cpu_to_le64(obj->snap_seq);
			if (heap.nr < heap.size)
				min_heap_push(&heap, &ent, &cvm_store_list_heap);
			else if (cvm_store_list_cmp(&ent, heap.data) < 0)
				min_heap_pop_push(&heap, &ent,
						  &cvm_store_list_heap);
		}
	}
	mutex_unlock(&d->meta_lock);
	sort(heap.data, heap.nr, sizeof(ent), cvm_store_list_cmp, NULL);
	cvm_store_copy_payload(req, heap.data, heap.nr * sizeof(ent));
	kvfree(heap.data);
	cvm_store_reply(io, CVM_WIRE_STATUS_OK, heap.nr * sizeof(ent));
}

/* WRITE_ZEROES and DISCARD: the range reads as zeroes afterwards. */
static void cvm_store_zero_work(struct work_struct *w)
{
	struct cvm_store_io *io = container_of(w, struct cvm_store_io, work);
	const struct cvm_wire_hdr *h = &io->req->hdr;
	u16 flags = le16_to_cpu(h->flags);
	struct cvm_store_dev *d = io->d;
	int ret = 0;

	/* Looked up under meta_lock: REMOVE waits for references under it. */
	mutex_lock(&d->meta_lock);
	io->obj = cvm_store_lookup_get(d, h);
	if (io->obj) {
		u16 status = cvm_store_set_intent(d, io->obj);

		if (status) {
			mutex_unlock(&d->meta_lock);
			cvm_store_reply(io, status, 0);
			return;
		}
	}
	mutex_unlock(&d->meta_lock);
	if (io->obj) {
		ret = blkdev_issue_zeroout(d->bdev,
					   cvm_store_sector(d, io->obj->extent,
							    le64_to_cpu(h->offset)),
					   le32_to_cpu(h->length) >> SECTOR_SHIFT,
					   GFP_KERNEL,
					   flags & CVM_WIRE_F_NOUNMAP ?
					   BLKDEV_ZERO_NOUNMAP : 0);
		if (!ret && (flags & CVM_WIRE_F_FUA))
			ret = blkdev_issue_flush(d->bdev);
	}
	cvm_store_reply(io, ret ? CVM_WIRE_STATUS_IO_ERROR : CVM_WIRE_STATUS_OK,
			0);
}

static void cvm_store_stat(struct cvm_store_io *io)
{
	struct cvm_xprt_req *req = io->req;
	struct cvm_wire_stat *st;
	void *p;

	io->obj = cvm_store_lookup_get(io->d, &req->hdr);
	if (!io->obj) {
		cvm_store_reply(io, CVM_WIRE_STATUS_NOT_FOUND, 0);
		return;
	}
	if (!req->nr_bvec || req->data_len < sizeof(*st)) {
		cvm_store_reply(io, CVM_WIRE_STATUS_BUSY, 0);
		return;
	}
	p = kmap_local_page(req->bvec[0].bv_page);
	st = p + req->bvec[0].bv_offset;
	memset(st, 0, sizeof(*st));
	st->allocated = cpu_to_le64(CVM_EXTENT_SIZE);
	st->snap_seq = cpu_to_le64(io->obj->snap_seq);
	st->version = cpu_to_le32(READ_ONCE(io->obj->version));
	if (READ_ONCE(io->obj->intent))
		st->flags = cpu_to_le32(CVM_WIRE_STAT_F_INTENT);
	kunmap_local(p);
	cvm_store_reply(io, CVM_WIRE_STATUS_OK, sizeof(*st));
}

void cvm_store_handle(struct cvm_store_dev *d, struct cvm_xprt_req *req)
{
	const struct cvm_wire_hdr *h = &req->hdr;
	u64 end = le64_to_cpu(h->offset) + le32_to_cpu(h->length);
	u64 host_id = req->conn->hello.host_id;
	struct cvm_store_io *io;
	u16 status;

	io = kzalloc(sizeof(*io), GFP_KERNEL);
	if (!io) {
		req->rsp_status = CVM_WIRE_STATUS_BUSY;
		req->rsp_len = 0;
		req->conn->ops->send_reply(req);
		cvm_store_put(d);
		return;
	}
	io->d = d;
	io->req = req;
	io->gate = -1;

	switch (h->opcode) {
	case CVM_WIRE_OP_READ:
	case CVM_WIRE_OP_WRITE:
	case CVM_WIRE_OP_WRITE_ZEROES:
	case CVM_WIRE_OP_DISCARD:
	case CVM_WIRE_OP_PREALLOC:
		if (end > CVM_EXTENT_SIZE) {
			cvm_store_reply(io, CVM_WIRE_STATUS_INVALID, 0);
			return;
		}
		fallthrough;
	case CVM_WIRE_OP_STAT:
	case CVM_WIRE_OP_REMOVE:
	case CVM_WIRE_OP_BUMP:
	case CVM_WIRE_OP_SET_VERSION:
	case CVM_WIRE_OP_CLEAN:
		/* Only the volume's newest attachment may touch it. */
		status = cvm_fence_enter(&d->fence, h, host_id, d->id,
					 &io->gate);
		if (status) {
			cvm_store_reply(io, status, 0);
			return;
		}
		break;
	case CVM_WIRE_OP_LIST:
	case CVM_WIRE_OP_ROLLBACK:
		if (!cvm_fence_granted(&d->fence, h, host_id, d->id)) {
			cvm_store_reply(io, CVM_WIRE_STATUS_DENIED, 0);
			return;
		}
		break;
	}

	switch (h->opcode) {
	case CVM_WIRE_OP_READ:
		io->obj = cvm_store_lookup_get(d, h);
		if (!io->obj) {		/* never written: reads as zeroes */
			cvm_store_zero_payload(io->req, le32_to_cpu(h->length));
			cvm_store_reply(io, CVM_WIRE_STATUS_OK,
					le32_to_cpu(h->length));
		} else {
			cvm_store_submit_data(io);
		}
		return;
	case CVM_WIRE_OP_WRITE:
		io->obj = cvm_store_lookup_get(d, h);
		if (!io->obj) {
			INIT_WORK(&io->work, cvm_store_alloc_work);
			break;
		}
		if (cvm_store_version_stale(io->obj, h)) {
			cvm_store_reply(io, CVM_WIRE_STATUS_STALE_VERSION, 0);
			return;
		}
		if (READ_ONCE(io->obj->intent)) {
			cvm_store_submit_data(io);	/* no metadata */
			return;
		}
		cvm_store_obj_put(io->obj);	/* looked up again there */
		io->obj = NULL;
		INIT_WORK(&io->work, cvm_store_intent_work);
		break;
	case CVM_WIRE_OP_PREALLOC:
		INIT_WORK(&io->work, cvm_store_alloc_work);
		break;
	case CVM_WIRE_OP_FLUSH:
		cvm_store_submit_flush(io);
		return;
	case CVM_WIRE_OP_STAT:
		cvm_store_stat(io);
		return;
	case CVM_WIRE_OP_REMOVE:
		INIT_WORK(&io->work, cvm_store_remove_work);
		break;
	case CVM_WIRE_OP_WRITE_ZEROES:
	case CVM_WIRE_OP_DISCARD:
		INIT_WORK(&io->work, cvm_store_zero_work);
		break;
	case CVM_WIRE_OP_BUMP:
	case CVM_WIRE_OP_SET_VERSION:
	case CVM_WIRE_OP_CLEAN:
		INIT_WORK(&io->work, cvm_store_version_work);
		break;
	case CVM_WIRE_OP_LIST:
		INIT_WORK(&io->work, cvm_store_list_work);
		break;
	default:	/* ROLLBACK: not yet */
		cvm_store_reply(io, CVM_WIRE_STATUS_UNSUPPORTED, 0);
		return;
	}
	queue_work(cvm_store_wq, &io->work);
}

int cvm_store_init(void)
{
	cvm_store_wq = alloc_workqueue("cvm_store", WQ_MEM_RECLAIM | WQ_UNBOUND,
				       0);
	return cvm_store_wq ? 0 : -ENOMEM;
}

void cvm_store_exit(void)
{
	cvm_store_remove_all();
	destroy_workqueue(cvm_store_wq);
}
