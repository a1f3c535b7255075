#!/usr/bin/env python3
"""tools/extract-vmlinux.py BZIMAGE OUT

Extracts the uncompressed kernel (the vmlinux ELF) from a bzImage so Tern
can boot it through PVH without running the in-guest decompressor (which
takes minutes under Bochs).  Linux Documentation/arch/x86/boot.rst: the
setup header's payload_offset (0x248) and payload_length (0x24c) locate
the compressed payload inside the protected-mode part, which starts at
(setup_sects + 1) * 512 (setup_sects at 0x1f1, 0 meaning 4).  The payload
is written as is once decompressed: an ELF64 carrying the Xen note
XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen"), which is checked.
"""
import lzma
import os
import struct
import sys
import zlib


def payload(img):
    if img[0x202:0x206] != b"HdrS":
        sys.exit("extract-vmlinux: no Linux setup header (\"HdrS\" at 0x202)")
    setup_sects = img[0x1f1] or 4
    pm = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", img, 0x248)
    if not length or pm + off + length > len(img):
        sys.exit("extract-vmlinux: payload_offset/length outside the file")
    return img[pm + off:pm + off + length]


def decompress(data):
    if data[:6] == b"\xfd7zXZ\x00":
        # The kernel's XZ stream carries the x86 BCJ filter; lzma handles it.
        # The build appends the uncompressed size (4 bytes) after the
        # stream, which lzma.decompress would take for a broken second
        # stream: one decompressor stops at the first stream's end.
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        out = dec.decompress(data)
        if not dec.eof:
            sys.exit("extract-vmlinux: XZ payload truncated")
        return out
    if data[:2] == b"\x1f\x8b":
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return dec.decompress(data)
    sys.exit("extract-vmlinux: payload is neither XZ nor gzip (magic %s)"
             % data[:6].hex())


def pvh_entry(elf):
    """The XEN_ELFNOTE_PHYS32_ENTRY value, from the PT_NOTE segments."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        sys.exit("extract-vmlinux: payload is not an ELF64")
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        ptype, = struct.unpack_from("<I", elf, phoff + i * phentsize)
        if ptype != 4:  # PT_NOTE
            continue
        off, = struct.unpack_from("<Q", elf, phoff + i * phentsize + 8)
        size, = struct.unpack_from("<Q", elf, phoff + i * phentsize + 32)
        pos, end = off, off + size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz]
            desc = pos + 12 + ((namesz + 3) & ~3)
            if name == b"Xen\x00" and ntype == 18:
                return struct.unpack_from("<I" if descsz == 4 else "<Q", elf, desc)[0]
            pos = desc + ((descsz + 3) & ~3)
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: extract-vmlinux.py BZIMAGE OUT")
    with open(sys.argv[1], "rb") as f:
        img = f.read()
    elf = decompress(payload(img))
    entry = pvh_entry(elf)
    if entry is None:
        sys.exit("extract-vmlinux: the kernel has no PVH entry note (CONFIG_PVH)")
    with open(sys.argv[2] + ".tmp", "wb") as f:
        f.write(elf)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    print("extract-vmlinux: %s, %d bytes, PVH entry %#x" % (sys.argv[2], len(elf), entry))


if __name__ == "__main__":
    main()
