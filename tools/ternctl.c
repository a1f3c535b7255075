/*
 * ternctl: the Tern network console client (Linux host tool).
 *
 *	ternctl --host ADDR[:PORT] --secret-file FILE [--json] [--timeout S]
 *		[COMMAND [ARGS...]]
 *
 * Wire protocol (TCP, default port 7023, inside TLS 1.2 with a pre-shared
 * key; net/stack/netcon.c): the client sends "--json COMMAND" ended by
 * "\n"; the server runs COMMAND through cmd_dispatch() in JSON mode and
 * answers with exactly one JSON object on one line ended by "\n"
 * (kernel/lib/cmd.h):
 *	{"ok":true,"cmd":"status","output":"..."}
 *	{"ok":false,"cmd":"vm create","error":"...","output":"..."}
 * Blank lines are never sent: cmd_dispatch answers them with nothing.
 *
 * TLS: identity "tern", PSK = the bytes of the secret file (the value of
 * `secret` in tern.cfg; one trailing newline is ignored), suites
 * TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256 (forward secret, preferred)
 * and TLS-PSK-WITH-AES-128-GCM-SHA256, TLS 1.2 only (RFC 4279, RFC 7905).
 *
 * Output: the reply's "output" on stdout and its "error" as "error: ..."
 * on stderr; with --json the reply object itself, verbatim.  Exit status:
 * 0 the command succeeded, 1 it failed ("ok":false), 2 usage, 3 connection,
 * TLS or protocol failure.  Without COMMAND, an interactive prompt with
 * line editing and history (arrow keys): the serial console's editor,
 * kernel/lib/lineedit.c, so no readline dependency.
 *
 * Built with the host's gcc against the host build of Debian's mbedTLS
 * source (tools/build-mbedtls.sh), with -DMBEDTLS_PSK_MAX_LEN=128.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/ssl.h"

#include "kernel/lib/lineedit.h"

#define TERNCTL_DEFAULT_PORT	"7023"
#define TERNCTL_IDENTITY	"tern"
#define TERNCTL_SECRET_MAX	127		/* CFG_SECRET_MAX - 1 */
#define TERNCTL_LINE_MAX	1024		/* CMD_LINE_MAX */
#define TERNCTL_REPLY_MAX	(1024 * 1024)	/* 16 KiB capture, escaped */

enum { EXIT_CMD_FAILED = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

_Static_assert(LEDIT_MAX == TERNCTL_LINE_MAX,
	       "the Makefile sizes the line editor for a whole command line");

struct tc_opts {
	char host[256];
	char port[8];
	const char *secret_file;
	bool json;
	bool no_wait;		/* migrate: return once it started */
	int timeout_s;
	int cmd_argc;
	char **cmd_argv;
};

struct tc_conn {
	mbedtls_net_context net;
	mbedtls_ssl_context ssl;
	mbedtls_ssl_config conf;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	unsigned char psk[TERNCTL_SECRET_MAX];
	size_t psk_len;
	char *rbuf;		/* bytes received past the last reply */
	size_t rlen;
};

static const int tc_suites[] = {
	MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
	0
};

static void tc_tls_error(const char *what, int rc)
{
	char buf[160];

	mbedtls_strerror(rc, buf, sizeof(buf));
	fprintf(stderr, "ternctl: %s: %s (-0x%04x)\n", what, buf, (unsigned)-rc);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ternctl --host ADDR[:PORT] --secret-file FILE [--json]\n"
		"               [--timeout SECONDS] [--no-wait] [COMMAND [ARGS...]]\n"
		"Runs COMMAND on a Tern host's network console (TLS 1.2, PSK).\n"
		"Without COMMAND: an interactive prompt ('quit' or Ctrl-D ends it).\n"
		"PORT defaults to " TERNCTL_DEFAULT_PORT "; [v6addr]:PORT for IPv6.\n"
		"`migrate NAME ADDR ...` waits for the migration's end, with a progress\n"
		"bar on a terminal, and exits 0 only when the guest moved (--no-wait:\n"
		"return once it started; `migrate status` follows it).\n"
		"Exit status: 0 ok, 1 command failed, 2 usage, 3 connection/TLS error.\n");
}

