/*
 * Unit tests for the record MACs of the encrypt=off data link
 * (migrate/stream.h "Record MACs", migrate/mig_mac.c): a stream whose
 * records after CONFIG carry ChaCha20-Poly1305 tags round-trips in any split;
 * an on-path edit that keeps every CRC right (a flipped page bit with its
 * page CRC and the record CRC chain recomputed), a replayed or moved
 * record, a record from another key, and a cut tag are all refused before
 * any of the record is used.  The same edits on an untagged stream go
 * through, which is the attack the tags stop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "kernel/lib/crc32c.h"
#include "migrate/mig_mac.h"
#include "migrate/stream.h"

#define M_PAGES		8
#define M_BUF		(1u << 20)
#define M_PG		MIG_PAGE_SIZE

struct mctx {
	uint8_t mem[M_PAGES][M_PG];
	int npages, nrounds, nvcpus, nend;
};

static int m_page(void *ctx, uint64_t index, const void *data)
{
	struct mctx *t = ctx;

	if (data)
		memcpy(t->mem[index], data, M_PG);
	else
		memset(t->mem[index], 0, M_PG);
	t->npages++;
	return 0;
}

static int m_round(void *ctx, const struct mig_round *r)
{
	(void)r;
	((struct mctx *)ctx)->nrounds++;
	return 0;
}

static int m_vcpu(void *ctx, const struct mig_vcpu *v)
{
	(void)v;
	((struct mctx *)ctx)->nvcpus++;
	return 0;
}

static int m_end(void *ctx, const struct mig_end *e)
{
	(void)e;
	((struct mctx *)ctx)->nend++;
	return 0;
}

static const struct mig_dec_ops m_ops = {
	.round = m_round, .page = m_page, .vcpu = m_vcpu, .end = m_end,
};

static struct mig_dec *m_dec;
static struct mctx *m_ctx;
static uint8_t *m_buf, *m_hold, *m_expect;
static uint64_t m_seen[1];
static struct mig_mac m_enc_mac, m_dec_mac;
static const uint8_t key_a[MIG_MAC_KEY_LEN] = "migration A's key, 32 bytes...!";
static const uint8_t key_b[MIG_MAC_KEY_LEN] = "migration B's key, 32 bytes...!";

static void m_setup(void)
{
	m_dec = malloc(sizeof(*m_dec));
	m_ctx = malloc(sizeof(*m_ctx));
	m_buf = malloc(M_BUF);
	m_hold = malloc(MIG_DATA_MAX);
	m_expect = malloc(M_PAGES * M_PG);
	cr_assert(m_dec && m_ctx && m_buf && m_hold && m_expect);
}

static void m_teardown(void)
{
	mig_mac_free(&m_enc_mac);
	mig_mac_free(&m_dec_mac);
	free(m_dec);
	free(m_ctx);
	free(m_buf);
	free(m_hold);
	free(m_expect);
}

TestSuite(migmac, .init = m_setup, .fini = m_teardown);

/*
 * A live stream of M_PAGES pages as the source sends it with encrypt=off:
 * header and CONFIG untagged (they go over TLS), then, keyed with key,
 * ROUND 0 with pages 0..3 and 4..7 in two RAM records, ROUND 1 (final)
 * with page 5 again, one VCPU, END.  key NULL: no tags at all.  *cut is
 * where the tagged part starts.
 */
static size_t m_build(const uint8_t *key, size_t *cut)
{
	static uint8_t pages[M_PAGES][M_PG];
	static struct mig_enc e;
	struct mig_config c = { .mem_size = M_PAGES * M_PG, .nvcpus = 1,
				.kind = MIG_KIND_MULTIBOOT, .name = "web1" };
	struct mig_page pg[M_PAGES];
	struct mig_vcpu v = { .index = 0, .rflags = 2 };

	for (int i = 0; i < M_PAGES; i++) {
		memset(pages[i], 0x30 + i, M_PG);
		pg[i] = (struct mig_page){ (uint64_t)i, pages[i] };
	}
	memcpy(m_expect, pages, sizeof(pages));
	cr_assert_eq(mig_enc_init(&e, m_buf, M_BUF, MIG_F_LIVE), 0);
	cr_assert_eq(mig_enc_config(&e, &c), 0, "%s", e.reason);
	*cut = e.len;
	if (key) {
		mig_mac_free(&m_enc_mac);
		cr_assert_eq(mig_mac_init(&m_enc_mac, key), 0);
		mig_enc_mac(&e, mig_mac_tag, &m_enc_mac);
	}
	cr_assert_eq(mig_enc_round(&e, 0, 0, M_PAGES), 0, "%s", e.reason);
	cr_assert_eq(mig_enc_ram(&e, pg, 4), 0, "%s", e.reason);
	cr_assert_eq(mig_enc_ram(&e, pg + 4, 4), 0, "%s", e.reason);
	cr_assert_eq(mig_enc_round(&e, 1, MIG_ROUND_FINAL, 1), 0, "%s", e.reason);
	cr_assert_eq(mig_enc_ram(&e, pg + 5, 1), 0, "%s", e.reason);
	cr_assert_eq(mig_enc_vcpu(&e, &v), 0, "%s", e.reason);
	cr_assert_eq(mig_enc_end(&e), 0, "%s", e.reason);
	cr_assert_eq(e.len, e.bytes);
	return e.len;
}

