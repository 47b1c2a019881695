// SPDX-License-Identifier: GPL-2.0
/*
 * Host authentication in HELLO and AUTH: keys and proofs (the scheme is
 * in cvm_wire.h, "Authentication"; the idea is NVMe's DH-HMAC-CHAP
 * without the Diffie-Hellman part).  HMAC-SHA256 through the kernel
 * crypto API, a transform per computation: handshakes are rare, and a
 * transform of our own needs no lock around its key.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <crypto/algapi.h>
#include <crypto/hash.h>
#include <linux/cvm_wire.h>
#include <linux/random.h>
#include <linux/string.h>

#include "transport.h"

static const char cvm_auth_label_key[] = "cvm-host-key";
static const char cvm_auth_label_target[] = "cvm-target";
static const char cvm_auth_label_host[] = "cvm-host";

struct cvm_auth_part {
	const void	*data;
	unsigned int	len;
};

/* @out = HMAC-SHA256(@key, parts...), CVM_WIRE_PROOF_LEN bytes. */
static int cvm_auth_hmac(const u8 *key, const struct cvm_auth_part *parts,
			 unsigned int nr, u8 *out)
{
	struct crypto_shash *tfm;
	unsigned int i;
	int ret;

	tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	ret = crypto_shash_setkey(tfm, key, CVM_WIRE_KEY_LEN);
	if (!ret) {
		SHASH_DESC_ON_STACK(desc, tfm);

		desc->tfm = tfm;
		ret = crypto_shash_init(desc);
		for (i = 0; !ret && i < nr; i++)
			ret = crypto_shash_update(desc, parts[i].data,
						  parts[i].len);
		if (!ret)
			ret = crypto_shash_final(desc, out);
		shash_desc_zero(desc);
	}
	crypto_free_shash(tfm);
	return ret;
}

int cvm_auth_derive_key(const u8 *secret, u64 cluster_id, u64 host_id,
			u32 device_id, u8 *key)
{
	__le64 cluster = cpu_to_le64(cluster_id), host = cpu_to_le64(host_id);
	__le32 dev = cpu_to_le32(device_id);
	const struct cvm_auth_part parts[] = {
		{ cvm_auth_label_key, strlen(cvm_auth_label_key) },
		{ &cluster, sizeof(cluster) },
		{ &host, sizeof(host) },
		{ &dev, sizeof(dev) },
	};

	return cvm_auth_hmac(secret, parts, ARRAY_SIZE(parts), key);
}

/* HMAC(key, label || T), T the handshake's transcript (cvm_wire.h). */
static int cvm_auth_proof(const struct cvm_conn *conn, const char *label,
			  u8 *proof)
{
	__le64 cluster = cpu_to_le64(conn->hello.cluster_id);
	__le64 host = cpu_to_le64(conn->hello.host_id);
	__le32 dev = cpu_to_le32(conn->hello.device_id);
	__le32 key_id = cpu_to_le32(conn->hello.key_id);
	const struct cvm_auth_part parts[] = {
		{ label, strlen(label) },
		{ &cluster, sizeof(cluster) },
		{ &host, sizeof(host) },
		{ &dev, sizeof(dev) },
		{ &key_id, sizeof(key_id) },
		{ conn->auth.host_nonce, CVM_WIRE_NONCE_LEN },
		{ conn->auth.target_nonce, CVM_WIRE_NONCE_LEN },
	};

	return cvm_auth_hmac(conn->hello.key, parts, ARRAY_SIZE(parts), proof);
}

int cvm_auth_challenge(struct cvm_conn *conn)
{
	get_random_bytes(conn->auth.target_nonce, CVM_WIRE_NONCE_LEN);
	return cvm_auth_proof(conn, cvm_auth_label_target,
			      conn->auth.target_proof);
}

/* Is @proof the one @label's side makes?  In constant time. */
static bool cvm_auth_check(struct cvm_conn *conn, const char *label,
			   const u8 *proof)
{
	u8 want[CVM_WIRE_PROOF_LEN];
	bool ok;

	if (cvm_auth_proof(conn, label, want))
		return false;
	ok = !crypto_memneq(want, proof, sizeof(want));
	memzero_explicit(want, sizeof(want));
	return ok;
}

bool cvm_auth_host_ok(struct cvm_conn *conn)
{
	return cvm_auth_check(conn, cvm_auth_label_host, conn->auth.host_proof);
}

bool cvm_auth_target_ok(struct cvm_conn *conn, const u8 *proof)
{
	return cvm_auth_check(conn, cvm_auth_label_target, proof);
}

int cvm_auth_host_proof(struct cvm_conn *conn, u8 *proof)
{
	return cvm_auth_proof(conn, cvm_auth_label_host, proof);
}
