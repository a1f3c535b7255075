/*
 * SCSI status and sense data (SAM-5 5.3, SPC-4 4.5): parse fixed and
 * descriptor sense into (key, ASC, ASCQ), and decide what the block layer
 * does with a finished command.  Pure.
 *
 * The decision a hypervisor cannot get wrong: RESERVATION CONFLICT means
 * another host has taken the disk over (a migration handover, or a
 * fence).  It is never retried; the guest's disk is gone from this host.
 * UNIT ATTENTION, BUSY and TASK SET FULL are retried: tgt raises UNIT
 * ATTENTION 2A/03 and 2A/04 after every reservation change, and a retry
 * that then meets a conflict reports the conflict.
 */
#ifndef TERN_STORAGE_SCSI_SENSE_H
#define TERN_STORAGE_SCSI_SENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes (SAM-5 5.3.1). */
enum {
	SCSI_STATUS_GOOD		= 0x00,
	SCSI_STATUS_CHECK_CONDITION	= 0x02,
	SCSI_STATUS_CONDITION_MET	= 0x04,
	SCSI_STATUS_BUSY		= 0x08,
	SCSI_STATUS_RESERVATION_CONFLICT = 0x18,
	SCSI_STATUS_TASK_SET_FULL	= 0x28,
	SCSI_STATUS_ACA_ACTIVE		= 0x30,
	SCSI_STATUS_TASK_ABORTED	= 0x40,
};

/* Sense keys (SPC-4 4.5.6). */
enum {
	SCSI_KEY_NO_SENSE = 0x0, SCSI_KEY_RECOVERED_ERROR = 0x1, SCSI_KEY_NOT_READY = 0x2,
	SCSI_KEY_MEDIUM_ERROR = 0x3, SCSI_KEY_HARDWARE_ERROR = 0x4,
	SCSI_KEY_ILLEGAL_REQUEST = 0x5, SCSI_KEY_UNIT_ATTENTION = 0x6,
	SCSI_KEY_DATA_PROTECT = 0x7, SCSI_KEY_BLANK_CHECK = 0x8,
	SCSI_KEY_VENDOR_SPECIFIC = 0x9, SCSI_KEY_COPY_ABORTED = 0xa,
	SCSI_KEY_ABORTED_COMMAND = 0xb, SCSI_KEY_VOLUME_OVERFLOW = 0xd,
	SCSI_KEY_MISCOMPARE = 0xe, SCSI_KEY_COMPLETED = 0xf,
};

struct scsi_sense {
	uint8_t key;
	uint8_t asc;		/* 0 when the target cut the sense short */
	uint8_t ascq;
	bool descriptor;	/* descriptor format (0x72/0x73) */
	bool deferred;		/* about an earlier command (0x71/0x73) */
	bool has_info;
	uint64_t info;		/* INFORMATION: e.g. the first bad LBA */
};

/*
 * Parse len bytes of sense data.  Returns 0, -EBADMSG when too short to
 * hold a sense key, or -EPROTO for a response code that is neither fixed
 * nor descriptor format (vendor formats included).
 */
int scsi_parse_sense(const uint8_t *s, size_t len, struct scsi_sense *out);

enum scsi_disposition {
	SCSI_DISP_OK,		/* done (GOOD, CONDITION MET, RECOVERED ERROR) */
	SCSI_DISP_RETRY,	/* send it again (the caller bounds the tries) */
	SCSI_DISP_CONFLICT,	/* reservation conflict: this host lost the disk */
	SCSI_DISP_FATAL,	/* fail the I/O to the guest */
};

/*
 * Classify a finished command from its status and sense bytes (sense may
 * be NULL/0).  *sd gets the parsed sense (zeroed when none), *why a short
 * static explanation, e.g. "unit attention: reservations preempted".
 */
enum scsi_disposition scsi_classify(uint8_t status, const uint8_t *sense, size_t slen,
				    struct scsi_sense *sd, const char **why);

/* "GOOD", "CHECK CONDITION", ... or "unknown status". */
const char *scsi_status_name(uint8_t status);
/* "UNIT ATTENTION", ... for 0..15. */
const char *scsi_key_name(uint8_t key);
/* A short description of ASC/ASCQ Tern meets, or NULL. */
const char *scsi_asc_name(uint8_t asc, uint8_t ascq);

/*
 * One line for the log, NUL-terminated in buf[0..cap):
 * "CHECK CONDITION, UNIT ATTENTION 2A/03 (reservations preempted)".
 * Returns the length snprintf would have written.
 */
int scsi_describe(char *buf, size_t cap, uint8_t status, const struct scsi_sense *sd);

#endif