/*
 * Decode buf[0..n) as the destination does: the untagged part, then the
 * key (key NULL: none), then the rest in chunks of step bytes.
 */
static int m_decode(const uint8_t *buf, size_t n, size_t cut, const uint8_t *key,
		    size_t step)
{
	int rc;

	memset(m_ctx, 0, sizeof(*m_ctx));
	mig_dec_init(m_dec, &m_ops, m_ctx, m_seen, M_PAGES);
	rc = mig_dec_feed(m_dec, buf, cut);
	if (rc)
		return rc;
	if (key) {
		mig_mac_free(&m_dec_mac);
		cr_assert_eq(mig_mac_init(&m_dec_mac, key), 0);
		mig_dec_mac(m_dec, mig_mac_tag, &m_dec_mac, m_hold);
	}
	for (size_t off = cut; off < n; off += step)
		if ((rc = mig_dec_feed(m_dec, buf + off, n - off < step ? n - off : step)))
			return rc;
	return mig_dec_finish(m_dec);
}

/* Offset of record nth (0 is CONFIG), records from the first_tagged one
 * on followed by a tag. */
static size_t m_rec(const uint8_t *buf, unsigned nth, unsigned first_tagged)
{
	size_t off = MIG_HDR_LEN;

	for (unsigned i = 0; i < nth; i++)
		off += MIG_REC_HDR_LEN + ld_le32(buf + off + 4) + ld_le32(buf + off + 8) +
		       (i >= first_tagged ? MIG_TAG_LEN : 0);
	return off;
}

static size_t m_rec_len(const uint8_t *buf, size_t off, bool tagged)
{
	return MIG_REC_HDR_LEN + ld_le32(buf + off + 4) + ld_le32(buf + off + 8) +
	       (tagged ? MIG_TAG_LEN : 0);
}

/* What an on-path attacker can do without the key: recompute every page
 * CRC and the record CRC chain of nrec records (tags left as they are). */
static void m_reseal(uint8_t *buf, unsigned nrec, unsigned first_tagged)
{
	uint32_t chain = ld_le32(buf + 12);

	for (unsigned i = 0; i < nrec; i++) {
		uint8_t *h = buf + m_rec(buf, i, first_tagged);
		uint32_t meta = ld_le32(h + 4);

		if (ld_le16(h) == MIG_REC_RAM) {
			uint8_t *data = h + MIG_REC_HDR_LEN + meta;

			for (uint32_t k = 0; k < ld_le32(h + MIG_REC_HDR_LEN); k++) {
				uint8_t *ent = h + MIG_REC_HDR_LEN + 8 + 16 * k;

				if (ent[8] != MIG_PAGE_DATA)
					continue;
				st_le32(ent + 12, crc32c(CRC32C_INIT, data, M_PG));
				data += M_PG;
			}
		}
		chain = crc32c(crc32c(chain, h, 12), h + MIG_REC_HDR_LEN, meta);
		st_le32(h + 12, chain);
	}
}

#define M_NREC		8	/* CONFIG ROUND RAM RAM ROUND RAM VCPU END */
#define M_RAM2		3	/* the second RAM record: pages 4..7 */

Test(migmac, roundtrip_any_split)
{
	static const size_t steps[] = { 1, 7, 4096, 4113, M_BUF };
	size_t cut, n = m_build(key_a, &cut), plain_cut, plain = m_build(NULL, &plain_cut);

	/* Seven tagged records: 16 bytes each on the wire. */
	cr_assert_eq(n, plain + 7 * MIG_TAG_LEN);
	m_build(key_a, &cut);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		cr_assert_eq(m_decode(m_buf, n, cut, key_a, steps[i]), 0, "step %zu: %s",
			     steps[i], m_dec->reason);
		cr_assert(mig_dec_complete(m_dec));
		cr_assert_eq(m_ctx->npages, M_PAGES + 1);
		cr_assert_eq(m_ctx->nend, 1);
		cr_assert_eq(memcmp(m_ctx->mem, m_expect, M_PAGES * M_PG), 0);
	}
}

