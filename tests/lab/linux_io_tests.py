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
        # 3 CPUs: the console's, and two guests' on tern-a.
        self.net = netlab.NetLab(hosts=2, esp_dir=CFG.esp, logdir=CFG.logdir, mem="1G", smp=3)
        self.tgt = None
        self.cons = []

    def start(self):
        self.net.start()
        try:
            self.tgt = Tgtd(self.net.ns, portal=f"{PORTAL}:3260", workdir=self.work)
            self.tgt.start()
            for tid, (name, mib) in TARGETS.items():
                self.tgt.add_target(tid, IQN + name)
                # sys is thin (UNMAP, WRITE SAME with unmap): DISCARD and
                # WRITE_ZEROES reach the guest.
                self.tgt.add_lun(tid, 1, self.lun_path(tid), size_bytes=mib << 20,
                                 thin=(tid == 1))
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


def boot_guest(i, devices, guest=None):
    """Create and start guest i (or the named (vm, addr)) on host i with
    devices; wait for its shell."""
    lb = lab()
    h = lb.net.hosts[i]
    con = lb.cons[i]
    h.lab_con = con
    vm, addr = guest or GUESTS[i]
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
    # DISCARD on a thin LUN: the guest's blkdiscard becomes UNMAP, and the
    # range it wrote above reads zeros in tgtd's file (LBPRZ).
    with GuestShell(h, vm) as g:
        out = g.run("cat /sys/block/vda/queue/discard_max_bytes "
                    "/sys/block/vda/queue/write_zeroes_max_bytes")
        nums = [int(x) for x in re.findall(r"^(\d+)\s*$", out, re.M)]
        check(len(nums) == 2 and nums[0] > 0 and nums[1] > 0,
              f"no discard / write-zeroes limits in the guest:\n{out}")
        out = g.run("blkdiscard -o 1048576 -l 262144 /dev/vda && echo DISCARDED", 60)
        check("DISCARDED" in out, f"blkdiscard:\n{out}")
    check(file_bytes(lb.lun_path(1), 1 << 20, 256 << 10) == bytes(256 << 10),
          "the discarded range does not read zeros in tgtd's file")
    info = con.run(f"vm info {vm}")
    check(field(info, r"discards (\d+)") > 0, f"no discard counted:\n{info}")
    # Under the dirty log (what a migration runs), device writes into
    # guest memory go on: a 4 MiB read lands and the log reports pages.
    out = con.run(f"vm dirty {vm} start")
    check("error" not in out, f"vm dirty start:\n{out}")
    try:
        con.run(f"vm dirty {vm} harvest")
        with GuestShell(h, vm) as g:
            out = g.run("dd if=/dev/vda bs=64k count=64 iflag=direct 2>/dev/null | md5sum", 60)
        check(re.search(r"^[0-9a-f]{32}\s", out, re.M), f"read under the dirty log:\n{out}")
        out = con.run(f"vm dirty {vm} harvest")
        check(field(out, r"^(\d+) pages dirty") > 0, f"harvest:\n{out}")
    finally:
        con.run(f"vm dirty {vm} stop")


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


def ensure_guest_a():
    """Guest lx on tern-a with disk sys and a NIC, booted once per lab."""
    lb = lab()
    h, con = lb.net.hosts[0], lb.cons[0]
    h.lab_con = con
    vm = GUESTS[0][0]
    if vm not in con.run("vm list"):
        if not re.search(r"^sys\s+ready", con.run("disk list"), re.M):
            attach(h, "sys", 1)
        boot_guest(0, "disk=sys nic=auto")
    return h, con, vm


def shell_markers(con, vm):
    return sum(ln.endswith("TERN-LINUX-SHELL") for ln in guest_lines(con, vm))


def field(info, pattern):
    m = re.search(pattern, info, re.M)
    check(m, f"no '{pattern}' in:\n{info}")
    return int(m.group(1))


