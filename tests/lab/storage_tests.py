#!/usr/bin/env python3
"""Storage tests: Tern's iSCSI initiator against Debian's tgtd, and against
a hostile fake target, on the lab's private LAN (netlab.py, tgt.py).

tgtd runs in the lab namespace (10.77.0.254:3260) with file-backed LUNs,
so every byte Tern writes is checked on the backing file on this machine,
and every byte it reads is compared with the file.  Two Tern hosts share
one LUN for the fencing test.  tgtd is killed (SIGKILL) and restarted in
the middle of a write: it forgets every reservation key, so the held write
must fail unsent and the disk be lost until `disk rejoin`.

    python3 tests/lab/storage_tests.py [--only REGEX] [--list]
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402
import migrate_tests  # noqa: E402  (the ternctl sessions)
from tgt import Tgtd  # noqa: E402
from fake_iscsi_target import FakeTarget  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PORTAL = "10.77.0.254"
IQN = "iqn.2026-11.lab.tern:"
BS = 512
CHAP_USER, CHAP_SECRET = "alice", "alicesecret12"
MUTUAL_USER, MUTUAL_SECRET = "tgt", "targetsecret12"
CFG = None
check = ternlab.check
cmd = migrate_tests.cmd
_lab = {}

# tid: (name, MiB): plain, CHAP, shared by two hosts, crash, tern.cfg, a
# sparse 3 TiB LUN (blocks past 2^32: READ/WRITE(16)), and two thin LUNs
# (UNMAP, WRITE SAME with UNMAP), one of 8 GiB for ranges past 4 GiB.
TARGETS = {1: ("plain", 64), 2: ("chap", 16), 3: ("shared", 16), 4: ("crash", 128),
           5: ("boot", 8), 6: ("big", 3 << 20), 7: ("thin", 64), 8: ("thinbig", 8 << 10)}
THIN = (7, 8)


def url(tid, port=3260):
    return f"iscsi://{PORTAL}:{port}/{IQN}{TARGETS[tid][0]}/1"


class Lab:
    """Two Tern hosts (B attaches a disk from tern.cfg) and one tgtd."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="tern-storage-", dir=CFG.workdir)
        extra = {1: f"disk = boot0 {url(5)}\n"}
        self.net = netlab.NetLab(hosts=2, esp_dir=CFG.esp, logdir=CFG.logdir, mem="512M",
                                 extra_cfg=extra)
        self.tgt = None

    def start(self):
        self.net.start()
        try:
            self.tgt = Tgtd(self.net.ns, portal=f"{PORTAL}:3260", workdir=self.work)
            self.tgt.start()
            for tid, (name, mib) in TARGETS.items():
                self.tgt.add_target(tid, IQN + name)
                self.tgt.add_lun(tid, 1, self.lun_path(tid), size_bytes=mib << 20,
                                 thin=tid in THIN)
                self.tgt.bind_all(tid)
            for name in ("HeaderDigest", "DataDigest"):   # offered, not forced
                self.tgt.set_param(1, name, "CRC32C,None")
            self.tgt.set_chap(2, CHAP_USER, CHAP_SECRET)
            self.tgt.set_mutual(2, MUTUAL_USER, MUTUAL_SECRET)
            self.net.wait_prompts(120)
            self.net.secret_path = self.net.secret_file()
            for h in self.net.hosts:
                h.lab = self.net
        except BaseException:
            self.stop()
            raise
        return self

    def lun_path(self, tid):
        return os.path.join(self.work, f"lun-{TARGETS[tid][0]}.img")

    def stop(self):
        migrate_tests.close_sessions()
        if self.tgt:
            self.tgt.stop()
        self.net.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def lab():
    if "main" not in _lab:
        _lab["main"] = Lab().start()
    lb = _lab["main"]
    for h in lb.net.hosts:       # every test starts with only tern.cfg's disk
        for name in re.findall(r"^(\S+)\s+(?:connecting|probing|ready|recovering|lost|"
                               r"failed)", cmd(h, "disk list"), re.M):
            if name != "boot0":
                cmd(h, f"disk detach {name}", timeout=60)
    return lb


def stop_labs():
    for lb in list(_lab.values()):
        lb.stop()
    _lab.clear()


# --- helpers -------------------------------------------------------------

def file_sha(path, lba, count):
    with open(path, "rb") as f:
        f.seek(lba * BS)
        return hashlib.sha256(f.read(count * BS)).hexdigest()


def pattern_sha(byte, count):
    return hashlib.sha256(bytes([byte]) * (count * BS)).hexdigest()


def disk_sha(h, name, lba, count, timeout=120):
    out = cmd(h, f"disk read {name} {lba} {count}", timeout)
    m = re.match(r"([0-9a-f]{64})\s", out)
    check(m, f"disk read {name} {lba} {count}: {out}")
    return m.group(1)


def attach(h, name, u, opts="", timeout=60):
    out = cmd(h, f"disk attach {name} {u} {opts}".strip(), timeout)
    check("ready" in out and "error" not in out, f"attach {name}: {out}")
    return out