/* "a.b.c.d", "a.b.c.d:p", "name:p", "[v6]", "[v6]:p". */
static int tc_parse_host(const char *s, struct tc_opts *o)
{
	const char *port = NULL, *h = s, *end;
	size_t hl;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		end = strchr(s, ':');
		if (end && strchr(end + 1, ':'))
			return -EINVAL;	/* bare IPv6 needs brackets */
		hl = end ? (size_t)(end - s) : strlen(s);
		if (end)
			port = end + 1;
	}
	if (hl == 0 || hl >= sizeof(o->host))
		return -EINVAL;
	memcpy(o->host, h, hl);
	o->host[hl] = '\0';
	if (!port) {
		strcpy(o->port, TERNCTL_DEFAULT_PORT);
		return 0;
	}
	char *e;
	errno = 0;
	long p = strtol(port, &e, 10);
	if (errno || *e || e == port || p < 1 || p > 65535)
		return -EINVAL;
	snprintf(o->port, sizeof(o->port), "%ld", p);
	return 0;
}

static int tc_parse_args(int argc, char **argv, struct tc_opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->timeout_s = 120;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--json")) {
			o->json = true;
		} else if (!strcmp(a, "--no-wait")) {
			o->no_wait = true;
		} else if (!strcmp(a, "--host") && i + 1 < argc) {
			if (tc_parse_host(argv[++i], o)) {
				fprintf(stderr, "ternctl: bad --host '%s'\n", argv[i]);
				return -EINVAL;
			}
		} else if (!strcmp(a, "--secret-file") && i + 1 < argc) {
			o->secret_file = argv[++i];
		} else if (!strcmp(a, "--timeout") && i + 1 < argc) {
			char *e;
			long t = strtol(argv[++i], &e, 10);
			if (*e || t < 1 || t > 86400) {
				fprintf(stderr, "ternctl: bad --timeout '%s'\n", argv[i]);
				return -EINVAL;
			}
			o->timeout_s = (int)t;
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "ternctl: unknown or incomplete option '%s'\n", a);
			return -EINVAL;
		} else {
			break;
		}
	}
	if (!o->host[0] || !o->secret_file) {
		fprintf(stderr, "ternctl: --host and --secret-file are required\n");
		return -EINVAL;
	}
	o->cmd_argc = argc - i;
	o->cmd_argv = argv + i;
	return 0;
}

static int tc_read_secret(const char *path, unsigned char *out, size_t *len)
{
	unsigned char buf[TERNCTL_SECRET_MAX + 3];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0 || n > TERNCTL_SECRET_MAX) {
		fprintf(stderr, "ternctl: %s: the secret must be 1 to %d bytes\n",
			path, TERNCTL_SECRET_MAX);
		return -EINVAL;
	}
	memcpy(out, buf, n);
	*len = n;
	memset(buf, 0, sizeof(buf));
	return 0;
}

/* ---- TLS connection ---- */

static void tc_close(struct tc_conn *c)
{
	mbedtls_ssl_close_notify(&c->ssl);
	mbedtls_net_free(&c->net);
	mbedtls_ssl_free(&c->ssl);
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
	memset(c->psk, 0, sizeof(c->psk));
	free(c->rbuf);
	c->rbuf = NULL;
}