@test
def virtio_disk_ext4_reboot():
    """mkfs.ext4 (Debian's mke2fs), mount, files, sync; the guest reboots
    (the VM alone restarts with its devices) and the files are there."""
    h, con, vm = ensure_guest_a()
    with GuestShell(h, vm) as g:
        out = g.run("/sbin/mke2fs -q -F -t ext4 /dev/vda && echo MKFS-OK", 180)
        check("MKFS-OK" in out, f"mke2fs -t ext4:\n{out}")
        out = g.run("mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && "
                    "echo tern-wave-2 > /mnt/hello && "
                    "dd if=/dev/urandom of=/mnt/blob bs=64k count=32 2>/dev/null && "
                    "sha256sum /mnt/blob > /mnt/blob.sum && sync && umount /mnt && "
                    "echo FS-OK", 180)
        check("FS-OK" in out, f"files on ext4:\n{out}")
    flushes = field(con.run(f"vm info {vm}"), r"flushes (\d+)")
    check(flushes > 0, "ext4's journal commits sent no FLUSH")
    before = shell_markers(con, vm)
    with GuestShell(h, vm) as g:
        g.h.send("reboot -f\r")
        time.sleep(3)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while shell_markers(con, vm) <= before and time.monotonic() < deadline:
        time.sleep(3)
    check(shell_markers(con, vm) > before, "the guest did not come back after reboot -f:\n"
          + con.run(f"vm info {vm}"))
    info = con.run(f"vm info {vm}")
    check(re.search(r"resets: [1-9]", info) and "vda: virtio-blk" in info, info)
    with GuestShell(h, vm) as g:
        out = g.run("mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && cat /mnt/hello && "
                    "sha256sum -c /mnt/blob.sum && umount /mnt", 120)
    check("tern-wave-2" in out and re.search(r"/mnt/blob: OK", out),
          f"after the reboot:\n{out}")


@test
def virtio_disk_target_restart():
    """tgtd is frozen, killed and restarted while the guest's dd runs.
    tgtd forgets every reservation key, so Tern cannot tell the restart
    from another host's pre-emption: the writes it held fail unsent (dd
    sees I/O errors, the file keeps what was put there meanwhile), vm info
    says why, the VM runs on; `disk rejoin` and the guest writes again."""
    lb = lab()
    h, con, vm = ensure_guest_a()
    path, off, size = lb.lun_path(1), 256 * 65536, 128 * 65536
    with GuestShell(h, vm) as g:
        g.run("dd if=/dev/urandom of=/tmp/big bs=64k count=128 2>/dev/null")
        out = g.run("sha256sum /tmp/big")
        want = re.search(r"^([0-9a-f]{64})\s", out, re.M).group(1)
        g.h.mark()
        # 8 MiB takes well under a second: write it again and again, so
        # that writes are in flight when tgtd freezes.
        g.h.send("(i=0; while [ $i -lt 40 ]; do dd if=/tmp/big of=/dev/vda bs=64k "
                 "seek=256 oflag=direct 2>/dev/null || break; i=$((i+1)); done; "
                 "echo DD-DONE $i) &\r")
        time.sleep(1.5)
        os.kill(lb.tgt.pid, signal.SIGSTOP)
        lb.tgt.kill()
        with open(path, "r+b") as f:        # another host's data meanwhile
            f.seek(off)
            f.write(b"\x5a" * size)
        time.sleep(3)
        lb.tgt.restart()
        done = int(g.h.expect(r"DD-DONE (\d+)", 600).group(1))
        g.h.send("\r")
        g.h.expect(re.escape(GUEST_PROMPT), 30)
    check(done < 40, "every dd across the target restart succeeded: held writes were sent")
    print(f"  dd {done + 1} of 40 failed", flush=True)
    check(file_bytes(path, off, size) == b"\x5a" * size,
          "a held write reached tgtd's file after it forgot the keys")
    info = con.run(f"vm info {vm}")
    check(re.search(r"^state: running", info, re.M), f"the VM stopped:\n{info}")
    check(field(info, r"errors (\d+)") > 0 and "disk lost" in info and
          "forgot every key" in info, f"vm info does not say why:\n{info}")
    print("  " + re.search(r"disk lost.*", info).group(0), flush=True)
    d = con.run("disk info sys")
    check(re.search(r"state:\s+lost", d) and "not registered" in d, f"disk info:\n{d}")
    out = con.run("disk rejoin sys", 60)
    check("rejoined" in out and "ready again" in out, f"disk rejoin:\n{out}")
    with GuestShell(h, vm) as g:
        out = g.run("dd if=/tmp/big of=/dev/vda bs=64k seek=256 oflag=direct 2>/dev/null; "
                    "echo DD-RC $?", 120)
    check("DD-RC 0" in out, f"the guest's write after the rejoin:\n{out}")
    got = hashlib.sha256(file_bytes(path, off, size)).hexdigest()
    check(got == want, "what dd wrote after the rejoin is not on tgtd's file")


