#!/usr/bin/env python3
"""migstream: an independent encoder of Tern's migration stream, version 2.

Written from the wire format in migrate/stream.h (not from the C code, and
it never calls it), so that a destination host can be fed streams that did
not come from Tern's own encoder: valid ones, to show that the format as
documented is the format as implemented, and hostile ones (wrong order,
bad indexes, flipped bytes) that still carry correct checksums where the
test wants the destination to look past them.  Standard library only.

    w = StreamWriter()                       # the 16-byte stream header
    w.config(mem_size=4 << 20, name="vm1", kernel_path="guests/hello.elf",
             cpuid=parse_identity(host.command("migrate identity")))
    w.round(0, ROUND_FINAL, 1024)
    w.ram([(i, page_bytes_or_None) for i in range(64)])   # 16 times
    w.vcpu(flat32_vcpu(rip=0x100000))
    w.device("uart", 1, uart_blob())
    w.device("testdev", 1, testdev_blob())
    w.end()                                  # totals from what was written
    data = w.data()

Every record is sealed as it is appended: rcrc = CRC32C over header bytes
0..11 and the metadata, continued from the previous record's rcrc (the
first from the header's).  StreamWriter does not enforce the order rules:
that is the destination's job, and the hostile tests need to break them.
`walk()` parses a stream back and checks every CRC (the self-test uses it).

    python3 tests/lab/migstream.py      # self-test, no hosts needed
"""

import random
import re
import struct
import sys
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional

# ---- CRC32C (Castagnoli), reflected polynomial 0x82f63b78 ----

CRC32C_POLY = 0x82F63B78


def _make_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ CRC32C_POLY if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


CRC32C_TABLE = _make_table()


def crc32c(data, crc=0):
    """CRC32C of data, continuing from crc (0 to start).  Init and final
    XOR 0xffffffff, so crc32c(b, crc32c(a)) == crc32c(a + b): the same
    convention as the kernel's crc32c(crc, buf, len)."""
    t = CRC32C_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC32C check value"

# ---- the format's constants (migrate/stream.h) ----

MAGIC = b"TERN-MIG"
VERSION = 2
F_LIVE = 1 << 0
HDR_LEN = 16
REC_HDR_LEN = 16
PAGE_SIZE = 4096

REC_CONFIG, REC_ROUND, REC_RAM, REC_VCPU, REC_DEVICE, REC_END = range(1, 7)
REC_NAMES = {REC_CONFIG: "CONFIG", REC_ROUND: "ROUND", REC_RAM: "RAM",
             REC_VCPU: "VCPU", REC_DEVICE: "DEVICE", REC_END: "END"}
PAGE_DATA, PAGE_ZERO = 0, 1
ROUND_FINAL = 1 << 0

NAME_MAX = 31
PATH_MAX = 255
CMDLINE_MAX = 1023
CPUID_MAX = 128
VCPUS_MAX = 64
PAGES_MAX = 1 << 28
BATCH_MAX = 64
MSRS_MAX = 256
XSAVE_MAX = 16384
BLOB_MAX = 65536
DEVICES_MAX = 32
VCPU_FIXED = 440
META_MAX = 12 + NAME_MAX + BLOB_MAX
DATA_MAX = BATCH_MAX * PAGE_SIZE

VCPU_INT_SHADOW = 1 << 0
VCPU_NMI_BLOCKED = 1 << 1
EVENT_VALID = 1 << 0
EVENT_HAS_ERROR = 1 << 1

# Architectural MSR numbers a Tern source puts in the VCPU list.
MSR_SYSENTER_CS = 0x174
MSR_SYSENTER_ESP = 0x175
MSR_SYSENTER_EIP = 0x176
MSR_PAT = 0x277
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SFMASK = 0xC0000084
MSR_KERNEL_GS_BASE = 0xC0000102
PAT_POWER_ON = 0x0007040600070406

# Segment attributes, SVM packed layout: bits 0-7 type/S/DPL/P, 8-11
# AVL/L/D-B/G.
ATTR_CODE32 = 0xC9B     # G, D/B, P, S, execute/read, accessed
ATTR_DATA32 = 0xC93     # G, D/B, P, S, read/write, accessed
ATTR_TSS32 = 0x08B      # P, busy 32-bit TSS
ATTR_LDT = 0x082        # P, LDT
SEG_NAMES = ("ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR")


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