static int tc_connect(struct tc_conn *c, const struct tc_opts *o)
{
	static const char pers[] = "ternctl";
	int rc;

	mbedtls_net_init(&c->net);
	mbedtls_ssl_init(&c->ssl);
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	c->rbuf = NULL;
	c->rlen = 0;

	rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
				   (const unsigned char *)pers, sizeof(pers) - 1);
	if (rc) {
		tc_tls_error("random generator", rc);
		return rc;
	}
	rc = mbedtls_net_connect(&c->net, o->host, o->port, MBEDTLS_NET_PROTO_TCP);
	if (rc) {
		fprintf(stderr, "ternctl: cannot connect to %s port %s: %s\n",
			o->host, o->port,
			rc == MBEDTLS_ERR_NET_UNKNOWN_HOST ? "unknown host" :
			rc == MBEDTLS_ERR_NET_CONNECT_FAILED ? "connection failed" :
			"socket error");
		return rc;
	}
	/* Request/reply traffic: every line should leave at once. */
	int one = 1;

	setsockopt(c->net.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
					 MBEDTLS_SSL_TRANSPORT_STREAM,
					 MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc) {
		tc_tls_error("TLS config", rc);
		return rc;
	}
	mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&c->conf, tc_suites);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_read_timeout(&c->conf, (uint32_t)o->timeout_s * 1000u);
	rc = mbedtls_ssl_conf_psk(&c->conf, c->psk, c->psk_len,
				  (const unsigned char *)TERNCTL_IDENTITY,
				  sizeof(TERNCTL_IDENTITY) - 1);
	if (rc) {
		tc_tls_error("PSK", rc);
		return rc;
	}
	rc = mbedtls_ssl_setup(&c->ssl, &c->conf);
	if (rc) {
		tc_tls_error("TLS setup", rc);
		return rc;
	}
	mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, NULL,
			    mbedtls_net_recv_timeout);
	while ((rc = mbedtls_ssl_handshake(&c->ssl)) != 0) {
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			continue;
		tc_tls_error("TLS handshake (wrong secret?)", rc);
		return rc;
	}
	return 0;
}

static int tc_send(struct tc_conn *c, const char *s, size_t n)
{
	while (n > 0) {
		int rc = mbedtls_ssl_write(&c->ssl, (const unsigned char *)s, n);

		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			continue;
		if (rc < 0) {
			tc_tls_error("send", rc);
			return rc;
		}
		s += rc;
		n -= (size_t)rc;
	}
	return 0;
}

/* One reply line (without its "\n") into a malloc'd string; NULL on error. */
static char *tc_recv_line(struct tc_conn *c)
{
	size_t cap = c->rlen + 4096;
	char *buf = realloc(c->rbuf, cap);

	if (!buf)
		return NULL;
	c->rbuf = buf;
	for (;;) {
		char *nl = memchr(c->rbuf, '\n', c->rlen);

		if (nl) {
			size_t len = (size_t)(nl - c->rbuf);
			char *line = malloc(len + 1);

			if (!line)
				return NULL;
			memcpy(line, c->rbuf, len);
			line[len] = '\0';
			c->rlen -= len + 1;
			memmove(c->rbuf, nl + 1, c->rlen);
			return line;
		}
		if (c->rlen >= TERNCTL_REPLY_MAX) {
			fprintf(stderr, "ternctl: reply longer than %d bytes\n",
				TERNCTL_REPLY_MAX);
			return NULL;
		}
		if (cap - c->rlen < 4096) {
			cap *= 2;
			buf = realloc(c->rbuf, cap);
			if (!buf)
				return NULL;
			c->rbuf = buf;
		}
		int rc = mbedtls_ssl_read(&c->ssl, (unsigned char *)c->rbuf + c->rlen,
					  cap - c->rlen);
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			continue;
		if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			fprintf(stderr, "ternctl: the server closed the connection\n");
			return NULL;
		}
		if (rc == MBEDTLS_ERR_SSL_TIMEOUT) {
			fprintf(stderr, "ternctl: no reply (timeout)\n");
			return NULL;
		}
		if (rc < 0) {
			tc_tls_error("receive", rc);
			return NULL;
		}
		c->rlen += (size_t)rc;
	}
}

/* ---- the reply object (RFC 8259, only what cmd.h produces) ---- */

