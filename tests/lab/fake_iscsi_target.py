#!/usr/bin/env python3
"""fake_iscsi_target: a small, optionally hostile iSCSI target for tests.

Python 3 standard library only (plus iscsi_pdu.py next to it).  It speaks
enough RFC 7143 to be believable: Login (security stage AuthMethod=None,
operational stage with every key the initiator sent answered), SendTargets
discovery, and in the full feature phase one RAM LUN (default LUN 1, as
tgt numbers its first disk; 16 MiB of 512-byte blocks) with TEST UNIT
READY, INQUIRY (standard, VPD 0x00/0x80/0x83/0xb0), READ CAPACITY(10),
READ CAPACITY(16) (SERVICE ACTION IN 0x9e/0x10), READ/WRITE(10/16) with
immediate data and R2T, REPORT LUNS, SYNCHRONIZE CACHE(10/16), MODE
SENSE(6/10) (header only), REQUEST SENSE, PERSISTENT RESERVE IN (READ
KEYS, READ RESERVATION, REPORT CAPABILITIES) and OUT (register, reserve,
release, clear, preempt: bookkeeping only, access is never refused),
NOP-Out, Task Management (always "function complete") and Logout.
Header and data digests (CRC32C) work when negotiated.

Negotiation: the target's own values are HeaderDigest/DataDigest None or
CRC32C (the first the initiator lists), MaxRecvDataSegmentLength=65536,
MaxBurstLength=262144, FirstBurstLength=65536, InitialR2T=Yes,
ImmediateData=Yes, MaxConnections=1, ErrorRecoveryLevel=0,
DataPDUInOrder=Yes, DataSequenceInOrder=Yes, DefaultTime2Wait=2,
DefaultTime2Retain=0, MaxOutstandingR2T=1; each reply follows the key's
RFC 7143 result function (min, max, AND, OR), so the answer is never
outside what the initiator offered.  Unknown keys get NotUnderstood.

Modes (--mode) inject one malformation once `after` SCSI commands have been
answered well (default 3; counted over the target's whole life, across
connections; with repeat=True, again after every further `after` good
commands).  The injection replaces the reply to the next SCSI command
that suits the mode:
  none             well-behaved.
  bad-opcode       a PDU with reserved opcode 0x3e (the command's ITT), no reply.
  huge-dsl         a SCSI Response header claiming DataSegmentLength 0xffffff,
                   then nothing more.
  bad-itt          a GOOD SCSI Response with an ITT never issued, then the
                   real reply.
  statsn-jump      the reply's StatSN is 1000 ahead (and counting continues
                   from there).
  datain-overflow  (next command with Data-In) the data, then one more
                   512-byte Data-In at buffer offset = ExpectedDataTransfer-
                   Length carrying the status.
  header-digest    negotiates HeaderDigest=CRC32C whenever the initiator
                   lists it, then sends the reply with a wrong header
                   digest.  If the connection has no header digest it
                   logs that and injects nothing.
  truncated        24 bytes (half a BHS) of the reply, then closes.
  garbage          512 random bytes instead of the reply (connection kept).
  reject           a Reject PDU (reason 0x09 Invalid PDU Field, carrying the
                   command's BHS) instead of the reply.
  login-garbage    `after` counts completed logins instead: the next login's
                   first response has the text "AuthMethodNone\\0Target
                   PortalGroupTag" (a key without '=', not NUL-terminated);
                   the login otherwise goes on.
  short-read       (next READ(10)/READ(16)) half the data, and the status in
                   the last Data-In: GOOD, with no underflow flag and no
                   residual, as if the whole transfer had been sent.
  silent           from the next SCSI command on, this connection answers
                   nothing at all (NOP-Out included); new connections are
                   served again (unless repeat).
  drop-forget-keys (next WRITE(10)/WRITE(16)) the write is not executed,
                   the connection closes and every PR registration and
                   the reservation are forgotten, as a restarted tgtd does.
  drop-pr-in-fail  (next WRITE(10)/WRITE(16)) the write is not executed,
                   the connection closes, and the next PERSISTENT RESERVE
                   IN fails (CHECK CONDITION, HARDWARE ERROR); later ones
                   work.
WRITEs executed after a drop-* injection are counted in .writes_after_drop.
ptpl=True makes REPORT CAPABILITIES say PTPL_C (and PTPL_A once a REGISTER
set APTPL); .pr_aptpl keeps the APTPL bit of the last REGISTER.
Every PDU sent and received is logged, one line each, to stderr or to the
log file; injections are logged with "INJECT" and kept in .injected.

    from fake_iscsi_target import FakeTarget
    t = FakeTarget("10.77.0.254:3260", mode="bad-itt", after=3,
                   netns=lab.ns, log="build/test-logs/fake-iscsi.log").start()
    ...
    assert t.injected, t.injected
    t.stop()

Command line:
  python3 tests/lab/fake_iscsi_target.py --listen ADDR:PORT --mode MODE
      [--iqn IQN] [--after N] [--repeat] [--lun N] [--size-mb N]
      [--block 512|4096] [--netns NS] [--log FILE]
  prints "listening on ADDR:PORT" once it accepts connections and runs
  until SIGINT/SIGTERM.
  python3 tests/lab/fake_iscsi_target.py --selftest
  checks every mode with MiniInitiator and the well-behaved and some
  hostile modes with libiscsi-bin (iscsi-ls, iscsi-inq,
  iscsi-readcapacity16) on 127.0.0.1; prints PASS/FAIL lines.
"""

import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iscsi_pdu import (  # noqa: E402
    OP_NOP_OUT, OP_SCSI_CMD, OP_TMF_REQ, OP_LOGIN_REQ, OP_TEXT_REQ,
    OP_DATA_OUT, OP_LOGOUT_REQ, OP_SNACK, OP_NOP_IN, OP_SCSI_RSP, OP_TMF_RSP,
    OP_LOGIN_RSP, OP_TEXT_RSP, OP_DATA_IN, OP_LOGOUT_RSP, OP_R2T, OP_REJECT,
    RSVD_TAG, ST_GOOD, ST_CHECK_CONDITION, ST_RESERVATION_CONFLICT,
    Pdu, recv_pdu, encode_text, decode_text, fixed_sense, netns_call,
    parse_portal, IscsiError, DigestError, MiniInitiator)