# ---- record contents ----

class Cpuid(NamedTuple):
    leaf: int
    sub: int
    eax: int
    ebx: int
    ecx: int
    edx: int


_IDENT_RX = re.compile(r"^\s*([0-9a-fA-F]{8})\s+(\d+)\s+([0-9a-fA-F]{8})\s+"
                       r"([0-9a-fA-F]{8})\s+([0-9a-fA-F]{8})\s+([0-9a-fA-F]{8})\s*$")


def parse_identity(text):
    """The leaves of `migrate identity` (leaf in hex, subleaf in decimal,
    then eax ebx ecx edx in hex), in the order printed."""
    out = []
    for line in text.splitlines():
        m = _IDENT_RX.match(line)
        if m:
            g = m.groups()
            out.append(Cpuid(int(g[0], 16), int(g[1], 10), *(int(x, 16) for x in g[2:])))
    return out


@dataclass
class Seg:
    sel: int = 0
    attr: int = 0
    limit: int = 0
    base: int = 0

    def pack(self):
        return u16(self.sel) + u16(self.attr) + u32(self.limit) + u64(self.base)


@dataclass
class Dtr:
    base: int = 0
    limit: int = 0
    reserved: int = 0

    def pack(self):
        return u64(self.base) + u32(self.limit) + u32(self.reserved)


@dataclass
class Vcpu:
    """The VCPU record; field order is the wire order."""
    index: int = 0
    flags: int = 0
    gpr: List[int] = field(default_factory=lambda: [0] * 16)   # RAX RCX RDX RBX RSP RBP RSI RDI R8..R15
    rip: int = 0
    rflags: int = 0x2
    cr0: int = 0
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    cr8: int = 0
    efer: int = 0
    xcr0: int = 1
    dr: List[int] = field(default_factory=lambda: [0] * 4)
    dr6: int = 0xFFFF0FF0
    dr7: int = 0x400
    tsc: int = 0
    seg: List[Seg] = field(default_factory=lambda: [Seg() for _ in range(8)])
    gdtr: Dtr = field(default_factory=Dtr)
    idtr: Dtr = field(default_factory=Dtr)
    cpl: int = 0
    event_flags: int = 0
    event_vector: int = 0
    event_type: int = 0
    event_error: int = 0
    msrs: List[tuple] = field(default_factory=list)     # (msr, value)
    xsave: bytes = b""

    def fixed(self):
        assert len(self.gpr) == 16 and len(self.dr) == 4 and len(self.seg) == 8
        b = u32(self.index) + u32(self.flags)
        b += b"".join(u64(r) for r in self.gpr)
        for r in (self.rip, self.rflags, self.cr0, self.cr2, self.cr3, self.cr4,
                  self.cr8, self.efer, self.xcr0, *self.dr, self.dr6, self.dr7,
                  self.tsc):
            b += u64(r)
        b += b"".join(s.pack() for s in self.seg)
        b += self.gdtr.pack() + self.idtr.pack()
        b += bytes([self.cpl & 0xFF, self.event_flags & 0xFF,
                    self.event_vector & 0xFF, self.event_type & 0xFF])
        b += u32(self.event_error) + u32(len(self.msrs)) + u32(len(self.xsave))
        assert len(b) == VCPU_FIXED, len(b)
        return b

    def pack(self):
        b = self.fixed()
        for msr, value in self.msrs:
            b += u32(msr) + u32(0) + u64(value)
        return b + bytes(self.xsave)


def xsave_image(size=4096, fcw=0x37F, mxcsr=0x1F80, xstate_bv=1, xcomp_bv=0):
    """A standard-format XSAVE image in its reset state: FCW at 0, MXCSR
    at 24, XSTATE_BV at 512, XCOMP_BV at 520, the rest of the header
    (528..575) zero."""
    img = bytearray(size)
    struct.pack_into("<H", img, 0, fcw)
    struct.pack_into("<I", img, 24, mxcsr)
    struct.pack_into("<I", img, 28, 0xFFFF)          # MXCSR_MASK (informative)
    struct.pack_into("<Q", img, 512, xstate_bv)
    struct.pack_into("<Q", img, 520, xcomp_bv)
    return bytes(img)