struct tc_reply {
	int ok;			/* 1, 0, or -1 when absent */
	char *output, *error;	/* decoded, malloc'd; NULL when absent */
	bool truncated;
};

static const char *tc_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

static int tc_hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i];

		if (!isxdigit(c))
			return -EINVAL;
		*v = *v * 16 + (unsigned)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
	}
	return 0;
}

static size_t tc_utf8(unsigned cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * A string literal at *pp (on the opening quote); the decoded bytes go to a
 * malloc'd buffer in *out when out is not NULL.  \u0080..\u00ff become the
 * single byte they stand for: the server writes bytes that are not UTF-8 so.
 */
static int tc_json_str(const char **pp, char **out)
{
	const char *p = *pp + 1;
	size_t cap = strlen(p) + 1, n = 0;
	char *s = malloc(cap);

	if (!s)
		return -ENOMEM;
	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			goto bad;
		if (*p != '\\') {
			s[n++] = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case '"': case '\\': case '/': s[n++] = *p; break;
		case 'b': s[n++] = '\b'; break;
		case 'f': s[n++] = '\f'; break;
		case 'n': s[n++] = '\n'; break;
		case 'r': s[n++] = '\r'; break;
		case 't': s[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;

			if (tc_hex4(p + 1, &cp))
				goto bad;
			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u' &&
			    !tc_hex4(p + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
			if (cp < 0x100)
				s[n++] = (char)cp;
			else
				n += tc_utf8(cp, s + n);
			break;
		}
		default:
			goto bad;
		}
		p++;
	}
	if (*p != '"')
		goto bad;
	s[n] = '\0';
	*pp = p + 1;
	if (out)
		*out = s;
	else
		free(s);
	return 0;
bad:
	free(s);
	return -EINVAL;
}

static void tc_reply_free(struct tc_reply *r)
{
	free(r->output);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

/* Parse the flat reply object; unknown keys with string, boolean, null or
 * number values are skipped. */
static int tc_parse_reply(const char *line, struct tc_reply *r)
{
	const char *p = tc_ws(line);

	memset(r, 0, sizeof(*r));
	r->ok = -1;
	if (*p++ != '{')
		return -EINVAL;
	p = tc_ws(p);
	if (*p == '}')
		return 0;
	for (;;) {
		char *key = NULL;

		if (*p != '"' || tc_json_str(&p, &key))
			goto bad;
		p = tc_ws(p);
		if (*p++ != ':') {
			free(key);
			goto bad;
		}
		p = tc_ws(p);
		if (*p == '"') {
			char **dst = !strcmp(key, "output") ? &r->output :
				     !strcmp(key, "error") ? &r->error : NULL;
			if (dst && *dst) {
				free(key);
				goto bad;	/* duplicate */
			}
			if (tc_json_str(&p, dst)) {
				free(key);
				goto bad;
			}
		} else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
			bool v = *p == 't';

			p += v ? 4 : 5;
			if (!strcmp(key, "ok"))
				r->ok = v;
			else if (!strcmp(key, "truncated"))
				r->truncated = v;
		} else if (!strncmp(p, "null", 4)) {
			p += 4;
		} else if (*p == '-' || isdigit((unsigned char)*p)) {
			while (*p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
			       *p == 'E' || isdigit((unsigned char)*p))
				p++;
		} else {
			free(key);
			goto bad;
		}
		free(key);
		p = tc_ws(p);
		if (*p == ',') {
			p = tc_ws(p + 1);
			continue;
		}
		if (*p++ != '}')
			goto bad;
		return *tc_ws(p) ? -EINVAL : 0;
	}
bad:
	tc_reply_free(r);
	return -EINVAL;
}

/*
 * {"progress":{"phase":"round","done":3,"total":5}} lines come ahead of a
 * long command's reply (netcon.c).  On a terminal they become a bar on
 * stderr; otherwise they are dropped, so stdout keeps one reply a command.
 * Returns true when line was a progress line.
 */
static bool tc_progress(const char *line, bool *drawn)
{
	static const char key[] = "{\"progress\":";
	char phase[32] = "";
	const char *p, *d, *t;
	unsigned long long done, total;
	int width = 30, fill;

	if (strncmp(line, key, sizeof(key) - 1))
		return false;
	p = strstr(line, "\"phase\":\"");
	d = strstr(line, "\"done\":");
	t = strstr(line, "\"total\":");
	if (!d || !t || !isatty(STDERR_FILENO))
		return true;
	if (p)
		sscanf(p + 9, "%31[^\"]", phase);
	done = strtoull(d + 7, NULL, 10);
	total = strtoull(t + 8, NULL, 10);
	fill = total ? (int)(done * (unsigned long long)width / total) : 0;
	if (fill > width)
		fill = width;
	fprintf(stderr, "\r%-10s [%.*s%*s] %llu/%llu", phase, fill,
		"##############################", width - fill, "", done, total);
	fflush(stderr);
	*drawn = true;
	return true;
}

/* Send one line, print the reply; 0 ok, EXIT_CMD_FAILED, or EXIT_CONN. */
static int tc_run(struct tc_conn *c, const char *line, bool json)
{
	struct tc_reply r;
	char *reply;
	size_t n = strlen(line);
	int rc;

	if (n > TERNCTL_LINE_MAX || memchr(line, '\n', n) || memchr(line, '\r', n)) {
		fprintf(stderr, "error: line too long or has a line break\n");
		return EXIT_CMD_FAILED;
	}
	/* Each line asks for a JSON reply, whatever the session's mode.  One
	 * write, so one TLS record and one segment: separate small writes
	 * would wait on Nagle against the server's delayed ACK. */
	char req[TERNCTL_LINE_MAX + 16];
	int rn = snprintf(req, sizeof(req), "--json %s\n", line);

	if (tc_send(c, req, (size_t)rn))
		return EXIT_CONN;
	bool drawn = false;

	while ((reply = tc_recv_line(c)) && tc_progress(reply, &drawn))
		free(reply);
	if (drawn)
		fputc('\n', stderr);
	if (!reply)
		return EXIT_CONN;
	if (tc_parse_reply(reply, &r) || r.ok < 0) {
		fprintf(stderr, "ternctl: malformed reply: %.200s\n", reply);
		free(reply);
		return EXIT_CONN;
	}
	if (json) {
		printf("%s\n", reply);
	} else {
		if (r.output && r.output[0]) {
			size_t ol = strlen(r.output);

			fwrite(r.output, 1, ol, stdout);
			if (r.output[ol - 1] != '\n')
				putchar('\n');
		}
		if (r.truncated)
			fprintf(stderr, "ternctl: (output truncated by the server)\n");
		if (!r.ok)
			fprintf(stderr, "error: %s\n", r.error ? r.error : "command failed");
	}
	fflush(stdout);
	rc = r.ok ? 0 : EXIT_CMD_FAILED;
	tc_reply_free(&r);
	free(reply);
	return rc;
}

/* ---- following a migration ---- */

/* `migrate NAME ADDR ...`, not its status/cancel/identity subcommands. */
static bool tc_is_migrate_start(const char *line)
{
	static const char *const subs[] = { "status", "cancel", "identity" };
	const char *p = line;

	while (*p == ' ')
		p++;
	if (strncmp(p, "migrate ", 8))
		return false;
	p += 8;
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		size_t n = strlen(subs[i]);

		if (!strncmp(p, subs[i], n) && (p[n] == '\0' || p[n] == ' '))
			return false;
	}
	return *p != '\0';
}

