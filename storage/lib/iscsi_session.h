/*
 * iSCSI initiator session state machine (RFC 7143), one connection,
 * ErrorRecoveryLevel 0.  Pure: no sockets, no clock, no allocation.  The
 * caller owns the TCP connection and the receiver (iscsi_pdu.h):
 *
 *	iscsi_sess_connect()	a fresh TCP connection is up: start the login
 *	iscsi_sess_recv()	one whole PDU from iscsi_rx_feed()
 *	iscsi_sess_tick()	the monotonic clock moved (ms)
 *	iscsi_sess_conn_lost()	the socket died
 *	iscsi_sess_submit()	a SCSI command; iscsi_sess_logout(), ..._sendtargets()
 *
 * and gets back, through struct iscsi_sess_ops, PDUs to send (BHS plus a
 * pointer to the data segment, which the caller frames with
 * iscsi_pdu_build() and the digests in s->params), task completions and
 * session events.
 *
 * Connection failure.  Any error the session finds in what the target
 * sends fails the connection with a distinct negative errno (never a
 * crash): iscsi_sess_recv() returns it, the event ISCSI_SESS_EV_FAILED
 * carries it, and the caller must close the socket:
 *	-ECONNABORTED	a Reject PDU (RFC 7143 11.17)
 *	-ENOENT		an ITT or TTT that names no task of ours
 *	-ERANGE		a StatSN other than ExpStatSN (3.2.2.2: in order at ERL 0)
 *	-EOVERFLOW	Data-In beyond the task's buffer or its expected length
 *	-EPROTO		any other protocol violation (an opcode out of phase, a
 *			DataSN gap, an R2T outside the task or MaxBurstLength)
 *	-ETIMEDOUT	no answer to a NOP-Out ping, a login or a logout in time
 *	-EACCES		login refused for authentication (status 02/01) or
 *			the target failed mutual CHAP
 *	-ECONNREFUSED	login refused for any other reason
 *	(the caller's)	iscsi_sess_conn_lost(), or a failed ops->send
 *
 * Task reissue (RFC 7143 6.3.5, 7.1.2: at ERL 0 a failed connection ends
 * the session and its tasks).  The session keeps every task until its
 * status arrives.  On failure the tasks in flight are listed
 * (iscsi_sess_inflight()) and put back in the queue in their submission
 * order.  The next login reinstates the session (same ISID, TSIH 0,
 * 6.3.5) and sends them again as NEW commands: a fresh ITT and CmdSN.
 * Every issue of a task gets a fresh ITT (the slot in the low 8 bits, an
 * issue counter above), so a late PDU for an earlier issue can never
 * match the current one.  A task completes exactly once: its slot is
 * freed when its status is handed up, so a completed write is never
 * reissued, and a write whose status was lost is written again (SCSI
 * WRITE is idempotent for the same data).
 *
 * Retries.  UNIT ATTENTION, BUSY and TASK SET FULL (scsi_classify()) are
 * reissued up to cfg.max_retries times, then complete with -EAGAIN.
 * RESERVATION CONFLICT completes at once with -EACCES: another host has
 * the disk.
 */
#ifndef TERN_STORAGE_ISCSI_SESSION_H
#define TERN_STORAGE_ISCSI_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/lib/iscsi_chap.h"
#include "storage/lib/iscsi_pdu.h"
#include "storage/lib/iscsi_text.h"
#include "storage/lib/scsi_sense.h"

#define ISCSI_SESS_TASKS	64	/* tasks per session, in flight or queued */
#define ISCSI_SESS_TXT_MAX	4096	/* our login/text data segment */
#define ISCSI_SESS_RTXT_MAX	16384	/* target's text, C-bit PDUs joined */

enum iscsi_sess_state {
	ISCSI_SESS_DOWN,	/* no connection (new, or failed: reconnect) */
	ISCSI_SESS_LOGIN,	/* login phase in progress */
	ISCSI_SESS_FULL,	/* full-feature phase */
	ISCSI_SESS_LOGOUT,	/* Logout Request sent */
	ISCSI_SESS_CLOSED,	/* logged out; the session is over */
};