def flat32_vcpu(rip, esp=0, xcr0=1, xstate_bv=1, tsc=0):
    """vCPU 0 in 32-bit protected mode, paging off, flat 4 GiB segments:
    the Multiboot entry state (kernel/virt/guest_load.c), at rip."""
    v = Vcpu(rip=rip, rflags=0x2, cr0=0x11, xcr0=xcr0, tsc=tsc)
    v.gpr[4] = esp
    v.seg = [Seg(0x10, ATTR_DATA32, 0xFFFFFFFF, 0) for _ in range(8)]
    v.seg[1] = Seg(0x08, ATTR_CODE32, 0xFFFFFFFF, 0)
    v.seg[6] = Seg(0, ATTR_LDT, 0xFFFF, 0)
    v.seg[7] = Seg(0, ATTR_TSS32, 0x67, 0)
    v.gdtr = Dtr(0, 0xFFFF)
    v.idtr = Dtr(0, 0xFFFF)
    v.msrs = [(MSR_SYSENTER_CS, 0), (MSR_SYSENTER_ESP, 0), (MSR_SYSENTER_EIP, 0),
              (MSR_PAT, PAT_POWER_ON), (MSR_STAR, 0), (MSR_LSTAR, 0),
              (MSR_CSTAR, 0), (MSR_SFMASK, 0), (MSR_KERNEL_GS_BASE, 0)]
    v.xsave = xsave_image(xstate_bv=xstate_bv)
    return v


def uart_blob(regs=(0, 0x03, 0, 0, 0x01, 0, 0, 0), line=b"", rx=b""):
    """uart v1 (kernel/devices/devices.c vuart_save): 8 register bytes (ier lcr
    mcr scr dll dlm fcr pad), u16 partial-line length, u16 queued input
    bytes, the line, the input."""
    assert len(regs) == 8
    return bytes(regs) + u16(len(line)) + u16(len(rx)) + bytes(line) + bytes(rx)


def testdev_blob(seed=0):
    """testdev v1: the 4 KiB register file; bytes 0-3 are the ID register
    ("TEST"), which the destination keeps as its own."""
    b = bytearray(4096)
    b[0:4] = u32(0x54455354)
    rng = random.Random(seed)
    for off in range(64, 128):
        b[off] = rng.randrange(256)
    return bytes(b)


# ---- the stream ----

@dataclass
class Rec:
    """Where one record sits in the stream."""
    type: int
    start: int          # offset of its 16-byte header
    meta_len: int
    data_len: int

    @property
    def meta_start(self):
        return self.start + REC_HDR_LEN

    @property
    def data_start(self):
        return self.meta_start + self.meta_len

    @property
    def end(self):
        return self.data_start + self.data_len

    @property
    def name(self):
        return REC_NAMES.get(self.type, "?")


