/*
 * mbedTLS 2.28 configuration for the Tern kernel (MBEDTLS_CONFIG_FILE).
 * It replaces mbedtls/config.h entirely: only what is listed here is on.
 *
 * Purpose: the network console and migration channel, TLS 1.2 with a
 * pre-shared key (the `secret` of tern.cfg), server and client side; and
 * MD5 for iSCSI CHAP (storage/lib/iscsi_chap.h).
 * Suites, strongest first:
 *   TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256  (RFC 7905, forward secret)
 *   TLS-PSK-WITH-AES-128-GCM-SHA256              (RFC 5487)
 *
 * Freestanding: no file system, no sockets (lwIP's altcp glue moves the
 * bytes), no clock (MBEDTLS_HAVE_TIME off), no platform entropy.  The only
 * entropy source is mbedtls_hardware_poll() (MBEDTLS_ENTROPY_HARDWARE_ALT),
 * which the kernel implements on top of tern_entropy_poll() (net/entropy.c).
 * Memory comes from Newlib's calloc/free.
 *
 * X.509/PK parsing is on only because lwIP 2.1.3's altcp_tls_mbedtls.c
 * refers to mbedtls_x509_crt_parse() and mbedtls_pk_parse_key()
 * unconditionally; Tern itself uses no certificates.
 */
#ifndef TERN_MBEDTLS_CONFIG_H
#define TERN_MBEDTLS_CONFIG_H

#include <stddef.h>

/* ---- System ------------------------------------------------------------ */

/* x86-64 inline assembly in bignum.c (the kernel is GCC-only). */
#define MBEDTLS_HAVE_ASM
/* The kernel links without libgcc: no 128-by-64 division (__udivti3). */
#define MBEDTLS_NO_UDBL_DIVISION
/* AES-NI when CPUID says so (aesni.c checks at run time). */
#define MBEDTLS_AESNI_C
/* No MBEDTLS_HAVE_TIME: no time.h, no session-ticket lifetimes. */
/* No MBEDTLS_FS_IO, MBEDTLS_NET_C, MBEDTLS_TIMING_C, MBEDTLS_PLATFORM_C. */

/* ---- Entropy and randomness -------------------------------------------- */

#define MBEDTLS_ENTROPY_C
/* entropy_poll.c's /dev/urandom / getrandom() source does not exist here. */
#define MBEDTLS_NO_PLATFORM_ENTROPY
/* The kernel provides int mbedtls_hardware_poll(void *, unsigned char *,
 * size_t, size_t *), declared in mbedtls/entropy_poll.h. */
#define MBEDTLS_ENTROPY_HARDWARE_ALT
#define MBEDTLS_CTR_DRBG_C

/* ---- Primitives ---------------------------------------------------------- */

#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C
/* iSCSI CHAP (RFC 1994, RFC 7143 12.1.3) is MD5 only: CHAP_A=5.  Used for
 * login authentication, never for TLS (no suite here uses MD5). */
#define MBEDTLS_MD5_C
/* The entropy accumulator is SHA-512 unless forced to SHA-256. */
#define MBEDTLS_SHA512_C

/* ECDHE for the forward-secret suite: X25519 first, P-256 for peers
 * without it. */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM

/* ---- X.509 (only for lwIP's altcp glue to link, see above) -------------- */

#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C

/* ---- TLS ----------------------------------------------------------------- */

#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
/* Client side: one Tern host connects to another to migrate a guest. */
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_KEY_EXCHANGE_PSK_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_PSK_ENABLED
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
/* No MBEDTLS_SSL_RENEGOTIATION: Tern never renegotiates (RFC 5746's
 * secure-renegotiation signalling is still sent). */
/* lwIP's glue calls mbedtls_ssl_conf_dbg() and mbedtls_debug_*. */
#define MBEDTLS_DEBUG_C

/* Only the two suites above are ever offered or accepted. */
#define MBEDTLS_SSL_CIPHERSUITES \
	MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, \
	MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256

/*
 * Record buffers: 16 KiB in (a peer may send full records), 4 KiB out
 * (our replies are split into smaller records; saves 12 KiB a connection).
 */
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384
#define MBEDTLS_SSL_OUT_CONTENT_LEN 4096
/* The PSK is the config secret: up to 127 bytes (CFG_SECRET_MAX - 1). */
#define MBEDTLS_PSK_MAX_LEN 128

/* Error strings for the log (mbedtls_strerror). */
#define MBEDTLS_ERROR_C

#include "mbedtls/check_config.h"

#endif /* TERN_MBEDTLS_CONFIG_H */