def write(h, name, lba, count, byte, timeout=120):
    out = cmd(h, f"disk write {name} {lba} {count} {byte:#04x}", timeout)
    check("flushed" in out and "error" not in out, f"write {name} {lba}+{count}: {out}")
    return out


def info(h, name):
    return cmd(h, f"disk info {name}")


def alive(h):
    out = cmd(h, "status")
    check("uptime" in out, f"host stopped answering: {out}")


def write_read_check(h, name, path, cases):
    """Write each (lba, count, byte) from Tern; the file must hold it and
    `disk read` must agree with the file."""
    for lba, count, byte in cases:
        write(h, name, lba, count, byte)
        want = pattern_sha(byte, count)
        check(file_sha(path, lba, count) == want,
              f"backing file at {lba}+{count} does not hold {byte:#04x}")
        check(disk_sha(h, name, lba, count) == want, f"disk read {lba}+{count} differs")


# --- tests ---------------------------------------------------------------

def t_discovery():
    lb = lab()
    out = cmd(lb.net.hosts[0], f"disk discover {PORTAL}")
    for tid, (name, _) in TARGETS.items():
        check(IQN + name in out, f"discovery lacks {name}: {out}")
    check(f"portal {PORTAL}:3260" in out, f"no portal listed: {out}")
    check(re.search(rf"{len(TARGETS)} target\(s\)", out), out)
    out = cmd(lb.net.hosts[0], "disk discover 10.77.0.253")
    check(out.startswith("error:"), f"discovery of a silent address: {out}")


def t_read_write():
    lb = lab()
    a = lb.net.hosts[0]
    path = lb.lun_path(1)
    out = attach(a, "d0", url(1))
    check("131072 blocks of 512 bytes" in out, out)
    out = info(a, "d0")
    for want in ("state:       ready", "IET", "HeaderDigest=None",
                 "reservation: type 5 held by", "(this host)"):
        check(want in out, f"disk info lacks {want!r}: {out}")
    # One block, a run that splits into many commands, the last blocks.
    write_read_check(a, "d0", path, [(0, 1, 0xab), (1000, 20000, 0x5c),
                                     (131072 - 9, 9, 0xe7)])
    # Bytes written behind Tern's back are what it reads.
    data = os.urandom(300 * BS)
    with open(path, "r+b") as f:
        f.seek(50000 * BS)
        f.write(data)
    check(disk_sha(a, "d0", 50000, 300) == hashlib.sha256(data).hexdigest(),
          "disk read does not match bytes written into the backing file")
    for bad in ("disk read d0 131072 1", "disk read d0 131000 100", "disk write d0 0 0 1",
                "disk write d0 0 1 256", "disk read nosuch 0 1",
                "disk attach d0 " + url(1), "disk attach x1 iscsi://10.77.0.254/bad/1",
                "disk attach x1 " + url(1) + " chap=nocolon"):
        out = cmd(a, bad)
        check(out.startswith("error:"), f"{bad!r} was accepted: {out}")
    alive(a)
    cmd(a, "disk detach d0")
    check("d0" not in cmd(a, "disk list"), "d0 still listed after detach")


def t_barriers():
    """Sixteen writes in flight, a barrier write, a read, to the same blocks:
    the read sees the barrier's bytes every round (without the barrier the
    same check fails every round against tgt: seen by hand)."""
    lb = lab()
    a = lb.net.hosts[0]
    attach(a, "bq", url(1))
    out = cmd(a, "disk barriercheck bq rounds=50", 300)
    check("0 read(s) saw bytes from before the barrier: PASS" in out, out)
    cmd(a, "disk detach bq")


def t_large_lun():
    lb = lab()
    a = lb.net.hosts[0]
    blocks = (3 << 40) // BS
    out = attach(a, "big", url(6))
    check(f"{blocks} blocks of 512 bytes" in out, f"capacity of a 3 TiB LUN: {out}")
    # Across the 2^32 boundary (WRITE(16)), far beyond it, and the end.
    write_read_check(a, "big", lb.lun_path(6), [((1 << 32) - 8, 16, 0x61),
                                                ((5 << 30) + 3, 700, 0x62),
                                                (blocks - 1, 1, 0x63)])
    cmd(a, "disk detach big")


def t_digests():
    lb = lab()
    a = lb.net.hosts[0]
    attach(a, "dg", url(1), "digest=crc32c")
    out = info(a, "dg")
    check("HeaderDigest=CRC32C DataDigest=CRC32C" in out, f"digests not in use: {out}")
    write_read_check(a, "dg", lb.lun_path(1), [(4096, 4096, 0x3d)])
    cmd(a, "disk detach dg")


