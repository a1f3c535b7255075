/*
 * TLS with a pre-shared key for every Tern connection: the network console
 * and the migration link (ternctl uses the same suite from the host side).
 * lwIP's altcp TLS layer
 * (apps/altcp_tls, built against Debian's mbedTLS) moves the records;
 * this file only builds its configurations.
 *
 * lwIP 2.1.3's glue creates certificate-based configurations only, and its
 * struct altcp_tls_config (which holds the mbedtls_ssl_config) is private.
 * It needs no reach-in: every connection's mbedtls_ssl_context points at
 * its configuration (mbedtls_ssl_setup keeps the pointer, mbedtls/ssl.h),
 * and altcp_tls_context() is lwIP's public way to that context.  So one
 * connection made and dropped at start-up shows us the configuration to
 * install the PSK in (tls_conf).
 *
 * The key: identity "tern" (RFC 4279 section 2), PSK = the bytes of the
 * `secret` in tern.cfg.  Suites and the TLS 1.2 limit come from
 * net/port/include/mbedtls_config_tern.h.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "lwip/altcp.h"
#include "lwip/altcp_tcp.h"
#include "lwip/altcp_tls.h"
#include "mbedtls/ssl.h"
#include "mbedtls/version.h"

#include "kernel/kernel.h"
#include "kernel/lib/config.h"
#include "net/stack.h"

/* ssl->conf and ssl->state are public fields up to mbedTLS 2.x (3.0 made
 * them private). */
#if MBEDTLS_VERSION_MAJOR != 2
#error "tls.c reads mbedtls_ssl_context fields that are public in mbedTLS 2.x only"
#endif

#define TLS_IDENTITY	"tern"

static unsigned char tls_psk[CFG_SECRET_MAX];
static size_t tls_psk_len;
static struct altcp_tls_config *tls_server, *tls_client;

/*
 * The configuration inside c, through a connection that is never
 * connected.  The const goes: the object is lwIP's, created writable by
 * altcp_tls_create_config_*(), and no connection uses it yet.
 */
static mbedtls_ssl_config *tls_conf(struct altcp_tls_config *c)
{
	struct altcp_pcb *pcb = altcp_tls_new(c, IPADDR_TYPE_V4);
	mbedtls_ssl_context *ssl = pcb ? altcp_tls_context(pcb) : NULL;
	mbedtls_ssl_config *conf = ssl ? (mbedtls_ssl_config *)(uintptr_t)ssl->conf : NULL;

	if (pcb)
		altcp_abort(pcb);	/* never connected: frees it, no callback set */
	return conf;
}

/*
 * Server side: called by mbedTLS with the identity the client sent.  Only
 * "tern" is known; anything else is refused here with an
 * unknown_psk_identity alert (RFC 4279 section 2).
 */
static int tls_psk_cb(void *arg, mbedtls_ssl_context *ssl,
		      const unsigned char *id, size_t id_len)
{
	(void)arg;
	if (id_len != sizeof(TLS_IDENTITY) - 1 ||
	    memcmp(id, TLS_IDENTITY, id_len) != 0) {
		pr_warn("tls: refused a client with an unknown PSK identity (%zu bytes)",
			id_len);
		return -1;
	}
	return mbedtls_ssl_set_hs_psk(ssl, tls_psk, tls_psk_len);
}

static struct altcp_tls_config *tls_make(bool server)
{
	struct altcp_tls_config *c;
	mbedtls_ssl_config *conf;

	c = server ? altcp_tls_create_config_server(0) : altcp_tls_create_config_client(NULL, 0);
	if (!c)
		return NULL;
	conf = tls_conf(c);
	if (!conf) {
		altcp_tls_free_config(c);
		return NULL;
	}
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	/* Without certificates there is nothing to verify: the PSK itself
	 * authenticates both ends. */
	mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
	if (server) {
		mbedtls_ssl_conf_psk_cb(conf, tls_psk_cb, NULL);
	} else if (mbedtls_ssl_conf_psk(conf, tls_psk, tls_psk_len,
				       (const unsigned char *)TLS_IDENTITY,
				       sizeof(TLS_IDENTITY) - 1) != 0) {
		altcp_tls_free_config(c);
		return NULL;
	}
	return c;
}

int net_tls_init(const struct tern_config *cfg)
{
	if (!cfg->has_secret || !cfg->secret[0])
		return -ENOENT;
	/* Fail closed: no keys from a noise source that failed its health
	 * tests (entropy.c); the serial console does not need TLS. */
	if (!tern_entropy_ok()) {
		pr_err("tls: not serving TLS (network console, migration): "
		       "the entropy health tests failed; see `entropy`");
		return -EIO;
	}
	tls_psk_len = strlen(cfg->secret);
	memcpy(tls_psk, cfg->secret, tls_psk_len);
	tls_server = tls_make(true);
	tls_client = tls_make(false);
	if (!tls_server || !tls_client) {
		pr_err("tls: cannot create the TLS configuration (out of memory)");
		return -ENOMEM;
	}
	return 0;
}

bool net_tls_ready(void)
{
	return tls_server && tls_client && tern_entropy_ok();
}

struct altcp_pcb *net_tls_new(bool server)
{
	struct altcp_tls_config *c = server ? tls_server : tls_client;

	if (!c)
		return NULL;
	return altcp_tls_new(c, IPADDR_TYPE_V4);
}

enum net_tls_phase net_tls_phase(struct altcp_pcb *pcb)
{
	mbedtls_ssl_context *ssl = pcb ? altcp_tls_context(pcb) : NULL;

	if (!ssl)
		return NET_TLS_GONE;
	if (ssl->state == MBEDTLS_SSL_HANDSHAKE_OVER)
		return NET_TLS_OPEN;
	/* Still waiting for (or parsing) the first flight: whatever the peer
	 * sent, it was not a TLS 1.2 ClientHello we could answer. */
	if (ssl->state <= MBEDTLS_SSL_CLIENT_HELLO)
		return NET_TLS_HELLO;
	return NET_TLS_KEYS;
}

const char *net_tls_suite(struct altcp_pcb *pcb)
{
	mbedtls_ssl_context *ssl = pcb ? altcp_tls_context(pcb) : NULL;

	return ssl ? mbedtls_ssl_get_ciphersuite(ssl) : NULL;
}

/*
 * The master secret already mixes both hellos' randoms (RFC 5246 section
 * 8.1; RFC 7627's session hash with the extended master secret), so the
 * key is this session's; the caller's seed adds its own fresh nonces.
 * The randoms themselves are gone after the handshake in mbedTLS 2.28,
 * hence not RFC 5705's exact seed.
 */
int net_tls_export(struct altcp_pcb *pcb, const char *label, const uint8_t *seed,
		   size_t seed_len, uint8_t *out, size_t len)
{
	mbedtls_ssl_context *ssl = pcb ? altcp_tls_context(pcb) : NULL;

	if (!ssl || ssl->state != MBEDTLS_SSL_HANDSHAKE_OVER || !ssl->session)
		return -ENOTCONN;
	if (mbedtls_ssl_tls_prf(MBEDTLS_SSL_TLS_PRF_SHA256, ssl->session->master,
				sizeof(ssl->session->master), label, seed, seed_len,
				out, len))
		return -EINVAL;
	return 0;
}
