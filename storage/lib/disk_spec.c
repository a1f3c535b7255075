/*
 * Disk specifications (disk_spec.h): the URL and the options of a disk,
 * from the console or tern.cfg.  Everything here is operator input: check
 * every byte, quote nothing secret back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/config.h"
#include "storage/lib/disk_spec.h"

#define URL_SCHEME	"iscsi://"

static int fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EINVAL;
}

int disk_name_check(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DISK_NAME_MAX || s[0] < 'a' || s[0] > 'z')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return -EINVAL;
	}
	return 0;
}

/* Decimal 0..max without sign, leading zeros or trailing bytes. */
static int parse_dec(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* HOST[:PORT] of len n. */
static int parse_portal(const char *s, size_t n, struct disk_spec *out, const char **why)
{
	char host[16];
	const char *colon = memchr(s, ':', n);
	size_t hlen = colon ? (size_t)(colon - s) : n;
	unsigned port = DISK_DEFAULT_PORT;

	if (hlen == 0 || hlen >= sizeof(host))
		return fail(why, "the portal must be an IPv4 address");
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (cfg_parse_ipv4(host, &out->addr) < 0)
		return fail(why, "the portal must be an IPv4 address");
	if (colon && (parse_dec(colon + 1, n - hlen - 1, 65535, &port) < 0 || port == 0))
		return fail(why, "the port must be 1..65535");
	out->port = (uint16_t)port;
	return 0;
}

int disk_url_parse(const char *url, struct disk_spec *out, const char **why)
{
	const char *p, *slash, *last;
	size_t len = strlen(url);

	if (len <= strlen(URL_SCHEME) || strncmp(url, URL_SCHEME, strlen(URL_SCHEME)))
		return fail(why, "expected iscsi://PORTAL/IQN/LUN");
	p = url + strlen(URL_SCHEME);
	slash = strchr(p, '/');
	last = strrchr(p, '/');
	if (!slash || slash == last)
		return fail(why, "expected iscsi://PORTAL/IQN/LUN");
	if (parse_portal(p, (size_t)(slash - p), out, why) < 0)
		return -EINVAL;
	if (last - slash - 1 <= 0 || last - slash - 1 > ISCSI_NAME_MAX ||
	    iscsi_name_check(slash + 1, (size_t)(last - slash - 1)) < 0)
		return fail(why, "not an iSCSI name (iqn.YYYY-MM.domain:..., eui., naa.)");
	memcpy(out->iqn, slash + 1, (size_t)(last - slash - 1));
	out->iqn[last - slash - 1] = '\0';
	if (parse_dec(last + 1, strlen(last + 1), DISK_LUN_MAX, &out->lun) < 0)
		return fail(why, "the LUN must be 0..16383");
	return 0;
}

/* USER:SECRET into user and secret. */
static int parse_chap(const char *v, char *user, char *secret, const char **why)
{
	const char *colon = strchr(v, ':');
	size_t ulen = colon ? (size_t)(colon - v) : 0;

	if (!colon || ulen == 0 || ulen > DISK_CHAP_MAX)
		return fail(why, "CHAP wants USER:SECRET (user 1..64 bytes)");
	if (strlen(colon + 1) == 0 || strlen(colon + 1) > DISK_CHAP_MAX)
		return fail(why, "a CHAP secret is 1..64 bytes");
	memcpy(user, v, ulen);
	user[ulen] = '\0';
	strcpy(secret, colon + 1);
	return 0;
}

static int parse_digest(const char *v, struct disk_spec *out, const char **why)
{
	if (!strcmp(v, "none"))
		out->header_digest = out->data_digest = false;
	else if (!strcmp(v, "crc32c"))
		out->header_digest = out->data_digest = true;
	else if (!strcmp(v, "header"))
		out->header_digest = true, out->data_digest = false;
	else if (!strcmp(v, "data"))
		out->header_digest = false, out->data_digest = true;
	else
		return fail(why, "digest is none, crc32c, header or data");
	return 0;
}

static int parse_opt(const char *tok, struct disk_spec *out, const char **why)
{
	const char *eq = strchr(tok, '=');
	size_t klen = eq ? (size_t)(eq - tok) : 0;

	if (!eq)
		return fail(why, "options are key=value (chap=, mutual=, digest=)");
	if (klen == 4 && !strncmp(tok, "chap", 4)) {
		out->chap = true;
		return parse_chap(eq + 1, out->chap_user, out->chap_secret, why);
	}
	if (klen == 6 && !strncmp(tok, "mutual", 6)) {
		out->mutual = true;
		return parse_chap(eq + 1, out->mutual_user, out->mutual_secret, why);
	}
	if (klen == 6 && !strncmp(tok, "digest", 6))
		return parse_digest(eq + 1, out, why);
	return fail(why, "unknown option (chap=, mutual=, digest=)");
}

int disk_spec_parse(int argc, char **argv, struct disk_spec *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (argc < 2)
		return fail(why, "expected NAME iscsi://PORTAL/IQN/LUN [options]");
	if (disk_name_check(argv[0]) < 0)
		return fail(why, "a disk name is 1..15 of a-z 0-9 _ -, starting with a letter");
	strcpy(out->name, argv[0]);
	if (disk_url_parse(argv[1], out, why) < 0)
		return -EINVAL;
	for (int i = 2; i < argc; i++)
		if (parse_opt(argv[i], out, why) < 0)
			return -EINVAL;
	if (out->mutual && !out->chap)
		return fail(why, "mutual= needs chap= (the target is asked only after us)");
	return 0;
}

void disk_spec_url(const struct disk_spec *s, char *buf, unsigned cap)
{
	snprintf(buf, cap, "iscsi://%u.%u.%u.%u:%u/%s/%u", s->addr >> 24, (s->addr >> 16) & 255,
		 (s->addr >> 8) & 255, s->addr & 255, s->port, s->iqn, s->lun);
}
