#!/usr/bin/env python3
"""iscsi_pdu: iSCSI (RFC 7143) PDU plumbing for the lab, and a minimal
initiator.  Python 3 standard library only.

Shared by fake_iscsi_target.py (the hostile target) and tgt.py (which uses
MiniInitiator to check tgt's persistent reservations).  Nothing here is
part of Tern; it is a test peer.

Pieces:
  crc32c(data)                  Castagnoli CRC, as iSCSI digests use it
                                (sent little-endian on the wire).
  Pdu                           one PDU: 48-byte BHS, AHS, data segment.
  recv_pdu(sock, hd, dd)        read one PDU (digests checked if on).
  encode_text / decode_text     key=value\\0 ... text segments.
  netns_call(ns, fn, ...)       run fn in a thread that has joined network
                                namespace ns (setns): sockets made there
                                live in ns, and can be used from anywhere.
  MiniInitiator                 login (None or CHAP, optional mutual CHAP,
                                optional CRC32C digests), SendTargets,
                                SCSI commands with immediate data, R2T and
                                Data-In, NOP-In answers, logout.

Command line (prints JSON; runs in the current network namespace):
  python3 tests/lab/iscsi_pdu.py --portal 127.0.0.1:3260 --iqn IQN \\
      [--lun 1] [--chap USER:PASS] prin-keys|prin-resv|inquiry|readcap
"""

import argparse
import ctypes
import hashlib
import json
import os
import socket
import struct
import sys
import threading

# --- opcodes --------------------------------------------------------------

OP_NOP_OUT = 0x00
OP_SCSI_CMD = 0x01
OP_TMF_REQ = 0x02
OP_LOGIN_REQ = 0x03
OP_TEXT_REQ = 0x04
OP_DATA_OUT = 0x05
OP_LOGOUT_REQ = 0x06
OP_SNACK = 0x10

OP_NOP_IN = 0x20
OP_SCSI_RSP = 0x21
OP_TMF_RSP = 0x22
OP_LOGIN_RSP = 0x23
OP_TEXT_RSP = 0x24
OP_DATA_IN = 0x25
OP_LOGOUT_RSP = 0x26
OP_R2T = 0x31
OP_ASYNC = 0x32
OP_REJECT = 0x3F

OP_NAMES = {
    OP_NOP_OUT: "NOP-Out", OP_SCSI_CMD: "SCSI-Cmd", OP_TMF_REQ: "TMF-Req",
    OP_LOGIN_REQ: "Login-Req", OP_TEXT_REQ: "Text-Req",
    OP_DATA_OUT: "Data-Out", OP_LOGOUT_REQ: "Logout-Req",
    OP_SNACK: "SNACK", OP_NOP_IN: "NOP-In", OP_SCSI_RSP: "SCSI-Rsp",
    OP_TMF_RSP: "TMF-Rsp", OP_LOGIN_RSP: "Login-Rsp",
    OP_TEXT_RSP: "Text-Rsp", OP_DATA_IN: "Data-In",
    OP_LOGOUT_RSP: "Logout-Rsp", OP_R2T: "R2T", OP_ASYNC: "Async",
    OP_REJECT: "Reject",
}

RSVD_TAG = 0xFFFFFFFF

# SCSI status
ST_GOOD = 0x00
ST_CHECK_CONDITION = 0x02
ST_BUSY = 0x08
ST_RESERVATION_CONFLICT = 0x18

# Persistent reservations (SPC-4)
PR_IN_READ_KEYS = 0
PR_IN_READ_RESERVATION = 1
PR_IN_REPORT_CAPABILITIES = 2
PR_OUT_REGISTER = 0
PR_OUT_RESERVE = 1
PR_OUT_RELEASE = 2
PR_OUT_CLEAR = 3
PR_OUT_PREEMPT = 4
PR_OUT_PREEMPT_AND_ABORT = 5
PR_OUT_REGISTER_AND_IGNORE = 6
PR_TYPE_WE = 1          # Write Exclusive
PR_TYPE_EA = 3          # Exclusive Access
PR_TYPE_WE_RO = 5       # Write Exclusive - Registrants Only
PR_TYPE_EA_RO = 6       # Exclusive Access - Registrants Only
PR_TYPE_WE_AR = 7       # Write Exclusive - All Registrants
PR_TYPE_EA_AR = 8       # Exclusive Access - All Registrants