def t_chap():
    lb = lab()
    a = lb.net.hosts[0]
    for opts, why in (("", "authentication failed"),
                      (f"chap={CHAP_USER}:wrongsecret99", "authentication failed"),
                      (f"chap={CHAP_USER}:{CHAP_SECRET} mutual={MUTUAL_USER}:notthesecret",
                       "CHAP_R")):
        out = cmd(a, f"disk attach dc {url(2)} {opts}".strip(), 60)
        check(out.startswith("error:") and why in out, f"attach with {opts!r}: {out}")
        check("wrongsecret" not in out and "notthesecret" not in out,
              f"the error quotes a secret: {out}")
        check("dc " not in cmd(a, "disk list"), "a refused disk stays listed")
    attach(a, "dc", url(2), f"chap={CHAP_USER}:{CHAP_SECRET} "
           f"mutual={MUTUAL_USER}:{MUTUAL_SECRET}")
    check("auth=CHAP (mutual)" in info(a, "dc"), info(a, "dc"))
    write_read_check(a, "dc", lb.lun_path(2), [(7, 64, 0x42)])
    cmd(a, "disk detach dc")


def t_from_tern_cfg():
    lb = lab()
    b = lb.net.hosts[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if re.search(r"^boot0\s+ready", cmd(b, "disk list"), re.M):
            break
        time.sleep(1)
    check(re.search(r"^boot0\s+ready", cmd(b, "disk list"), re.M),
          f"tern.cfg's disk is not ready: {cmd(b, 'disk list')}")
    write_read_check(b, "boot0", lb.lun_path(5), [(0, 16, 0x0b)])


def fill_file(path, byte, count):
    with open(path, "r+b") as f:
        chunk = bytes([byte]) * (1 << 20)
        for _ in range(count * BS // len(chunk)):
            f.write(chunk)


def t_tgtd_restart_held_writes_lost():
    """tgtd (reservations in memory only, PTPL_C 0) is killed in the middle
    of a write and restarted: on the reconnect Tern finds no keys while
    writes wait, and cannot tell a restart from a pre-emption before it.
    The disk goes lost: the write fails, nothing is re-registered, nothing
    held is sent (the file keeps what "the new owner" put there while
    tgtd was down), `disk info` says why; `disk rejoin` restores service.
    Restarted while idle (no writes held), it registers again by itself."""
    lb = lab()
    a = lb.net.hosts[0]
    path = lb.lun_path(4)
    attach(a, "dk", url(4))
    count = 128 * 2048          # 128 MiB: the whole LUN
    result = {}

    def writer():
        try:
            result["out"] = cmd(a, f"disk write dk 0 {count} 0x77", 300)
        except Exception as e:  # reported below
            result["out"] = f"exception: {e}"

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.3)
    os.kill(lb.tgt.pid, signal.SIGSTOP)     # freeze it mid-write, then kill it
    check(t.is_alive(), f"the write ended before the kill: {result}")
    lb.tgt.kill()
    fill_file(path, 0x5a, count)            # another host's data meanwhile
    time.sleep(1)
    lb.tgt.restart()
    t.join(300)
    out = result.get("out", "")
    print(f"  the write: {out.strip()}", flush=True)
    check(out.startswith("error:") and "lost the disk" in out,
          f"the held write did not fail: {out}")
    check(file_sha(path, 0, count) == pattern_sha(0x5a, count),
          "a held write was sent after the target forgot the keys")
    out = info(a, "dk")
    check(re.search(r"state:\s+lost", out) and "forgot every key" in out and
          "not registered" in out, f"disk info after the restart: {out}")
    print("  " + re.search(r"last error:\s+(.*)", out).group(1), flush=True)
    out = cmd(a, "disk keys dk")
    check("registered keys: 0" in out, f"Tern registered again by itself: {out}")
    print("  disk keys: " + out.strip().replace("\n", " / "), flush=True)
    out = cmd(a, "disk write dk 0 8 0x66")
    check(out.startswith("error:"), f"a lost disk took a write: {out}")
    check(file_sha(path, 0, count) == pattern_sha(0x5a, count), "the lost disk wrote")
    out = cmd(a, "disk rejoin dk")
    check("rejoined" in out and "ready again" in out, f"rejoin: {out}")
    print("  " + out.strip(), flush=True)
    write_read_check(a, "dk", path, [(0, 64, 0x88)])
    check("registered keys: 1" in cmd(a, "disk keys dk"), "one key after the rejoin")
    # Idle: nothing held, so a restart is only a restart.
    before = int(re.search(r"(\d+) reconnect\(s\)", info(a, "dk")).group(1))
    lb.tgt.restart()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = info(a, "dk")
        m = re.search(r"(\d+) reconnect\(s\)", out)
        if m and int(m.group(1)) > before and re.search(r"state:\s+ready", out) and \
                "(registered" in out:
            break
        time.sleep(2)
    check(re.search(r"state:\s+ready", out) and "(registered" in out,
          f"an idle disk did not register again after a restart: {out}")
    write_read_check(a, "dk", path, [(64, 64, 0x99)])
    check("registered keys: 1" in cmd(a, "disk keys dk"), "one key after the idle restart")
    check("no APTPL" in info(a, "dk"), f"tgt has no PTPL_C, yet: {info(a, 'dk')}")
    cmd(a, "disk detach dk")


def t_fake_drop_held_writes_lost():
    """The fake target drops the connection instead of executing a WRITE;
    on the reconnect READ KEYS shows no keys (drop-forget-keys) or fails
    (drop-pr-in-fail).  The write fails, unsent; the disk is lost and says
    why; nothing is registered (the PR generation does not move); `disk
    rejoin` restores it.  The fake says PTPL_C: Tern registers with APTPL."""
    lb = lab()
    a = lb.net.hosts[0]
    cases = (("drop-forget-keys", "forgot every key"), ("drop-pr-in-fail", "READ KEYS failed"))
    for i, (mode, why) in enumerate(cases):
        port = 3340 + i
        fake = FakeTarget(f"{PORTAL}:{port}", mode=mode, after=0, iqn=IQN + "fake",
                          netns=lb.net.ns, quiet=True, ptpl=True,
                          log=os.path.join(CFG.logdir, f"fake-target-{mode}.log"))
        fake.start()
        try:
            attach(a, "fk", f"iscsi://{PORTAL}:{port}/{IQN}fake/1")
            out = cmd(a, "disk write fk 0 64 0x44", 120)
            print(f"  {mode}: {out.strip()}", flush=True)
            check(fake.injected, f"{mode}: nothing injected: {out}")
            check(out.startswith("error:") and "lost the disk" in out,
                  f"{mode}: the held write did not fail: {out}")
            check(fake.writes_after_drop == 0 and bytes(fake.disk[:64 * BS]) == bytes(64 * BS),
                  f"{mode}: the held write was sent again ({fake.writes_after_drop} WRITEs)")
            check(fake.pr_gen == fake.gen_at_drop,
                  f"{mode}: Tern registered again by itself (PR generation "
                  f"{fake.gen_at_drop} -> {fake.pr_gen})")
            out = info(a, "fk")
            check(re.search(r"state:\s+lost", out) and why in out and "not registered" in out,
                  f"{mode}: disk info: {out}")
            out = cmd(a, "disk rejoin fk", 60)
            check("rejoined" in out and "ready again" in out, f"{mode}: rejoin: {out}")
            write(a, "fk", 0, 64, 0x45)
            check(bytes(fake.disk[:64 * BS]) == bytes([0x45]) * (64 * BS),
                  f"{mode}: the write after the rejoin is not on the target")
            out = info(a, "fk")
            check("APTPL: kept" in out and fake.pr_aptpl is True,
                  f"{mode}: not registered with APTPL (fake says PTPL_C): {out}")
            alive(a)
        finally:
            if re.search(r"^fk\s", cmd(a, "disk list"), re.M):
                cmd(a, "disk detach fk", 60)
            fake.stop()


def t_fence():
    lb = lab()
    a, b = lb.net.hosts
    path = lb.lun_path(3)
    attach(a, "sh", url(3))
    out = attach(b, "sh", url(3))
    check("reserved by this host" not in out, f"B reserved a LUN A holds: {out}")
    write(a, "sh", 0, 100, 0xaa)
    out = cmd(b, "disk keys sh")
    check(re.search(r"registered keys: 2", out) and "holder" in out, out)
    key_b = re.search(r"key:\s+([0-9a-f]{16})", info(b, "sh")).group(1)
    out = cmd(b, "disk fence sh")
    check("fenced: pre-empted 1 other key" in out, f"fence: {out}")
    out = cmd(a, "disk write sh 0 100 0xbb")
    check(out.startswith("error:") and "lost the disk" in out and
          "RESERVATION CONFLICT" in out, f"A's write after the fence: {out}")
    check(re.search(r"state:\s+lost", info(a, "sh")), info(a, "sh"))
    out = cmd(a, "disk write sh 200 100 0xbb")
    check(out.startswith("error:"), f"a lost disk took a write: {out}")
    check(file_sha(path, 0, 100) == pattern_sha(0xaa, 100), "A's fenced write reached the file")
    check(file_sha(path, 200, 100) != pattern_sha(0xbb, 100), "A's fenced write reached the file")
    write(b, "sh", 0, 100, 0xcc)
    check(file_sha(path, 0, 100) == pattern_sha(0xcc, 100), "B's write is not on the file")
    out = cmd(b, "disk keys sh")
    check(re.search(r"registered keys: 1", out) and f"holder {key_b}" in out, out)
    alive(a)
    cmd(a, "disk detach sh")
    cmd(b, "disk detach sh")


def t_rejoin():
    """The reservation hand-over a migration makes, from the console: B
    fences (a takeover), A's write meets the conflict and A loses the
    disk; A rejoins (what a prepare runs) and may write again beside B;
    A fences back; now B is the one lost, and B rejoins."""
    lb = lab()
    a, b = lb.net.hosts
    path = lb.lun_path(3)
    attach(a, "sh", url(3))
    attach(b, "sh", url(3))
    key_a = re.search(r"key:\s+([0-9a-f]{16})", info(a, "sh")).group(1)
    key_b = re.search(r"key:\s+([0-9a-f]{16})", info(b, "sh")).group(1)
    check(key_a != key_b, f"both hosts have key {key_a}")
    write(a, "sh", 0, 50, 0x11)

    out = cmd(b, "disk fence sh")
    check("fenced: pre-empted 1 other key" in out, f"B's fence: {out}")
    out = cmd(a, "disk write sh 0 50 0x22")
    check(out.startswith("error:") and "RESERVATION CONFLICT" in out, f"A after the fence: {out}")
    check(re.search(r"state:\s+lost", info(a, "sh")), info(a, "sh"))
    check(file_sha(path, 0, 50) == pattern_sha(0x11, 50), "A's fenced write reached the file")

    out = cmd(a, "disk rejoin sh")
    check("rejoined" in out and "registered again" in out and "ready again" in out and
          "held by another host" in out, f"A's rejoin: {out}")
    check(re.search(r"state:\s+ready", info(a, "sh")) and
          re.search(r"key:\s+\S+ \(registered;", info(a, "sh")), info(a, "sh"))
    out = cmd(b, "disk keys sh")
    check("registered keys: 2" in out and f"holder {key_b}" in out, f"after A's rejoin: {out}")
    # Write Exclusive - Registrants Only: a registrant writes under B's reservation.
    write(a, "sh", 0, 50, 0x33)
    check(file_sha(path, 0, 50) == pattern_sha(0x33, 50), "A's write after the rejoin")
    out = cmd(a, "disk rejoin sh")
    check("was still registered" in out and "ready again" not in out, f"a second rejoin: {out}")

    out = cmd(a, "disk fence sh")
    check("fenced: pre-empted 1 other key" in out, f"A's fence: {out}")
    write(a, "sh", 0, 50, 0x44)
    out = cmd(b, "disk write sh 100 50 0x55")
    check(out.startswith("error:") and "RESERVATION CONFLICT" in out, f"B after A's fence: {out}")
    check(re.search(r"state:\s+lost", info(b, "sh")), info(b, "sh"))
    check(file_sha(path, 100, 50) != pattern_sha(0x55, 50), "B's fenced write reached the file")
    out = cmd(a, "disk keys sh")
    check("registered keys: 1" in out and f"holder {key_a}" in out, f"after A's fence: {out}")

    out = cmd(b, "disk rejoin sh")
    check("registered again" in out and "ready again" in out, f"B's rejoin: {out}")
    write(b, "sh", 100, 50, 0x66)
    check(file_sha(path, 100, 50) == pattern_sha(0x66, 50), "B's write after its rejoin")
    check(file_sha(path, 0, 50) == pattern_sha(0x44, 50), "A's blocks changed")
    out = cmd(a, "disk keys sh")
    check("registered keys: 2" in out and f"holder {key_a}" in out, f"after B's rejoin: {out}")

    # A guest that comes back to a host it left: that host's disk still
    # says ready (it wrote nothing since), but its key is gone.  The
    # rejoin (a migration's prepare) finds that out and registers again.
    out = cmd(b, "disk fence sh")
    check("fenced: pre-empted 1 other key" in out, f"B's second fence: {out}")
    check(re.search(r"state:\s+ready", info(a, "sh")), info(a, "sh"))
    out = cmd(a, "disk rejoin sh")
    check("registered again" in out and "ready again" not in out, f"A's rejoin, ready: {out}")
    write(a, "sh", 200, 50, 0x77)
    check(file_sha(path, 200, 50) == pattern_sha(0x77, 50), "A's write after the rejoin")
    check("disk rejoin" in cmd(a, "help"), "help does not list disk rejoin")
    alive(a)
    alive(b)
    cmd(a, "disk detach sh")
    cmd(b, "disk detach sh")


# What each malformation must produce on the Tern side (a regex of the
# error the attach or the I/O reports).
HOSTILE = {
    "bad-opcode": r"opcode|reserved",
    "huge-dsl": r"DataSegmentLength|too long|size",
    "bad-itt": r"ITT|task",
    "statsn-jump": r"StatSN",
    "datain-overflow": r"Data-In|overflow|beyond",
    "header-digest": r"digest",
    "truncated": r"closed|lost",
    "garbage": r"bad PDU|opcode|reserved|closed",
    "reject": r"Reject|reject",
    "login-garbage": r"login|text|key",
    "silent": r"timed out|no answer",
    "short-read": r"short read",
}


def t_hostile_target():
    lb = lab()
    a = lb.net.hosts[0]
    for i, (mode, want) in enumerate(HOSTILE.items()):
        port = 3300 + i
        fake = FakeTarget(f"{PORTAL}:{port}", mode=mode, iqn=IQN + "fake", netns=lb.net.ns,
                          after=0 if mode == "login-garbage" else 3,
                          log=os.path.join(CFG.logdir, f"fake-target-{mode}.log"),
                          quiet=True)
        fake.start()
        try:
            u = f"iscsi://{PORTAL}:{port}/{IQN}fake/1"
            out = cmd(a, f"disk attach fk {u}" + (" digest=header" if mode == "header-digest"
                                                 else ""), 90)
            if "ready" in out:
                # The probe was not enough commands: I/O meets the bad PDU.
                out = cmd(a, "disk read fk 0 64", 150)
                out += "\n" + info(a, "fk")
            check(fake.injected, f"{mode}: the fake target injected nothing: {out}")
            check(re.search(want, out, re.I), f"{mode}: expected /{want}/, got: {out}")
            said = re.search(r"(?:error: |last error:\s+)(.*)", out)
            print(f"  {mode}: {said.group(1) if said else out.splitlines()[0]}", flush=True)
            alive(a)
        finally:
            if re.search(r"^fk\s", cmd(a, "disk list"), re.M):
                cmd(a, "disk detach fk", 60)
            fake.stop()
    alive(a)


def t_hostile_mid_io():
    """A malformed PDU in the middle of a large read: the connection is
    dropped, Tern logs in again, reissues, and the data is still right."""
    lb = lab()
    a = lb.net.hosts[0]
    for i, mode in enumerate(("bad-itt", "datain-overflow", "huge-dsl", "reject")):
        port = 3320 + i
        fake = FakeTarget(f"{PORTAL}:{port}", mode=mode, after=30, iqn=IQN + "fake",
                          netns=lb.net.ns, quiet=True,
                          log=os.path.join(CFG.logdir, f"fake-target-mid-{mode}.log"))
        fake.start()
        try:
            attach(a, "fk", f"iscsi://{PORTAL}:{port}/{IQN}fake/1")
            got = disk_sha(a, "fk", 0, 32768)
            check(fake.injected, f"{mode}: nothing was injected")
            check(got == hashlib.sha256(bytes(fake.disk[:32768 * BS])).hexdigest(),
                  f"{mode}: the data read across the reconnect is wrong")
            out = info(a, "fk")
            check(re.search(r"[1-9]\d* reconnect\(s\)", out) and "last error" in out,
                  f"{mode}: no reconnect or no error recorded: {out}")
            print(f"  {mode}: " + re.search(r"last error:\s+(.*)", out).group(1), flush=True)
            alive(a)
        finally:
            if re.search(r"^fk\s", cmd(a, "disk list"), re.M):
                cmd(a, "disk detach fk", 60)
            fake.stop()


def t_command_timeout():
    """A target that answers pings but never one command: the request
    fails after the command timeout (60 s) instead of hanging, the session
    starts afresh, and the next read is right."""
    lb = lab()
    a = lb.net.hosts[0]
    fake = FakeTarget(f"{PORTAL}:3330", mode="mute-cmd", after=30, iqn=IQN + "fake",
                      netns=lb.net.ns, quiet=True,
                      log=os.path.join(CFG.logdir, "fake-target-mute-cmd.log"))
    fake.start()
    try:
        attach(a, "fk", f"iscsi://{PORTAL}:3330/{IQN}fake/1")
        t0 = time.monotonic()
        out = cmd(a, "disk read fk 0 32768", 200)
        took = time.monotonic() - t0
        check(fake.injected, f"nothing was muted: {out}")
        check(out.startswith("error:") and "no answer in 60 s" in out,
              f"a command without an answer: {out}")
        check(55 < took < 120, f"the read failed after {took:.0f} s")
        print(f"  failed after {took:.0f} s: {out}", flush=True)
        got = disk_sha(a, "fk", 0, 32768)
        check(got == hashlib.sha256(bytes(fake.disk[:32768 * BS])).hexdigest(),
              "the read after the reset is wrong")
        alive(a)
    finally:
        if re.search(r"^fk\s", cmd(a, "disk list"), re.M):
            cmd(a, "disk detach fk", 60)
        fake.stop()


def t_services_while_blocked():
    """A 30 s `disk bench` blocks only the console that typed it: during it,
    an outgoing live migration keeps sending, and a second network console
    and the serial console each answer `status` within 1 s (every wait of a
    blocking command runs the main loop's services,
    kernel/platform/mainloop.h), and a second `disk bench` is refused
    rather than run inside the first."""
    lb = lab()
    a, b = lb.net.hosts
    attach(a, "bn", url(1))
    migrate_tests.reset(lb.net)
    migrate_tests.start_guest(a, "sv", migrate_tests.IDLE_DELAY)
    out = cmd(a, f"migrate sv {lb.net.address(1)} live bandwidth=1")
    check(re.search(r"^migrating sv ", out, re.M), out)
    migrate_tests.wait_status(a, r"outgoing: .*: pre-copy", 60)
    bench = {}
    bt = threading.Thread(target=lambda: bench.setdefault(
        "out", cmd(a, "disk bench bn read seq 64K 30", 120)), daemon=True)
    second = migrate_tests.Session(lb.net, 0)
    lat, sent = [], []
    try:
        t0 = time.monotonic()
        bt.start()
        time.sleep(2)
        while bt.is_alive() and time.monotonic() - t0 < 28:
            s0 = time.monotonic()
            out = second.run("status", 10)
            lat.append(time.monotonic() - s0)
            check("uptime" in out, f"second console: status answered {out!r}")
            m = re.search(r"^sent: (\d+) bytes", second.run("migrate status", 10), re.M)
            check(m, "second console: no 'sent:' line in migrate status")
            sent.append(int(m.group(1)))
            if len(sent) == 2:
                out = second.run("disk bench bn read seq 64K 5", 10)
                check("error: disk bench: already running" in out,
                      f"a second disk bench while one runs: {out!r}")
            s0 = time.monotonic()
            out = a.exchange("status", 10)[1]
            lat.append(time.monotonic() - s0)
            check("uptime" in out, f"serial console: status answered {out!r}")
            time.sleep(1.5)
        bt.join(90)
    finally:
        second.close()
    check("out" in bench and re.search(r"^bench bn read seq", bench["out"], re.M),
          f"disk bench: {bench.get('out')!r}")
    check(len(sent) >= 5, f"only {len(sent)} samples during the bench")
    check(max(lat) < 1.0, f"status took up to {max(lat):.2f} s during the bench "
          f"(samples {', '.join(f'{x:.2f}' for x in lat)})")
    check(sent[-1] > sent[0], f"the migration sent nothing during the bench: {sent}")
    print(f"  during a 30 s disk bench: {len(lat)} status replies, slowest "
          f"{max(lat) * 1000:.0f} ms; migration sent {sent[-1] - sent[0]} bytes "
          f"in {len(sent)} samples", flush=True)
    out = cmd(a, "migrate cancel")
    check("migration cancelled" in out, out)
    migrate_tests.verify(a, "sv")
    cmd(a, "vm destroy sv")


def zero_sha(count):
    return pattern_sha(0, count)


def allocated(path):
    return os.stat(path).st_blocks * 512


def t_unmap_write_same():
    """A thin LUN offers UNMAP and WRITE SAME (VPD 0xb0, 0xb2): `disk zero`
    zeroes blocks on the backing file (WRITE SAME(16), split at 65536
    blocks a command), `disk zero ... unmap` and `disk unmap` leave zeros
    there and punch holes (the file's allocated bytes shrink).  A plain
    LUN offers neither and the commands are refused."""
    lb = lab()
    a = lb.net.hosts[0]
    path = lb.lun_path(7)
    nblk = TARGETS[7][1] << 11
    attach(a, "tp", url(7))
    out = info(a, "tp")
    m = re.search(r"^provisioning:.*$", out, re.M)
    print(f"  thin LUN:  {m.group(0) if m else out}", flush=True)
    check(m and "UNMAP (max 4194304 blocks, 4294967295 ranges)" in m.group(0) and
          "WRITE SAME (max 65536 blocks, may unmap)" in m.group(0) and "thin" in m.group(0),
          f"disk info of a thin LUN: {out}")
    attach(a, "pl", url(1))
    out = info(a, "pl")
    m = re.search(r"^provisioning:.*$", out, re.M)
    print(f"  plain LUN: {m.group(0) if m else out}", flush=True)
    check(m and m.group(0).startswith("provisioning: none"), f"disk info of a plain LUN: {out}")
    for bad in ("disk unmap pl 0 8", "disk zero pl 0 8", "disk unmap tp 0 0",
                f"disk unmap tp {nblk - 4} 8", f"disk zero tp {nblk} 1", "disk zero tp 0 8 junk",
                "disk unmap nosuch 0 8"):
        out = cmd(a, bad)
        check(out.startswith("error:"), f"{bad!r} was accepted: {out}")
    cmd(a, "disk detach pl", 60)

    # A pattern over the first 60 MiB, on the file.
    write(a, "tp", 0, 122880, 0x5a, timeout=300)
    check(file_sha(path, 0, 122880) == pattern_sha(0x5a, 122880), "the pattern is not on the file")
    full = allocated(path)
    check(full >= 60 << 20, f"the file holds only {full} bytes after 60 MiB of writes")

    # WRITE SAME of zeros, 100000 blocks: two commands (65536 + 34464).
    out = cmd(a, "disk zero tp 1000 100000", 300)
    check("zeroed blocks 1000+100000" in out and "error" not in out, f"disk zero: {out}")
    check(file_sha(path, 1000, 100000) == zero_sha(100000), "disk zero left non-zero bytes")
    check(file_sha(path, 0, 1000) == pattern_sha(0x5a, 1000), "disk zero touched blocks before")
    check(file_sha(path, 101000, 8) == pattern_sha(0x5a, 8), "disk zero touched blocks after")
    check(disk_sha(a, "tp", 1000, 100000) == zero_sha(100000), "disk read after disk zero")
    write(a, "tp", 0, 122880, 0x5a, timeout=300)

    # UNMAP of 8 MiB (4 KiB-aligned): zeros, and a hole in the file.
    before = allocated(path)
    out = cmd(a, "disk unmap tp 16384 16384", 120)
    check("unmapped blocks 16384+16384" in out and "error" not in out, f"disk unmap: {out}")
    check(file_sha(path, 16384, 16384) == zero_sha(16384), "disk unmap: the file is not zeros")
    check(file_sha(path, 16376, 8) == pattern_sha(0x5a, 8), "disk unmap touched blocks before")
    check(file_sha(path, 32768, 8) == pattern_sha(0x5a, 8), "disk unmap touched blocks after")
    check(disk_sha(a, "tp", 16384, 16384) == zero_sha(16384), "disk read after disk unmap")
    after = allocated(path)
    print(f"  disk unmap 8 MiB: file allocation {before >> 10} KiB -> {after >> 10} KiB",
          flush=True)
    check(before - after >= 7 << 20, f"UNMAP punched no hole: {before} -> {after} bytes")

    # WRITE SAME with the UNMAP bit: zeros and a hole as well.
    before = allocated(path)
    out = cmd(a, "disk zero tp 40960 8192 unmap", 120)
    check("zeroed (may unmap) blocks 40960+8192" in out, f"disk zero unmap: {out}")
    check(file_sha(path, 40960, 8192) == zero_sha(8192), "disk zero unmap: not zeros")
    check(file_sha(path, 40952, 8) == pattern_sha(0x5a, 8), "disk zero unmap touched before")
    check(file_sha(path, 49152, 8) == pattern_sha(0x5a, 8), "disk zero unmap touched after")
    after = allocated(path)
    print(f"  disk zero unmap 4 MiB: file allocation {before >> 10} KiB -> {after >> 10} KiB",
          flush=True)
    check(before - after >= 3 << 20, f"WRITE SAME UNMAP punched no hole: {before} -> {after}")

    # An odd range at the disk's end, and counters.
    out = cmd(a, f"disk unmap tp {nblk - 3} 3", 60)
    check("unmapped" in out and "error" not in out, f"disk unmap at the end: {out}")
    out = info(a, "tp")
    m = re.search(r"(\d+) unmaps \((\d+) blocks\), (\d+) write-zeroes \((\d+) blocks\)", out)
    print(f"  {m.group(0) if m else out}", flush=True)
    check(m and int(m.group(1)) >= 2 and int(m.group(2)) == 16384 + 3 and
          int(m.group(3)) >= 2 and int(m.group(4)) == 100000 + 8192, f"disk info counters: {out}")
    check(re.search(r"\b0 errors", out), f"errors on the thin LUN: {out}")
    cmd(a, "disk detach tp", 60)

    # 8 GiB in one go: Tern sends 2 GiB a command (tgt would turn one
    # 8 GiB descriptor into a 32-bit byte count of 0 and unmap nothing).
    big = lb.lun_path(8)
    nbig = TARGETS[8][1] << 11
    attach(a, "tb", url(8))
    marks = (100, 9 << 20, nbig - 8)      # 50 KiB, 4.5 GiB, the last blocks
    for verb in ("unmap", "zero"):
        for lba in marks:
            write(a, "tb", lba, 8, 0x77)
            check(file_sha(big, lba, 8) == pattern_sha(0x77, 8), f"no pattern at {lba}")
        arg = f"tb 0 {nbig}" + (" unmap" if verb == "zero" else "")
        out = cmd(a, f"disk {verb} {arg}", 300)
        check("blocks 0+" in out and "error" not in out, f"disk {verb} {arg}: {out}")
        for lba in marks:
            check(file_sha(big, lba, 8) == zero_sha(8), f"disk {verb} of 8 GiB left {lba}")
            check(disk_sha(a, "tb", lba, 8) == zero_sha(8), f"disk read {lba} after {verb}")
        check(allocated(big) < 1 << 20, f"{verb}: {allocated(big)} bytes still allocated")
        print(f"  disk {verb} {arg}: {out.strip()}", flush=True)
    alive(a)
    cmd(a, "disk detach tb", 60)


TESTS = [
    ("discovery", t_discovery),
    ("read_write", t_read_write),
    ("barriers", t_barriers),
    ("large_lun", t_large_lun),
    ("digests", t_digests),
    ("chap", t_chap),
    ("from_tern_cfg", t_from_tern_cfg),
    ("tgtd_restart_held_writes_lost", t_tgtd_restart_held_writes_lost),
    ("fake_drop_held_writes_lost", t_fake_drop_held_writes_lost),
    ("fence", t_fence),
    ("rejoin", t_rejoin),
    ("hostile_target", t_hostile_target),
    ("hostile_mid_io", t_hostile_mid_io),
    ("command_timeout", t_command_timeout),
    ("services_while_blocked", t_services_while_blocked),
    ("unmap_write_same", t_unmap_write_same),
]


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--workdir", default=os.path.join(REPO, "build"))
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    chosen = [(n, fn) for n, fn in TESTS if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    ternlab.require_tool("ip", "iproute2")
    ternlab.require_tool("tgtd", "tgt")
    ternlab.require_tool("tgtadm", "tgt")
    if not os.access(migrate_tests.TERNCTL, os.X_OK):
        raise ternlab.LabError(f"{migrate_tests.TERNCTL} missing: run make")
    return ternlab.run_suite(chosen, CFG.logdir, stop_labs)


if __name__ == "__main__":
    sys.exit(main())