@test
def virtio_hostile_guest():
    """A hostile driver (tests/guests/vhostile.c) breaks the rings every way
    it can: each time only that device stops (DEVICE_NEEDS_RESET) and comes
    back after a reset; the host log names the first failures only; the
    host, its console and the other guest are unaffected."""
    lb = lab()
    hb, cb = lb.net.hosts[1], lb.cons[1]
    hb.lab_con = cb
    attach(hb, "other", 2)
    out = cb.run("vm create hz mem=16M kernel=guests/vhostile.elf disk=other nic=auto")
    check("vm hz created" in out, out)
    cb.run("vm start hz")
    deadline = time.monotonic() + 180
    info = cb.run("vm info hz")
    while re.search(r"^state: running", info, re.M) and time.monotonic() < deadline:
        time.sleep(2)
        info = cb.run("vm info hz")
    lines = guest_lines(cb, "hz")
    done = [ln for ln in lines if "GUEST vhostile DONE" in ln]
    check(done and re.search(r"pass=\d+ fail=0", done[-1]),
          "vhostile: " + (done[-1] if done else "no DONE line") + "\n" +
          "\n".join(ln for ln in lines if "FAIL" in ln))
    check("exit code 0x10" in info, f"vhostile did not pass:\n{info}")
    check(re.search(r"net0: virtio-net .*queue 1: buffer not in RAM", info),
          f"vm info does not say why the NIC stopped:\n{info}")
    m = re.search(r"vda: virtio-blk .*ring failures (\d+)", info)
    check(m and int(m.group(1)) >= 10, f"vda's ring failures not counted:\n{info}")
    log = cb.raw("log 3000", 60)
    check(len(re.findall(r"vm hz: vda: .*stays stopped", log)) == 3,
          "the first 3 ring failures are logged, the rest only counted")
    check(re.search(r"^hostname: tern-b", cb.run("status"), re.M), "tern-b's console")
    cb.run("vm destroy hz")
    # The guest on the other host never noticed.
    h, con, vm = ensure_guest_a()
    with GuestShell(h, vm) as g:
        out = g.run("dd if=/dev/vda bs=4k count=1 iflag=direct 2>/dev/null | wc -c")
    check(re.search(r"^\s*4096\s*$", out, re.M), out)