class IscsiError(Exception):
    """Protocol failure seen by MiniInitiator (or the fake target)."""


class DigestError(IscsiError):
    pass


# --- CRC32C ---------------------------------------------------------------

def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C (Castagnoli) as used for iSCSI header and data digests.
    crc32c(b"123456789") == 0xE3069283.  On the wire: struct '<I'."""
    c = crc ^ 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def digest_bytes(data):
    return struct.pack("<I", crc32c(data))


def pad4(n):
    return (4 - n % 4) % 4


# --- PDUs -----------------------------------------------------------------

class Pdu:
    """One iSCSI PDU.  bhs is a 48-byte bytearray; helpers read and write
    the common fields.  Opcode-specific fields: use u32(off)/set_u32."""

    def __init__(self, bhs=None, ahs=b"", data=b""):
        self.bhs = bytearray(bhs if bhs is not None else 48)
        self.ahs = bytes(ahs)
        self.data = bytes(data)

    # common fields
    @property
    def opcode(self):
        return self.bhs[0] & 0x3F

    @property
    def immediate(self):
        return bool(self.bhs[0] & 0x40)

    @property
    def flags(self):
        return self.bhs[1]

    @property
    def final(self):
        return bool(self.bhs[1] & 0x80)

    @property
    def dsl(self):
        return int.from_bytes(self.bhs[5:8], "big")

    @property
    def lun(self):
        return struct.unpack(">Q", self.bhs[8:16])[0]

    @property
    def itt(self):
        return self.u32(16)

    def u32(self, off):
        return struct.unpack(">I", self.bhs[off:off + 4])[0]

    def set_u32(self, off, v):
        struct.pack_into(">I", self.bhs, off, v & 0xFFFFFFFF)

    def u16(self, off):
        return struct.unpack(">H", self.bhs[off:off + 2])[0]

    def set_u16(self, off, v):
        struct.pack_into(">H", self.bhs, off, v & 0xFFFF)

    @staticmethod
    def make(opcode, flags=0, immediate=False, lun=0, itt=0, data=b""):
        p = Pdu()
        p.bhs[0] = (opcode & 0x3F) | (0x40 if immediate else 0)
        p.bhs[1] = flags & 0xFF
        struct.pack_into(">Q", p.bhs, 8, lun)
        p.set_u32(16, itt)
        p.data = bytes(data)
        return p

    def encode(self, header_digest=False, data_digest=False, dsl=None):
        """Wire bytes.  dsl overrides DataSegmentLength (for malformed
        PDUs); normally it is len(data)."""
        bhs = bytearray(self.bhs)
        bhs[4] = len(self.ahs) // 4
        n = len(self.data) if dsl is None else dsl
        bhs[5:8] = n.to_bytes(3, "big")
        hdr = bytes(bhs) + self.ahs
        out = [hdr]
        if header_digest:
            out.append(digest_bytes(hdr))
        if self.data:
            seg = self.data + b"\0" * pad4(len(self.data))
            out.append(seg)
            if data_digest:
                out.append(digest_bytes(seg))
        return b"".join(out)

    def describe(self):
        op = self.opcode
        name = OP_NAMES.get(op, f"op-0x{op:02x}")
        s = f"{name} flags=0x{self.flags:02x} itt=0x{self.itt:08x} dsl={self.dsl}"
        if op == OP_SCSI_CMD:
            s += f" edtl={self.u32(20)} cmdsn={self.u32(24)} cdb={bytes(self.bhs[32:48]).hex()}"
        elif op in (OP_SCSI_RSP, OP_DATA_IN, OP_NOP_IN, OP_TEXT_RSP,
                    OP_LOGIN_RSP, OP_LOGOUT_RSP, OP_R2T, OP_REJECT, OP_TMF_RSP):
            s += f" statsn={self.u32(24)} expcmdsn={self.u32(28)} maxcmdsn={self.u32(32)}"
            if op == OP_SCSI_RSP:
                s += f" resp={self.bhs[2]} status=0x{self.bhs[3]:02x}"
            if op == OP_DATA_IN:
                s += f" datasn={self.u32(36)} off={self.u32(40)}"
                if self.flags & 1:
                    s += f" status=0x{self.bhs[3]:02x}"
            if op == OP_R2T:
                s += f" ttt=0x{self.u32(20):08x} off={self.u32(40)} len={self.u32(44)}"
            if op == OP_LOGIN_RSP:
                s += f" class={self.bhs[36]} detail={self.bhs[37]}"
            if op == OP_REJECT:
                s += f" reason=0x{self.bhs[2]:02x}"
        elif op in (OP_DATA_OUT,):
            s += f" ttt=0x{self.u32(20):08x} datasn={self.u32(36)} off={self.u32(40)}"
        elif op in (OP_LOGIN_REQ, OP_TEXT_REQ, OP_NOP_OUT, OP_LOGOUT_REQ):
            s += f" cmdsn={self.u32(24)} expstatsn={self.u32(28)}"
        return s


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_pdu(sock, header_digest=False, data_digest=False,
             max_data=16 << 20):
    """Read one PDU.  Raises EOFError on a closed connection, DigestError
    on a bad digest, IscsiError on an oversized data segment."""
    bhs = recv_exact(sock, 48)
    ahs_len = bhs[4] * 4
    ahs = recv_exact(sock, ahs_len) if ahs_len else b""
    if header_digest:
        d = recv_exact(sock, 4)
        if d != digest_bytes(bhs + ahs):
            raise DigestError(f"bad header digest {d.hex()} on "
                              f"{Pdu(bhs).describe()}")
    dsl = int.from_bytes(bhs[5:8], "big")
    if dsl > max_data:
        raise IscsiError(f"data segment {dsl} bytes > limit {max_data}")
    data = b""
    if dsl:
        seg = recv_exact(sock, dsl + pad4(dsl))
        if data_digest:
            d = recv_exact(sock, 4)
            if d != digest_bytes(seg):
                raise DigestError(f"bad data digest on {Pdu(bhs).describe()}")
        data = seg[:dsl]
    return Pdu(bhs, ahs, data)


def encode_text(pairs):
    """[(k, v), ...] or dict -> b'k=v\\0k=v\\0'."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in items)