DEFAULT_IQN = "iqn.2024-01.org.tern.lab:fake"
MODES = ("none", "bad-opcode", "huge-dsl", "bad-itt", "statsn-jump",
         "datain-overflow", "header-digest", "truncated", "garbage",
         "reject", "login-garbage", "silent", "mute-cmd", "short-read",
         "drop-forget-keys", "drop-pr-in-fail")
WRITE_OPS = (0x2A, 0x8A)

# Sense keys / ASCs
NOT_READY, HARDWARE_ERROR, ILLEGAL_REQUEST = 0x02, 0x04, 0x05
ASC_INVALID_OPCODE = 0x20
ASC_LBA_OUT_OF_RANGE = 0x21
ASC_INVALID_FIELD_IN_CDB = 0x24
ASC_LUN_NOT_SUPPORTED = 0x25
ASC_PARAM_LIST_LENGTH = 0x1A

TARGET_KEYS = {
    # key: (our value, result function)
    "MaxBurstLength": (262144, "min"),
    "FirstBurstLength": (65536, "min"),
    "InitialR2T": ("Yes", "or"),
    "ImmediateData": ("Yes", "and"),
    "MaxConnections": (1, "min"),
    "ErrorRecoveryLevel": (0, "min"),
    "DataPDUInOrder": ("Yes", "or"),
    "DataSequenceInOrder": ("Yes", "or"),
    "DefaultTime2Wait": (2, "max"),
    "DefaultTime2Retain": (0, "min"),
    "MaxOutstandingR2T": (1, "min"),
    "IFMarker": ("No", "and"),
    "OFMarker": ("No", "and"),
}
TARGET_MRDSL = 65536
CMD_WINDOW = 32


class _Close(Exception):
    """End this connection quietly."""