/* The data-link attack of issue #17: one byte of a page, CRCs fixed up. */
static void m_flip_page_byte(uint8_t *buf, unsigned first_tagged)
{
	size_t off = m_rec(buf, M_RAM2, first_tagged);

	/* Page 6, the third page of the record, byte 100. */
	buf[off + MIG_REC_HDR_LEN + ld_le32(buf + off + 4) + 2 * M_PG + 100] ^= 0x01;
	m_reseal(buf, M_NREC, first_tagged);
}

Test(migmac, flipped_page_bit_with_crcs_fixed_is_refused)
{
	size_t cut, n;

	/* Without tags the edit goes through: page 6 arrives altered. */
	n = m_build(NULL, &cut);
	m_flip_page_byte(m_buf, M_NREC);
	cr_assert_eq(m_decode(m_buf, n, cut, NULL, M_BUF), 0, "%s", m_dec->reason);
	cr_assert_neq(memcmp(m_ctx->mem[6], m_expect + 6 * M_PG, M_PG), 0);

	/* With them it is refused, and no page of the record was used. */
	n = m_build(key_a, &cut);
	m_flip_page_byte(m_buf, 1);
	cr_assert_eq(m_decode(m_buf, n, cut, key_a, 4096), -EACCES, "%s", m_dec->reason);
	cr_assert(strstr(m_dec->reason, "record 4 (RAM)"), "%s", m_dec->reason);
	cr_assert(strstr(m_dec->reason, "record MAC mismatch"), "%s", m_dec->reason);
	cr_assert_eq(m_ctx->npages, 4, "only the first RAM record's pages");
	cr_assert_eq(mig_dec_feed(m_dec, m_buf, 1), -EACCES, "sticky");
}

Test(migmac, flipped_tag_or_header_bit_is_refused)
{
	size_t cut, n = m_build(key_a, &cut);
	size_t off = m_rec(m_buf, M_RAM2, 1);

	m_buf[off + m_rec_len(m_buf, off, true) - 1] ^= 0x80;
	cr_assert_eq(m_decode(m_buf, n, cut, key_a, M_BUF), -EACCES, "%s", m_dec->reason);
	m_build(key_a, &cut);
	m_buf[off + 14] ^= 0x01;	/* the rcrc: the tag covers it too */
	cr_assert_eq(m_decode(m_buf, n, cut, key_a, M_BUF), -EACCES, "%s", m_dec->reason);
}

/*
 * Replay: the second RAM record sent again in place of the last one (the
 * final round's, also one of this stream's records, same key), its CRCs
 * made right.  And the records swapped.
 */
Test(migmac, replayed_or_moved_record_is_refused)
{
	static uint8_t b[M_BUF];
	size_t cut, n = m_build(key_a, &cut);
	size_t r1 = m_rec(m_buf, 2, 1), r2 = m_rec(m_buf, M_RAM2, 1);
	size_t l1 = m_rec_len(m_buf, r1, true), l2 = m_rec_len(m_buf, r2, true);
	size_t len;

	/* CONFIG ROUND RAM(0..3) RAM(0..3) ...: the first RAM record twice. */
	memcpy(b, m_buf, r2);
	memcpy(b + r2, m_buf + r1, l1);
	memcpy(b + r2 + l1, m_buf + r2 + l2, n - r2 - l2);
	len = n - l2 + l1;
	m_reseal(b, M_NREC, 1);
	cr_assert_eq(m_decode(b, len, cut, key_a, M_BUF), -EACCES, "%s", m_dec->reason);
	cr_assert(strstr(m_dec->reason, "record 4 (RAM)"), "%s", m_dec->reason);
	cr_assert_eq(m_ctx->npages, 4);

	/* The two RAM records of round 0 swapped. */
	memcpy(b, m_buf, r1);
	memcpy(b + r1, m_buf + r2, l2);
	memcpy(b + r1 + l2, m_buf + r1, l1);
	memcpy(b + r1 + l1 + l2, m_buf + r2 + l2, n - r2 - l2);
	m_reseal(b, M_NREC, 1);
	cr_assert_eq(m_decode(b, n, cut, key_a, M_BUF), -EACCES, "%s", m_dec->reason);
	cr_assert_eq(m_ctx->npages, 0);
}

