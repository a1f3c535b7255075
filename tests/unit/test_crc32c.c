/* CRC32C against the RFC 3720 B.4 vectors and a bitwise reference. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/lib/crc32c.h"

/* One bit at a time, straight from the definition. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

Test(crc32c, rfc3720_vectors)
{
	uint8_t b[48];

	cr_assert_eq(crc32c(0, "123456789", 9), 0xe3069283u);
	memset(b, 0, 32);
	cr_assert_eq(crc32c(0, b, 32), 0x8a9136aau);
	memset(b, 0xff, 32);
	cr_assert_eq(crc32c(0, b, 32), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	cr_assert_eq(crc32c(0, b, 32), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	cr_assert_eq(crc32c(0, b, 32), 0x113fdb5cu);
	cr_assert_eq(crc32c(0, NULL, 0), 0);
}

Test(crc32c, matches_reference_any_split)
{
	uint8_t buf[1000];
	unsigned s = 7;

	for (size_t i = 0; i < sizeof(buf); i++) {
		s = s * 1103515245u + 12345u;
		buf[i] = (uint8_t)(s >> 16);
	}
	for (size_t len = 0; len + 3 <= sizeof(buf); len += 37) {
		uint32_t want = crc_ref(buf + 3, len);

		cr_assert_eq(crc32c(0, buf + 3, len), want, "len %zu", len);
		for (size_t cut = 0; cut <= len; cut += 13)
			cr_assert_eq(crc32c(crc32c(0, buf + 3, cut), buf + 3 + cut, len - cut),
				     want, "len %zu cut %zu", len, cut);
	}
}