def decode_text(data, strict=False):
    """b'k=v\\0...' -> list of (k, v).  strict: raise IscsiError on a pair
    without '=' or a segment not NUL-terminated."""
    if strict and data and not data.endswith(b"\0"):
        raise IscsiError(f"text segment not NUL-terminated: {data[-32:]!r}")
    out = []
    for item in data.split(b"\0"):
        if not item:
            continue
        s = item.decode("utf-8", "replace")
        if "=" not in s:
            if strict:
                raise IscsiError(f"text key without '=': {s!r}")
            continue
        k, v = s.split("=", 1)
        out.append((k, v))
    return out


def fixed_sense(key, asc, ascq=0):
    s = bytearray(18)
    s[0] = 0x70
    s[2] = key & 0x0F
    s[7] = 10
    s[12] = asc
    s[13] = ascq
    return bytes(s)


def parse_sense(sense):
    """(key, asc, ascq) from fixed or descriptor sense, or None."""
    if len(sense) < 2:
        return None
    rc = sense[0] & 0x7F
    if rc in (0x70, 0x71) and len(sense) >= 14:
        return sense[2] & 0x0F, sense[12], sense[13]
    if rc in (0x72, 0x73) and len(sense) >= 4:
        return sense[1] & 0x0F, sense[2], sense[3]
    return None


# --- network namespaces ---------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = None


