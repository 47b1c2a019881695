/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The one place where kernel/common learns where it is compiled.
 *
 * kernel/common is built unchanged into cvm.ko, cvm_target.ko, the KUnit
 * suites and the userspace library libcvm.  Its sources include only this
 * header and each other; everything environment specific lives here.
 */
#ifndef _CVM_COMPAT_H
#define _CVM_COMPAT_H

#ifdef __KERNEL__

#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/limits.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/crc32c.h>
#include <linux/sched.h>

#define cvm_zalloc(size)	kvzalloc(size, GFP_KERNEL)
#define cvm_free(ptr)		kvfree(ptr)
/* Long table computations run in process context: let others run. */
#define cvm_cond_resched()	cond_resched()

#define cvm_ilog2(v)		ilog2(v)

#else /* !__KERNEL__ */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <stdlib.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
typedef int64_t s64;

#define U32_MAX		UINT32_MAX

static inline void *cvm_zalloc(size_t size)
{
	return calloc(1, size);
}

static inline void cvm_free(void *ptr)
{
	free(ptr);
}

static inline void cvm_cond_resched(void)
{
}

/* Index of the highest set bit; @v must not be 0. */
static inline unsigned int cvm_ilog2(u32 v)
{
	return 31 - __builtin_clz(v);
}

static inline u64 div_u64(u64 dividend, u32 divisor)
{
	return dividend / divisor;
}

static inline u64 div64_u64(u64 dividend, u64 divisor)
{
	return dividend / divisor;
}

#endif /* __KERNEL__ */

/*
 * struct cvm_err - why an input was refused
 * @why:  static, human-readable cause; never freed
 * @item: the offending id, index or value, meaningful when @why says so
 *
 * Functions that validate input return a negative errno and, when given a
 * non-NULL @err, fill it.  @why is a static string so the kernel can hand
 * it to netlink extack as is.
 */
struct cvm_err {
	const char *why;
	s64 item;
};

static inline int cvm_fail(struct cvm_err *err, int ret, const char *why,
			   s64 item)
{
	if (err) {
		err->why = why;
		err->item = item;
	}
	return ret;
}

/* Little-endian field access for the map codec, alignment free. */
static inline u32 cvm_get_le32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static inline u64 cvm_get_le64(const u8 *p)
{
	return (u64)cvm_get_le32(p) | (u64)cvm_get_le32(p + 4) << 32;
}

static inline void cvm_put_le32(u8 *p, u32 v)
{
	/* Masked, not just narrowed: sparse flags constant truncation. */
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

static inline void cvm_put_le64(u8 *p, u64 v)
{
	cvm_put_le32(p, (u32)v);
	cvm_put_le32(p + 4, (u32)(v >> 32));
}

#endif /* _CVM_COMPAT_H */
