/*
 * The record MAC of the encrypt=off data link (mig_mac.c): the
 * ChaCha20-Poly1305 tag of an empty plaintext (RFC 8439) from mbedTLS, in
 * the shape the stream codec calls (mig_mac_fn, migrate/stream.h).  No hardware: the unit tests
 * build it with the host's mbedTLS.
 */
#ifndef TERN_MIG_MAC_H
#define TERN_MIG_MAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mbedtls/chachapoly.h"
#include "migrate/stream.h"

/* The label of the key exporter (both ends derive the key with it). */
#define MIG_MAC_LABEL		"tern migration record mac"
#define MIG_MAC_NONCE_LEN	16

struct mig_mac {
	mbedtls_chachapoly_context cp;
	bool ready;
};

/* Key the MAC: 0 or -EINVAL; mig_mac_free undoes it (and is safe on a
 * zeroed or freed struct). */
int mig_mac_init(struct mig_mac *m, const uint8_t key[MIG_MAC_KEY_LEN]);
void mig_mac_free(struct mig_mac *m);

/* A mig_mac_fn; ctx is a keyed struct mig_mac. */
int mig_mac_tag(void *ctx, uint64_t seq, const uint8_t *hdr, const uint8_t *meta,
		uint32_t meta_len, const uint8_t *data, uint32_t data_len, uint8_t *tag);

/* Control-line fields: n bytes as 2n lowercase hex digits into out
 * (2n + 1 bytes); and back from " KEY=HEX" in line (exactly 2n digits,
 * then a space or the end): 0 or -EPROTO. */
void mig_hex_put(char *out, const uint8_t *in, size_t n);
int mig_hex_field(const char *line, const char *key, uint8_t *out, size_t n);

#endif
