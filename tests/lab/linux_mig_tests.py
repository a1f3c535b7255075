#!/usr/bin/env python3
"""Migrating a Debian guest with its disk and NIC (issue 15): a 2-vCPU
Linux guest on a tgtd LUN (virtio-blk) and Tern's switch (virtio-net)
moves between the lab's two hosts while traffic and disk writes go on.

The lab is linux_io_tests.py's: tern-a (10.77.0.1) and tern-b (10.77.0.2),
3 CPUs each (the console's and the guest's two vCPUs), tgtd in the
namespace (10.77.0.254) with the 64 MiB LUN "sys", which both hosts
attach under that name.  The guest "lm" (256 MiB, vcpus=2, disk=sys,
nic=auto, 10.77.0.60) runs the initramfs's seqsrv (tests/linux/seqsrv.c:
a TCP stream of sequence numbers, the guest's clock in ns) and dwriter
(tests/linux/dwriter.c: fdatasync'ed, CRC-checked 4 KiB records on
/dev/vda).  In the namespace, SeqClient checks every record arrives in
order without a reset, PingMeter pings every 10 ms to measure what the
guest's peers see of each downtime, and check_dwriter_records reads
tgtd's backing file: every record up to the last one dwriter reported
durable must be whole.  Those three are plain functions and classes a
benchmark can import (they take the namespace name, not this suite's
lab).

Tests: the control without migration; live A->B->A under a TCP stream
and pings; live A->B->A under disk writes; after A->B, A's writes get
RESERVATION CONFLICT, the guest's clock did not jump and both vCPUs kept
running; refusals (no LUN, no free CPUs) leave the guest running on A and
nothing on B; a cut link during pre-copy and `migrate cancel` in each
phase leave it running on A with its disk and network; quick migration;
tern-b's QEMU killed during pre-copy (last: it stops the lab).

    python3 tests/lab/linux_mig_tests.py [--only REGEX] [--list]
"""

import argparse
import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402
import linux_tests  # noqa: E402  (guest_cmd, detach, the guest's prompt)
import linux_io_tests as lio  # noqa: E402  (the lab, attach, boot, GuestShell)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TERNCTL = os.path.join(REPO, "build", "tools", "ternctl")
VM, VM_ADDR = "lm", "10.77.0.60"
DEVICES = "vcpus=2 disk=sys nic=auto"
SYS_TID = 1                     # lio.TARGETS: tid 1 is "sys", 64 MiB
SEQ_PORT = 7100
SEQ_RATE = 200                  # records/s from seqsrv
DW_BASE = 8 << 20               # dwriter's log: 4096 slots of 4 KiB at 8 MiB
DW_SLOTS = 4096
DW_RATE = 20                    # records/s while a migration runs
PROBE_BASE, PROBE_SLOTS = 40 << 20, 256     # guest_intact's short runs, apart
FENCE_LBA = 130000              # A's probe write after the move: past the log
MIG_TIMEOUT = 900               # a 256 MiB guest under TCG, both ways
CFG = None
TESTS = []
check = ternlab.check
_procs = []                     # namespace helpers to kill at the end


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


# ---- importable: the namespace-side client, the ping meter, the LUN check ----

_SEQ_CLIENT = r"""
import json, select, socket, sys, time
addr, port, binary, idle = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "bin", float(sys.argv[4])
res = {"records": 0, "bad": None, "ended": None, "max_gap": 0.0, "max_gap_at": None,
       "gaps": [], "connect_s": None, "duration": 0.0}
t_start = time.monotonic()
s = None
while s is None:
    try:
        s = socket.create_connection((addr, port), timeout=5)
    except OSError as e:
        if time.monotonic() - t_start > 60:
            res["ended"] = f"cannot connect: {e}"
            print(json.dumps(res), flush=True)
            sys.exit(0)
        time.sleep(0.5)
res["connect_s"] = round(time.monotonic() - t_start, 3)
s.setblocking(False)
print("connected", flush=True)
buf = b""
t0 = last = time.monotonic()


def parse(buf):
    while True:
        if binary:
            if len(buf) < 8:
                return buf
            rec, buf = buf[:8], buf[8:]
            got = int.from_bytes(rec, "little")
        else:
            i = buf.find(b"\n")
            if i < 0:
                return buf
            rec, buf = buf[:i], buf[i + 1:]
            got = int(rec[4:]) if rec[:4] == b"seq " and rec[4:].isdigit() else None
        if got != res["records"]:
            res["bad"] = f"record {res['records']}: got {rec!r}, want seq {res['records']}"
            return None
        res["records"] += 1


while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 1.0)
    now = time.monotonic()
    if sys.stdin in r:
        line = sys.stdin.readline().strip()
        if line == "status":
            print(json.dumps(dict(res, duration=round(now - t0, 3))), flush=True)
        elif line in ("stop", ""):
            res["ended"] = "stopped"
            break
    if s in r:
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError as e:
            res["ended"] = f"connection error: {e}"
            break
        if not data:
            res["ended"] = "closed by the server"
            break
        gap = now - last
        if gap > res["max_gap"]:
            res["max_gap"], res["max_gap_at"] = round(gap, 3), round(time.time() - gap, 3)
        if gap > 0.2:
            res["gaps"].append([round(time.time() - gap, 3), round(gap, 3)])
        last = now
        buf = parse(buf + data)
        if buf is None:
            res["ended"] = "out of order"
            break
    elif now - last > idle:
        res["ended"] = f"no data for {idle:.0f} s"
        break
res["duration"] = round(time.monotonic() - t0, 3)
s.close()
print(json.dumps(res), flush=True)
"""