class StreamWriter:
    """Appends sealed records to a bytearray; counts what END must total.
    Order rules are deliberately not enforced."""

    def __init__(self, flags=0, version=VERSION, magic=MAGIC):
        hdr = bytes(magic) + u16(version) + u16(flags)
        hcrc = crc32c(hdr)
        self.buf = bytearray(hdr + u32(hcrc))
        self.chain = hcrc
        self.records: List[Rec] = []
        self.pages = 0          # page entries in RAM records
        self.rounds = 0
        self.vcpus = 0
        self.devices = 0
        self.npages = 0         # from the last CONFIG
        self.page_offsets = {}  # page index -> offset of its last DATA copy

    def data(self):
        return bytes(self.buf)

    def __len__(self):
        return len(self.buf)

    def record(self, rtype, meta, data=b"", reserved=0, data_len=None,
               meta_len=None, rcrc=None):
        """Append one record sealed with the chained CRC.  data_len and
        meta_len override the header fields (the bytes sent stay meta and
        data); rcrc overrides the checksum (the chain goes on from it)."""
        meta, data = bytes(meta), bytes(data)
        h = (u16(rtype) + u16(reserved) +
             u32(len(meta) if meta_len is None else meta_len) +
             u32(len(data) if data_len is None else data_len))
        crc = crc32c(meta, crc32c(h, self.chain)) if rcrc is None else rcrc
        rec = Rec(rtype, len(self.buf), len(meta), len(data))
        self.buf += h + u32(crc) + meta + data
        self.chain = crc
        self.records.append(rec)
        return rec

    def config(self, mem_size, name, kernel_path="", cmdline="", cpuid=(),
               nvcpus=1, reserved=0, kind=0, tsc_khz=0, initrd="", modules="",
               devspecs=()):
        """CONFIG, version 2: 40 fixed bytes, the five strings, the device
        words (u16 length + bytes each), the CPUID entries."""
        def b(s):
            return s.encode() if isinstance(s, str) else bytes(s)
        strs = [b(s) for s in (name, kernel_path, initrd, modules, cmdline)]
        words = [b(w) for w in devspecs]
        meta = (u64(mem_size) + u32(nvcpus) + u32(tsc_khz) + u16(kind) +
                b"".join(u16(len(s)) for s in strs) + u16(len(words)) +
                u16(len(cpuid)) + u64(reserved) + b"".join(strs) +
                b"".join(u16(len(w)) + w for w in words))
        for c in cpuid:
            meta += b"".join(u32(x) for x in (c.leaf, c.sub, c.eax, c.ebx, c.ecx, c.edx))
        self.npages = mem_size // PAGE_SIZE
        return self.record(REC_CONFIG, meta)

    def round(self, number, flags, pages):
        self.rounds += 1
        return self.record(REC_ROUND, u32(number) + u32(flags) + u64(pages))

    def ram(self, pages, force_data=False):
        """pages: (index, bytes or None); None or an all-zero page goes as
        a ZERO entry (unless force_data), anything else as DATA with its
        CRC, the data after the entries in entry order."""
        meta = u32(len(pages)) + u32(0)
        data = bytearray()
        data_idx = []
        for index, page in pages:
            if page is not None:
                page = bytes(page)
                assert len(page) == PAGE_SIZE
            if page is None or (not force_data and not any(page)):
                meta += u64(index) + bytes([PAGE_ZERO, 0, 0, 0]) + u32(0)
            else:
                meta += u64(index) + bytes([PAGE_DATA, 0, 0, 0]) + u32(crc32c(page))
                data_idx.append((index, len(data)))
                data += page
        self.pages += len(pages)
        rec = self.record(REC_RAM, meta, data)
        for index, off in data_idx:
            self.page_offsets[index] = rec.data_start + off
        return rec

    def vcpu(self, v: Vcpu):
        self.vcpus += 1
        return self.record(REC_VCPU, v.pack())

    def device(self, name, version, blob):
        name_b = name.encode() if isinstance(name, str) else bytes(name)
        self.devices += 1
        return self.record(REC_DEVICE, u16(len(name_b)) + u16(0) + u32(version) +
                           u32(len(blob)) + name_b + bytes(blob))

    def end(self, pages=None, rounds=None, vcpus=None, devices=None,
            nbytes=None):
        """END with the totals so far unless overridden; bytes = stream
        bytes before this record's header."""
        meta = (u64(self.pages if pages is None else pages) +
                u32(self.rounds if rounds is None else rounds) +
                u32(self.vcpus if vcpus is None else vcpus) +
                u32(self.devices if devices is None else devices) + u32(0) +
                u64(len(self.buf) if nbytes is None else nbytes))
        return self.record(REC_END, meta)

    def find(self, rtype, nth=0):
        return [r for r in self.records if r.type == rtype][nth]


# ---- a whole guest ----

# The guest: 32-bit flat code at GUEST_CODE_GPA.  It folds every dword of
# its 4 MiB (h = rol(h, 1) + dword), prints the NUL-terminated text at
# GUEST_MSG_GPA and the result in hex on the UART (0x3f8), then halts:
#	xor %ebx,%ebx ; xor %esi,%esi
# 1:	rol $1,%ebx ; add (%esi),%ebx ; add $4,%esi
#	cmp $0x400000,%esi ; jb 1b
#	mov $0x3f8,%dx ; mov $GUEST_MSG_GPA,%esi
# 2:	lodsb ; test %al,%al ; jz 3f ; out %al,%dx ; jmp 2b
# 3:	mov $8,%ecx
# 4:	rol $4,%ebx ; mov %bl,%al ; and $0xf,%al ; cmp $10,%al ; jb 5f
#	add $39,%al
# 5:	add $48,%al ; out %al,%dx ; loop 4b
#	mov $10,%al ; out %al,%dx
# 6:	cli ; hlt ; jmp 6b
GUEST_MEM = 4 << 20
GUEST_CODE_GPA = 0x100000
GUEST_MSG_GPA = 0x3E8000
GUEST_CODE = bytes.fromhex(
    "31db31f6d1c3031e83c60481fe0000400072f166baf803be00803e00ac84"
    "c07403eeebf8b908000000c1c30488d8240f3c0a720204270430eee2eeb0"
    "0aeefaf4ebfc")
