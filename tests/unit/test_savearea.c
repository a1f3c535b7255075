/* The save area's header block (migrate/savearea.c): round trip, every
 * field refused when wrong, the CRC, and versions we do not know. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include "kernel/lib/crc32c.h"
#include "migrate/savearea.h"

static uint8_t blk[SAVEAREA_HDR_LEN];

static struct savearea_hdr good(void)
{
	struct savearea_hdr h = {
		.version = SAVEAREA_VERSION, .state = SAVEAREA_VALID,
		.stream_off = SAVEAREA_STREAM_OFF, .stream_len = 123456789,
		.mem_size = 256ull << 20, .nvcpus = 2, .save_ms = 4321,
	};

	strcpy(h.name, "lm");
	strcpy(h.host, "tern-a");
	strcpy(h.addr, "10.0.0.1");
	return h;
}

/* Re-seal a modified block so only the field under test is wrong. */
static void reseal(uint8_t *b)
{
	uint32_t c = crc32c(CRC32C_INIT, b, 252);

	memcpy(b + 252, &c, 4);
}

static int decode(struct savearea_hdr *h)
{
	char why[128];

	return savearea_decode(blk, sizeof(blk), h, why, sizeof(why));
}

Test(savearea, round_trip)
{
	struct savearea_hdr h = good(), d;

	cr_assert_eq(savearea_encode(&h, blk), 0);
	cr_assert_eq(memcmp(blk, "TERNSAVE", 8), 0);
	cr_assert_eq(decode(&d), 0);
	cr_assert_eq(d.version, 1);
	cr_assert_eq(d.state, SAVEAREA_VALID);
	cr_assert_eq(d.stream_off, 4096);
	cr_assert_eq(d.stream_len, 123456789);
	cr_assert_eq(d.mem_size, 256ull << 20);
	cr_assert_eq(d.nvcpus, 2);
	cr_assert_eq(d.save_ms, 4321);
	cr_assert_str_eq(d.name, "lm");
	cr_assert_str_eq(d.host, "tern-a");
	cr_assert_str_eq(d.addr, "10.0.0.1");
	cr_assert_str_eq(d.restored_by, "");
	for (size_t i = SAVEAREA_HDR_USED; i < SAVEAREA_HDR_LEN; i++)
		cr_assert_eq(blk[i], 0);
}

Test(savearea, restored_round_trip_and_longest_strings)
{
	struct savearea_hdr h = good(), d;

	h.state = SAVEAREA_RESTORED;
	memset(h.name, 'n', 31);
	h.name[31] = '\0';
	memset(h.host, 'h', 63);
	h.host[63] = '\0';
	memset(h.addr, '9', 23);
	h.addr[23] = '\0';
	memset(h.restored_by, 'r', 63);
	h.restored_by[63] = '\0';
	cr_assert_eq(savearea_encode(&h, blk), 0);
	cr_assert_eq(decode(&d), 0);
	cr_assert_eq(d.state, SAVEAREA_RESTORED);
	cr_assert_str_eq(d.name, h.name);
	cr_assert_str_eq(d.host, h.host);
	cr_assert_str_eq(d.addr, h.addr);
	cr_assert_str_eq(d.restored_by, h.restored_by);
	cr_assert_str_eq(savearea_state_name(d.state), "restored");
}

Test(savearea, no_save)
{
	struct savearea_hdr d;

	memset(blk, 0, sizeof(blk));
	cr_assert_eq(decode(&d), -ENOENT);
	memset(blk, 0xa5, sizeof(blk));
	cr_assert_eq(decode(&d), -ENOENT);
	/* A migration stream is not a save area. */
	memcpy(blk, "TERN-MIG", 8);
	cr_assert_eq(decode(&d), -ENOENT);
}

