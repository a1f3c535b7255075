#!/usr/bin/env python3
"""Linux guest I/O tests: Debian's kernel with virtio disks on tgtd's LUNs
and virtio NICs on Tern's switch, in the lab's namespace (netlab.py).

Two Tern hosts (tern-a 10.77.0.1, tern-b 10.77.0.2) boot the Linux
suite's ESP; tgtd (10.77.0.254:3260) serves file-backed LUNs, so what the
guest writes is checked byte for byte in the backing file on this machine,
and bytes written into the file behind Tern's back are what the guest
must read.  Each host runs one guest ("lx" on tern-a, "ly" on tern-b,
addresses 10.77.0.50 and .51 given by tern.ip= on their command lines).

    python3 tests/lab/linux_io_tests.py [--only REGEX] [--list]
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402
import linux_tests  # noqa: E402  (guest_cmd, detach, the guest's prompt)
from tgt import Tgtd  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PORTAL = "10.77.0.254"
IQN = "iqn.2026-12.lab.tern:"
KERNEL = "linux/vmlinuz"
INITRD = "linux/initrd.gz"
CMDLINE = "console=ttyS0 loglevel=4"
GUEST_PROMPT = linux_tests.GUEST_PROMPT
# tid: (name, MiB)
TARGETS = {1: ("sys", 64), 2: ("other", 32)}
GUESTS = {0: ("lx", "10.77.0.50"), 1: ("ly", "10.77.0.51")}
CMD_TIMEOUT = 30
BOOT_TIMEOUT = 240
CFG = None
TESTS = []
check = ternlab.check
_lab = {}


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


class Lab:
    """Two Tern hosts with a Linux guest each, one tgtd."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="tern-lio-", dir=CFG.workdir)
        self.net = netlab.NetLab(hosts=2, esp_dir=CFG.esp, logdir=CFG.logdir, mem="1G")
        self.tgt = None
        self.cons = []

    def start(self):
        self.net.start()
        try:
            self.tgt = Tgtd(self.net.ns, portal=f"{PORTAL}:3260", workdir=self.work)
            self.tgt.start()
            for tid, (name, mib) in TARGETS.items():
                self.tgt.add_target(tid, IQN + name)
                self.tgt.add_lun(tid, 1, self.lun_path(tid), size_bytes=mib << 20)
                self.tgt.bind_all(tid)
            self.net.wait_prompts(120)
            self.cons = [ternlab.Console(h, CMD_TIMEOUT) for h in self.net.hosts]
        except BaseException:
            self.stop()
            raise
        return self

    def lun_path(self, tid):
        return os.path.join(self.work, f"lun-{TARGETS[tid][0]}.img")

    def stop(self):
        if self.tgt:
            self.tgt.stop()
        self.net.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def lab():
    if "main" not in _lab:
        _lab["main"] = Lab().start()
    return _lab["main"]


def stop_labs():
    for lb in list(_lab.values()):
        lb.stop()
    _lab.clear()


def url(tid):
    return f"iscsi://{PORTAL}:3260/{IQN}{TARGETS[tid][0]}/1"


# --- the guest -------------------------------------------------------------

