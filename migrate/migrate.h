/*
 * Live and quick migration of a running guest to another Tern host.
 *
 * One connection per migration, from the source to the destination's
 * migrate_port, inside TLS with the hosts' pre-shared key (net/stack/
 * tls.c).  Source to destination: the stream (migrate/stream.h), then
 * control lines.  Destination to source: control lines only.  A control
 * line is one word and arguments, ended by "\n", at most MIG_LINE_MAX:
 *
 *	src -> dst  HELLO 1 data=tls	first, before the stream
 *	src -> dst  HELLO 2 data=plain nonce=HEX
 *					the same for encrypt=off, with the
 *					source's 16-byte random nonce
 *					("HELLO 1 data=plain", from a Tern
 *					without record MACs, is refused)
 *	dst -> src  ACCEPTED		pre-flight passed (after CONFIG); the
 *					VM exists here, not running
 *	dst -> src  ACCEPTED data=PORT token=HEX nonce=HEX
 *					the same for data=plain (encrypt=off):
 *					the rest of the stream goes over plain
 *					TCP to PORT, from the TLS link's own
 *					address, which first sends the 32-byte
 *					token; every record on it carries a MAC
 *					(stream.h "Record MACs") keyed from
 *					the TLS session and both nonces
 *					(mig_conn_mac); control stays on TLS
 *	dst -> src  REFUSED <why>	pre-flight failed; nothing was kept
 *	dst -> src  READY <pages>	END verified: every page and vCPU is
 *					here and every checksum matched
 *	dst -> src  FAILED <why>	the stream was refused; VM discarded
 *	src -> dst  COMMIT		the point of no return: the source
 *					stays paused from here on
 *	dst -> src  RESUMED		the guest runs here now
 *
 * Hand-off (as Xen's "GO"): the destination resumes only after COMMIT and
 * the source sends COMMIT only after READY.  Any failure before COMMIT
 * resumes the source and discards the destination's copy; a failure after
 * COMMIT leaves the source paused, never running, and both sides say so.
 * So there are never two running copies.
 *
 * Everything runs on the boot CPU's main loop: lwIP callbacks and the
 * "migrate" service; the vCPUs keep running on their own CPUs.
 */
#ifndef TERN_MIGRATE_H
#define TERN_MIGRATE_H

#include "kernel/lib/cmd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "migrate/stream.h"

struct vm;
struct tern_config;
struct cfg_allow;
struct cmd_ctx;
struct cmd_out;

#define MIG_LINE_MAX		200
#define MIG_DEFAULT_DOWNTIME_MS	300
#define MIG_DEFAULT_TIMEOUT_S	600
#define MIG_MAX_ROUNDS		30	/* then stop and copy regardless */
#define MIG_ROUNDS_KEPT		32	/* pages per round kept for the report */

/* mig_cmds.c: set-up (the service joins the main loop) and the commands. */
void migrate_start(const struct tern_config *cfg);
extern const struct cmd_def mig_cmds[];
extern const size_t mig_ncmds;

/* mig_state.c */
uint32_t mig_cpuid_identity(struct mig_cpuid *out, uint32_t max);
int mig_cpuid_compare(const struct mig_cpuid *theirs, uint32_t n, char *why, size_t len);
/* host_tsc: the host's TSC when the VM was paused (the guest's clock
 * stops there); the same value for every vCPU and mig_devices_save. */
int mig_state_capture(struct vm *vm, int idx, uint64_t host_tsc, struct mig_vcpu *m);
int mig_state_apply(struct vm *vm, const struct mig_vcpu *m, char *why, size_t len);
int mig_state_start(struct vm *vm, char *why, size_t len);
/* Every device record of a paused VM (interrupt controllers, LAPICs with
 * the vCPUs' run states, platform devices, PCI and virtio), and one back
 * into a created VM: 0, -ENOENT (unknown name or version), -EINVAL. */
typedef int (*mig_emit_fn)(void *ctx, const char *name, uint32_t version, const void *blob,
			   uint32_t len);
int mig_devices_save(struct vm *vm, uint64_t host_tsc, mig_emit_fn emit, void *ctx);
int mig_devices_load(struct vm *vm, const char *name, uint32_t version, const void *blob,
		     uint32_t len);

/* mig_image.c: the VM <-> stream glue the source, the destination and
 * the save area share. */
struct mig_dec;
int mig_image_movable(const struct vm *vm, char *why, size_t len);
void mig_image_config(const struct vm *vm, const char *name, struct mig_config *c);
/* A mig_emit_fn whose ctx is a struct mig_enc: each record a DEVICE. */
int mig_image_emit(void *enc, const char *name, uint32_t version, const void *blob,
		   uint32_t len);
int mig_image_create(const struct mig_config *c, struct vm **out, char *why, size_t len);
int mig_image_page(struct mig_dec *d, struct vm *vm, uint64_t index, const void *data);
int mig_image_vcpu(struct mig_dec *d, struct vm *vm, const struct mig_vcpu *v);
int mig_image_device(struct mig_dec *d, struct vm *vm, const struct mig_device *dev);
bool mig_image_runs(const struct vm *vm);

/* mig_dst.c: the receiving side. */
int mig_dst_listen(uint16_t port, const struct cfg_allow *allow);
void mig_dst_service(void);
bool mig_dst_pending(void);
void mig_dst_status(struct cmd_out *o);
/* For `vm restore` (mig_save.c): an incoming migration's pre-flight on a
 * CONFIG.  0 or -errno with why set. */
int mig_dst_preflight(const struct mig_config *c, char *why, size_t len);

/* mig_src.c: the sending side, one migration at a time. */
enum mig_mode { MIG_LIVE, MIG_QUICK };

struct mig_params {
	enum mig_mode mode;
	uint32_t downtime_ms;		/* target for the stop-and-copy */
	uint32_t bandwidth_mbs;		/* cap in MB/s, 0 = as fast as it goes */
	uint32_t timeout_s;		/* the whole migration */
	bool plain;			/* encrypt=off: stream on a plain TCP link */
	char as_name[MIG_NAME_MAX + 1];	/* the name at the destination ("" same) */
};

int mig_src_start(struct vm *vm, const char *addr, uint16_t port,
		  const struct mig_params *p, char *why, size_t len);
int mig_src_cancel(char *why, size_t len);
void mig_src_service(void);
bool mig_src_pending(void);
void mig_src_status(struct cmd_out *o);

/* mig_cmds.c */
int mig_cmd_migrate(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int mig_cmd_status(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int mig_cmd_cancel(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int mig_cmd_identity(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/* mig_save.c: `vm save NAME to=DISK`, `vm save status`, `vm restore NAME
 * from=DISK [force] [any]`: quick migration through a shared LUN (the
 * save area, migrate/savearea.h). */
int mig_cmd_save(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int mig_cmd_restore(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

#endif