Test(savearea, crc)
{
	struct savearea_hdr h = good(), d;

	cr_assert_eq(savearea_encode(&h, blk), 0);
	/* Every bit of the covered bytes (bar the magic and version, which
	 * speak first) and of the CRC itself. */
	for (size_t i = 10; i < SAVEAREA_HDR_USED; i++) {
		for (int b = 0; b < 8; b++) {
			blk[i] ^= (uint8_t)(1 << b);
			cr_assert_eq(decode(&d), -EIO, "byte %zu bit %d", i, b);
			blk[i] ^= (uint8_t)(1 << b);
		}
	}
	cr_assert_eq(decode(&d), 0);
	/* Bytes past the header are not covered. */
	blk[SAVEAREA_HDR_USED] = 1;
	cr_assert_eq(decode(&d), 0);
}

Test(savearea, version)
{
	struct savearea_hdr h = good(), d;
	char why[128];

	cr_assert_eq(savearea_encode(&h, blk), 0);
	for (unsigned v = 0; v < 5; v++) {
		if (v == SAVEAREA_VERSION)
			continue;
		blk[8] = (uint8_t)v;
		/* Refused as a version even with a CRC that does not match. */
		cr_assert_eq(savearea_decode(blk, sizeof(blk), &d, why, sizeof(why)),
			     -EPROTONOSUPPORT);
		cr_assert(strstr(why, "version") != NULL);
		reseal(blk);
		cr_assert_eq(decode(&d), -EPROTONOSUPPORT);
	}
	h.version = 2;
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
}

Test(savearea, short_buffer)
{
	struct savearea_hdr h = good(), d;

	cr_assert_eq(savearea_encode(&h, blk), 0);
	cr_assert_eq(savearea_decode(blk, SAVEAREA_HDR_USED - 1, &d, NULL, 0), -EBADMSG);
	cr_assert_eq(savearea_decode(blk, SAVEAREA_HDR_USED, &d, NULL, 0), 0);
}

/* Each wrong field, encoded by hand and re-sealed: refused by decode,
 * and the same field in a struct refused by encode. */
static void put(size_t off, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		blk[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void refused_raw(size_t off, uint64_t v, int n)
{
	struct savearea_hdr h = good(), d;

	cr_assert_eq(savearea_encode(&h, blk), 0);
	put(off, v, n);
	reseal(blk);
	cr_assert_eq(decode(&d), -EBADMSG, "offset %zu value %llu", off,
		     (unsigned long long)v);
}

Test(savearea, every_field_refused)
{
	struct savearea_hdr h;

	refused_raw(10, 0, 2);			/* state */
	refused_raw(10, 3, 2);
	refused_raw(12, 1, 4);			/* reserved */
	refused_raw(16, 0, 8);			/* stream_off */
	refused_raw(16, 512, 8);
	refused_raw(24, 0, 8);			/* stream_len */
	refused_raw(24, 31, 8);
	refused_raw(24, (1ull << 42) + 1, 8);
	refused_raw(32, 0, 8);			/* mem_size */
	refused_raw(32, 4097, 8);
	refused_raw(40, 0, 4);			/* nvcpus */
	refused_raw(40, 65, 4);
	refused_raw(48, 0, 1);			/* name empty */
	refused_raw(48, '/', 1);		/* name character */
	refused_raw(48 + 31, 'x', 1);		/* name not NUL-ended */
	refused_raw(48 + 5, 'x', 1);		/* bytes after the NUL */
	refused_raw(80, 0x07, 1);		/* host not printable */
	refused_raw(80 + 63, 'x', 1);		/* host not NUL-ended */
	refused_raw(144, 0x7f, 1);		/* addr */
	refused_raw(144 + 23, 'x', 1);
	refused_raw(168, 'x', 1);		/* restored_by on a valid save */
	refused_raw(232, 1, 1);			/* reserved tail */
	refused_raw(251, 1, 1);

	/* The encoder refuses the same. */
	h = good(); h.state = 0;
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); h.stream_off = 0;
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); h.stream_len = 1;
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); h.mem_size = 100;
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); h.nvcpus = 0;
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); strcpy(h.name, "a b");
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); h.name[0] = '\0';
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); h.host[0] = '\n';
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h = good(); strcpy(h.restored_by, "tern-b");
	cr_assert_eq(savearea_encode(&h, blk), -EINVAL);
	h.state = SAVEAREA_RESTORED;
	cr_assert_eq(savearea_encode(&h, blk), 0);
}