def attach(h, name, tid):
    h.lab_con.run(f"disk attach {name} {url(tid)}", 60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if re.search(rf"^{name}\s+ready", h.lab_con.run("disk list"), re.M):
            return
        time.sleep(1)
    raise ternlab.TestFailure(f"disk {name} not ready:\n{h.lab_con.run('disk list')}")


def boot_guest(i, devices):
    """Create and start guest i of host i with devices; wait for its shell."""
    lb = lab()
    h = lb.net.hosts[i]
    con = lb.cons[i]
    h.lab_con = con
    vm, addr = GUESTS[i]
    out = con.run(f"vm create {vm} mem=256M kernel={KERNEL} initrd={INITRD} {devices} "
                  f"cmdline=\"{CMDLINE} tern.ip={addr}/24\"")
    check(f"vm {vm} created" in out, f"vm create:\n{out}")
    out = con.run(f"vm start {vm}")
    check("running" in out, f"vm start:\n{out}")
    wait_guest_line(con, vm, r"TERN-LINUX-SHELL", BOOT_TIMEOUT)
    return h, con, vm


def guest_lines(con, vm):
    text = con.raw("log 3000", 60)
    return [m.group(1) for m in re.finditer(rf"\[{re.escape(vm)}\] ([^\n]*)", text)]


def wait_guest_line(con, vm, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = guest_lines(con, vm)
        for ln in lines:
            if re.search(pattern, ln):
                return ln
        time.sleep(2)
    raise ternlab.TestFailure(f"{vm}: no '{pattern}' within {timeout} s; last lines:\n" +
                              "\n".join(lines[-30:]) + "\n" + con.run(f"vm info {vm}"))


class GuestShell:
    """`vm console` attached for the with-block."""

    def __init__(self, h, vm):
        self.h, self.vm = h, vm

    def __enter__(self):
        self.h.mark()
        self.h.sendline(f"vm console {self.vm}")
        self.h.expect(rf"attached to {self.vm}", CMD_TIMEOUT)
        self.h.send("\r")
        self.h.expect(re.escape(GUEST_PROMPT), 60)
        return self

    def run(self, cmd, timeout=CMD_TIMEOUT):
        return linux_tests.guest_cmd(self.h, cmd, timeout)

    def __exit__(self, *exc):
        linux_tests.detach(self.h)
        self.h.expect(r"detached", CMD_TIMEOUT)
        return False


def destroy(con, vm):
    con.run(f"vm stop {vm}")
    con.run(f"vm destroy {vm}")


def file_bytes(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


# --- tests ------------------------------------------------------------------

@test
def virtio_disk_bytes():
    """dd oflag=direct lands byte for byte in tgtd's file; what the test
    writes into the file the guest reads back; vm info counts both."""
    lb = lab()
    a = lb.net.hosts[0]
    a.lab_con = lb.cons[0]
    attach(a, "sys", 1)
    h, con, vm = boot_guest(0, "disk=sys nic=auto")
    line = wait_guest_line(con, vm, r"TERN-LINUX-VIRTIO", 30)
    check("disks [vda]" in line and "nics [eth0]" in line, f"the guest saw: {line}")
    with GuestShell(h, vm) as g:
        out = g.run("cat /sys/block/vda/size")
        check(re.search(rf"^{(64 << 20) // 512}\s*$", out, re.M), f"vda size:\n{out}")
        # 256 KiB of the guest's random bytes at 1 MiB, direct and synced.
        g.run("dd if=/dev/urandom of=/tmp/pat bs=64k count=4 2>/dev/null")
        out = g.run("sha256sum /tmp/pat")
        m = re.search(r"^([0-9a-f]{64})\s", out, re.M)
        check(m, f"sha256sum in the guest:\n{out}")
        want = m.group(1)
        out = g.run("dd if=/tmp/pat of=/dev/vda bs=64k seek=16 oflag=direct && sync && "
                    "echo WROTE", 60)
        check("WROTE" in out, f"guest dd to vda:\n{out}")
    got = hashlib.sha256(file_bytes(lb.lun_path(1), 1 << 20, 256 << 10)).hexdigest()
    check(got == want, f"tgtd's file at 1 MiB holds {got}, the guest wrote {want}")
    # Behind Tern's back: random bytes at 2 MiB, the guest reads them.
    blob = os.urandom(131072)
    with open(lb.lun_path(1), "r+b") as f:
        f.seek(2 << 20)
        f.write(blob)
    with GuestShell(h, vm) as g:
        out = g.run("dd if=/dev/vda bs=64k skip=32 count=2 iflag=direct 2>/dev/null | md5sum", 60)
    check(hashlib.md5(blob).hexdigest() in out,
          f"guest read {out!r}, the file holds {hashlib.md5(blob).hexdigest()}")
    info = con.run(f"vm info {vm}")
    m = re.search(r"vda: virtio-blk .* disk sys, 64 MiB in 512-byte blocks, driver ready", info)
    check(m, f"vm info:\n{info}")
    m = re.search(r"reads (\d+) .* writes (\d+) .* errors (\d+)", info)
    check(m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and m.group(3) == "0",
          f"vm info counters:\n{info}")
    out = con.run("disk detach sys")
    check("is the disk of vm lx" in out, f"detach of a disk in use:\n{out}")


@test
def virtio_net_ping():
    """The guest pings the namespace and its host; the namespace pings the
    guest; vm info and the switch count the frames."""
    lb = lab()
    h = lb.net.hosts[0]
    con = lb.cons[0]
    vm, addr = GUESTS[0]
    if vm not in con.run("vm list"):
        boot_guest(0, "nic=auto")
    wait_guest_line(con, vm, r"TERN-LINUX-NET: eth0", 30)
    with GuestShell(h, vm) as g:
        out = g.run(f"ping -c 3 -W 5 {PORTAL}", 40)
        check(re.search(r"3 packets transmitted, 3 (packets )?received", out),
              f"guest -> namespace:\n{out}")
        out = g.run("ping -c 3 -W 5 10.77.0.1", 40)
        check(re.search(r"3 packets transmitted, 3 (packets )?received", out),
              f"guest -> its host:\n{out}")
    r = lb.net.ns_run(["ping", "-c", "3", "-W", "5", addr], 40)
    check(r.returncode == 0, f"namespace -> guest:\n{r.stdout}")
    out = con.run("ping 10.77.0.50 3", 30)
    check(re.search(r"3 (packets )?received|3/3", out) or out.count("time=") >= 3,
          f"host -> guest:\n{out}")
    sw = con.run("switch")
    check(re.search(r"^net0\s+guest\s+\S+\s+[1-9]\d*\s+[1-9]", sw, re.M), f"switch:\n{sw}")


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp-linux"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    chosen = [(n, fn) for n, fn in TESTS if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    linux_tests.CFG = CFG
    return ternlab.run_suite(chosen, CFG.logdir, stop_labs)


if __name__ == "__main__":
    sys.exit(main())