assert GUEST_CODE[0x18:0x1C] == u32(GUEST_MSG_GPA), "message address in the code"


def guest_fold(image):
    """What the guest computes over its memory image."""
    h = 0
    for (d,) in struct.iter_unpack("<I", image):
        h = ((h << 1) | (h >> 31)) & 0xFFFFFFFF
        h = (h + d) & 0xFFFFFFFF
    return h


@dataclass
class Guest:
    """A small VM's memory as {page index: 4096 bytes}; the rest zero."""
    npages: int
    pages: dict
    message: str

    def image(self):
        img = bytearray(self.npages * PAGE_SIZE)
        for i, p in self.pages.items():
            img[i * PAGE_SIZE:(i + 1) * PAGE_SIZE] = p
        return bytes(img)

    def expected_line(self):
        """The line the guest prints once it runs (the VM's log prefix
        is the host's)."""
        return f"{self.message}{guest_fold(self.image()):08x}"


def make_guest(token, mem_size=GUEST_MEM, data_pages=(3, 77, 511, 700), seed=1):
    """The printing guest, plus a few pages of pseudo-random data (which
    the fold covers, so each must arrive intact)."""
    npages = mem_size // PAGE_SIZE
    pages = {}
    code = bytearray(PAGE_SIZE)
    code[:len(GUEST_CODE)] = GUEST_CODE
    pages[GUEST_CODE_GPA // PAGE_SIZE] = bytes(code)
    message = f"migstream {token} fold="
    msg = bytearray(PAGE_SIZE)
    msg[:len(message)] = message.encode()
    pages[GUEST_MSG_GPA // PAGE_SIZE] = bytes(msg)
    rng = random.Random(seed)
    for i in data_pages:
        pages[i] = bytes(rng.randrange(256) for _ in range(PAGE_SIZE))
    assert all(i < npages for i in pages)
    return Guest(npages, pages, message)


def quick_stream(guest, name, cpuid, kernel_path="guests/hello.elf",
                 cmdline="", vcpu=None, devices=None, batch=BATCH_MAX,
                 stop_before=None):
    """A complete quick (one round, each page once) stream of guest, and
    its writer (record offsets, page offsets).  stop_before: a record type
    to stop at, returning the prefix so far (the caller adds the rest)."""
    w = StreamWriter()
    w.config(guest.npages * PAGE_SIZE, name, kernel_path, cmdline, cpuid)
    w.round(0, ROUND_FINAL, guest.npages)
    for base in range(0, guest.npages, batch):
        w.ram([(i, guest.pages.get(i)) for i in range(base, min(base + batch, guest.npages))])
    if stop_before == REC_VCPU:
        return w
    w.vcpu(vcpu or flat32_vcpu(GUEST_CODE_GPA))
    if stop_before == REC_DEVICE:
        return w
    for dname, ver, blob in (devices if devices is not None else
                             [("uart", 1, uart_blob()), ("testdev", 1, testdev_blob())]):
        w.device(dname, ver, blob)
    if stop_before == REC_END:
        return w
    w.end()
    return w


# ---- reading a stream back (for the self-test) ----

class StreamError(ValueError):
    pass


def walk(stream):
    """Check the header, every record CRC in the chain and every DATA
    page's CRC; return [(type, meta, data)].  Not a full decoder: order
    and limits are the destination's business."""
    s = bytes(stream)
    if len(s) < HDR_LEN or s[:8] != MAGIC:
        raise StreamError("bad magic")
    hcrc = struct.unpack_from("<I", s, 12)[0]
    if hcrc != crc32c(s[:12]):
        raise StreamError("header CRC")
    chain, off, out = hcrc, HDR_LEN, []
    while off < len(s):
        if len(s) - off < REC_HDR_LEN:
            raise StreamError(f"truncated record header at {off}")
        rtype, rsvd, mlen, dlen, rcrc = struct.unpack_from("<HHIII", s, off)
        meta = s[off + 16:off + 16 + mlen]
        data = s[off + 16 + mlen:off + 16 + mlen + dlen]
        if len(meta) != mlen or len(data) != dlen:
            raise StreamError(f"truncated record at {off}")
        chain = crc32c(meta, crc32c(s[off:off + 12], chain))
        if chain != rcrc:
            raise StreamError(f"record CRC at {off}")
        if rtype == REC_RAM:
            n = struct.unpack_from("<I", meta, 0)[0]
            doff = 0
            for k in range(n):
                index, kind, crc = struct.unpack_from("<QB3xI", meta, 8 + 16 * k)
                if kind == PAGE_DATA:
                    if crc32c(data[doff:doff + PAGE_SIZE]) != crc:
                        raise StreamError(f"page {index} CRC")
                    doff += PAGE_SIZE
            if doff != dlen:
                raise StreamError("RAM data length")
        out.append((rtype, meta, data))
        off += 16 + mlen + dlen
    return out


def _selftest():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA          # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    v = flat32_vcpu(0x100000)
    assert len(v.fixed()) == VCPU_FIXED
    assert len(v.pack()) == VCPU_FIXED + 16 * len(v.msrs) + 4096
    fixed = v.fixed()
    assert struct.unpack_from("<Q", fixed, 136)[0] == 0x100000          # rip
    assert struct.unpack_from("<Q", fixed, 136 + 8 * 8)[0] == 1         # xcr0
    assert struct.unpack_from("<HHIQ", fixed, 264 + 16)[:2] == (0x08, ATTR_CODE32)
    assert struct.unpack_from("<QII", fixed, 392)[1] == 0xFFFF          # gdtr limit
    assert struct.unpack_from("<II", fixed, 432) == (9, 4096)
    img = v.xsave
    assert struct.unpack_from("<I", img, 24)[0] == 0x1F80 and not any(img[528:576])
    ident = parse_identity("leaf     sub  eax      ebx      ecx      edx\n"
                           "00000000 0    0000000d 756e6547 6c65746e 49656e69\n"
                           "I some log line\n"
                           "80000001 0    00000000 00000000 00000001 28100800\n")
    assert ident == [Cpuid(0, 0, 0xD, 0x756E6547, 0x6C65746E, 0x49656E69),
                     Cpuid(0x80000001, 0, 0, 0, 1, 0x28100800)]
    g = make_guest("selftest")
    w = quick_stream(g, "selftest", ident)
    recs = walk(w.data())
    types = [t for t, _, _ in recs]
    assert types == [REC_CONFIG, REC_ROUND] + [REC_RAM] * 16 + [REC_VCPU, REC_DEVICE,
                                                                REC_DEVICE, REC_END], types
    end = recs[-1][1]
    assert struct.unpack("<QIIIIQ", end) == (1024, 1, 1, 2, 0, w.records[-1].start)
    ndata = sum(len(d) // PAGE_SIZE for t, _, d in recs if t == REC_RAM)
    assert ndata == len(g.pages), ndata
    cfg = recs[0][1]
    assert struct.unpack_from("<QIIHHHHHHHHQ", cfg) == (4 << 20, 1, 0, 0, 8, 16, 0, 0, 0, 0,
                                                         2, 0)
    # A flipped byte anywhere is caught.
    for off in (5, 20, w.find(REC_RAM, 1).start + 30, w.page_offsets[3] + 100,
                len(w) - 1):
        bad = bytearray(w.data())
        bad[off] ^= 0x40
        try:
            walk(bad)
        except StreamError:
            continue
        raise AssertionError(f"flip at {off} not caught")
    print(f"migstream self-test: ok ({len(w)} bytes, {len(recs)} records, "
          f"guest prints {g.expected_line()!r})")
    return 0


if __name__ == "__main__":
    sys.exit(_selftest())