@test
def virtio_net_guests_and_stream():
    """Guests on two hosts ping each other, two on one host too without
    the wire; a TCP stream from the guest to the namespace carries every
    byte; iperf2 runs between them; a spoofed source MAC goes nowhere."""
    lb = lab()
    ha, ca, va = ensure_guest_a()
    hb, cb = lb.net.hosts[1], lb.cons[1]
    vb, addr_b = GUESTS[1]
    if vb not in cb.run("vm list"):
        hb.lab_con = cb
        attach(hb, "other", 2)
        boot_guest(1, "disk=other:ro nic=auto")
    wait_guest_line(cb, vb, r"TERN-LINUX-NET: eth0", 60)
    # Its disk is read-only: the guest knows, and a write does not reach
    # the LUN.
    before = file_bytes(lb.lun_path(2), 0, 4096)
    with GuestShell(hb, vb) as g:
        out = g.run("cat /sys/block/vda/ro; dd if=/dev/urandom of=/dev/vda bs=4k count=1 "
                    "oflag=direct 2>&1; echo DD-RC $?", 60)
    check(re.search(r"^1\s*$", out, re.M) and re.search(r"DD-RC [1-9]", out),
          f"a read-only disk:\n{out}")
    check(file_bytes(lb.lun_path(2), 0, 4096) == before, "a read-only disk was written")
    check("(read-only)" in cb.run(f"vm info {vb}"), "vm info does not say read-only")
    wait_guest_line(ca, va, r"TERN-LINUX-NET: eth0", 60)
    with GuestShell(ha, va) as g:
        out = g.run(f"ping -c 3 -W 5 {addr_b}", 40)
        check(re.search(r"3 packets transmitted, 3 (packets )?received", out),
              f"guest on tern-a -> guest on tern-b:\n{out}")
    # A second guest on tern-a: their frames stay inside the switch.
    vz, addr_z = "lz", "10.77.0.52"
    if vz not in ca.run("vm list"):
        boot_guest(0, "nic=auto", (vz, addr_z))
    wait_guest_line(ca, vz, r"TERN-LINUX-NET: eth0", 60)
    uplink = r"^virtio0\s+uplink\s+\S+\s+\d+\s+(\d+)"
    up0 = field(ca.run("switch"), uplink)
    with GuestShell(ha, va) as g:
        out = g.run(f"ping -c 40 -i 0.2 -W 5 {addr_z}", 60)
    check(re.search(r"40 packets transmitted, 40 (packets )?received", out),
          f"guest -> guest on the same host:\n{out}")
    up1 = field(ca.run("switch"), uplink)
    # 80 unicast frames stayed local; what flooded meanwhile is broadcast
    # and multicast (ARP, a freshly booted guest's IPv6 solicitations).
    check(up1 - up0 < 30, f"{up1 - up0} frames went out the uplink while 80 went "
          "between two guests of one host")
    ca.run(f"vm stop {vz}")
    ca.run(f"vm destroy {vz}")
    # 8 MiB over TCP to a listener in the namespace, counted there.
    sink = netlab.tcp_sink(lb.net.ns, PORTAL, 5501, 8 << 20)
    try:
        time.sleep(1)
        t0 = time.monotonic()
        with GuestShell(ha, va) as g:
            out = g.run(f"dd if=/dev/zero bs=64k count=128 2>/dev/null | "
                        f"nc -w 5 {PORTAL} 5501; echo NC-DONE $?", 180)
        dt = time.monotonic() - t0
        got = sink.communicate(timeout=60)[0].strip()
    finally:
        if sink.poll() is None:
            sink.kill()
    check(got == str(128 * 65536), f"the namespace received {got!r} bytes of 8 MiB:\n{out}")
    print(f"  guest -> namespace TCP: 8 MiB in {dt:.1f} s "
          f"({8 * 8 / dt:.1f} Mbit/s incl. console round trips)", flush=True)
    # iperf2 (Debian's, in the initramfs) from the guest to the namespace's.
    srv = subprocess.Popen(["ip", "netns", "exec", lb.net.ns, "iperf", "-s", "-B", PORTAL,
                            "-p", "5001", "-y", "C"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        with GuestShell(ha, va) as g:
            out = g.run(f"iperf -c {PORTAL} -p 5001 -t 5 -f m", 90)
    finally:
        time.sleep(1)
        srv.terminate()
        csv = srv.communicate(timeout=30)[0]
    m = re.search(r"sec\s+([\d.]+) MBytes\s+([\d.]+) Mbits/sec", out)
    check(m and float(m.group(2)) > 0, f"iperf in the guest:\n{out}")
    rows = [ln.split(",") for ln in csv.splitlines() if ln.count(",") >= 8]
    check(rows and int(rows[-1][7]) > 0, f"the namespace's iperf saw nothing:\n{csv}")
    print(f"  guest -> namespace iperf: {m.group(2)} Mbit/s over 5 s "
          f"({int(rows[-1][7]) >> 20} MiB at the server)", flush=True)
    # Spoofing: the guest takes another MAC; its frames are dropped.
    sw0 = field(ca.run("switch"), r"^net0\s+guest\s+\S+\s+\d+\s+\d+\s+\d+\s+(\d+)")
    with GuestShell(ha, va) as g:
        g.run("ip link set eth0 down; ip link set eth0 address 02:00:00:00:66:66; "
              "ip link set eth0 up")
        out = g.run(f"ping -c 3 -W 2 {PORTAL}", 40)
        check(re.search(r"3 packets transmitted, 0 (packets )?received", out),
              f"a spoofed MAC got through:\n{out}")
    sw1 = field(ca.run("switch"), r"^net0\s+guest\s+\S+\s+\d+\s+\d+\s+\d+\s+(\d+)")
    check(sw1 > sw0, f"no spoofed frame counted ({sw0} -> {sw1})")
    # Back to its own MAC (vm info has it), and traffic flows again.
    mac = re.search(r"net0: virtio-net .* mac ([0-9a-f:]{17})", ca.run(f"vm info {va}")).group(1)
    with GuestShell(ha, va) as g:
        g.run(f"ip link set eth0 address {mac}; ip link set eth0 up")
        out = g.run(f"ping -c 3 -W 5 {PORTAL}", 40)
    check(re.search(r"3 packets transmitted, 3 (packets )?received", out),
          f"after restoring its MAC:\n{out}")


@test
def virtio_disk_fenced():
    """Another host fences the LUN: the guest's writes fail with I/O
    errors, its VM keeps running, the host log says why once."""
    lb = lab()
    h, con, vm = ensure_guest_a()
    hb, cb = lb.net.hosts[1], lb.cons[1]
    hb.lab_con = cb
    attach(hb, "sys", 1)
    out = cb.run("disk fence sys", 60)
    check("fenced" in out, f"fence from tern-b:\n{out}")
    with GuestShell(h, vm) as g:
        out = g.run("dd if=/dev/urandom of=/dev/vda bs=4k count=4 seek=4000 oflag=direct; "
                    "echo DD-RC $?", 120)
    check(re.search(r"DD-RC [1-9]", out) and re.search(r"I/O error|Input/output", out),
          f"the fenced guest's write:\n{out}")
    info = con.run(f"vm info {vm}")
    check(re.search(r"^state: running", info, re.M), f"the VM stopped:\n{info}")
    check(field(info, r"errors (\d+)") > 0, info)
    log = con.raw("log 400", 60)
    check(log.count("lost the disk to another host") == 1,
          "the host log should say once why the guest sees errors:\n" + log[-3000:])
    with GuestShell(h, vm) as g:
        out = g.run("echo STILL-HERE")
    check("STILL-HERE" in out, out)
    cb.run("disk detach sys", 60)


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
