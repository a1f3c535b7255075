/*
 * SCSI sense data and the retry decision (SAM-5 5.3, SPC-4 4.5).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/lib/byteorder.h"
#include "storage/lib/scsi_sense.h"

/* ---- parsing ---- */

/* SPC-4 4.5.3: fixed format. */
static int sense_fixed(const uint8_t *s, size_t len, struct scsi_sense *out)
{
	/* ADDITIONAL SENSE LENGTH counts from byte 8; trust it only
	 * within what arrived. */
	size_t n = len >= 8 ? 8 + (size_t)s[7] : len;

	if (n > len)
		n = len;
	if (n < 3)
		return -EBADMSG;
	out->key = s[2] & 0x0f;
	if (n >= 7 && (s[0] & 0x80)) {
		out->has_info = true;
		out->info = ld_be32(s + 3);
	}
	if (n >= 13)
		out->asc = s[12];
	if (n >= 14)
		out->ascq = s[13];
	return 0;
}

/* SPC-4 4.5.2: descriptor format, with the information descriptor. */
static int sense_desc(const uint8_t *s, size_t len, struct scsi_sense *out)
{
	size_t n, off = 8;

	if (len < 4)
		return -EBADMSG;
	out->key = s[1] & 0x0f;
	out->asc = s[2];
	out->ascq = s[3];
	if (len < 8)
		return 0;
	n = 8 + (size_t)s[7];
	if (n > len)
		n = len;
	while (n - off >= 2) {
		uint8_t type = s[off], dlen = s[off + 1];

		if (dlen > n - off - 2)
			break;	/* a descriptor cut short: ignore the rest */
		/* 4.5.2.2: type 0, length 0x0a, VALID in byte 2. */
		if (type == 0 && dlen >= 0x0a && (s[off + 2] & 0x80)) {
			out->has_info = true;
			out->info = ld_be64(s + off + 4);
		}
		off += 2 + (size_t)dlen;
	}
	return 0;
}

int scsi_parse_sense(const uint8_t *s, size_t len, struct scsi_sense *out)
{
	uint8_t code;

	memset(out, 0, sizeof(*out));
	if (!s || len < 1)
		return -EBADMSG;
	code = s[0] & 0x7f;
	switch (code) {
	case 0x70:
	case 0x71:
		out->deferred = code == 0x71;
		return sense_fixed(s, len, out);
	case 0x72:
	case 0x73:
		out->descriptor = true;
		out->deferred = code == 0x73;
		return sense_desc(s, len, out);
	default:
		return -EPROTO;
	}
}

/* ---- names ---- */

const char *scsi_status_name(uint8_t status)
{
	switch (status) {
	case SCSI_STATUS_GOOD: return "GOOD";
	case SCSI_STATUS_CHECK_CONDITION: return "CHECK CONDITION";
	case SCSI_STATUS_CONDITION_MET: return "CONDITION MET";
	case SCSI_STATUS_BUSY: return "BUSY";
	case SCSI_STATUS_RESERVATION_CONFLICT: return "RESERVATION CONFLICT";
	case SCSI_STATUS_TASK_SET_FULL: return "TASK SET FULL";
	case SCSI_STATUS_ACA_ACTIVE: return "ACA ACTIVE";
	case SCSI_STATUS_TASK_ABORTED: return "TASK ABORTED";
	default: return "unknown status";
	}
}

const char *scsi_key_name(uint8_t key)
{
	static const char *const names[16] = {
		"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR",
		"HARDWARE ERROR", "ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT",
		"BLANK CHECK", "VENDOR SPECIFIC", "COPY ABORTED", "ABORTED COMMAND",
		"reserved sense key", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
	};

	return names[key & 0x0f];
}

struct asc_name {
	uint8_t asc, ascq;	/* ascq 0xff: any */
	const char *name;
};

/* SPC-4 annex D, the entries an iSCSI disk gives Tern. */
static const struct asc_name asc_names[] = {
	{ 0x04, 0x01, "becoming ready" },
	{ 0x04, 0x07, "operation in progress" },
	{ 0x04, 0x0a, "asymmetric access state transition" },
	{ 0x04, 0xff, "not ready" },
	{ 0x0c, 0x00, "write error" },
	{ 0x11, 0x00, "unrecovered read error" },
	{ 0x20, 0x00, "invalid command operation code" },
	{ 0x21, 0x00, "LBA out of range" },
	{ 0x24, 0x00, "invalid field in CDB" },
	{ 0x25, 0x00, "logical unit not supported" },
	{ 0x26, 0x00, "invalid field in parameter list" },
	{ 0x27, 0xff, "write protected" },
	{ 0x29, 0xff, "power on, reset, or bus device reset" },
	{ 0x2a, 0x01, "mode parameters changed" },
	{ 0x2a, 0x03, "reservations preempted" },
	{ 0x2a, 0x04, "reservations released" },
	{ 0x2a, 0x05, "registrations preempted" },
	{ 0x2a, 0x09, "capacity data has changed" },
	{ 0x2a, 0xff, "parameters changed" },
	{ 0x2c, 0x00, "command sequence error" },
	{ 0x3a, 0xff, "medium not present" },
	{ 0x3f, 0x0e, "reported LUNs data has changed" },
	{ 0x3f, 0xff, "target operating conditions have changed" },
	{ 0x47, 0xff, "SCSI parity error" },
	{ 0x4b, 0xff, "data phase error" },
};