/* One command, its reply parsed; EXIT_CONN on a transport failure. */
static int tc_query(struct tc_conn *c, const char *line, struct tc_reply *r, char **raw)
{
	char req[TERNCTL_LINE_MAX + 16];
	int rn = snprintf(req, sizeof(req), "--json %s\n", line);
	char *reply;
	bool drawn = false;

	if (tc_send(c, req, (size_t)rn))
		return EXIT_CONN;
	while ((reply = tc_recv_line(c)) && tc_progress(reply, &drawn))
		free(reply);
	if (!reply || tc_parse_reply(reply, r) || r->ok < 0) {
		free(reply);
		return EXIT_CONN;
	}
	*raw = reply;
	return 0;
}

/* "outgoing: NAME to ADDR, live: PHASE[: why]" -> PHASE into out. */
static void tc_mig_phase(const char *status, char *out, size_t len)
{
	const char *p = strstr(status, "outgoing: "), *q;

	out[0] = '\0';
	if (!p || !(p = strchr(p, ',')) || !(p = strchr(p, ':')))
		return;
	p += 2;
	q = p + strcspn(p, ":\n");
	snprintf(out, len, "%.*s", (int)(q - p), p);
}

static void tc_mig_bar(const char *status, const char *phase)
{
	unsigned long round = 0, done = 0, total = 0;
	const char *p = strstr(status, "progress: round ");
	int width = 30, fill = 0;

	if (p)
		sscanf(p, "progress: round %lu, %lu of %lu", &round, &done, &total);
	if (total)
		fill = (int)(done * (unsigned long)width / total);
	fprintf(stderr, "\r\033[K%-14s round %-3lu [%.*s%*s] %lu/%lu pages", phase, round,
		fill, "##############################", width - fill, "", done, total);
	fflush(stderr);
}