class _LineReader:
    """A child's stdout lines in a queue, for reads with a timeout."""

    def __init__(self, proc, parse=None):
        self.q = queue.Queue()
        self.parse = parse
        t = threading.Thread(target=self._run, args=(proc,), daemon=True)
        t.start()

    def _run(self, proc):
        for line in proc.stdout:
            if self.parse:
                self.parse(line)
            else:
                self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def get(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None


class SeqClient:
    """The namespace's end of seqsrv's stream: one TCP connection to
    addr:port in namespace ns; every record must be the next sequence
    number, and the connection must last until stop().  status() and
    stop() return a dict: records, bad (the first out-of-order record or
    None), ended (None while running; "stopped" is the good end), max_gap
    and max_gap_at (s, wall clock), gaps ([start, length] of every pause
    over 0.2 s), connect_s, duration."""

    def __init__(self, ns, addr, port=SEQ_PORT, binary=False, idle=180):
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-u", "-c", _SEQ_CLIENT, addr,
             str(port), "bin" if binary else "text", str(idle)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        _procs.append(self.p)
        self.lines = _LineReader(self.p)
        self.final = None

    def wait_connected(self, timeout=90):
        line = self.lines.get(timeout)
        if line == "connected":
            return None
        self.final = json.loads(line) if line and line.startswith("{") else \
            {"ended": f"the client said {line!r}", "records": 0}
        return self.final["ended"]

    def _ask(self, word, timeout):
        if self.final:
            return self.final
        try:
            self.p.stdin.write(word + "\n")
            self.p.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        line = self.lines.get(timeout)
        if line is None:
            return {"ended": f"no answer from the client within {timeout} s", "records": 0}
        rep = json.loads(line)
        if rep["ended"]:
            self.final = rep
        return rep

    def status(self, timeout=10):
        return self._ask("status", timeout)

    def stop(self, timeout=30):
        rep = self._ask("stop", timeout)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return rep


def seq_verdict(rep, min_records):
    """None if the stream was whole, else why not."""
    if rep.get("bad"):
        return rep["bad"]
    if rep.get("ended") != "stopped":
        return f"the stream ended early: {rep.get('ended')} after {rep['records']} records"
    if rep["records"] < min_records:
        return f"{rep['records']} records, want at least {min_records}"
    return None


class PingMeter:
    """`ping -D -i INTERVAL addr` from namespace ns for as long as it runs:
    silence(t0, t1) is the longest time without a reply around the wall
    clock window [t0, t1], what the guest's peers see of a downtime."""

    def __init__(self, ns, addr, interval=0.01):
        self.interval = interval
        self.replies = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-D", "-i",
                                   str(interval), addr], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        _procs.append(self.p)
        _LineReader(self.p, self._line)

    def _line(self, line):
        m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", line)
        if m:
            with self.lock:
                self.replies.append((float(m.group(1)), int(m.group(2))))

    def count(self):
        with self.lock:
            return len(self.replies)

    def silence(self, t0, t1):
        """(longest gap in s, pings lost) between the last reply before t0
        and the first after t1; a gap still open at t1 runs to now."""
        with self.lock:
            ts = sorted(r[0] for r in self.replies)
            seqs = sorted(r[1] for r in self.replies if t0 <= r[0] <= t1)
        before = [t for t in ts if t < t0]
        inside = [t for t in ts if t0 <= t <= t1]
        after = [t for t in ts if t > t1]
        pts = before[-1:] + inside + after[:1]
        if not after:
            pts.append(time.time())
        gap = max((b - a for a, b in zip(pts, pts[1:])), default=t1 - t0)
        lost = (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0
        return gap, lost

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


DW_REC = 4096
DW_MAGIC = b"TERNDWR1"


def parse_dwriter(text):
    """The last status line of dwriter's output: a dict with durable,
    records, errors, gap_ms, stopped (bool); None if there is none."""
    found = None
    for m in re.finditer(r"dwriter: durable (\d+) records (\d+) errors (\d+) gap (\d+) ms"
                         r"( stopped)?", text):
        found = {"durable": int(m.group(1)), "records": int(m.group(2)),
                 "errors": int(m.group(3)), "gap_ms": int(m.group(4)),
                 "stopped": bool(m.group(5))}
    return found


def check_dwriter_records(path, run, durable, base=DW_BASE, slots=DW_SLOTS):
    """Read dwriter's log from the LUN's backing file: every record of run
    up to seq durable that the log still holds (the newest slots of it)
    must be there, whole (magic, run, seq, size, CRC-32).  A slot may hold
    durable + 1 instead (a write under way when the writer was killed).
    Returns (records checked, [problems, the first 10])."""
    first = max(1, durable - slots + 1)
    bad = []
    with open(path, "rb") as f:
        for seq in range(first, durable + 1):
            off = base + ((seq - 1) % slots) * DW_REC
            f.seek(off)
            rec = f.read(DW_REC)
            why = _dw_record_problem(rec, run, seq, durable, slots)
            if why and len(bad) < 10:
                bad.append(f"seq {seq} at byte {off}: {why}")
            elif why:
                bad.append(None)
    n_bad = len(bad)
    bad = [b for b in bad if b]
    if n_bad > len(bad):
        bad.append(f"... {n_bad} bad records in all")
    return durable - first + 1, bad


def _dw_record_problem(rec, run, seq, durable, slots):
    if len(rec) != DW_REC:
        return f"short read ({len(rec)} bytes)"
    if rec[:8] != DW_MAGIC:
        return f"no record (starts {rec[:16].hex()})"
    r_run = int.from_bytes(rec[8:16], "little")
    r_seq = int.from_bytes(rec[16:24], "little")
    r_len = int.from_bytes(rec[24:28], "little")
    r_crc = int.from_bytes(rec[28:32], "little")
    if r_run != run:
        return f"a record of run {r_run:x}, not {run:x}"
    if r_len != DW_REC:
        return f"size field {r_len}"
    if zlib.crc32(rec[:28] + bytes(4) + rec[32:]) != r_crc:
        return "CRC mismatch"
    if r_seq != seq and not (r_seq == durable + 1 and (r_seq - seq) % slots == 0):
        return f"holds seq {r_seq}"
    return None


# ---- the lab and the guest ----

def lab():
    """linux_io_tests' lab (3 CPUs a host, tgtd), "sys" attached on both."""
    lb = lio.lab()
    if not getattr(lb, "mig_ready", False):
        for i, h in enumerate(lb.net.hosts):
            h.lab_con = lb.cons[i]
            lio.attach(h, "sys", SYS_TID)
        lb.secret_path = lb.net.secret_file()
        lb.mig_ready = True
    return lb


def stop_labs():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    _procs.clear()
    lio.stop_labs()


def host(i):
    lb = lab()
    return lb.net.hosts[i], lb.cons[i]


def has_vm(i, name=VM):
    out = host(i)[1].run("vm list")
    m = re.search(rf"^{name}\s+(\S+)", out, re.M)
    return m.group(1) if m else None


def where():
    """The host index the guest runs on, or None."""
    for i in (0, 1):
        if has_vm(i) == "running":
            return i
    return None


def boot_on_a():
    for i in (0, 1):
        if has_vm(i):
            lio.destroy(host(i)[1], VM)
    con = host(0)[1]
    # tern-b may hold the LUN since a move (it fenced tern-a at COMMIT).
    con.run("disk rejoin sys", 60)
    # The host log still has an earlier boot's lines: wait for a new one.
    before = sum("TERN-LINUX-NET: eth0" in ln for ln in lio.guest_lines(con, VM))
    lio.boot_guest(0, DEVICES, (VM, VM_ADDR))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum("TERN-LINUX-NET: eth0" in ln for ln in lio.guest_lines(con, VM)) > before:
            return
        time.sleep(2)
    raise ternlab.TestFailure(f"{VM} booted again on tern-a without its network")


def home():
    """The guest running on tern-a with nothing else on either host: a
    guest left on tern-b goes back by migration, a broken one is booted
    again."""
    for i in (0, 1):
        h, con = host(i)
        con.run("migrate cancel")
        for name in re.findall(r"^(\S+)\s", con.run("vm list"), re.M):
            if name not in (VM, "NAME"):
                lio.destroy(con, name)
        if not re.search(r"^sys\s", con.run("disk list"), re.M):
            lio.attach(h, "sys", SYS_TID)
    i = where()
    if i is not None:   # what a failed test left running in the guest
        with gsh(i) as g:
            g.run("killall dwriter seqsrv 2>/dev/null; kill $(cat /tmp/spin 2>/dev/null) "
                  "2>/dev/null; rm -f /tmp/spin")
    if i == 1:
        try:
            migrate(1, "live")
            i = where()
        except ternlab.TestFailure as e:
            print(f"  could not bring {VM} back to tern-a ({e}); booting it again", flush=True)
            i = None
    if i != 0:
        boot_on_a()
    elif has_vm(1):     # a copy a failed test left behind
        lio.destroy(host(1)[1], VM)
    return 0


def gsh(i):
    h, _ = host(i)
    return lio.GuestShell(h, VM)


def migrate(src, args="live", timeout=MIG_TIMEOUT):
    """Migrate the guest from host src to the other; the report as a
    dict (total, downtime, bytes, rounds in ms/bytes) once it is done."""
    dst = 1 - src
    _, con = host(src)
    out = con.run(f"migrate {VM} {netlab.NetLab.address(dst)} {args}".strip(), 60)
    check(re.search(rf"^migrating {VM} to ", out, re.M),
          f"tern-{'ab'[src]} refused to migrate {VM}: {out}")
    out = wait_status(src, r"outgoing: .*: (done|failed|cancelled)", timeout)
    check(re.search(r"outgoing: .*: done", out), f"migration {'ab'[src]}->{'ab'[dst]} "
          f"failed:\n{out}")
    m = re.search(r"report: total (\d+) ms, downtime (\d+) ms, (\d+) bytes sent, (\d+) rounds",
                  out)
    check(m, f"no report line:\n{out}")
    rep = dict(zip(("total", "downtime", "bytes", "rounds"), map(int, m.groups())))
    print(f"  {VM} {'ab'[src]}->{'ab'[dst]} {args}: {rep['total']} ms total, downtime "
          f"{rep['downtime']} ms, {rep['bytes'] >> 20} MiB, {rep['rounds']} rounds", flush=True)
    moved(dst)
    return rep


def moved(dst):
    """The guest runs on dst with its disk and NIC, and is gone from the
    other host."""
    _, con = host(dst)
    info = con.run(f"vm info {VM}")
    check(re.search(r"^state: running", info, re.M) and "vda: virtio-blk" in info and
          "net0: virtio-net" in info, f"tern-{'ab'[dst]} after the migration:\n{info}")
    check(not has_vm(1 - dst), f"tern-{'ab'[1 - dst]} still has {VM}:\n"
          f"{host(1 - dst)[1].run('vm list')}")


def wait_status(i, pattern, timeout):
    _, con = host(i)
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = con.run("migrate status")
        if re.search(pattern, out):
            return out
        time.sleep(1)
    raise ternlab.TestFailure(f"tern-{'ab'[i]}: no {pattern!r} in `migrate status` within "
                              f"{timeout} s:\n{out}")


def start_migration(src, args):
    _, con = host(src)
    out = con.run(f"migrate {VM} {netlab.NetLab.address(1 - src)} {args}", 60)
    check(re.search(rf"^migrating {VM} to ", out, re.M),
          f"tern-{'ab'[src]} refused to migrate {VM}: {out}")


def dst_clean(i, timeout=60):
    """Host i kept nothing of the guest."""
    deadline = time.monotonic() + timeout
    while has_vm(i):
        check(time.monotonic() < deadline, f"tern-{'ab'[i]} kept {VM}:\n"
              f"{host(i)[1].run('vm list')}")
        time.sleep(1)


# ---- in the guest ----

def start_seqsrv(g):
    g.run(f"killall seqsrv 2>/dev/null; seqsrv serve {SEQ_PORT} rate={SEQ_RATE} "
          ">/tmp/seq.log 2>&1 &")


def start_dwriter(g, rate=DW_RATE):
    """A dwriter in the background with a fresh run id; the id."""
    run = random.getrandbits(48) | 1
    g.run(f"killall dwriter 2>/dev/null; dwriter /dev/vda run={run:x} base={DW_BASE} "
          f"slots={DW_SLOTS} rate={rate} >/tmp/dw.log 2>&1 &")
    return run


def dwriter_status(g):
    # A new status line, or after 10 s the last one (a stalled disk
    # shows as no progress).
    out = g.run("n=$(grep -c durable /tmp/dw.log); kill -USR1 $(pidof dwriter); i=0; "
                "while [ $(grep -c durable /tmp/dw.log) -le $n ] && [ $i -lt 100 ]; do "
                "usleep 100000; i=$((i+1)); done; tail -n 3 /tmp/dw.log", 60)
    st = parse_dwriter(out)
    check(st, f"no status from dwriter:\n{out}")
    return st


def stop_dwriter(g):
    out = g.run("kill -TERM $(pidof dwriter); while pidof dwriter >/dev/null; do "
                "usleep 100000; done; tail -n 5 /tmp/dw.log", 120)
    st = parse_dwriter(out)
    check(st and st["stopped"], f"dwriter did not stop cleanly:\n{out}")
    return st, out


def lun_check(run, st, what, base=DW_BASE, slots=DW_SLOTS):
    n, bad = check_dwriter_records(lab().lun_path(SYS_TID), run, st["durable"], base, slots)
    check(not bad, f"{what}: {len(bad)} of {n} durable records bad on tgtd's file:\n" +
          "\n".join(bad))
    print(f"  {what}: {n} durable records whole on the LUN (dwriter: {st['records']} "
          f"written, {st['errors']} errors, longest gap {st['gap_ms']} ms)", flush=True)
    return n


def guest_clock(i):
    """(guest CLOCK_REALTIME - this machine's time at the exchange's
    middle, the exchange's length), both in s."""
    with gsh(i) as g:
        t0 = time.time()
        out = g.run("seqsrv clock")
        t1 = time.time()
    m = re.search(r"^clock real (\d+\.\d+) ", out, re.M)
    check(m, f"seqsrv clock:\n{out}")
    return float(m.group(1)) - (t0 + t1) / 2, t1 - t0


def cpu_busy(g):
    """Per-CPU busy jiffies (user + nice + system + irq + softirq, in
    USER_HZ = 100) from /proc/stat, and this machine's time."""
    out = g.run("grep '^cpu[0-9]' /proc/stat")
    rows = re.findall(r"^cpu(\d+) (\d+) (\d+) (\d+) \d+ \d+ (\d+) (\d+)", out, re.M)
    check(len(rows) == 2, f"/proc/stat (want 2 CPUs):\n{out}")
    return [sum(map(int, r[1:])) for r in rows], time.time()


def guest_intact(i, what):
    """The guest on host i answers, pings, and writes durable records."""
    _, con = host(i)
    check(re.search(r"^state: running", con.run(f"vm info {VM}"), re.M),
          f"{what}: {VM} is not running on tern-{'ab'[i]}")
    r = lab().net.ns_run(["ping", "-c", "3", "-W", "5", VM_ADDR], 40)
    check(r.returncode == 0, f"{what}: the namespace cannot ping {VM}:\n{r.stdout}")
    run = random.getrandbits(48) | 1
    with gsh(i) as g:
        out = g.run(f"dwriter /dev/vda run={run:x} base={PROBE_BASE} slots={PROBE_SLOTS} "
                    "count=10 rate=0", 120)
    st = parse_dwriter(out)
    check(st and st["durable"] == 10 and st["errors"] == 0,
          f"{what}: dwriter on tern-{'ab'[i]}:\n{out}")
    lun_check(run, st, what, PROBE_BASE, PROBE_SLOTS)


# ---- tests ----

@test
def seqsrv_and_dwriter_without_migration():
    """The control: the guest boots with 2 vCPUs, the namespace's client
    takes 10 s of seqsrv's stream whole, dwriter's 100 records (and a
    background run stopped by SIGTERM) are whole on tgtd's file."""
    lab()
    home()
    with gsh(0) as g:
        out = g.run("nproc")
        check(re.search(r"^\s*2\s*$", out, re.M), f"nproc (want 2):\n{out}")
        start_seqsrv(g)
    cl = SeqClient(lab().net.ns, VM_ADDR)
    why = cl.wait_connected()
    check(why is None, f"the client: {why}")
    time.sleep(10)
    rep = cl.stop()
    check(seq_verdict(rep, SEQ_RATE * 10 // 4) is None,
          f"seqsrv's stream: {seq_verdict(rep, SEQ_RATE * 10 // 4)}\n{rep}")
    print(f"  stream: {rep['records']} records in {rep['duration']:.1f} s, longest gap "
          f"{rep['max_gap'] * 1000:.0f} ms", flush=True)
    run = random.getrandbits(48) | 1
    with gsh(0) as g:
        out = g.run(f"dwriter /dev/vda run={run:x} base={DW_BASE} slots={DW_SLOTS} "
                    "count=100 rate=0", 180)
    st = parse_dwriter(out)
    check(st and st["durable"] == 100 and st["errors"] == 0 and st["stopped"],
          f"dwriter count=100:\n{out}")
    lun_check(run, st, "100 records")
    with gsh(0) as g:
        run = start_dwriter(g)
        time.sleep(3)
        mid = dwriter_status(g)
        time.sleep(2)
        st, out = stop_dwriter(g)
        out = g.run("seqsrv clock; cat /tmp/seq.log")
    check(0 < mid["durable"] <= st["durable"] and st["errors"] == 0,
          f"dwriter in the background: {mid} then {st}")
    lun_check(run, st, "background run")
    check(re.search(r"^clock real \d{9,}\.\d{9} mono \d+\.\d{9} boot \d+\.\d{9}", out, re.M),
          f"seqsrv clock:\n{out}")
    check(re.search(r"seqsrv: sent \d+ records, ended: ", out), f"seqsrv's log:\n{out}")
    off, lat = guest_clock(0)
    print(f"  guest clock - host clock: {off:+.3f} s (console round trip {lat:.2f} s)",
          flush=True)


@test
def live_a_b_a_tcp_stream_and_ping():
    """Live A->B->A while the namespace holds one TCP connection to the
    guest (every record, in order, no reset) and pings it every 10 ms:
    the longest silence is the downtime its peers see."""
    lb = lab()
    home()
    with gsh(0) as g:
        start_seqsrv(g)
    cl = SeqClient(lb.net.ns, VM_ADDR)
    check(cl.wait_connected() is None, f"the client: {cl.final}")
    pm = PingMeter(lb.net.ns, VM_ADDR)
    try:
        time.sleep(3)
        for src in (0, 1):
            before = cl.status()["records"]
            t0 = time.time()
            rep = migrate(src, "live")
            t1 = time.time()
            gap, lost = pm.silence(t0, t1)
            print(f"  ping every 10 ms: longest silence {gap * 1000:.0f} ms, {lost} lost "
                  f"(the report's downtime {rep['downtime']} ms)", flush=True)
            time.sleep(5)
            st = cl.status()
            check(st["ended"] is None and st["records"] > before,
                  f"the stream after {'ab'[src]}->{'ab'[1 - src]}: {st}")
            check(pm.silence(time.time() - 3, time.time())[0] < 2,
                  f"no ping replies from {VM} on tern-{'ab'[1 - src]}")
    finally:
        pm.stop()
        rep = cl.stop()     # never raises: a dict that says what went wrong
    why = seq_verdict(rep, 1)
    check(why is None, f"the TCP stream across two migrations: {why}\n{rep}")
    print(f"  stream: {rep['records']} records in order in {rep['duration']:.0f} s, longest "
          f"gap {rep['max_gap'] * 1000:.0f} ms; gaps over 0.2 s: {rep['gaps']}", flush=True)


@test
def live_a_b_a_disk_writer():
    """dwriter appends fdatasync'ed records across A->B->A; afterwards
    every record up to the last one it reported durable is whole on
    tgtd's file, and records became durable on B too."""
    home()
    with gsh(0) as g:
        run = start_dwriter(g)
        time.sleep(5)
        st = dwriter_status(g)
    # On a failure the writer keeps going until the next test's home().
    for src in (0, 1):
        migrate(src, "live")
        time.sleep(5)
        with gsh(1 - src) as g:
            st2 = dwriter_status(g)
        check(st2["durable"] > st["durable"] and st2["errors"] == 0,
              f"dwriter on tern-{'ab'[1 - src]}: {st} then {st2}")
        print(f"  on tern-{'ab'[1 - src]}: durable {st2['durable']}, longest gap "
              f"{st2['gap_ms']} ms", flush=True)
        st = st2
    with gsh(0) as g:
        st, out = stop_dwriter(g)
    check(st["errors"] == 0, f"dwriter saw errors:\n{out}")
    lun_check(run, st, "across A->B->A")


@test
def after_move_fence_clock_vcpus():
    """After A->B: tern-a's own write to sys gets RESERVATION CONFLICT
    (B took the reservation); the guest's clock did not jump; both vCPUs,
    each running a pinned busy loop, kept running."""
    lb = lab()
    home()
    with gsh(0) as g:
        g.run("for c in 0 1; do taskset -c $c sh -c 'while :; do :; done' "
              ">/dev/null 2>&1 & echo $! >>/tmp/spin; done")
        ba, ta = cpu_busy(g)
    try:
        time.sleep(3)
        off0, lat0 = guest_clock(0)
        with gsh(0) as g:
            b0, t0 = cpu_busy(g)
        # The busy loops themselves: both CPUs busy before anything moves.
        for c in (0, 1):
            check((b0[c] - ba[c]) / 100 >= 0.5 * (t0 - ta), f"vCPU {c} not busy on tern-a: "
                  f"{(b0[c] - ba[c]) / 100:.1f} s of {t0 - ta:.1f} s")
        rep = migrate(0, "live")
        off1, lat1 = guest_clock(1)
        with gsh(1) as g:
            b1, t1 = cpu_busy(g)
            time.sleep(5)
            b2, t2 = cpu_busy(g)
    finally:
        quietly(stop_spinners)
    jump = off1 - off0
    slack = rep["downtime"] / 1000 + lat0 + lat1 + 0.001 * (t1 - t0) + 0.1
    print(f"  guest clock vs host: {jump * 1000:+.0f} ms across the migration (allowed "
          f"+-{slack * 1000:.0f} ms)", flush=True)
    check(abs(jump) <= slack, f"the guest's clock jumped {jump:+.3f} s across the migration "
          f"(downtime {rep['downtime']} ms, console {lat0:.2f} + {lat1:.2f} s)")
    for c in (0, 1):
        across = (b1[c] - b0[c]) / 100
        after = (b2[c] - b1[c]) / 100
        print(f"  vCPU {c}: busy {across:.1f} s of {t1 - t0:.1f} across, {after:.1f} s of "
              f"{t2 - t1:.1f} after", flush=True)
        check(after >= 0.5 * (t2 - t1), f"vCPU {c} was not busy on tern-b: {after:.1f} s of "
              f"{t2 - t1:.1f} s")
        check(across >= 0.3 * (t1 - t0 - rep["downtime"] / 1000),
              f"vCPU {c} stood still across the migration: {across:.1f} s of {t1 - t0:.1f} s")
    _, ca = host(0)
    out = ca.run(f"disk write sys {FENCE_LBA} 8 0x5a", 60)
    check(out.startswith("error:") and "RESERVATION CONFLICT" in out,
          f"tern-a's write to sys after the guest left: {out}")
    check(lio.file_bytes(lb.lun_path(SYS_TID), FENCE_LBA * 512, 4096) != b"\x5a" * 4096,
          "tern-a's fenced write reached the LUN")


def stop_spinners():
    i = where()
    if i is not None:
        with gsh(i) as g:
            g.run("kill $(cat /tmp/spin); rm -f /tmp/spin")


def quietly(fn):
    """Clean-up that must not hide the failure under way."""
    try:
        fn()
    except Exception as e:
        print(f"  (clean-up {fn.__name__}: {e})", flush=True)


def refusal(want, what):
    """Migration A->B must fail with want; the guest stays on A, whole,
    and B has nothing."""
    start_migration(0, "live")
    out = wait_status(0, r"outgoing: .*: (failed|done|cancelled)", 180)
    check(re.search(want, out), f"{what}: want {want!r}:\n{out}")
    dst_clean(1)
    guest_intact(0, what)


@test
def refused_destination_lacks_lun():
    """tern-b has no disk sys: refused before anything moves."""
    home()
    hb, cb = host(1)
    out = cb.run("disk detach sys", 60)
    check("error" not in out, f"detach sys on tern-b: {out}")
    try:
        refusal(r"failed: .*(disk sys|sys is not attached|no disk)", "no LUN on tern-b")
    finally:
        quietly(lambda: lio.attach(hb, "sys", SYS_TID))


@test
def refused_destination_lacks_cpus():
    """tern-b runs a 1-vCPU guest: 1 free CPU for 2 vCPUs: refused."""
    home()
    _, cb = host(1)
    out = cb.run("vm create hog mem=16M kernel=guests/migverify.elf cmdline=\"delay=20000\"")
    check("vm hog created" in out, out)
    try:
        out = cb.run("vm start hog")
        check("running" in out, f"the hog on tern-b: {out}")
        refusal(r"failed: .*(CPU|cpu)", "too few CPUs on tern-b")
    finally:
        quietly(lambda: lio.destroy(cb, "hog"))


def after_failure(what, client, run, b_alive=True):
    """The guest stayed on A: stream whole, dwriter still writing, no
    errors, records whole; B (unless it is gone) has nothing."""
    if b_alive:
        dst_clean(1, 180)
    st = client.status()
    check(st["ended"] is None, f"{what}: the stream ended: {st}")
    time.sleep(3)
    st2 = client.status()
    check(st2["records"] > st["records"], f"{what}: the stream stopped: {st} then {st2}")
    with gsh(0) as g:
        d1 = dwriter_status(g)
        time.sleep(2)
        st, out = stop_dwriter(g)
    check(st["durable"] > d1["durable"] and st["errors"] == 0,
          f"{what}: dwriter on tern-a:\n{out}")
    lun_check(run, st, what)
    rep = client.stop()
    why = seq_verdict(rep, 1)
    check(why is None, f"{what}: the TCP stream: {why}\n{rep}")


def with_load(fn, what):
    """Run fn() with seqsrv streaming to the namespace and dwriter writing,
    then check the guest kept both whole on tern-a."""
    lb = lab()
    home()
    with gsh(0) as g:
        start_seqsrv(g)
        run = start_dwriter(g)
    cl = SeqClient(lb.net.ns, VM_ADDR)
    check(cl.wait_connected() is None, f"the client: {cl.final}")
    try:
        fn()
        after_failure(what, cl, run)
    finally:
        quietly(cl.stop)


@test
def link_cut_during_precopy():
    """tern-b's link goes down during pre-copy: the migration fails, the
    guest keeps running on tern-a with its disk and network, tern-b
    keeps nothing."""
    ns = lab().net.ns

    def cut():
        start_migration(0, "live bandwidth=4")
        wait_status(0, r"outgoing: .*: pre-copy", 120)
        time.sleep(2)
        netlab._ip("-n", ns, "link", "set", "tap1", "down")
        try:
            out = wait_status(0, r"outgoing: .*: (failed|done)", 180)
            check(re.search(r": failed: ", out), f"with tern-b cut off:\n{out}")
            print("  " + re.search(r"outgoing: .*", out).group(0), flush=True)
        finally:
            netlab._ip("-n", ns, "link", "set", "tap1", "up")
        guest_intact(0, "after the cut")

    with_load(cut, "link cut in pre-copy")


def cancel_in(args, phase):
    def go():
        start_migration(0, args)
        wait_status(0, rf"outgoing: .*: {phase}", 120)
        time.sleep(1)
        out = host(0)[1].run("migrate cancel")
        check("migration cancelled" in out, out)
        out = host(0)[1].run("migrate status")
        check(re.search(r"outgoing: .*: cancelled", out), out)
    with_load(go, f"cancel in {phase}")


@test
def cancel_in_preflight():
    """`migrate` and `migrate cancel` in one ternctl batch: the cancel lands
    while the destination is still being asked."""
    lb = lab()

    def go():
        r = subprocess.run(
            ["ip", "netns", "exec", lb.net.ns, TERNCTL, "--host", lb.net.address(0),
             "--secret-file", lb.secret_path],
            input=f"migrate {VM} {lb.net.address(1)}\nmigrate status\nmigrate cancel\n",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        err = re.search(r"^error: migrate: .*", r.stdout + r.stderr, re.M)
        check(re.search(rf"^migrating {VM} to ", r.stdout, re.M),
              f"tern-a refused to migrate {VM}: " +
              (err.group(0) if err else f"\n{r.stdout}\n{r.stderr}"))
        check(re.search(r"outgoing: .*: (connecting|pre-flight)", r.stdout),
              f"the cancel did not land in pre-flight:\n{r.stdout}")
        check("migration cancelled" in r.stdout, r.stdout)
        time.sleep(2)
    with_load(go, "cancel in pre-flight")


@test
def cancel_in_precopy():
    cancel_in("live bandwidth=2", "pre-copy")


@test
def cancel_in_stopcopy():
    cancel_in("quick bandwidth=2", "stop-and-copy")


@test
def quick_a_to_b():
    """`migrate lm 10.77.0.2 quick` over the network: one round; on tern-b
    the guest answers pings, writes durable records, keeps its clock."""
    home()
    off0, lat0 = guest_clock(0)
    rep = migrate(0, "quick")
    check(rep["rounds"] == 1, f"quick migration took {rep['rounds']} rounds")
    off1, lat1 = guest_clock(1)
    jump = off1 - off0
    check(abs(jump) <= rep["total"] / 1000 + lat0 + lat1 + 0.2,
          f"the guest's clock jumped {jump:+.3f} s (migration {rep['total']} ms)")
    guest_intact(1, "after the quick migration")


@test
def destination_killed_before_commit():
    """tern-b's QEMU is killed (SIGKILL) during pre-copy, before COMMIT:
    the migration fails, the guest keeps running on tern-a with its TCP
    stream, disk writes and network.  Last: tern-b is gone afterwards, so
    the lab is stopped at the end (a later test would start a new one)."""
    lb = lab()
    home()
    with gsh(0) as g:
        start_seqsrv(g)
        run = start_dwriter(g)
    cl = SeqClient(lb.net.ns, VM_ADDR)
    try:
        check(cl.wait_connected() is None, f"the client: {cl.final}")
        start_migration(0, "live bandwidth=4")
        wait_status(0, r"outgoing: .*: pre-copy", 120)
        time.sleep(2)
        out = host(0)[1].run("migrate status")
        check(re.search(r"outgoing: .*: pre-copy", out),
              f"the migration left pre-copy before tern-b could be killed:\n{out}")
        hb = lb.net.hosts[1]
        hb._kill()          # SIGKILL to tern-b's QEMU, by its PID (a crash)
        hb.stop()           # and the host object's clean-up
        out = wait_status(0, r"outgoing: .*: (failed|done)", 180)
        check(re.search(r": failed: ", out), f"with tern-b killed:\n{out}")
        print("  " + re.search(r"outgoing: .*", out).group(0), flush=True)
        what = "tern-b killed in pre-copy"
        after_failure(what, cl, run, b_alive=False)
        guest_intact(0, what)
    finally:
        quietly(cl.stop)
        stop_labs()         # tern-b is gone: a later test gets a fresh lab

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
    ternlab.require_tool("ip", "iproute2")
    ternlab.require_tool("ping", "iputils-ping")
    if not os.access(TERNCTL, os.X_OK):
        raise ternlab.LabError(f"{TERNCTL} missing: run make")
    lio.CFG = linux_tests.CFG = CFG
    return ternlab.run_suite(chosen, CFG.logdir, stop_labs)


if __name__ == "__main__":
    sys.exit(main())
