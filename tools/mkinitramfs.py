#!/usr/bin/env python3
"""Build the Linux test guest's initramfs: a gzip'd cpio "newc" archive
(Linux Documentation/driver-api/early-userspace/buffer-format.rst) holding
busybox (static), its applet links, an /init script and optional extra
static programs.  No cpio(1) needed; no root needed (owners are 0:0 in the
archive whatever the files' owners are).

    tools/mkinitramfs.py OUT.gz --busybox PATH --init PATH [--bin PATH ...]
                            [--modules DIR] [--tree DIR]

--modules DIR: DIR/order names .ko files in DIR, copied to /lib/modules/
with that order file (the /init loads them in it); --tree DIR: a directory
tree copied as it is (Debian's mke2fs and its libraries).
"""

import argparse
import gzip
import os
import stat

APPLETS = ("sh", "mount", "mkdir", "cat", "echo", "ls", "setsid", "cttyhack",
           "poweroff", "reboot", "nproc", "date", "uname", "cut", "sleep",
           "grep", "dmesg", "mknod", "halt", "insmod", "dd", "sync", "umount",
           "ip", "ping", "md5sum", "sha256sum", "head", "tail", "wc", "tr",
           "seq", "rm", "cmp", "hexdump", "od", "nc", "ifconfig", "blockdev")


class Cpio:
    """newc writer: a 110-byte ASCII header per entry, the name and the
    data each padded to 4 bytes, ended by the entry "TRAILER!!!"."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b"", nlink=1):
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
                  len(name_b), 0)
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out += name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name, data, mode=0o755):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        name_b = name.encode() + b"\0"
        fields = (self.ino, stat.S_IFCHR | mode, 0, 0, 1, 0, 0, 0, 0,
                  major, minor, len(name_b), 0)
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out += name_b
        self.out += b"\0" * (-len(self.out) % 4)

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def add_tree(c, root, have):
    """Every directory, file and symlink under root, at the same path."""
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        rel = os.path.relpath(d, root)
        if rel != "." and rel not in have:
            c.dir(rel)
            have.add(rel)
        for n in sorted(files):
            p = os.path.join(d, n)
            name = os.path.normpath(os.path.join(rel, n))
            if os.path.islink(p):
                c.symlink(name, os.readlink(p))
            else:
                with open(p, "rb") as f:
                    c.file(name, f.read(), os.stat(p).st_mode & 0o777)


def add_modules(c, mdir):
    c.dir("lib")
    c.dir("lib/modules")
    with open(os.path.join(mdir, "order")) as f:
        order = [l.strip() for l in f if l.strip()]
    for m in order:
        with open(os.path.join(mdir, m), "rb") as f:
            c.file(f"lib/modules/{m}", f.read(), 0o644)
    c.file("lib/modules/order", ("\n".join(order) + "\n").encode(), 0o644)


def build(busybox, init, bins, modules=None, trees=()):
    c = Cpio()
    have = {"bin", "sbin", "dev", "proc", "sys", "tmp", "root", "etc"}
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "root", "etc"):
        c.dir(d)
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    c.chardev("dev/console", 5, 1)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read())
    for a in APPLETS:
        c.symlink(f"bin/{a}", "busybox")
    with open(init, "rb") as f:
        c.file("init", f.read())
    for b in bins:
        with open(b, "rb") as f:
            c.file(f"bin/{os.path.basename(b)}", f.read())
    if modules:
        add_modules(c, modules)
        have.update(("lib", "lib/modules"))
    for t in trees:
        add_tree(c, t, have)
    return c.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--busybox", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--bin", action="append", default=[])
    ap.add_argument("--modules")
    ap.add_argument("--tree", action="append", default=[])
    a = ap.parse_args()
    data = build(a.busybox, a.init, a.bin, a.modules, a.tree)
    with open(a.out + ".tmp", "wb") as f:
        # mtime 0: the same inputs give the same bytes.
        f.write(gzip.compress(data, 9, mtime=0))
    os.replace(a.out + ".tmp", a.out)
    print(f"mkinitramfs: {a.out}: {len(data)} bytes of cpio, "
          f"{os.path.getsize(a.out)} gzip'd")


if __name__ == "__main__":
    main()