const char *scsi_asc_name(uint8_t asc, uint8_t ascq)
{
	for (size_t i = 0; i < sizeof(asc_names) / sizeof(asc_names[0]); i++)
		if (asc_names[i].asc == asc &&
		    (asc_names[i].ascq == ascq || asc_names[i].ascq == 0xff))
			return asc_names[i].name;
	return NULL;
}

/* ---- classification ---- */

static enum scsi_disposition disp(const char **why, const char *msg, enum scsi_disposition d)
{
	if (why)
		*why = msg;
	return d;
}

/* NOT READY that clears by itself (SPC-4 annex D, 04/xx). */
static bool not_ready_transient(const struct scsi_sense *sd)
{
	return sd->asc == 0x04 && (sd->ascq == 0x00 || sd->ascq == 0x01 ||
				   sd->ascq == 0x07 || sd->ascq == 0x0a);
}

static enum scsi_disposition classify_sense(const struct scsi_sense *sd, const char **why)
{
	const char *a = scsi_asc_name(sd->asc, sd->ascq);

	/* SPC-4 4.5.5: a deferred error reports an earlier command, such as
	 * a write already completed to the guest: nothing to retry. */
	if (sd->deferred)
		return disp(why, "deferred error: an earlier write may be lost", SCSI_DISP_FATAL);
	switch (sd->key) {
	case SCSI_KEY_RECOVERED_ERROR:
		return disp(why, "recovered error", SCSI_DISP_OK);
	case SCSI_KEY_UNIT_ATTENTION:
		if (sd->asc == 0x2a && sd->ascq == 0x03)
			return disp(why, "unit attention: reservations preempted", SCSI_DISP_RETRY);
		if (sd->asc == 0x2a && sd->ascq == 0x04)
			return disp(why, "unit attention: reservations released", SCSI_DISP_RETRY);
		if (sd->asc == 0x2a && sd->ascq == 0x05)
			return disp(why, "unit attention: registrations preempted", SCSI_DISP_RETRY);
		if (sd->asc == 0x29)
			return disp(why, "unit attention: reset", SCSI_DISP_RETRY);
		return disp(why, "unit attention", SCSI_DISP_RETRY);
	case SCSI_KEY_NOT_READY:
		if (not_ready_transient(sd))
			return disp(why, "not ready: becoming ready", SCSI_DISP_RETRY);
		return disp(why, a && sd->asc == 0x3a ? "not ready: medium not present"
						       : "not ready", SCSI_DISP_FATAL);
	case SCSI_KEY_ABORTED_COMMAND:
		return disp(why, "aborted command", SCSI_DISP_RETRY);
	case SCSI_KEY_NO_SENSE:
		return disp(why, "check condition with no sense", SCSI_DISP_RETRY);
	case SCSI_KEY_MEDIUM_ERROR:
		return disp(why, "medium error", SCSI_DISP_FATAL);
	case SCSI_KEY_HARDWARE_ERROR:
		return disp(why, "hardware error", SCSI_DISP_FATAL);
	case SCSI_KEY_ILLEGAL_REQUEST:
		return disp(why, sd->asc == 0x21 ? "illegal request: LBA out of range"
						 : "illegal request", SCSI_DISP_FATAL);
	case SCSI_KEY_DATA_PROTECT:
		return disp(why, "data protect: write protected", SCSI_DISP_FATAL);
	default:
		return disp(why, "error sense key", SCSI_DISP_FATAL);
	}
}

enum scsi_disposition scsi_classify(uint8_t status, const uint8_t *sense, size_t slen,
				    struct scsi_sense *sd, const char **why)
{
	memset(sd, 0, sizeof(*sd));
	switch (status) {
	case SCSI_STATUS_GOOD:
	case SCSI_STATUS_CONDITION_MET:
		return disp(why, "good", SCSI_DISP_OK);
	case SCSI_STATUS_BUSY:
		return disp(why, "busy", SCSI_DISP_RETRY);
	case SCSI_STATUS_TASK_SET_FULL:
		return disp(why, "task set full", SCSI_DISP_RETRY);
	case SCSI_STATUS_TASK_ABORTED:
		return disp(why, "task aborted", SCSI_DISP_RETRY);
	case SCSI_STATUS_RESERVATION_CONFLICT:
		return disp(why, "reservation conflict: this host lost the disk",
			    SCSI_DISP_CONFLICT);
	case SCSI_STATUS_CHECK_CONDITION:
		if (!sense || !slen || scsi_parse_sense(sense, slen, sd)) {
			memset(sd, 0, sizeof(*sd));
			return disp(why, "check condition without usable sense data",
				    SCSI_DISP_FATAL);
		}
		return classify_sense(sd, why);
	case SCSI_STATUS_ACA_ACTIVE:
		/* Tern never sets NACA, so an ACA is someone else's. */
		return disp(why, "ACA active", SCSI_DISP_FATAL);
	default:
		return disp(why, "unexpected status", SCSI_DISP_FATAL);
	}
}

int scsi_describe(char *buf, size_t cap, uint8_t status, const struct scsi_sense *sd)
{
	const char *a;

	if (status != SCSI_STATUS_CHECK_CONDITION || !sd)
		return snprintf(buf, cap, "%s (0x%02x)", scsi_status_name(status), status);
	a = scsi_asc_name(sd->asc, sd->ascq);
	return snprintf(buf, cap, "CHECK CONDITION, %s%s %02X/%02X%s%s%s",
			sd->deferred ? "deferred " : "", scsi_key_name(sd->key),
			sd->asc, sd->ascq, a ? " (" : "", a ? a : "", a ? ")" : "");
}
