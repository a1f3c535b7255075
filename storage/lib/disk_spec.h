/*
 * What names a disk: `disk attach NAME iscsi://PORTAL/IQN/LUN [opts]` on
 * the console and `disk = NAME iscsi://... [opts]` in tern.cfg, parsed by
 * the same code.  Pure: no allocation, no I/O.
 *
 *	iscsi://HOST[:PORT]/IQN/LUN	HOST an IPv4 address (lwIP has no
 *					resolver here), PORT 3260 by default,
 *					IQN an iSCSI name (RFC 7143 4.2.7),
 *					LUN 0..16383
 *	chap=USER:SECRET		one-way CHAP (RFC 7143 12.1.3)
 *	mutual=USER:SECRET		and the target proves itself too
 *	digest=none|crc32c|header|data	HeaderDigest/DataDigest (13.1)
 *
 * A CHAP secret is 12..16 bytes for targets that follow RFC 7143 12.1.3's
 * advice, but tgt and others accept longer ones: 1..64 bytes are taken.
 * Errors are -EINVAL with a static reason that never quotes a secret.
 */
#ifndef TERN_STORAGE_DISK_SPEC_H
#define TERN_STORAGE_DISK_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/lib/iscsi_text.h"

#define DISK_NAME_MAX		15	/* [a-z0-9_-], starts with a letter */
#define DISK_CHAP_MAX		64	/* user name and secret, bytes */
#define DISK_DEFAULT_PORT	3260	/* RFC 7143 13.6: the iSCSI port */
#define DISK_LUN_MAX		16383	/* flat space addressing (SAM-5 4.7.7) */

struct disk_spec {
	char name[DISK_NAME_MAX + 1];
	uint32_t addr;			/* IPv4, host order */
	uint16_t port;
	char iqn[ISCSI_NAME_MAX + 1];
	unsigned lun;
	bool chap, mutual;
	char chap_user[DISK_CHAP_MAX + 1], chap_secret[DISK_CHAP_MAX + 1];
	char mutual_user[DISK_CHAP_MAX + 1], mutual_secret[DISK_CHAP_MAX + 1];
	bool header_digest, data_digest;
};

/* 0 when s is a valid disk name, else -EINVAL. */
int disk_name_check(const char *s);

/* "iscsi://HOST[:PORT]/IQN/LUN" into out's address, port, IQN and LUN. */
int disk_url_parse(const char *url, struct disk_spec *out, const char **why);

/*
 * NAME URL [opts...] (argv[0] is the name).  out is reset first.
 * Returns 0 or -EINVAL with *why.
 */
int disk_spec_parse(int argc, char **argv, struct disk_spec *out, const char **why);

/* "iscsi://10.0.0.1:3260/iqn.../1" (no secrets) into buf[0..cap). */
void disk_spec_url(const struct disk_spec *s, char *buf, unsigned cap);

#endif