/* A whole stream from another migration (another key): nothing past
 * CONFIG is used, not even its first ROUND. */
Test(migmac, record_from_another_key_is_refused)
{
	size_t cut, n = m_build(key_b, &cut);

	cr_assert_eq(m_decode(m_buf, n, cut, key_a, 1), -EACCES, "%s", m_dec->reason);
	cr_assert(strstr(m_dec->reason, "record 2 (ROUND)"), "%s", m_dec->reason);
	cr_assert_eq(m_ctx->nrounds, 0);
	cr_assert_eq(m_ctx->npages, 0);
}

/* An untagged stream where tags are due: the first bytes of the next
 * record are taken as the tag, which cannot match. */
Test(migmac, untagged_stream_is_refused)
{
	size_t cut, n = m_build(NULL, &cut);

	cr_assert_eq(m_decode(m_buf, n, cut, key_a, M_BUF), -EACCES, "%s", m_dec->reason);
	cr_assert_eq(m_ctx->nrounds, 0);
}

Test(migmac, cut_inside_a_tag)
{
	size_t cut, n = m_build(key_a, &cut);

	cr_assert_eq(m_decode(m_buf, n - 5, cut, key_a, M_BUF), -ENODATA);
	cr_assert(strstr(m_dec->reason, "inside the MAC of a record"), "%s", m_dec->reason);
	cr_assert_eq(m_ctx->nend, 0);
}

/*
 * The tag itself: ChaCha20-Poly1305 (RFC 8439) of an empty plaintext,
 * nonce 0^4 || le64(seq), additional data the record's parts in order.
 * The expected value comes from another implementation (Python's
 * cryptography, ChaCha20Poly1305(key).encrypt(nonce, b"", aad)).
 */
Test(migmac, tag_is_chacha20_poly1305)
{
	static const uint8_t want[MIG_TAG_LEN] = {
		0x2a, 0x61, 0xfb, 0x5c, 0x1b, 0xc0, 0x63, 0xa4,
		0xcd, 0xfc, 0x5f, 0x42, 0x7c, 0xa1, 0xcf, 0x10,
	};
	const char *aad = "what do ya want for nothing?";	/* 16 + 12 bytes */
	uint8_t key[MIG_MAC_KEY_LEN], tag[MIG_TAG_LEN];
	struct mig_mac m;

	for (int i = 0; i < MIG_MAC_KEY_LEN; i++)
		key[i] = (uint8_t)(0x80 + i);	/* RFC 8439 section 2.8.2's key */
	cr_assert_eq(mig_mac_init(&m, key), 0);
	cr_assert_eq(mig_mac_tag(&m, 7, (const uint8_t *)aad, (const uint8_t *)aad + 16, 12,
				 NULL, 0, tag), 0);
	cr_assert_eq(memcmp(tag, want, sizeof(tag)), 0);
	/* The same bytes split elsewhere between meta and data: the same tag. */
	cr_assert_eq(mig_mac_tag(&m, 7, (const uint8_t *)aad, (const uint8_t *)aad + 16, 5,
				 (const uint8_t *)aad + 21, 7, tag), 0);
	cr_assert_eq(memcmp(tag, want, sizeof(tag)), 0);
	/* Another seq: another tag. */
	cr_assert_eq(mig_mac_tag(&m, 8, (const uint8_t *)aad, (const uint8_t *)aad + 16, 12,
				 NULL, 0, tag), 0);
	cr_assert_neq(memcmp(tag, want, sizeof(tag)), 0);
	mig_mac_free(&m);
}

Test(migmac, hex_fields)
{
	uint8_t b[2];

	cr_assert_eq(mig_hex_field("ACCEPTED data=7 token=0aff nonce=10", "token", b, 2), 0);
	cr_assert(b[0] == 0x0a && b[1] == 0xff);
	cr_assert_eq(mig_hex_field("ACCEPTED data=7 token=0aff nonce=10ab", "nonce", b, 2), 0);
	cr_assert_eq(mig_hex_field("ACCEPTED xnonce=10ab", "nonce", b, 2), -EPROTO);
	cr_assert_eq(mig_hex_field("ACCEPTED nonce=10a", "nonce", b, 2), -EPROTO);
	cr_assert_eq(mig_hex_field("ACCEPTED nonce=10abc", "nonce", b, 2), -EPROTO);
	cr_assert_eq(mig_hex_field("ACCEPTED nonce=10AB", "nonce", b, 2), -EPROTO);
}
