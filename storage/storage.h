/*
 * The storage subsystem as the composition root sees it: start it, and
 * the `disk` commands' table.  Device models use blk.h; the console's
 * disk commands use disk.h.
 */
#ifndef TERN_STORAGE_STORAGE_H
#define TERN_STORAGE_STORAGE_H

#include "kernel/lib/cmd.h"

#include <stddef.h>

struct tern_config;

/*
 * Attach the disks tern.cfg names (they connect in the background) and
 * join the main loop: the "storage" service runs connections, timers and
 * the queues (the 100 Hz tick and the NIC interrupts wake the loop;
 * lwIP's sent callbacks push more bytes).
 */
void storage_start(const struct tern_config *cfg);
/* virtio-blk for guests (vblk_dev.c): the disk= device type, its service. */
void vblk_dev_start(void);

extern const struct cmd_def disk_cmds[];
extern const size_t disk_ncmds;

#endif