/* Poll `migrate status` until the migration ends; 0 when the guest moved. */
static int tc_follow_migration(struct tc_conn *c, bool json)
{
	bool tty = isatty(STDERR_FILENO);
	char phase[64];

	for (;;) {
		struct tc_reply r;
		char *raw = NULL;

		usleep(300000);
		if (tc_query(c, "migrate status", &r, &raw))
			return EXIT_CONN;
		tc_mig_phase(r.output ? r.output : "", phase, sizeof(phase));
		bool end = !strcmp(phase, "done") || !strcmp(phase, "failed") ||
			   !strcmp(phase, "cancelled") || !phase[0];
		if (tty && !end)
			tc_mig_bar(r.output ? r.output : "", phase);
		if (end) {
			if (tty)
				fputs("\r\033[K", stderr);
			if (json)
				printf("%s\n", raw);
			else if (r.output)
				fputs(r.output, stdout);
			tc_reply_free(&r);
			free(raw);
			return !strcmp(phase, "done") ? 0 : EXIT_CMD_FAILED;
		}
		tc_reply_free(&r);
		free(raw);
	}
}

/* ---- interactive line reader ---- */

/*
 * The line editor is the serial console's (kernel/lib/lineedit.c, built
 * with this file's LEDIT_MAX and LEDIT_HIST): arrows, Home/End, Backspace,
 * Delete, Ctrl-A/E/U/K/W, history.  Its echo goes to stdout.
 */
static void tc_echo(void *ctx, const char *s, size_t n)
{
	(void)ctx;
	fwrite(s, 1, n, stdout);
}

/*
 * Raw mode only while a line is edited, so Ctrl-C still interrupts a
 * running command.  TCSAFLUSH: what was typed while a command ran was
 * already echoed by the terminal; it is dropped, not edited twice.
 */
static int tc_raw_mode(struct termios *saved)
{
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, saved))
		return -1;
	raw = *saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
	raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	return tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) ? -1 : 0;
}

/*
 * One edited line into ledit_line(e).  Returns 1 with a line, 0 at the end
 * of input (Ctrl-D on an empty line), -1 on error.  Ctrl-C drops the line
 * being typed and prompts again.  At end of file a partial line still
 * counts.
 */