enum iscsi_sess_event {
	ISCSI_SESS_EV_LOGGED_IN,	/* full-feature phase: s->params are final */
	ISCSI_SESS_EV_FAILED,		/* connection failed: err and why */
	ISCSI_SESS_EV_LOGGED_OUT,	/* Logout Response received */
	ISCSI_SESS_EV_SENDTARGETS,	/* SendTargets done: err, count in arg */
	ISCSI_SESS_EV_ASYNC,		/* Async Message: event code in arg */
};

enum iscsi_sess_dir {
	ISCSI_SESS_NONE, ISCSI_SESS_READ, ISCSI_SESS_WRITE,
};

/* A SCSI command.  buf stays the caller's until completion. */
struct iscsi_sess_req {
	uint64_t lun;			/* encoded (scsi_lun_encode) */
	uint8_t cdb[ISCSI_CDB_MAX];
	uint8_t cdb_len;
	enum iscsi_sess_dir dir;
	void *buf;			/* data to write, or room to read into */
	uint32_t len;			/* Expected Data Transfer Length */
	void *cookie;			/* handed back in the completion */
	bool ctl;			/* sent even while the session is held */
};

/* A completed task. */
struct iscsi_sess_done {
	unsigned slot;
	void *cookie;
	int err;		/* 0; -EIO (SCSI or target failure); -EACCES
				 * (RESERVATION CONFLICT); -EAGAIN (retries
				 * spent); -ECANCELED (session logged out) */
	uint8_t status;		/* SCSI status (SAM-5 5.3.1) */
	enum scsi_disposition disp;
	struct scsi_sense sense;
	const char *why;	/* static text for the log */
	uint32_t xfer;		/* bytes of Data-In placed in buf */
	uint32_t residual;	/* Residual Count when over/underflow is set */
	bool underflow, overflow;
	unsigned tries;		/* issues of the task, reconnects included */
};

struct iscsi_sess_ops {
	/* Send one PDU: h (DataSegmentLength is dlen) and data[0..dlen).
	 * Nonzero fails the connection with that error. */
	int (*send)(void *ctx, const struct iscsi_bhs *h, const void *data, uint32_t dlen);
	void (*done)(void *ctx, const struct iscsi_sess_done *d);
	void (*event)(void *ctx, enum iscsi_sess_event ev, int err, uint32_t arg,
		      const char *why);
};

struct iscsi_sess_cfg {
	const char *initiator_name;	/* iqn... */
	const char *target_name;	/* NULL for a discovery session */
	bool discovery;
	uint64_t isid;			/* 48 bits (RFC 7143 11.12.5) */
	struct iscsi_params want;	/* want.auth picks None or CHAP */
	const struct iscsi_chap_cfg *chap;
	iscsi_md5_fn md5;
	/* Mutual CHAP: our challenge, fresh random bytes from the caller
	 * for each login (iscsi_sess_connect() takes them). */
	uint32_t nop_interval_ms;	/* ping after this long idle; 0: never */
	uint32_t timeout_ms;		/* answer to a ping, login or logout */
	unsigned max_retries;		/* UNIT ATTENTION, BUSY, TASK SET FULL */
};

enum iscsi_sess_tstate {
	ISCSI_SESS_T_FREE, ISCSI_SESS_T_QUEUED, ISCSI_SESS_T_ACTIVE,
};

struct iscsi_sess_task {
	enum iscsi_sess_tstate state;
	struct iscsi_sess_req req;
	uint64_t order;		/* submission order: the queue is FIFO */
	uint32_t itt;		/* current issue */
	uint32_t got;		/* Data-In bytes so far */
	uint32_t data_sn;	/* next Data-In DataSN */
	uint32_t r2t_sn;	/* next R2TSN */
	unsigned tries;
	unsigned retries;	/* UA/BUSY reissues */
};

struct iscsi_sess {
	struct iscsi_sess_cfg cfg;
	struct iscsi_sess_ops ops;
	void *ctx;
	enum iscsi_sess_state state;
	struct iscsi_params params;	/* negotiated (valid from LOGGED_IN) */
	int err;			/* the last connection failure */
	const char *why;

	/* Sequence numbers (RFC 7143 4.2.2). */
	uint32_t cmdsn, exp_cmdsn, max_cmdsn, exp_statsn;
	uint32_t itt_gen;
	uint64_t next_order;
	uint16_t tsih;

