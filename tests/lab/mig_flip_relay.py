#!/usr/bin/env python3
"""An on-path attacker between two Tern hosts for an encrypt=off migration
(issue #17): it relays the TLS control link untouched and, on the plain
data link, flips one byte of one page and fixes up everything a key is not
needed for: the page's CRC32C and the record CRC chain from that record on.

    python3 tests/lab/mig_flip_relay.py LISTEN_ADDR CTL_PORT DST_ADDR DST_PORT \\
        [--page-nth N] [--data-from ADDR]

The source migrates to LISTEN_ADDR:CTL_PORT; the relay forwards it to
DST_ADDR:DST_PORT, and the data link (LISTEN_ADDR:CTL_PORT+1, the port the
destination's ACCEPTED names) to DST_ADDR:DST_PORT+1.  It flips byte 100
of the Nth data page on the data link (default 100).  With --data-from
it opens the data link from another of its addresses instead: a stranger
holding the token (the destination must refuse it by address).  It prints one line
per event on stdout ("FLIPPED page P in record R", "TAGGED yes|no"), which
the test reads to know the attack really happened.

The data link carries a 32-byte token, then records (migrate/stream.h):
a 16-byte header (u16 type, u16 0, u32 meta_len, u32 data_len, u32 rcrc),
meta_len bytes of metadata, data_len bytes of pages, then with record MACs
a 16-byte tag.  The relay finds out which by looking for the second
record's header at the two places it can be.
"""

import argparse
import socket
import struct
import sys
import threading

import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migstream import crc32c  # noqa: E402

HDR = 16
TAG = 16
TOKEN = 32
PAGE = 4096
META_MAX = 12 + 31 + 65536
DATA_MAX = 64 * PAGE


def say(line):
    print(line, flush=True)


def plausible(b):
    """A record header, as far as one can tell without the key."""
    if len(b) < HDR:
        return False
    t, rsvd, meta, data = struct.unpack_from("<HHII", b)
    return 1 <= t <= 6 and rsvd == 0 and meta <= META_MAX and data <= DATA_MAX and \
        data % PAGE == 0 and (data == 0 or t == 3)


class Flipper:
    def __init__(self, nth):
        self.nth = nth
        self.buf = bytearray()
        self.tagged = None      # unknown until the second record
        self.pages = 0          # data pages seen
        self.nrec = 0
        self.chain = None       # rcrc the next record continues from (after a fix)
        self.flipped = False
        self.token_left = TOKEN
        self.prev = None        # rcrc of the last record forwarded

    def rec_len(self, off):
        meta, data = struct.unpack_from("<II", self.buf, off + 4)
        return HDR + meta + data

    def feed(self, data):
        """Bytes in; the bytes to forward out (whole records only)."""
        self.buf += data
        out = bytearray()
        if self.token_left:
            k = min(self.token_left, len(self.buf))
            out += self.buf[:k]
            del self.buf[:k]
            self.token_left -= k
        while len(self.buf) >= HDR:
            n = self.rec_len(0)
            if self.tagged is None:
                if len(self.buf) < n + TAG + HDR:
                    break
                self.tagged = not plausible(self.buf[n:]) and plausible(self.buf[n + TAG:])
                say(f"TAGGED {'yes' if self.tagged else 'no'}")
            n += TAG if self.tagged else 0
            if len(self.buf) < n:
                break
            out += self.edit(bytearray(self.buf[:n]))
            del self.buf[:n]
        return bytes(out)

    def edit(self, rec):
        t, _, meta, data = struct.unpack_from("<HHII", rec)
        if t == 3 and not self.flipped:
            self.flip(rec, meta)
        if self.chain is not None:
            crc = crc32c(bytes(rec[HDR:HDR + meta]), crc32c(bytes(rec[:12]), self.chain))
            struct.pack_into("<I", rec, 12, crc)
        if self.flipped:
            self.chain = struct.unpack_from("<I", rec, 12)[0]
        self.prev = struct.unpack_from("<I", rec, 12)[0]
        self.nrec += 1
        return rec

    def flip(self, rec, meta):
        count = struct.unpack_from("<I", rec, HDR)[0]
        data = HDR + meta
        for i in range(count):
            ent = HDR + 8 + 16 * i
            index, kind = struct.unpack_from("<QB", rec, ent)
            if kind != 0:
                continue
            self.pages += 1
            if self.pages == self.nth:
                rec[data + 100] ^= 0x01
                struct.pack_into("<I", rec, ent + 12, crc32c(bytes(rec[data:data + PAGE])))
                # The chain into this record is the last one's rcrc.
                self.chain = self.prev
                self.flipped = True
                say(f"FLIPPED page {index} in data-link record {self.nrec}")
                return
            data += PAGE


def pump(src, dst, fn=None):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            if fn:
                b = fn(b)
            if b:
                dst.sendall(b)
    except OSError:
        pass
    for s in (dst, src):
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(listen, target, flipper=None, bind=None):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(listen)
    ls.listen(4)
    while True:
        c, peer = ls.accept()
        u = socket.create_connection(target, source_address=(bind, 0) if bind else None)
        say(f"RELAY {peer[0]} -> {target[0]}:{target[1]}")
        fn = flipper.feed if flipper else None
        threading.Thread(target=pump, args=(c, u, fn), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen")
    ap.add_argument("port", type=int)
    ap.add_argument("dst")
    ap.add_argument("dport", type=int)
    ap.add_argument("--page-nth", type=int, default=100,
                    help="the data page to alter (0: none)")
    ap.add_argument("--data-from", metavar="ADDR",
                    help="open the data link to the destination from ADDR")
    a = ap.parse_args()
    threading.Thread(target=serve, args=((a.listen, a.port), (a.dst, a.dport)),
                     daemon=True).start()
    serve((a.listen, a.port + 1), (a.dst, a.dport + 1), Flipper(a.page_nth), a.data_from)


if __name__ == "__main__":
    sys.exit(main())