class FakeTarget:
    """Listening iSCSI target in a background thread.  See the module doc."""

    def __init__(self, listen="127.0.0.1:3260", mode="none", after=3,
                 iqn=DEFAULT_IQN, netns=None, lun=1, size=16 << 20,
                 block=512, log=None, repeat=False, seed=1, quiet=False,
                 ptpl=False):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.host, self.port = parse_portal(listen)
        self.mode = mode
        self.after = after
        self.iqn = iqn
        self.netns = netns
        self.lun = lun
        self.block = block
        self.disk = bytearray(size - size % block)
        self.repeat = repeat
        self.rng = random.Random(seed)
        self.quiet = quiet
        self.log_path = log
        self._logf = None
        self.log_lines = []
        self.injected = []        # descriptions of what was injected
        self.good = 0             # SCSI commands answered well (this period)
        self.logins = 0           # completed logins (this period)
        self.total_commands = 0
        self._spent = False       # one-shot injection already done
        self.lock = threading.RLock()
        self._lsock = None
        self._thread = None
        self._conns = set()
        self._stopping = False
        self._tsih = 0
        self._ttt = 0x100
        # PR bookkeeping: nexus -> key; holder nexus and type.
        self.pr_regs = {}
        self.pr_holder = None
        self.pr_type = 0
        self.pr_gen = 0
        self.ptpl = ptpl
        self.pr_aptpl = None      # APTPL bit of the last REGISTER
        self.pr_in_fail = False   # drop-pr-in-fail: the next PR IN fails
        self.dropped = False
        self.writes_after_drop = 0
        self.gen_at_drop = None   # PR generation when the drop happened

    # -- lifecycle --

    def start(self):
        if self.log_path:
            d = os.path.dirname(os.path.abspath(self.log_path))
            os.makedirs(d, exist_ok=True)
            self._logf = open(self.log_path, "a", buffering=1)

        def mk():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            s.listen(8)
            return s
        self._lsock = netns_call(self.netns, mk)
        self.port = self._lsock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="fake-iscsi-accept")
        self._thread.start()
        self.log(f"listening on {self.host}:{self.port} mode={self.mode} "
                 f"after={self.after} iqn={self.iqn} lun={self.lun} "
                 f"size={len(self.disk)} netns={self.netns}")
        return self

    @property
    def portal(self):
        return f"{self.host}:{self.port}"

    def stop(self):
        self._stopping = True
        if self._lsock is not None:
            try:
                # shutdown() wakes the accept() in the other thread; a bare
                # close() does not.
                self._lsock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self._lsock.close()
            except OSError:
                pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            c.kill()
        if self._thread is not None:
            self._thread.join(5)
        for c in conns:
            if c.thread is not None:
                c.thread.join(5)
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log(self, line):
        stamp = time.strftime("%H:%M:%S")
        text = f"[{stamp}] fake-iscsi {line}"
        with self.lock:
            self.log_lines.append(text)
            if len(self.log_lines) > 5000:
                del self.log_lines[:1000]
            if self._logf is not None:
                self._logf.write(text + "\n")
            elif not self.quiet:
                print(text, file=sys.stderr, flush=True)

    def _accept_loop(self):
        while not self._stopping:
            try:
                s, addr = self._lsock.accept()
            except OSError:
                return
            c = _Conn(self, s, addr)
            with self.lock:
                self._conns.add(c)
            c.thread = threading.Thread(target=c.run, daemon=True,
                                        name=f"fake-iscsi-{addr[1]}")
            c.thread.start()

    # -- injection bookkeeping --

    def armed(self, login=False):
        """True when the next suitable event should be malformed."""
        if self.mode == "none" or self._spent:
            return False
        if (self.mode == "login-garbage") != login:
            return False
        count = self.logins if login else self.good
        return count >= self.after

    def fired(self, what):
        with self.lock:
            self.injected.append(what)
            if self.repeat:
                self.good = 0
                self.logins = 0
            else:
                self._spent = True
        self.log(f"INJECT {self.mode}: {what}")

    def next_tsih(self):
        with self.lock:
            self._tsih = self._tsih % 0xFFFF + 1
            return self._tsih

    def next_ttt(self):
        with self.lock:
            self._ttt = (self._ttt + 1) & 0x7FFFFFFF
            return self._ttt

    # -- SCSI --

    def execute(self, cdb, lun, data_out, nexus):
        """-> (status, data_in, sense)"""
        with self.lock:
            return self._execute(cdb, lun, data_out, nexus)

    def _execute(self, cdb, lun, data_out, nexus):
        op = cdb[0]
        nblocks = len(self.disk) // self.block

        def check(key, asc, ascq=0):
            return ST_CHECK_CONDITION, b"", fixed_sense(key, asc, ascq)

        if op == 0xA0:                                  # REPORT LUNS
            alloc = struct.unpack(">I", cdb[6:10])[0]
            entry = struct.pack(">Q", (self.lun << 48) if self.lun < 256
                                else self.lun)
            return ST_GOOD, (struct.pack(">II", 8, 0) + entry)[:alloc], b""
        if op == 0x03:                                  # REQUEST SENSE
            return ST_GOOD, fixed_sense(0, 0)[:cdb[4]], b""
        if lun != self.lun:
            if op == 0x12:
                d = bytearray(36)
                d[0] = 0x7F
                return ST_GOOD, bytes(d)[:cdb[4] | cdb[3] << 8], b""
            return check(ILLEGAL_REQUEST, ASC_LUN_NOT_SUPPORTED)
        if op == 0x00:                                  # TEST UNIT READY
            return ST_GOOD, b"", b""
        if op == 0x12:                                  # INQUIRY
            alloc = cdb[3] << 8 | cdb[4]
            d = self._inquiry(cdb[1] & 1, cdb[2])
            if d is None:
                return check(ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
            return ST_GOOD, d[:alloc], b""
        if op == 0x25:                                  # READ CAPACITY(10)
            last = min(nblocks - 1, 0xFFFFFFFF)
            return ST_GOOD, struct.pack(">II", last, self.block), b""
        if op == 0x9E and cdb[1] & 0x1F == 0x10:        # READ CAPACITY(16)
            alloc = struct.unpack(">I", cdb[10:14])[0]
            d = bytearray(32)
            struct.pack_into(">QI", d, 0, nblocks - 1, self.block)
            return ST_GOOD, bytes(d)[:alloc], b""
        if op in (0x28, 0x88, 0x2A, 0x8A):              # READ/WRITE 10/16
            if op in (0x28, 0x2A):
                lba, n = struct.unpack(">I", cdb[2:6])[0], \
                    struct.unpack(">H", cdb[7:9])[0]
            else:
                lba, n = struct.unpack(">Q", cdb[2:10])[0], \
                    struct.unpack(">I", cdb[10:14])[0]
            if lba + n > nblocks:
                return check(ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE)
            a, b = lba * self.block, (lba + n) * self.block
            if op in (0x28, 0x88):
                return ST_GOOD, bytes(self.disk[a:b]), b""
            if data_out is None or len(data_out) < b - a:
                return check(ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
            self.disk[a:b] = data_out[:b - a]
            return ST_GOOD, b"", b""
        if op in (0x35, 0x91):                          # SYNCHRONIZE CACHE
            return ST_GOOD, b"", b""
        if op == 0x1A:                                  # MODE SENSE(6)
            return ST_GOOD, bytes([3, 0, 0, 0])[:cdb[4]], b""
        if op == 0x5A:                                  # MODE SENSE(10)
            alloc = struct.unpack(">H", cdb[7:9])[0]
            return ST_GOOD, bytes([0, 6, 0, 0, 0, 0, 0, 0])[:alloc], b""
        if op == 0x5E:                                  # PR IN
            return self._pr_in(cdb)
        if op == 0x5F:                                  # PR OUT
            return self._pr_out(cdb, data_out or b"", nexus)
        return check(ILLEGAL_REQUEST, ASC_INVALID_OPCODE)

    def _inquiry(self, evpd, page):
        serial = b"TERNFAKE%04d" % self.lun
        if not evpd:
            if page:
                return None
            d = bytearray(96)
            d[2] = 0x06                 # SPC-4
            d[3] = 0x12                 # HiSup, response data format 2
            d[4] = len(d) - 5
            d[7] = 0x02                 # CmdQue
            d[8:16] = b"TERNLAB "
            d[16:32] = b"FAKE-ISCSI-DISK "
            d[32:36] = b"0001"
            return bytes(d)
        if page == 0x00:
            pages = bytes([0x00, 0x80, 0x83, 0xB0])
            return bytes([0, 0, 0, len(pages)]) + pages
        if page == 0x80:
            return bytes([0, 0x80, 0, len(serial)]) + serial
        if page == 0x83:
            h = sum(self.iqn.encode()) * 2654435761 & 0xFFFFFFFF
            naa = struct.pack(">II", 0x5001405F, h ^ self.lun)
            t10 = b"TERNLAB " + serial
            des = bytes([0x01, 0x03, 0, 8]) + naa + \
                bytes([0x02, 0x01, 0, len(t10)]) + t10
            return bytes([0, 0x83]) + struct.pack(">H", len(des)) + des
        if page == 0xB0:
            d = bytearray(0x40)
            d[1] = 0xB0
            d[3] = 0x3C
            struct.pack_into(">H", d, 6, 1)          # granularity
            struct.pack_into(">I", d, 8, 8192)       # max transfer (blocks)
            struct.pack_into(">I", d, 12, 512)       # optimal transfer
            return bytes(d)
        return None

    def _pr_in(self, cdb):
        sa = cdb[1] & 0x1F
        alloc = struct.unpack(">H", cdb[7:9])[0]
        if self.pr_in_fail:
            self.pr_in_fail = False
            self.log("PR IN fails once (drop-pr-in-fail)")
            return ST_CHECK_CONDITION, b"", fixed_sense(HARDWARE_ERROR, 0x44)
        if sa == 0:
            keys = b"".join(struct.pack(">Q", k) for k in self.pr_regs.values())
            d = struct.pack(">II", self.pr_gen, len(keys)) + keys
        elif sa == 1:
            if self.pr_holder is None:
                d = struct.pack(">II", self.pr_gen, 0)
            else:
                d = struct.pack(">IIQIBBH", self.pr_gen, 16,
                                self.pr_regs.get(self.pr_holder, 0), 0, 0,
                                self.pr_type & 0xF, 0)
        elif sa == 2:
            d = bytes([0, 8, 0x01 if self.ptpl else 0,
                       0x80 | (1 if self.ptpl and self.pr_aptpl else 0),
                       0xEA, 0x01, 0, 0])
        else:
            return ST_CHECK_CONDITION, b"", fixed_sense(
                ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        return ST_GOOD, d[:alloc], b""

    def _pr_out(self, cdb, param, nexus):
        sa = cdb[1] & 0x1F
        ptype = cdb[2] & 0x0F
        if len(param) < 24:
            return ST_CHECK_CONDITION, b"", fixed_sense(
                ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH)
        key, sa_key = struct.unpack(">QQ", param[:16])
        mine = self.pr_regs.get(nexus)
        conflict = (ST_RESERVATION_CONFLICT, b"", b"")
        if sa in (0, 6):                                # REGISTER (AND IGNORE)
            self.pr_aptpl = bool(param[20] & 1)
            if mine is None and key != 0 and sa == 0:
                return conflict
            if mine is not None and sa == 0 and key != mine:
                return conflict
            if sa_key:
                self.pr_regs[nexus] = sa_key
            else:
                self.pr_regs.pop(nexus, None)
                if self.pr_holder == nexus:
                    self.pr_holder = None
            self.pr_gen += 1
        elif sa == 1:                                   # RESERVE
            if mine is None or mine != key:
                return conflict
            if self.pr_holder not in (None, nexus):
                return conflict
            self.pr_holder, self.pr_type = nexus, ptype
        elif sa == 2:                                   # RELEASE
            if mine is None or mine != key:
                return conflict
            if self.pr_holder == nexus:
                self.pr_holder = None
        elif sa == 3:                                   # CLEAR
            if mine is None or mine != key:
                return conflict
            self.pr_regs.clear()
            self.pr_holder = None
            self.pr_gen += 1
        elif sa in (4, 5):                              # PREEMPT (AND ABORT)
            if mine is None or mine != key:
                return conflict
            holder_key = self.pr_regs.get(self.pr_holder)
            for n in [n for n, k in self.pr_regs.items()
                      if k == sa_key and n != nexus]:
                del self.pr_regs[n]
            if self.pr_holder is not None and holder_key == sa_key:
                self.pr_holder, self.pr_type = nexus, ptype
            self.pr_gen += 1
        else:
            return ST_CHECK_CONDITION, b"", fixed_sense(
                ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        return ST_GOOD, b"", b""


class _Conn:
    """One TCP connection (one session: MaxConnections=1)."""

    def __init__(self, target, sock, addr):
        self.t = target
        self.sock = sock
        self.addr = addr
        self.thread = None
        self.name = f"{addr[0]}:{addr[1]}"
        self.statsn = 0x1000
        self.expcmdsn = 0
        self.hd = False
        self.dd = False
        self.params = {}
        self.ini_mrdsl = 8192
        self.discovery = False
        self.nexus = None
        self.writes = {}      # itt -> write state
        self.silent = False
        self.ffp = False
        self.mrdsl_declared = False

    def kill(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def log(self, text):
        self.t.log(f"{self.name} {text}")

    # -- wire --

    def send(self, pdu, hd=None, dd=None, dsl=None, corrupt_hd=False):
        hd = self.hd if hd is None else hd
        dd = self.dd if dd is None else dd
        raw = pdu.encode(hd, dd, dsl=dsl)
        if corrupt_hd:
            raw = bytearray(raw)
            cut = 48 + len(pdu.ahs)
            raw[cut] ^= 0xFF
            raw = bytes(raw)
        self.log(f"tx {pdu.describe()}" + (" (BAD HEADER DIGEST)"
                                            if corrupt_hd else ""))
        self.sock.sendall(raw)

    def send_raw(self, raw, what):
        self.log(f"tx raw {len(raw)} bytes: {what}")
        self.sock.sendall(raw)

    def recv(self):
        p = recv_pdu(self.sock, self.hd, self.dd, max_data=1 << 20)
        self.log(f"rx {p.describe()}")
        return p

    def stamp(self, p, advance=True):
        """Fill StatSN/ExpCmdSN/MaxCmdSN (bytes 24..35) of a target PDU."""
        p.set_u32(24, self.statsn)
        p.set_u32(28, self.expcmdsn)
        p.set_u32(32, self.expcmdsn + CMD_WINDOW - 1)
        if advance:
            self.statsn = (self.statsn + 1) & 0xFFFFFFFF
        return p

    # -- main loop --

    def run(self):
        self.log("connected")
        try:
            self.login()
            while True:
                p = self.recv()
                if self.silent:
                    continue
                self.dispatch(p)
        except _Close as e:
            self.log(f"closing: {e}")
        except EOFError:
            self.log("initiator closed the connection")
        except DigestError as e:
            self.log(f"digest error, closing: {e}")
        except (OSError, IscsiError) as e:
            if not self.t._stopping:
                self.log(f"connection error: {e}")
        finally:
            self.kill()
            with self.t.lock:
                self.t._conns.discard(self)

    # -- login --

    def login(self):
        first = True
        tsih = 0
        while True:
            p = self.recv()
            if p.opcode != OP_LOGIN_REQ:
                raise _Close(f"expected a Login Request, got {p.describe()}")
            transit = bool(p.flags & 0x80)
            csg = (p.flags >> 2) & 3
            nsg = p.flags & 3
            self.expcmdsn = p.u32(24)
            keys = decode_text(p.data)
            kd = dict(keys)
            reply = []
            status = (0, 0)
            if first:
                self.discovery = kd.get("SessionType") == "Discovery"
                self.nexus = (kd.get("InitiatorName", "?"), bytes(p.bhs[8:14]))
                if "InitiatorName" not in kd:
                    status = (2, 7)         # missing parameter
                elif not self.discovery and kd.get("TargetName") != self.t.iqn:
                    status = (2, 3)         # not found
            if csg == 0:
                for k, v in keys:
                    if k == "AuthMethod":
                        if "None" in v.split(","):
                            reply.append(("AuthMethod", "None"))
                        else:
                            reply.append(("AuthMethod", "Reject"))
                            status = (2, 1)     # authentication failure
                    elif k in ("InitiatorName", "SessionType", "TargetName",
                               "InitiatorAlias"):
                        pass
                    else:
                        reply.append((k, "NotUnderstood"))
                if first and not self.discovery:
                    reply.append(("TargetPortalGroupTag", "1"))
            elif csg == 1:
                reply = self.negotiate(keys, first)
                if first and not self.discovery:
                    reply.append(("TargetPortalGroupTag", "1"))
            else:
                status = (2, 0)
            rsp = Pdu.make(OP_LOGIN_RSP, itt=p.itt)
            rsp.bhs[8:14] = p.bhs[8:14]
            done = status == (0, 0) and transit and nsg == 3
            if status == (0, 0) and transit:
                rsp.bhs[1] = 0x80 | (csg << 2) | nsg
            else:
                rsp.bhs[1] = csg << 2
            if done:
                tsih = p.u16(14) or self.t.next_tsih()
            rsp.set_u16(14, tsih)
            rsp.bhs[36], rsp.bhs[37] = status
            rsp.data = encode_text(reply)
            self.stamp(rsp)
            if first and self.t.armed(login=True):
                rsp.data = b"AuthMethodNone\0TargetPortalGroupTag"
                self.t.fired("login response text without '=' and not "
                             "NUL-terminated")
            self.send(rsp, hd=False, dd=False)
            first = False
            if status != (0, 0):
                raise _Close(f"login failed {status}")
            if done:
                self.hd = self.params.get("HeaderDigest") == "CRC32C"
                self.dd = self.params.get("DataDigest") == "CRC32C"
                self.ini_mrdsl = int(self.params.get(
                    "InitiatorMRDSL", 8192))
                self.ffp = True
                with self.t.lock:
                    self.t.logins += 1
                self.log(f"full feature phase ({'discovery' if self.discovery else 'normal'}"
                         f" session, tsih={tsih}, hd={self.hd}, dd={self.dd}, "
                         f"initiator MRDSL={self.ini_mrdsl})")
                return

    def negotiate(self, keys, first):
        reply = []
        answered = set()
        for k, v in keys:
            answered.add(k)
            if k in ("HeaderDigest", "DataDigest"):
                offer = [x.strip() for x in v.split(",")]
                if k == "HeaderDigest" and self.t.mode == "header-digest" \
                        and "CRC32C" in offer:
                    choice = "CRC32C"
                else:
                    choice = next((x for x in offer
                                   if x in ("None", "CRC32C")), "Reject")
                self.params[k] = choice
                reply.append((k, choice))
            elif k == "MaxRecvDataSegmentLength":
                self.params["InitiatorMRDSL"] = v
                reply.append((k, str(TARGET_MRDSL)))
            elif k in TARGET_KEYS:
                ours, fn = TARGET_KEYS[k]
                if fn in ("min", "max"):
                    try:
                        theirs = int(v)
                    except ValueError:
                        reply.append((k, "Reject"))
                        continue
                    val = min(theirs, ours) if fn == "min" else max(theirs, ours)
                elif v not in ("Yes", "No"):
                    reply.append((k, "Reject"))
                    continue
                elif fn == "or":
                    val = "Yes" if "Yes" in (v, ours) else "No"
                else:
                    val = "Yes" if v == ours == "Yes" else "No"
                self.params[k] = str(val)
                reply.append((k, str(val)))
            elif k in ("InitiatorName", "InitiatorAlias", "SessionType",
                       "TargetName", "AuthMethod"):
                pass
            else:
                reply.append((k, "NotUnderstood"))
        if "MaxRecvDataSegmentLength" not in answered and \
                not self.mrdsl_declared:
            reply.append(("MaxRecvDataSegmentLength", str(TARGET_MRDSL)))
        self.mrdsl_declared = True
        return reply

    # -- full feature phase --

    def dispatch(self, p):
        op = p.opcode
        if op == OP_SCSI_CMD:
            if self.discovery:
                return self.reject(p, 0x05)
            if not p.immediate:
                self.expcmdsn = (p.u32(24) + 1) & 0xFFFFFFFF
            self.scsi_cmd(p)
        elif op == OP_DATA_OUT:
            self.data_out(p)
        elif op == OP_NOP_OUT:
            if not p.immediate:
                self.expcmdsn = (p.u32(24) + 1) & 0xFFFFFFFF
            if p.itt != RSVD_TAG:
                r = Pdu.make(OP_NOP_IN, 0x80, lun=p.lun, itt=p.itt,
                             data=p.data)
                r.set_u32(20, RSVD_TAG)
                self.send(self.stamp(r))
        elif op == OP_TEXT_REQ:
            if not p.immediate:
                self.expcmdsn = (p.u32(24) + 1) & 0xFFFFFFFF
            self.text(p)
        elif op == OP_LOGOUT_REQ:
            r = Pdu.make(OP_LOGOUT_RSP, 0x80, itt=p.itt)
            r.bhs[2] = 0
            self.send(self.stamp(r))
            raise _Close("logout")
        elif op == OP_TMF_REQ:
            if not p.immediate:
                self.expcmdsn = (p.u32(24) + 1) & 0xFFFFFFFF
            fn = p.flags & 0x7F
            if fn in (5, 6, 7):       # LUN/target resets: drop pending writes
                self.writes.clear()
            r = Pdu.make(OP_TMF_RSP, 0x80, itt=p.itt)
            r.bhs[2] = 0
            self.send(self.stamp(r))
        elif op == OP_SNACK:
            self.reject(p, 0x05)
        else:
            self.reject(p, 0x04)

    def reject(self, p, reason):
        r = Pdu.make(OP_REJECT, 0x80, itt=RSVD_TAG, data=bytes(p.bhs))
        r.bhs[2] = reason
        self.send(self.stamp(r))

    def text(self, p):
        keys = decode_text(p.data)
        out = []
        for k, v in keys:
            if k == "SendTargets":
                if v in ("All", "", self.t.iqn):
                    local = self.sock.getsockname()
                    out.append(("TargetName", self.t.iqn))
                    out.append(("TargetAddress", f"{local[0]}:{local[1]},1"))
            else:
                out.append((k, "NotUnderstood"))
        r = Pdu.make(OP_TEXT_RSP, 0x80, itt=p.itt, data=encode_text(out))
        r.set_u32(20, RSVD_TAG)
        self.send(self.stamp(r))

    def scsi_cmd(self, p):
        cdb = bytes(p.bhs[32:48])
        lun_field = p.lun
        lun = (lun_field >> 48) & 0x3FFF
        edtl = p.u32(20)
        w = bool(p.flags & 0x20)
        if w:
            st = {"p": p, "cdb": cdb, "lun": lun, "edtl": edtl,
                  "buf": bytearray(edtl), "got": 0, "burst_end": 0,
                  "r2tsn": 0, "ttt": None}
            imm = p.data[:edtl]
            st["buf"][:len(imm)] = imm
            st["got"] = len(imm)
            if self.params.get("InitialR2T") == "No":
                st["burst_end"] = min(edtl, int(self.params.get(
                    "FirstBurstLength", 65536)))
            else:
                st["burst_end"] = st["got"]
            self.writes[p.itt] = st
            self.advance_write(p.itt)
            return
        self.complete(p, cdb, lun, None)

    def advance_write(self, itt):
        st = self.writes[itt]
        if st["got"] >= st["edtl"]:
            del self.writes[itt]
            self.complete(st["p"], st["cdb"], st["lun"], bytes(st["buf"]))
            return
        if st["got"] < st["burst_end"]:
            return                   # unsolicited data still to come
        mbl = int(self.params.get("MaxBurstLength", 262144))
        n = min(st["edtl"] - st["got"], mbl)
        st["ttt"] = self.t.next_ttt()
        st["burst_end"] = st["got"] + n
        r = Pdu.make(OP_R2T, 0x80, lun=st["p"].lun, itt=itt)
        r.set_u32(20, st["ttt"])
        self.stamp(r, advance=False)
        r.set_u32(36, st["r2tsn"])
        r.set_u32(40, st["got"])
        r.set_u32(44, n)
        st["r2tsn"] += 1
        self.send(r)

    def data_out(self, p):
        st = self.writes.get(p.itt)
        if st is None:
            self.log(f"Data-Out for unknown itt 0x{p.itt:08x}: ignored")
            return
        off = p.u32(40)
        if off + len(p.data) > st["edtl"]:
            return self.reject(p, 0x09)
        st["buf"][off:off + len(p.data)] = p.data
        st["got"] = max(st["got"], off + len(p.data))
        if p.final and st["got"] >= st["burst_end"]:
            self.advance_write(p.itt)

    def drop_before(self, p, cdb):
        """drop-* modes: close instead of executing the next WRITE."""
        t = self.t
        if not t.mode.startswith("drop-") or cdb[0] not in WRITE_OPS:
            return
        with t.lock:
            if t.mode == "drop-forget-keys":
                t.pr_regs.clear()
                t.pr_holder = None
            else:
                t.pr_in_fail = True
            t.dropped = True
            t.gen_at_drop = t.pr_gen
        t.fired(f"WRITE itt 0x{p.itt:08x} not executed; connection closed")
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Close(t.mode)

    def complete(self, p, cdb, lun, data_out):
        if self.t.armed():
            self.drop_before(p, cdb)
        status, data, sense = self.t.execute(cdb, lun, data_out, self.nexus)
        with self.t.lock:
            self.t.total_commands += 1
            if self.t.dropped and cdb[0] in WRITE_OPS:
                self.t.writes_after_drop += 1
        edtl = p.u32(20)
        if self.t.armed() and self.inject(p, status, data, sense, edtl):
            return
        self.respond(p, status, data, sense, edtl)
        with self.t.lock:
            self.t.good += 1

    def respond(self, p, status, data, sense, edtl):
        want_read = bool(p.flags & 0x40)
        if not want_read:
            data = b""
        resid_flags, resid = 0, 0
        if want_read or data:
            if len(data) < edtl:
                resid_flags, resid = 0x02, edtl - len(data)
            elif len(data) > edtl:
                resid_flags, resid = 0x04, len(data) - edtl
                data = data[:edtl]
        if data and status == ST_GOOD:
            self.send_data_in(p, data, status, resid_flags, resid)
            return
        if data:
            self.send_data_in(p, data, None, 0, 0)
        r = Pdu.make(OP_SCSI_RSP, 0x80 | resid_flags, itt=p.itt)
        r.bhs[2] = 0
        r.bhs[3] = status
        r.set_u32(44, resid)
        if sense:
            r.data = struct.pack(">H", len(sense)) + sense
        self.send(self.stamp(r))

    def send_data_in(self, p, data, status, resid_flags, resid, start_sn=0):
        """Data-In PDUs for data; the last carries status if status is not
        None.  Returns the next DataSN."""
        off = 0
        sn = start_sn
        step = max(512, self.ini_mrdsl)
        while off < len(data):
            chunk = data[off:off + step]
            last = off + len(chunk) >= len(data)
            flags = 0
            if last:
                flags |= 0x80
                if status is not None:
                    flags |= 0x01 | resid_flags
            r = Pdu.make(OP_DATA_IN, flags, lun=p.lun, itt=p.itt, data=chunk)
            r.set_u32(20, RSVD_TAG)
            if last and status is not None:
                r.bhs[3] = status
                self.stamp(r)
                r.set_u32(44, resid)
            else:
                self.stamp(r, advance=False)
                r.set_u32(24, 0)
            r.set_u32(36, sn)
            r.set_u32(40, off)
            self.send(r)
            sn += 1
            off += len(chunk)
        return sn

    # -- injections --

    def inject(self, p, status, data, sense, edtl):
        """Malformed reply to command p, if this command suits the mode.
        Returns True when the normal reply must not be sent."""
        mode = self.t.mode
        cdb_hex = bytes(p.bhs[32:36]).hex()
        if mode == "mute-cmd":      # the connection stays up: pings answered
            self.t.fired(f"no reply to itt 0x{p.itt:08x} (cdb {cdb_hex}), ever")
            return True
        if mode == "bad-opcode":
            r = Pdu.make(0x3E, 0x80, lun=p.lun, itt=p.itt)
            self.stamp(r)
            self.t.fired(f"opcode 0x3e PDU instead of the reply to itt "
                         f"0x{p.itt:08x} (cdb {cdb_hex})")
            self.send(r)
            return True
        if mode == "huge-dsl":
            r = Pdu.make(OP_SCSI_RSP, 0x80, itt=p.itt)
            r.bhs[3] = status
            self.stamp(r)
            self.t.fired(f"SCSI Response header with DataSegmentLength "
                         f"0xffffff for itt 0x{p.itt:08x}, no data follows")
            self.send(r, dsl=0xFFFFFF)
            return True
        if mode == "bad-itt":
            bogus = (p.itt ^ 0x5A5A0000) or 0x5A5A0001
            r = Pdu.make(OP_SCSI_RSP, 0x80, itt=bogus)
            self.stamp(r)
            self.t.fired(f"SCSI Response for never-issued itt 0x{bogus:08x} "
                         f"(real itt 0x{p.itt:08x}, real reply follows)")
            self.send(r)
            return False
        if mode == "statsn-jump":
            old = self.statsn
            self.statsn = (self.statsn + 1000) & 0xFFFFFFFF
            self.t.fired(f"StatSN jumps from {old} to {self.statsn} on the "
                         f"reply to itt 0x{p.itt:08x}")
            return False
        if mode == "datain-overflow":
            if not (p.flags & 0x40) or not data or status != ST_GOOD:
                return False         # wait for a command with Data-In
            data = data[:edtl]
            sn = self.send_data_in(p, data, None, 0, 0)
            extra = bytes(self.t.rng.randrange(256) for _ in range(512))
            r = Pdu.make(OP_DATA_IN, 0x81, lun=p.lun, itt=p.itt, data=extra)
            r.set_u32(20, RSVD_TAG)
            self.stamp(r)
            r.set_u32(36, sn)
            r.set_u32(40, edtl)
            self.t.fired(f"Data-In of 512 bytes at offset {edtl} past "
                         f"ExpectedDataTransferLength {edtl} for itt "
                         f"0x{p.itt:08x}")
            self.send(r)
            return True
        if mode == "short-read":
            if p.bhs[32] not in (0x28, 0x88) or not data or status != ST_GOOD:
                return False         # wait for a READ with data
            half = data[:edtl][:max(len(data[:edtl]) // 2, 1)]
            self.t.fired(f"READ itt 0x{p.itt:08x}: {len(half)} of {edtl} bytes, "
                         f"status GOOD without underflow")
            self.send_data_in(p, half, ST_GOOD, 0, 0)
            return True
        if mode == "header-digest":
            if not self.hd:
                self.log("header-digest mode: HeaderDigest not negotiated on "
                         "this connection; nothing injected")
                return False
            r = Pdu.make(OP_SCSI_RSP, 0x80, itt=p.itt)
            r.bhs[3] = status
            if sense:
                r.data = struct.pack(">H", len(sense)) + sense
            self.stamp(r)
            self.t.fired(f"SCSI Response with a wrong header digest for itt "
                         f"0x{p.itt:08x}")
            self.send(r, corrupt_hd=True)
            return True
        if mode == "truncated":
            r = Pdu.make(OP_SCSI_RSP, 0x80, itt=p.itt)
            r.bhs[3] = status
            self.stamp(r)
            raw = r.encode(self.hd, self.dd)[:24]
            self.t.fired(f"24 bytes of the SCSI Response BHS for itt "
                         f"0x{p.itt:08x}, then close")
            self.send_raw(raw, "half a BHS")
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raise _Close("truncated mode")
        if mode == "garbage":
            raw = bytes(self.t.rng.randrange(256) for _ in range(512))
            self.t.fired(f"512 random bytes instead of the reply to itt "
                         f"0x{p.itt:08x}")
            self.send_raw(raw, "garbage")
            return True
        if mode == "reject":
            self.t.fired(f"Reject (reason 0x09) of itt 0x{p.itt:08x}")
            self.reject(p, 0x09)
            return True
        if mode == "silent":
            self.silent = True
            self.t.fired(f"connection goes silent at itt 0x{p.itt:08x}")
            return True
        return False


# --- command line and self-test -----------------------------------------

def _run(argv, timeout=20):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out


def selftest():
    import shutil
    failures = 0

    def report(ok, name, detail=""):
        nonlocal failures
        print(f"{'PASS' if ok else 'FAIL'} {name}" +
              (f": {detail}" if detail else ""), flush=True)
        if not ok:
            failures += 1

    iqn = DEFAULT_IQN

    def good_session(t, n=3, **login_kw):
        ini = MiniInitiator(t.portal, timeout=3)
        ini.login(iqn, **login_kw)
        for _ in range(n):
            r = ini.tur(1)
            if r.status != ST_GOOD:
                raise IscsiError(f"TUR: {r}")
        return ini

    # 1. MiniInitiator against mode none: full coverage of the command set.
    with FakeTarget("127.0.0.1:0", quiet=True) as t:
        try:
            ini = MiniInitiator(t.portal, timeout=5)
            ini.login(discovery=True)
            st = ini.sendtargets()
            ini.logout()
            ok = ("TargetName", iqn) in st
            report(ok, "none: SendTargets", str(st))
            ini = MiniInitiator(t.portal, timeout=5)
            ini.login(iqn, header_digest="CRC32C,None",
                      data_digest="CRC32C,None")
            report(ini.hd and ini.dd, "none: CRC32C digests negotiated",
                   str(ini.params))
            std = ini.inquiry(1)
            report(std.status == 0 and std.data[8:15] == b"TERNLAB",
                   "none: INQUIRY", repr(std))
            ok = all(ini.inquiry(1, page=pg).status == 0
                     for pg in (0x00, 0x80, 0x83, 0xB0))
            report(ok and ini.inquiry(1, page=0x99).sense_key == 5,
                   "none: INQUIRY VPD 00/80/83/b0 (+ bad page refused)")
            cap = ini.read_capacity16(1)
            report(cap == ((16 << 20) // 512 - 1, 512),
                   "none: READ CAPACITY(16)", str(cap))
            blob = os.urandom(300 * 1024)     # > FirstBurstLength: R2T path
            w = ini.write16(1, 100, blob)
            r = ini.read16(1, 100, len(blob) // 512)
            report(w.status == 0 and r.data == blob,
                   "none: WRITE(16) immediate+R2T, READ(16) multi-PDU",
                   f"{w} {r}")
            cdb = bytes([0x2A, 0, 0, 0, 0, 7, 0, 0, 2, 0])
            w10 = ini.scsi(cdb, 1, data_out=b"\xab" * 1024)
            cdb = bytes([0x28, 0, 0, 0, 0, 7, 0, 0, 2, 0])
            r10 = ini.scsi(cdb, 1, read_len=1024)
            report(w10.status == 0 and r10.data == b"\xab" * 1024,
                   "none: WRITE(10)/READ(10)")
            oob = ini.read16(1, (16 << 20) // 512, 1)
            report(oob.asc_ascq == (0x21, 0), "none: READ past the end -> 21/00",
                   repr(oob))
            rl = ini.scsi(bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), 0,
                          read_len=256)
            report(rl.status == 0 and rl.data[8:10] == b"\x00\x01",
                   "none: REPORT LUNS", rl.data.hex())
            report(ini.scsi(bytes(10)[:0] + bytes([0x35] + [0] * 9), 1).status
                   == 0, "none: SYNCHRONIZE CACHE")
            reg = ini.pr_out(1, 6, 0, 0xABC)
            rsv = ini.pr_out(1, 1, 0xABC, 0, 5)
            keys = ini.pr_read_keys(1)
            resv = ini.pr_read_reservation(1)
            report(reg.status == 0 and rsv.status == 0 and
                   keys[1] == [0xABC] and resv[1:] == (0xABC, 5),
                   "none: PR register/reserve/read keys/read reservation",
                   f"{keys} {resv}")
            report(ini.nop(b"ping") == b"ping", "none: NOP-Out echo")
            report(ini.logout(), "none: Logout")
        except Exception as e:
            report(False, "none: MiniInitiator", repr(e))

        # libiscsi against mode none
        if shutil.which("iscsi-inq") is None:
            report(False, "libiscsi-bin", "not installed: apt-get install "
                   "libiscsi-bin")
        else:
            url = f"iscsi://127.0.0.1:{t.port}/{iqn}/1"
            rc, out = _run(["iscsi-ls", "-s", f"iscsi://127.0.0.1:{t.port}"])
            report(rc == 0 and iqn in out and "Lun:1" in out,
                   "none: iscsi-ls -s", out.strip().replace("\n", " | "))
            rc, out = _run(["iscsi-inq", url])
            report(rc == 0 and "TERNLAB" in out, "none: iscsi-inq",
                   f"rc={rc}")
            for pg in ("0x80", "0x83", "0xb0"):
                rc, out = _run(["iscsi-inq", "-e", "1", "-c", pg, url])
                report(rc == 0, f"none: iscsi-inq -e 1 -c {pg}",
                       f"rc={rc} {out.strip()[:120]}")
            rc, out = _run(["iscsi-readcapacity16", url])
            report(rc == 0 and "Total size:16777216" in out,
                   "none: iscsi-readcapacity16", f"rc={rc}")
            rc, out = _run(["iscsi-inq", f"{url}?header_digest=crc32c"])
            report(rc == 0, "none: iscsi-inq with header_digest=crc32c",
                   f"rc={rc}")

    # 2. Every hostile mode, with MiniInitiator: 3 good commands, then the
    #    4th must fail in the way the mode promises.
    expect = {
        "bad-opcode": "unexpected", "huge-dsl": "limit", "bad-itt": "unexpected",
        "datain-overflow": "past the expected", "header-digest": "digest",
        "truncated": "closed", "garbage": "", "reject": "rejected",
        "silent": "timed out",
    }
    for mode, needle in expect.items():
        with FakeTarget("127.0.0.1:0", mode=mode, quiet=True) as t:
            kw = {"header_digest": "CRC32C,None"} if mode == "header-digest" \
                else {}
            try:
                ini = good_session(t, 3, **kw)
            except Exception as e:
                report(False, f"{mode}: 3 good commands first", repr(e))
                continue
            ini.sock.settimeout(2)
            try:
                if mode == "datain-overflow":
                    r = ini.inquiry(1)
                else:
                    r = ini.tur(1)
                err = f"no error: {r!r}"
            except Exception as e:
                err = f"{type(e).__name__}: {e}"
            ini.close()
            ok = bool(t.injected) and needle.lower() in err.lower() and \
                not err.startswith("no error")
            report(ok, f"{mode}: 4th command fails", err[:140])
    with FakeTarget("127.0.0.1:0", mode="statsn-jump", quiet=True) as t:
        ini = good_session(t, 3)
        before = ini.expstatsn
        r = ini.tur(1)
        report(bool(t.injected) and ini.expstatsn - before == 1001,
               "statsn-jump: StatSN advanced by 1001", f"{before}->{ini.expstatsn}")
        ini.close()
    with FakeTarget("127.0.0.1:0", mode="login-garbage", after=0,
                    quiet=True) as t:
        ini = MiniInitiator(t.portal, timeout=3)
        ini.connect()
        p = Pdu.make(OP_LOGIN_REQ, 0x81, immediate=True, itt=1,
                     data=encode_text([("InitiatorName", "iqn.x:y"),
                                       ("SessionType", "Normal"),
                                       ("TargetName", iqn),
                                       ("AuthMethod", "None")]))
        ini.sock.sendall(p.encode())
        r = recv_pdu(ini.sock)
        try:
            decode_text(r.data, strict=True)
            err = "parsed"
        except IscsiError as e:
            err = str(e)
        ini.close()
        report(bool(t.injected) and "NUL" in err,
               "login-garbage: first login response text malformed", err)

    # 3. libiscsi against hostile modes.  libiscsi reconnects and retries
    #    after a protocol error, so a one-shot injection is survived (that
    #    is checked too); with repeat and after=0 every command is
    #    malformed and iscsi-inq must never succeed (it either exits
    #    nonzero or keeps reconnecting until the timeout).
    if shutil.which("iscsi-inq"):
        def inq(t, mode, timeout):
            url = f"iscsi://127.0.0.1:{t.port}/{iqn}/1"
            if mode == "header-digest":
                url += "?header_digest=crc32c"
            rc, out = _run(["iscsi-inq", url], timeout=timeout)
            last = out.strip().splitlines()[-1] if out.strip() else ""
            return rc, f"rc={rc} {last[:100]}"
        for mode in ("bad-opcode", "huge-dsl", "truncated", "garbage",
                     "reject", "header-digest", "login-garbage", "silent"):
            with FakeTarget("127.0.0.1:0", mode=mode, after=0, repeat=True,
                            quiet=True) as t:
                rc, detail = inq(t, mode, 7)
                report(bool(t.injected) and rc != 0,
                       f"{mode}: libiscsi iscsi-inq never succeeds "
                       f"(every command malformed)", detail)
        for mode in ("bad-opcode", "truncated"):
            with FakeTarget("127.0.0.1:0", mode=mode, after=0,
                            quiet=True) as t:
                rc, detail = inq(t, mode, 15)
                report(bool(t.injected) and rc == 0,
                       f"{mode}: libiscsi reconnects and succeeds after a "
                       f"one-shot injection", detail)
        for mode in ("bad-itt", "statsn-jump", "datain-overflow"):
            with FakeTarget("127.0.0.1:0", mode=mode, after=0, repeat=True,
                            quiet=True) as t:
                rc, detail = inq(t, mode, 7)
                report(bool(t.injected), f"{mode}: injected; libiscsi "
                       f"{'tolerates it' if rc == 0 else 'fails'}", detail)
    print(f"{'FAIL' if failures else 'PASS'} fake_iscsi_target selftest "
          f"({failures} failures)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:3260")
    ap.add_argument("--mode", default="none", choices=MODES)
    ap.add_argument("--iqn", default=DEFAULT_IQN)
    ap.add_argument("--after", type=int, default=3)
    ap.add_argument("--repeat", action="store_true")
    ap.add_argument("--lun", type=int, default=1)
    ap.add_argument("--size-mb", type=int, default=16)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--netns", default=None)
    ap.add_argument("--log", default=None)
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    t = FakeTarget(a.listen, mode=a.mode, after=a.after, iqn=a.iqn,
                   netns=a.netns, lun=a.lun, size=a.size_mb << 20,
                   block=a.block, log=a.log, repeat=a.repeat)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: done.set())
    t.start()
    print(f"listening on {t.portal}", flush=True)
    while not done.wait(1):
        pass
    t.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