	/* Login (RFC 7143 6.3) */
	int stage;			/* CSG we are in */
	int lstep;			/* step inside the security stage */
	unsigned lrounds;		/* Login Responses taken */
	bool login_transit;		/* the last request asked to transit */
	struct iscsi_neg neg;
	struct iscsi_chap chap;
	uint8_t my_chap_id;
	const uint8_t *my_chap_c;
	size_t my_chap_clen;

	/* Text exchanges (login and SendTargets). */
	uint8_t txt[ISCSI_SESS_TXT_MAX];
	uint8_t rtxt[ISCSI_SESS_RTXT_MAX];
	size_t rtxt_len;
	uint32_t ctl_itt;		/* login, text or logout outstanding */
	bool ctl_busy;
	uint32_t ctl_sent_ms;
	struct iscsi_target *st_out;	/* SendTargets destination */
	unsigned st_max;

	/* Keepalive (RFC 7143 11.18, 11.19). */
	uint32_t last_rx_ms;
	uint32_t now_ms;
	bool ping_busy;
	uint32_t ping_itt;
	uint32_t ping_sent_ms;

	bool hold;			/* send only ctl tasks (iscsi_sess_hold) */
	unsigned ninflight;		/* tasks listed at the last failure */
	uint8_t inflight[ISCSI_SESS_TASKS];
	struct iscsi_sess_task task[ISCSI_SESS_TASKS];
};

/* Check cfg and set up a session in state DOWN.  0 or -EINVAL. */
int iscsi_sess_init(struct iscsi_sess *s, const struct iscsi_sess_cfg *cfg,
		    const struct iscsi_sess_ops *ops, void *ctx);

/*
 * A new TCP connection is up (the caller reset its receiver): start the
 * login (a leading login, TSIH 0: a new or reinstated session).  For
 * mutual CHAP, chap_id and chap_c[0..chap_clen) are our fresh challenge;
 * they must stay valid during the login.  Returns 0, -EALREADY when not
 * DOWN, or a send error.
 */
int iscsi_sess_connect(struct iscsi_sess *s, uint32_t now, uint8_t chap_id,
		       const uint8_t *chap_c, size_t chap_clen);

/* One received PDU.  0, or the failure (the connection is then failed). */
int iscsi_sess_recv(struct iscsi_sess *s, const struct iscsi_rx_pdu *p, uint32_t now);

/* Time passed: keepalive pings and timeouts.  0 or the failure. */
int iscsi_sess_tick(struct iscsi_sess *s, uint32_t now);

/* The connection died (err < 0 is kept as the reason). */
void iscsi_sess_conn_lost(struct iscsi_sess *s, int err);

/*
 * Queue a SCSI command (sent at once when logged in and CmdSN is inside
 * the window).  Returns the task slot, -EAGAIN when every slot is taken,
 * -EINVAL for a bad request, or -EPIPE after logout or for a
 * discovery session.
 */
int iscsi_sess_submit(struct iscsi_sess *s, const struct iscsi_sess_req *req);

/*
 * Hold back every task but ctl ones (and release them: hold false sends
 * what waited).  The owner holds from ISCSI_SESS_EV_LOGGED_IN, which comes
 * before the reissued tasks go out, when something must happen on the
 * new connection first: a target that ties reservations to the I_T nexus
 * of one login (tgt does) wants the new connection registered before a
 * reissued write arrives, and the owner must first check that its key
 * was not pre-empted meanwhile.
 */
void iscsi_sess_hold(struct iscsi_sess *s, bool hold);

/* Logout (close the session, RFC 7143 11.14).  -EBUSY with tasks left. */
int iscsi_sess_logout(struct iscsi_sess *s);

/* Discovery: SendTargets=All into out[0..max) (appendix C). */
int iscsi_sess_sendtargets(struct iscsi_sess *s, struct iscsi_target *out, unsigned max);

/* Slots in flight at the last failure, in submission order.  Returns
 * the count (all of them, even beyond max). */
unsigned iscsi_sess_inflight(const struct iscsi_sess *s, unsigned *slots, unsigned max);

/* Tasks not yet completed (queued or in flight). */
unsigned iscsi_sess_pending(const struct iscsi_sess *s);

/* RFC 1982 serial comparison on 32 bits: a < b. */
static inline bool iscsi_sn_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

#endif