def netns_call(ns, fn, *args, **kw):
    """Call fn(*args, **kw) in a short-lived thread that first joins network
    namespace ns (/var/run/netns/NS; needs root).  A socket created there
    stays in ns for its whole life, whichever thread uses it later.
    ns None: call fn directly."""
    if ns is None:
        return fn(*args, **kw)
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    box = {}

    def runner():
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["v"] = fn(*args, **kw)
        except BaseException as e:  # handed to the caller
            box["e"] = e

    t = threading.Thread(target=runner, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


def parse_portal(portal, default_port=3260):
    host, _, port = portal.rpartition(":")
    if not host:
        return portal, default_port
    return host.strip("[]"), int(port)


# --- a minimal initiator --------------------------------------------------

class ScsiResult:
    def __init__(self, status, data=b"", sense=b"", response=0, resid=0):
        self.status = status
        self.data = data
        self.sense = sense
        self.response = response
        self.resid = resid

    @property
    def sense_key(self):
        s = parse_sense(self.sense)
        return s[0] if s else None

    @property
    def asc_ascq(self):
        s = parse_sense(self.sense)
        return (s[1], s[2]) if s else None

    def __repr__(self):
        s = f"ScsiResult(status=0x{self.status:02x}"
        p = parse_sense(self.sense)
        if p:
            s += f" sense={p[0]:x}/{p[1]:02x}/{p[2]:02x}"
        return s + f" data={len(self.data)}B)"


class MiniInitiator:
    """Just enough of an iSCSI initiator to drive a target from tests: one
    connection, one command at a time, ErrorRecoveryLevel 0.

        ini = MiniInitiator("127.0.0.1:3260", netns="terntgt-123")
        ini.login("iqn.2024-01.lab:t1", chap=("user", "secret12345678"))
        r = ini.scsi(bytes([0x12, 0, 0, 0, 96, 0]), lun=1, read_len=96)
        ini.logout()
    """

    def __init__(self, portal, netns=None, timeout=10,
                 initiator_name="iqn.2024-01.org.tern.lab:mini", isid=None):
        self.host, self.port = parse_portal(portal)
        self.netns = netns
        self.timeout = timeout
        self.initiator_name = initiator_name
        self.isid = isid if isid is not None else \
            bytes([0x80, 0x00, 0x00]) + os.urandom(3)
        self.sock = None
        self.itt = 0x1000
        self.cmdsn = 1
        self.expstatsn = 0
        self.tsih = 0
        self.hd = False
        self.dd = False
        self.params = {}          # negotiated values, as the target replied
        self.target_mrdsl = 8192  # the target's MaxRecvDataSegmentLength
        self.my_mrdsl = 262144
        self.login_status = None
        self.events = []          # NOP-In / Async seen while waiting

    # -- transport --

    def connect(self):
        def mk():
            return socket.create_connection((self.host, self.port),
                                            timeout=self.timeout)
        self.sock = netns_call(self.netns, mk)
        self.sock.settimeout(self.timeout)
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _send(self, pdu):
        self.sock.sendall(pdu.encode(self.hd, self.dd))

    def _recv(self):
        while True:
            p = recv_pdu(self.sock, self.hd, self.dd, max_data=self.my_mrdsl)
            op = p.opcode
            if op in (OP_SCSI_RSP, OP_TEXT_RSP, OP_LOGIN_RSP, OP_LOGOUT_RSP,
                      OP_NOP_IN, OP_REJECT, OP_TMF_RSP) or \
                    (op == OP_DATA_IN and p.flags & 0x01):
                self.expstatsn = (p.u32(24) + 1) & 0xFFFFFFFF
            if op == OP_NOP_IN and p.itt == RSVD_TAG:
                # Target ping: answer if it wants an answer.
                self.events.append(("nop-in", p.u32(20)))
                if p.u32(20) != RSVD_TAG:
                    r = Pdu.make(OP_NOP_OUT, 0x80, immediate=True, lun=p.lun,
                                 itt=RSVD_TAG, data=p.data)
                    r.set_u32(20, p.u32(20))
                    r.set_u32(24, self.cmdsn)
                    r.set_u32(28, self.expstatsn)
                    self._send(r)
                continue
            if op == OP_ASYNC:
                self.events.append(("async", p.bhs[36], p.data))
                continue
            return p

    def _next_itt(self):
        self.itt = (self.itt + 1) & 0xFFFFFFFF
        if self.itt == RSVD_TAG:
            self.itt = 1
        return self.itt

    # -- login --

    def login(self, target=None, discovery=False, chap=None, mutual=None,
              header_digest=False, data_digest=False, extra_keys=None):
        """Log in; returns self.  chap=(user, secret) answers the target's
        CHAP challenge; mutual=(user, secret) also challenges the target
        (the target's OutgoingUser).  header_digest/data_digest: offer
        only CRC32C (True), only None (False), or a literal offer string.
        Raises IscsiError with the login status on failure."""
        if self.sock is None:
            self.connect()
        self.hd = self.dd = False
        itt = self._next_itt()
        keys = [("InitiatorName", self.initiator_name),
                ("SessionType", "Discovery" if discovery else "Normal")]
        if not discovery:
            keys.append(("TargetName", target))
        keys.append(("AuthMethod", "CHAP,None" if chap else "None"))
        # Security stage.
        csg = 0
        rsp = self._login_exchange(itt, csg, 1, True, keys)
        got = dict(decode_text(rsp.data))
        if chap and got.get("AuthMethod") == "CHAP":
            rsp = self._login_exchange(itt, 0, 1, False, [("CHAP_A", "5")])
            got = dict(decode_text(rsp.data))
            ident = int(got["CHAP_I"], 0)
            chal = _chap_bytes(got["CHAP_C"])
            resp = hashlib.md5(bytes([ident]) + chap[1].encode() +
                               chal).hexdigest()
            keys = [("CHAP_N", chap[0]), ("CHAP_R", "0x" + resp)]
            my_id = my_chal = None
            if mutual:
                my_id = os.urandom(1)[0]
                my_chal = os.urandom(16)
                keys += [("CHAP_I", str(my_id)),
                         ("CHAP_C", "0x" + my_chal.hex())]
            rsp = self._login_exchange(itt, 0, 1, True, keys)
            got = dict(decode_text(rsp.data))
            if mutual:
                want = hashlib.md5(bytes([my_id]) + mutual[1].encode() +
                                   my_chal).hexdigest()
                if got.get("CHAP_N") != mutual[0] or \
                        _chap_bytes(got.get("CHAP_R", "0x")).hex() != want:
                    raise IscsiError(f"mutual CHAP: target answered {got}")
        # The security stage may have ended in the same exchange.
        if not (rsp.flags & 0x80 and (rsp.flags & 0x03) == 1):
            rsp = self._login_exchange(itt, 0, 1, True, [])
        # Operational stage.
        def dig(v):
            return v if isinstance(v, str) else ("CRC32C" if v else "None")
        op_keys = [("HeaderDigest", dig(header_digest)),
                   ("DataDigest", dig(data_digest)),
                   ("MaxRecvDataSegmentLength", str(self.my_mrdsl))]
        if not discovery:
            op_keys += [("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "0"),
                        ("IFMarker", "No"), ("OFMarker", "No"),
                        ("ErrorRecoveryLevel", "0"),
                        ("InitialR2T", "No"), ("ImmediateData", "Yes"),
                        ("MaxBurstLength", "262144"),
                        ("FirstBurstLength", "65536"),
                        ("MaxOutstandingR2T", "1"), ("MaxConnections", "1"),
                        ("DataPDUInOrder", "Yes"),
                        ("DataSequenceInOrder", "Yes")]
        if extra_keys:
            op_keys += list(extra_keys)
        rsp = self._login_exchange(itt, 1, 3, True, op_keys)
        self.params.update(decode_text(rsp.data))
        while not (rsp.flags & 0x80 and (rsp.flags & 0x03) == 3):
            rsp = self._login_exchange(itt, 1, 3, True, [])
            self.params.update(decode_text(rsp.data))
        self.tsih = rsp.u16(14)
        self.target_mrdsl = int(self.params.get("MaxRecvDataSegmentLength",
                                                8192))
        self.hd = self.params.get("HeaderDigest", "None") == "CRC32C"
        self.dd = self.params.get("DataDigest", "None") == "CRC32C"
        return self

    def _login_exchange(self, itt, csg, nsg, transit, keys):
        p = Pdu.make(OP_LOGIN_REQ, immediate=True, itt=itt,
                     flags=(0x80 if transit else 0) | (csg << 2) |
                     (nsg if transit else 0),
                     data=encode_text(keys))
        p.bhs[2] = 0   # version max
        p.bhs[3] = 0   # version min
        p.bhs[8:14] = self.isid
        p.set_u16(14, self.tsih)
        p.set_u16(20, 1)            # CID
        p.set_u32(24, self.cmdsn)
        p.set_u32(28, self.expstatsn)
        self._send(p)
        rsp = self._recv()
        if rsp.opcode != OP_LOGIN_RSP:
            raise IscsiError(f"login: got {rsp.describe()}")
        self.login_status = (rsp.bhs[36], rsp.bhs[37])
        if rsp.bhs[36] != 0:
            raise IscsiError(f"login failed: status class {rsp.bhs[36]} "
                             f"detail {rsp.bhs[37]}")
        self.tsih = rsp.u16(14) or self.tsih
        return rsp

    # -- full feature phase --

    def text(self, keys):
        itt = self._next_itt()
        p = Pdu.make(OP_TEXT_REQ, 0x80, immediate=True, itt=itt,
                     data=encode_text(keys))
        p.set_u32(20, RSVD_TAG)
        p.set_u32(24, self.cmdsn)
        p.set_u32(28, self.expstatsn)
        self._send(p)
        out = b""
        while True:
            r = self._recv()
            if r.opcode != OP_TEXT_RSP:
                raise IscsiError(f"text: got {r.describe()}")
            out += r.data
            if r.final:
                return decode_text(out)
            # Continue: empty text request with the target's TTT.
            p = Pdu.make(OP_TEXT_REQ, 0x80, immediate=True, itt=itt)
            p.set_u32(20, r.u32(20))
            p.set_u32(24, self.cmdsn)
            p.set_u32(28, self.expstatsn)
            self._send(p)

    def sendtargets(self):
        return self.text([("SendTargets", "All")])

    def nop(self, data=b""):
        itt = self._next_itt()
        p = Pdu.make(OP_NOP_OUT, 0x80, immediate=True, itt=itt, data=data)
        p.set_u32(20, RSVD_TAG)
        p.set_u32(24, self.cmdsn)
        p.set_u32(28, self.expstatsn)
        self._send(p)
        r = self._recv()
        if r.opcode != OP_NOP_IN or r.itt != itt:
            raise IscsiError(f"nop: got {r.describe()}")
        return r.data

    def scsi(self, cdb, lun=0, data_out=None, read_len=0):
        """Run one command; returns ScsiResult.  data_out: bytes written
        (immediate data up to FirstBurstLength, the rest on R2T)."""
        itt = self._next_itt()
        cdb = bytes(cdb)
        w = data_out is not None and len(data_out) > 0
        edtl = len(data_out) if w else read_len
        flags = 0x80 | (0x20 if w else 0) | (0x40 if read_len else 0) | 0x01
        p = Pdu.make(OP_SCSI_CMD, flags, lun=lun << 48 if lun < 256 else lun,
                     itt=itt)
        p.set_u32(20, edtl)
        p.set_u32(24, self.cmdsn)
        p.set_u32(28, self.expstatsn)
        p.bhs[32:32 + len(cdb)] = cdb
        sent = 0
        if w and self.params.get("ImmediateData", "Yes") == "Yes":
            fbl = int(self.params.get("FirstBurstLength", 65536))
            sent = min(len(data_out), fbl, self.target_mrdsl)
            p.data = data_out[:sent]
        self.cmdsn = (self.cmdsn + 1) & 0xFFFFFFFF
        self._send(p)
        if w and sent < len(data_out) and \
                self.params.get("InitialR2T", "Yes") == "No":
            fbl = int(self.params.get("FirstBurstLength", 65536))
            end = min(len(data_out), fbl)
            if sent < end:
                self._data_out(itt, lun, RSVD_TAG, data_out, sent, end - sent)
                sent = end
        buf = bytearray()
        while True:
            r = self._recv()
            op = r.opcode
            if op == OP_R2T and r.itt == itt:
                self._data_out(itt, lun, r.u32(20), data_out, r.u32(40),
                               r.u32(44))
            elif op == OP_DATA_IN and r.itt == itt:
                off = r.u32(40)
                if off + len(r.data) > read_len:
                    raise IscsiError(f"Data-In past the expected length: "
                                     f"{r.describe()}")
                if len(buf) < off:
                    buf += b"\0" * (off - len(buf))
                buf[off:off + len(r.data)] = r.data
                if r.flags & 0x01:
                    return ScsiResult(r.bhs[3], bytes(buf), resid=r.u32(44))
            elif op == OP_SCSI_RSP and r.itt == itt:
                sense = b""
                if r.data and len(r.data) >= 2:
                    n = struct.unpack(">H", r.data[:2])[0]
                    sense = r.data[2:2 + n]
                return ScsiResult(r.bhs[3], bytes(buf), sense, r.bhs[2],
                                  r.u32(44))
            elif op == OP_REJECT:
                raise IscsiError(f"rejected: {r.describe()}")
            else:
                raise IscsiError(f"unexpected {r.describe()} for itt 0x{itt:x}")

    def _data_out(self, itt, lun, ttt, data, offset, length):
        datasn = 0
        end = offset + length
        while offset < end:
            n = min(end - offset, self.target_mrdsl)
            p = Pdu.make(OP_DATA_OUT, 0x80 if offset + n >= end else 0,
                         lun=lun << 48 if lun < 256 else lun, itt=itt,
                         data=data[offset:offset + n])
            p.set_u32(20, ttt)
            p.set_u32(28, self.expstatsn)
            p.set_u32(36, datasn)
            p.set_u32(40, offset)
            self._send(p)
            datasn += 1
            offset += n

    def logout(self):
        itt = self._next_itt()
        p = Pdu.make(OP_LOGOUT_REQ, 0x80, immediate=True, itt=itt)
        p.set_u16(20, 1)
        p.set_u32(24, self.cmdsn)
        p.set_u32(28, self.expstatsn)
        try:
            self._send(p)
            r = self._recv()
            ok = r.opcode == OP_LOGOUT_RSP and r.bhs[2] == 0
        except (OSError, EOFError, IscsiError):
            ok = False
        self.close()
        return ok

    # -- SCSI helpers (block size 512 assumed by read/write helpers) --

    def tur(self, lun=0):
        return self.scsi(bytes(6), lun)

    def inquiry(self, lun=0, page=None, alloc=255):
        cdb = bytes([0x12, 1 if page is not None else 0, page or 0,
                     alloc >> 8, alloc & 0xFF, 0])
        return self.scsi(cdb, lun, read_len=alloc)

    def read_capacity16(self, lun=0):
        """(last_lba, block_size) or a ScsiResult on failure."""
        cdb = bytearray(16)
        cdb[0], cdb[1] = 0x9E, 0x10
        struct.pack_into(">I", cdb, 10, 32)
        r = self.scsi(cdb, lun, read_len=32)
        if r.status != ST_GOOD:
            return r
        return struct.unpack(">QI", r.data[:12])

    def read16(self, lun, lba, blocks, block=512):
        cdb = bytearray(16)
        cdb[0] = 0x88
        struct.pack_into(">QI", cdb, 2, lba, blocks)
        return self.scsi(cdb, lun, read_len=blocks * block)

    def write16(self, lun, lba, data, block=512):
        cdb = bytearray(16)
        cdb[0] = 0x8A
        struct.pack_into(">QI", cdb, 2, lba, len(data) // block)
        return self.scsi(cdb, lun, data_out=data)

    def pr_out(self, lun, action, key=0, sa_key=0, pr_type=0, scope=0):
        cdb = bytearray(10)
        cdb[0] = 0x5F
        cdb[1] = action & 0x1F
        cdb[2] = ((scope & 0xF) << 4) | (pr_type & 0xF)
        struct.pack_into(">I", cdb, 5, 24)
        param = struct.pack(">QQ", key, sa_key) + bytes(8)
        return self.scsi(cdb, lun, data_out=param)

    def pr_in(self, lun, action, alloc=1024):
        cdb = bytearray(10)
        cdb[0] = 0x5E
        cdb[1] = action & 0x1F
        struct.pack_into(">H", cdb, 7, alloc)
        return self.scsi(cdb, lun, read_len=alloc)

    def pr_read_keys(self, lun):
        """(generation, [keys]) or a ScsiResult on failure."""
        r = self.pr_in(lun, PR_IN_READ_KEYS)
        if r.status != ST_GOOD:
            return r
        gen, n = struct.unpack(">II", r.data[:8])
        keys = [struct.unpack(">Q", r.data[8 + i:16 + i])[0]
                for i in range(0, min(n, len(r.data) - 8), 8)]
        return gen, keys

    def pr_read_reservation(self, lun):
        """(generation, key, type) with key/type None when there is no
        reservation, or a ScsiResult on failure."""
        r = self.pr_in(lun, PR_IN_READ_RESERVATION)
        if r.status != ST_GOOD:
            return r
        gen, n = struct.unpack(">II", r.data[:8])
        if n < 16:
            return gen, None, None
        key = struct.unpack(">Q", r.data[8:16])[0]
        return gen, key, r.data[21] & 0x0F


def _chap_bytes(s):
    """CHAP_C / CHAP_R value (0x hex or 0b base64) -> bytes."""
    if s[:2] in ("0x", "0X"):
        return bytes.fromhex(s[2:] if len(s) % 2 == 0 else "0" + s[2:])
    if s[:2] in ("0b", "0B"):
        import base64
        return base64.b64decode(s[2:])
    return s.encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--portal", default="127.0.0.1:3260")
    ap.add_argument("--iqn", required=True)
    ap.add_argument("--lun", type=int, default=1)
    ap.add_argument("--chap", default=None, help="USER:PASSWORD")
    ap.add_argument("--initiator-name", default="iqn.2024-01.org.tern.lab:cli")
    ap.add_argument("what", choices=["prin-keys", "prin-resv", "inquiry",
                                     "readcap", "sendtargets"])
    a = ap.parse_args()
    ini = MiniInitiator(a.portal, initiator_name=a.initiator_name)
    chap = tuple(a.chap.split(":", 1)) if a.chap else None
    if a.what == "sendtargets":
        ini.login(discovery=True, chap=chap)
        out = ini.sendtargets()
    else:
        ini.login(a.iqn, chap=chap)
        if a.what == "prin-keys":
            r = ini.pr_read_keys(a.lun)
            out = r if isinstance(r, ScsiResult) else \
                {"generation": r[0], "keys": [f"0x{k:x}" for k in r[1]]}
        elif a.what == "prin-resv":
            r = ini.pr_read_reservation(a.lun)
            out = r if isinstance(r, ScsiResult) else \
                {"generation": r[0],
                 "key": None if r[1] is None else f"0x{r[1]:x}",
                 "type": r[2]}
        elif a.what == "inquiry":
            r = ini.inquiry(a.lun)
            out = {"status": r.status, "vendor": r.data[8:16].decode(),
                   "product": r.data[16:32].decode()}
        else:
            r = ini.read_capacity16(a.lun)
            out = r if isinstance(r, ScsiResult) else \
                {"last_lba": r[0], "block_size": r[1]}
    ini.logout()
    if isinstance(out, ScsiResult):
        print(json.dumps({"error": repr(out)}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
