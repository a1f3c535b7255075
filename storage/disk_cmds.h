/* The `disk` console commands (disk_cmds.c, disk_io_cmds.c). */
#ifndef TERN_STORAGE_DISK_CMDS_H
#define TERN_STORAGE_DISK_CMDS_H

#include <stdbool.h>
#include <stdint.h>

struct cmd_ctx;
struct cmd_out;
struct blk_disk;

int disk_cmd_attach(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_detach(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_list(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_info(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_fence(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_rejoin(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_keys(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_discover(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_read(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_write(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_unmap(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_zero(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_flush(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_barriercheck(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);
int disk_cmd_bench(struct cmd_ctx *ctx, struct cmd_out *o, int argc, char **argv);

/* Shared by the two files. */
typedef bool (*disk_wait_pred)(void *arg);
bool disk_wait(disk_wait_pred pred, void *arg, uint64_t timeout_us);
int disk_busy_refuse(struct cmd_out *o, const char *cmd);
struct blk_disk *disk_find_or_say(struct cmd_out *o, const char *cmd, const char *name);

#endif