static int tc_readline_tty(struct ledit *e, const char *prompt)
{
	struct termios saved;
	int k;

	if (tc_raw_mode(&saved))
		return -1;
	ledit_show(e, prompt, tc_echo, NULL);
	do {
		unsigned char ch;

		fflush(stdout);
		if (read(STDIN_FILENO, &ch, 1) == 1)
			k = ledit_feed(e, ch, tc_echo, NULL);
		else
			k = e->len ? ledit_feed(e, '\r', tc_echo, NULL) : LEDIT_EOF;
		if (k == LEDIT_INTR)
			ledit_show(e, prompt, tc_echo, NULL);
	} while (k != LEDIT_LINE && k != LEDIT_EOF);
	if (k == LEDIT_EOF)
		fputs("\r\n", stdout);
	fflush(stdout);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
	return k == LEDIT_LINE;
}

static int tc_readline(struct ledit *e, const char *prompt, char *buf, size_t size)
{
	if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		int r = tc_readline_tty(e, prompt);

		if (r > 0)
			snprintf(buf, size, "%s", ledit_line(e));
		return r;
	}
	if (!fgets(buf, (int)size, stdin))
		return 0;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 1;
}

static bool tc_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0';
}

/* Exit status: that of the last command (0 if none ran), or EXIT_CONN. */
static int tc_interactive(struct tc_conn *c, const struct tc_opts *o)
{
	static struct ledit editor;	/* LEDIT_HIST lines of history: not on the stack */
	char line[TERNCTL_LINE_MAX + 2], prompt[300];
	int rc = 0, r;

	ledit_init(&editor);
	snprintf(prompt, sizeof(prompt), "tern@%s> ", o->host);
	while ((r = tc_readline(&editor, prompt, line, sizeof(line))) > 0) {
		if (tc_blank(line))
			continue;
		if (!strcmp(line, "quit") || !strcmp(line, "exit"))
			break;
		rc = tc_run(c, line, o->json);
		if (rc == EXIT_CONN)
			break;
	}
	return r < 0 ? EXIT_CONN : rc;
}

/*
 * The command line from argv: words containing blanks, quotes or
 * backslashes are quoted for cmd_tokenize() (kernel/lib/cmd.h), so
 * `ternctl vm create x cmdline="a b"` arrives as typed.
 */
static int tc_join(int argc, char **argv, char *out, size_t size)
{
	size_t n = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool quote = !a[0] || strpbrk(a, " \t\"\\") != NULL;
		/* Already key="a b" style: the shell removed the quotes, so the
		 * whole word is quoted instead; cmd_tokenize joins them. */
		if (i && n + 1 < size)
			out[n++] = ' ';
		if (quote && n + 1 < size)
			out[n++] = '"';
		for (; *a; a++) {
			if (quote && (*a == '"' || *a == '\\') && n + 1 < size)
				out[n++] = '\\';
			if (n + 1 < size)
				out[n++] = *a;
		}
		if (quote && n + 1 < size)
			out[n++] = '"';
		if (n + 1 >= size)
			return -E2BIG;
	}
	out[n] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	static struct tc_conn conn;
	struct tc_opts o;
	char line[TERNCTL_LINE_MAX + 2];
	int rc;

	if (tc_parse_args(argc, argv, &o)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o.cmd_argc > 0) {
		if (tc_join(o.cmd_argc, o.cmd_argv, line, sizeof(line)) ||
		    strlen(line) > TERNCTL_LINE_MAX) {
			fprintf(stderr, "ternctl: command longer than %d characters\n",
				TERNCTL_LINE_MAX);
			return EXIT_USAGE;
		}
		if (tc_blank(line)) {
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (tc_read_secret(o.secret_file, conn.psk, &conn.psk_len))
		return EXIT_USAGE;
	if (tc_connect(&conn, &o)) {
		tc_close(&conn);
		return EXIT_CONN;
	}
	rc = o.cmd_argc > 0 ? tc_run(&conn, line, o.json) : tc_interactive(&conn, &o);
	if (o.cmd_argc > 0 && rc == 0 && !o.no_wait && tc_is_migrate_start(line))
		rc = tc_follow_migration(&conn, o.json);
	tc_close(&conn);
	return rc;
}
