#!/usr/bin/env python3
"""mig_bench: Tern's live and quick migration under QEMU TCG, with raw TCP
between the same two hosts and QEMU's own live migration as references;
prints one Markdown table.

    python3 tests/bench/mig_bench.py [--quick] [--sizes 64,256,512]
        [--delays 20000,2700,900,0] [--all] [--no-qemu] [--esp build/esp]
        [--logdir build/bench-logs]

A benchmark, not a test (make test does not run it).  Needs root
(netlab's network namespace), a built ESP and ternctl (`make`), and for
the QEMU reference busybox-static and the Linux kernel that net_bench.py
fetches (`apt-get download` into build/bench/, never installed).  The
default run took 21 minutes on the 2-core dev box at load 6, --quick (the
64 MiB rows and the iperf line, no QEMU) 2.5 to 4.  Exit status 1 when a
row failed or did not verify.

Tern rows.  One two-host lab (tests/lab/netlab.py: tern-a 10.77.0.1,
tern-b 10.77.0.2, -m 1G -smp 2 each, virtio-net).  For each guest size
and workload a fresh migverify guest (tests/guests/migverify.c) starts on
tern-a and, once its first pass has put data in every page, moves to
tern-b with `migrate NAME 10.77.0.2 live|quick timeout=S`, driven over
ternctl sessions as tests/lab/migrate_tests.py does.  `migrate status` is
polled once a second; its `report:` line gives total, downtime, bytes,
rounds and throttle.  Throughput is bytes / total.  Workloads are
migverify's delay=N (spin N iterations between page writes): the write
rate is measured on the guest before the migration (two `vm memcheck`
2 s apart: pages written per second x 4 KiB), and Tern's own dirty rate
is the first `dirty rate` `migrate status` shows (after round 0, before
any throttle; a page counts once per round, so it is at most the guest's
size per round and saturates near the link's rate).  Afterwards tern-b
must hold the guest running, with `vm memcheck` PASS twice and progress
in between, no MIGVERIFY FAIL in its log, and tern-a must not hold it:
otherwise the row says why and shows no numbers (a broken migration is
not a result).  A migration that fails shows `failed: <Tern's reason>`.

Which rows (LIVE_PLAN): 64 MiB live at every delay, 256 and 512 MiB live
idle, ~1x and ~3x; quick with delay=0 at every size, and idle at 64 MiB;
at 64 MiB also idle live and delay=0 quick with `encrypt=off` when the
kernel has it.  --all: every delay live at every size (about 35 min);
--sizes/--delays choose others.  Below the table, one note per row: pages
per round, the host cores each Tern QEMU used during the migration, the
source's last `cpu:` status line and the destination's `incoming cpu:`.

References, in the same run: `iperf client 10.77.0.2 5` from tern-a to
`iperf server start` on tern-b (raw TCP between the same two hosts); and,
after the lab is gone, QEMU's own live migration of a 512 MiB Linux guest
(Debian's kernel, a busybox initramfs) between two QEMU processes on this
machine over loopback TCP (-incoming tcp:127.0.0.1:PORT), driven over QMP
(migrate, query-migrate), with QEMU's default parameters: once idle, once
with the guest rewriting 256 MiB of tmpfs in a loop (auto-converge on).
Those numbers are what QEMU's query-migrate reports.
"""

import argparse
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
import ternlab  # noqa: E402
import migrate_tests as mt  # noqa: E402  (Session: ternctl --json)
import net_bench  # noqa: E402  (the Linux kernel, cpio writer, CPU time)
from net_bench import cpu_seconds  # noqa: E402

BENCH_DIR = os.path.join(REPO, "build", "bench")
HOST_MEM = "1G"
HOST_SMP = 2
SIZES = (64, 256, 512)
# migverify delays.  Measured on the 2-core dev box (QEMU 7.2 TCG):
# 20000 writes about 1.3 MB/s (idle), 2700 about 10 MB/s, the rate Tern's
# migration moves (about 1x the link as the migration sees it), 900 about
# 30 MB/s (3x that, and about 1x raw TCP), 0 tens of GB/s.
IDLE_DELAY = 20000
DELAYS = (IDLE_DELAY, 2700, 900, 0)
# Live rows per size by default: a round costs about 0.1 s per MiB here and
# the busy rows take 6 to 12 rounds, so the whole matrix (--all) takes
# about 35 minutes.  delay=0 cannot converge (it writes a thousand times
# the link's rate, still more than the link at the last throttle step): its
# live row at 64 MiB shows that (12 to 18 rounds); at every size it is
# migrated quick.
LIVE_PLAN = {64: DELAYS, 256: (IDLE_DELAY, 2700, 900), 512: (IDLE_DELAY, 2700, 900)}
QUICK_DELAYS = (IDLE_DELAY, 0)        # quick migration at the smallest size
QUICK_DELAYS_BIG = (0,)                 # and at the larger sizes
# At the smallest size also with `encrypt=off` (stream on plain TCP, where
# the kernel has it): what TLS costs.
PLAIN_ROWS = ((IDLE_DELAY, "live"), (0, "quick"))
IPERF_SECONDS = 5
POLL_S = 1.0
# Tern's own `timeout=` per migration (it gives up and resumes the guest
# on tern-a): a row over it reads "failed: timed out".
ROW_TIMEOUT_S = 600                     # Tern's default
QEMU_MEM_MIB = 512
QEMU_DIRTY_MIB = 256
QEMU_TIMEOUT_S = 180
REPORT = re.compile(r"report: total (\d+) ms, downtime (\d+) ms, (\d+) bytes sent, "
                    r"(\d+) rounds, throttle ([\d.]+)%")
MEMCHECK = re.compile(r"memcheck PASS pages=(\d+) pass=(\d+) boundary=(\d+)")
TERN_CLIENT = re.compile(r"iperf: [\d.:]+: (\d+) bytes in ([\d.]+) s, ([\d.]+) Mbit/s")


class BenchError(RuntimeError):
    pass


class RowFailed(Exception):
    """This row has no numbers: the text says why."""


# --- Tern ----------------------------------------------------------------------

class Tern:
    """The two-host lab and a ternctl session to each host."""

    def __init__(self, args):
        self.args = args
        self.lab = netlab.NetLab(hosts=2, esp_dir=args.esp, logdir=args.logdir,
                                 mem=HOST_MEM, smp=HOST_SMP)
        self.sessions = {}

    def start(self):
        # ternlab SIGKILLs a QEMU after 15 min; a full run takes longer.
        netlab.NsQemuHost.max_runtime = 7200
        self.lab.start()
        self.lab.wait_prompts(180)
        self.lab.secret_path = self.lab.secret_file()
        self.a, self.b = self.lab.hosts

    def stop(self):
        for s in self.sessions.values():
            s.close()
        self.sessions.clear()
        self.lab.stop()

    def cmd(self, h, line, timeout=60):
        i = self.lab.hosts.index(h)
        if i not in self.sessions:
            self.sessions[i] = mt.Session(self.lab, i)
        try:
            return self.sessions[i].run(line, timeout)
        except (BrokenPipeError, ValueError, ternlab.TestFailure):
            self.sessions.pop(i).close()
            raise

    def alive(self):
        return all(h.proc and h.proc.poll() is None for h in self.lab.hosts)

    def reset(self):
        """No VM and no migration on either host."""
        for h in self.lab.hosts:
            self.cmd(h, "migrate cancel")
            for name in re.findall(r"^(\S+)\s+(?:running|paused|stopped|created|failed)",
                                   self.cmd(h, "vm list"), re.M):
                self.cmd(h, f"vm destroy {name}")

    def memcheck(self, h, name):
        """(pages, progress in page writes) or RowFailed."""
        out = self.cmd(h, f"vm memcheck {name}")
        m = MEMCHECK.search(out)
        if not m:
            raise RowFailed(f"memcheck on {h.name}: {one_line(out)}")
        n, p, bd = map(int, m.groups())
        return n, (p - 1) * n + bd

    def write_rate(self, name, seconds=2.0):
        """Page writes per second on tern-a, between two memchecks."""
        n, x0 = self.memcheck(self.a, name)
        t0 = time.monotonic()
        time.sleep(seconds)
        n, x1 = self.memcheck(self.a, name)
        return (x1 - x0) / (time.monotonic() - t0)

    def start_guest(self, name, mib, delay):
        out = self.cmd(self.a, f'vm create {name} mem={mib}M kernel=guests/migverify.elf '
                               f'cmdline="delay={delay}"')
        if f"vm {name} created" not in out:
            raise RowFailed(f"vm create: {one_line(out)}")
        out = self.cmd(self.a, f"vm start {name}")
        if "running on CPU" not in out:
            raise RowFailed(f"vm start: {one_line(out)}")
        deadline = time.monotonic() + 120
        while True:   # pass 1 (flat out) puts data in every page
            out = self.cmd(self.a, f"vm memcheck {name}")
            m = MEMCHECK.search(out)
            if m and int(m.group(2)) >= 2:
                return
            if time.monotonic() > deadline:
                raise RowFailed(f"the guest never finished pass 1: {one_line(out)}")
            time.sleep(0.5)

    def iperf(self):
        """(client Mbit/s, server Mbit/s, bytes, seconds) tern-a -> tern-b."""
        self.cmd(self.b, "iperf server start")
        self.b.mark()
        try:
            out = self.cmd(self.a, f"iperf client {self.lab.address(1)} {IPERF_SECONDS}",
                           IPERF_SECONDS + 60)
            m = TERN_CLIENT.search(out)
            if not m:
                raise RowFailed(f"iperf client: {one_line(out)}")
            try:
                srv = float(self.b.expect(r"iperf: from [\d.:]+: \d+ bytes in \d+ ms, "
                                          r"([\d.]+) Mbit/s", 15).group(1))
            except TimeoutError:
                srv = None
            return float(m.group(3)), srv, int(m.group(1)), float(m.group(2))
        finally:
            self.cmd(self.b, "iperf server stop")

    def migrate(self, name, mode, timeout_s):
        """Start, poll to the end; (report dict, samples, status text)."""
        addr = self.lab.address(1)
        out = self.cmd(self.a, f"migrate {name} {addr} {mode} timeout={timeout_s}")
        if not re.search(rf"^migrating {name} to ", out, re.M):
            raise RowFailed(f"migrate: {one_line(out)}")
        samples, cpu_line, progress = [], "", ""
        deadline = time.monotonic() + timeout_s + 60
        while True:
            time.sleep(POLL_S)
            out = self.cmd(self.a, "migrate status")
            m = re.search(r"bandwidth (\d+) KB/s, dirty rate (\d+) KB/s", out)
            r = re.search(r"progress: round (\d+)", out)
            if m and r:
                samples.append((int(r.group(1)), int(m.group(1)) * 1000,
                                int(m.group(2)) * 1000))
            pg = re.search(r"^progress: (.*)$", out, re.M)
            if pg:
                progress = pg.group(1)
            c = re.search(r"^cpu: (.*)$", out, re.M)
            if c:
                cpu_line = c.group(1)
            st = re.search(r"^outgoing: .*?: (done|failed|cancelled)(?:: (.*))?$", out, re.M)
            if st:
                break
            if time.monotonic() > deadline:
                self.cmd(self.a, "migrate cancel")
                raise RowFailed(f"no end within {timeout_s + 60} s: {one_line(out)}")
        if st.group(1) != "done":
            why = st.group(2) or st.group(1)
            g = re.search(r"report: gave up after (\d+) ms, (\d+) bytes sent", out)
            if g:
                why += f" (after {g.group(1)} ms, {g.group(2)} bytes sent"
                why += f"; last seen: {progress})" if progress else ")"
            raise RowFailed(why)
        m = REPORT.search(out)
        if not m:
            raise RowFailed(f"no report line: {one_line(out)}")
        rep = dict(zip(("total", "downtime", "bytes", "rounds"), map(int, m.groups()[:4])))
        rep["throttle"] = float(m.group(5))
        e = re.search(r"^downtime: measured \d+ ms, estimated (\d+) ms \(fixed (\d+) "
                      r"(measured|prior)", out, re.M)
        rep["estimate"] = f"{e.group(1)} ({e.group(2)} {e.group(3)})" if e else "-"
        pr = re.search(r"^pages per round:(.*)$", out, re.M)
        rep["per_round"] = pr.group(1).split() if pr else []
        rep["tern_cpu"] = cpu_line
        d = re.search(r"^incoming cpu: (.*)$", self.cmd(self.b, "migrate status"), re.M)
        rep["dst_cpu"] = d.group(1) if d else ""
        return rep, samples, out

    def verify(self, name):
        """On tern-b: running, memcheck PASS twice with progress, no MIGVERIFY
        FAIL; and gone from tern-a.  '' or why not."""
        log = self.cmd(self.b, "log 400")
        bad = re.search(rf"\[{name}\] MIGVERIFY FAIL.*", log)
        if bad:
            return f"guest: {bad.group(0)}"
        try:
            n, x0 = self.memcheck(self.b, name)
            time.sleep(1.0)
            n, x1 = self.memcheck(self.b, name)
        except RowFailed as e:
            return str(e)
        if x1 <= x0:
            return f"no progress on {self.b.name} ({x0} then {x1} page writes)"
        out = self.cmd(self.b, "vm list")
        if not re.search(rf"^{name}\s+running", out, re.M):
            return f"not running on {self.b.name}: {one_line(out)}"
        out = self.cmd(self.a, "vm list")
        if re.search(rf"^{name}\s", out, re.M):
            return f"still on {self.a.name}: {one_line(out)}"
        return ""


def one_line(text, limit=160):
    text = " / ".join(l.strip() for l in text.strip().splitlines() if l.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def tern_row(t, mib, delay, mode, timeout_s):
    row = {"mib": mib, "delay": delay, "mode": mode}
    name = f"m{mib}{mode[0]}{delay}{'p' if 'encrypt=off' in mode else ''}"
    try:
        t.reset()
        t.start_guest(name, mib, delay)
        row["rate"] = t.write_rate(name) * 4096
        pids = [h.proc.pid for h in t.lab.hosts]
        c0, w0 = [cpu_seconds(p) for p in pids], time.monotonic()
        try:
            rep, samples, _ = t.migrate(name, mode, timeout_s)
        finally:
            wall = time.monotonic() - w0
            row["cores"] = [(cpu_seconds(p) - c) / wall for p, c in zip(pids, c0)]
        row.update(rep)
        after0 = [s for s in samples if s[0] >= 1]
        if after0:
            row["tern_dirty"] = after0[0][2]
            row["tern_bw"] = after0[0][1]
        why = t.verify(name)
        row["check"] = "PASS" if not why else f"FAIL: {why}"
    except RowFailed as e:
        row["failed"] = str(e)
    except (ternlab.TestFailure, TimeoutError, BrokenPipeError, ValueError) as e:
        row["failed"] = f"harness: {one_line(str(e))}"
    print(f"  {describe(row)}", flush=True)
    return row


def describe(row):
    cores = ""
    if row.get("cores"):
        cores = (f"; host cores used during it: tern-a {row['cores'][0]:.2f}, "
                 f"tern-b {row['cores'][1]:.2f}")
    if "failed" in row:
        return (f"{row['mib']} MiB delay={row['delay']} {row['mode']}: failed: "
                f"{row['failed']}{cores}")
    return (f"{row['mib']} MiB delay={row['delay']} {row['mode']}: {row['total']} ms, "
            f"downtime {row['downtime']} ms, {row['bytes']} bytes, {row['rounds']} rounds, "
            f"throttle {row['throttle']}%, memcheck {row['check']}; pages per round "
            f"{' '.join(row['per_round'])}{cores}"
            + (f"; last `cpu:` line {row['tern_cpu']}" if row.get("tern_cpu") else "")
            + (f"; tern-b `incoming cpu:` {row['dst_cpu']}" if row.get("dst_cpu") else ""))


# --- QEMU's own migration (the reference) --------------------------------------

REF_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /mnt
mount -t tmpfs -o size={tmpfs}m tmpfs /mnt
echo "REFVM READY"
exec sh
"""

# Rewrites DIRTY MiB of tmpfs over and over with non-zero data (QEMU sends
# zero pages almost for free, so /dev/zero would flatter it).
DIRTY_LOOP = ("dd if=/dev/urandom of=/mnt/a bs=1M count=16 2>/dev/null; "
              "while :; do for s in {seeks}; do dd if=/mnt/a of=/mnt/b bs=1M seek=$s "
              "conv=notrunc 2>/dev/null; done; done &")


def build_ref_initramfs(path):
    arc = net_bench.Newc()
    for d in ("bin", "dev", "proc", "sys", "mnt"):
        arc.dir(d)
    arc.chardev("dev/console", 5, 1)
    with open("/bin/busybox", "rb") as f:
        arc.file("bin/busybox", f.read())
    arc.file("init", REF_INIT.format(tmpfs=QEMU_DIRTY_MIB + 32).encode())
    with open(path, "wb") as f:
        f.write(gzip.compress(arc.finish(), 6))


class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise BenchError(f"QMP {path}: no socket")
                time.sleep(0.1)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())           # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, execute, **arguments):
        msg = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise BenchError(f"QMP: connection closed during {execute}")
            rep = json.loads(line)
            if "return" in rep:
                return rep["return"]
            if "error" in rep:
                raise BenchError(f"QMP {execute}: {rep['error'].get('desc')}")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class RefVm:
    """A QEMU with -kernel/-initrd, serial on stdio, QMP on a unix socket."""

    def __init__(self, role, tmp, vmlinuz, initrd, logdir, incoming=None):
        self.role = role
        self.qmp_path = os.path.join(tmp, f"{role}.qmp")
        argv = ["qemu-system-x86_64", "-machine", "q35", "-cpu", "qemu64", "-smp", "1",
                "-m", f"{QEMU_MEM_MIB}M", "-display", "none", "-vga", "none",
                "-nic", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-kernel", vmlinuz, "-initrd", initrd,
                "-append", "console=ttyS0 loglevel=3 panic=-1"]
        if incoming:
            argv += ["-incoming", incoming]
        self._log = open(os.path.join(logdir, f"migref-{role}.serial.log"), "ab")
        self._log.write(f"\n===== mig_bench QEMU reference {role} =====\n".encode())
        self._text = ""
        self._pos = 0
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=ternlab._child_setup)
        threading.Thread(target=self._read, daemon=True).start()
        self.qmp = Qmp(self.qmp_path)

    def _read(self):
        while True:
            data = self.proc.stdout.read1(65536)
            if not data:
                break
            self._log.write(data)
            self._log.flush()
            with self._cond:
                self._text += ternlab.strip_ansi(data.decode(errors="replace"))
                self._cond.notify_all()

    def expect(self, pattern, timeout):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._text, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BenchError(f"QEMU {self.role}: no {pattern!r} within {timeout} s;"
                                     f" last output:\n{self._text[-800:]}")
                self._cond.wait(0.5)

    def sendline(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self):
        self.qmp.close()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def qemu_run(args, tmp, vmlinuz, initrd, dirty):
    """One QEMU live migration, source to destination on loopback."""
    row = {"mib": QEMU_MEM_MIB, "mode": "QEMU live (reference)", "dirty": dirty}
    port = free_port()
    src = dst = None
    try:
        src = RefVm("src", tmp, vmlinuz, initrd, args.logdir)
        dst = RefVm("dst", tmp, vmlinuz, initrd, args.logdir,
                    incoming=f"tcp:127.0.0.1:{port}")
        src.expect(r"^REFVM READY", 120)
        if dirty:
            seeks = " ".join(str(s) for s in range(0, QEMU_DIRTY_MIB, 16))
            src.sendline(DIRTY_LOOP.format(seeks=seeks))
            time.sleep(8)      # urandom, then the first sweep allocates b
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "auto-converge", "state": True}])
        else:
            time.sleep(3)
        params = src.qmp.cmd("query-migrate-parameters")
        row["params"] = (f"max-bandwidth {params.get('max-bandwidth', 0) / 2**20:.0f} MiB/s, "
                         f"downtime-limit {params.get('downtime-limit')} ms")
        src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        deadline = time.monotonic() + QEMU_TIMEOUT_S
        rates, throttle = [], 0
        while True:
            time.sleep(0.5)
            q = src.qmp.cmd("query-migrate")
            st = q.get("status")
            if st == "active":
                r = q.get("ram", {}).get("dirty-pages-rate")
                if r:
                    rates.append(r * 4096)
                throttle = max(throttle, q.get("cpu-throttle-percentage", 0))
            if st in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                src.qmp.cmd("migrate_cancel")
                raise RowFailed(f"not complete within {QEMU_TIMEOUT_S} s "
                                f"({q.get('ram', {}).get('dirty-sync-count')} syncs, "
                                f"throttle {throttle}%)")
        if st != "completed":
            raise RowFailed(f"QEMU: {st}: {q.get('error-desc', '')}")
        ram = q["ram"]
        row.update(total=q["total-time"], downtime=q["downtime"], bytes=ram["transferred"],
                   rounds=ram.get("dirty-sync-count", 0), throttle=float(throttle),
                   zero_pages=ram.get("duplicate", 0), normal=ram.get("normal", 0))
        if rates:
            row["tern_dirty"] = rates[0]
        # The destination runs it: the shell answers there.
        st = dst.qmp.cmd("query-status")["status"]
        if st != "running":
            row["check"] = f"FAIL: destination is {st}"
        else:
            dst.sendline("echo MIGOK-$((6*7))")
            try:
                dst.expect(r"MIGOK-42", 30)
                row["check"] = "PASS (shell answers on dst)"
            except BenchError:
                row["check"] = "FAIL: no shell on the destination"
    except RowFailed as e:
        row["failed"] = str(e)
    except BenchError as e:
        row["failed"] = one_line(str(e))
    finally:
        for vm in (src, dst):
            if vm:
                vm.stop()
    print(f"  QEMU {'dirty' if dirty else 'idle'}: " +
          (f"failed: {row['failed']}" if "failed" in row else
           f"{row['total']} ms, downtime {row['downtime']} ms, {row['bytes']} bytes, "
           f"{row['rounds']} syncs, throttle {row['throttle']}%, {row['check']}"),
          flush=True)
    return row


# --- the table --------------------------------------------------------------------

def mbs(x):
    return f"{x / 1e6:.1f}" if x is not None else "-"


def workload(row, link_bps):
    if "dirty" in row:
        if not row["dirty"]:
            return "Linux idle"
        w = f"Linux, dd rewrites {QEMU_DIRTY_MIB} MiB tmpfs; auto-converge"
        if row.get("tern_dirty"):
            w += f"; QEMU dirty rate {mbs(row['tern_dirty'])} MB/s"
        return w
    w = f"delay={row['delay']}"
    if row.get("rate") is not None:
        w += f"; writes {mbs(row['rate'])} MB/s"
        if link_bps:
            w += f" ({row['rate'] / link_bps:.1f}x)"
    if row.get("tern_dirty"):
        w += f"; Tern dirty rate {mbs(row['tern_dirty'])} MB/s"
    return w


def print_table(rows, refs, link_bps, header):
    print()
    print("Tern migration benchmark (tests/bench/mig_bench.py)")
    for line in header:
        print(f"  {line}")
    print()
    print("| guest MiB | workload | mode | total ms | downtime ms | estimated ms (fixed) "
          "| bytes sent | rounds | throttle | MB/s | memcheck |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows + refs:
        if r.get("iperf"):
            print(f"| - | raw TCP, iperf tern-a -> tern-b {IPERF_SECONDS} s | reference "
                  f"| - | - | - | {r['bytes']} | - | - | {r['mbit'] / 8:.1f} | "
                  f"{r['mbit']:.1f} Mbit/s (server: {r['srv'] or '-'}) |")
            continue
        wl = workload(r, link_bps)
        if "failed" in r:
            print(f"| {r['mib']} | {wl} | {r['mode']} | failed: {r['failed']} "
                  "| - | - | - | - | - | - | - |")
            continue
        if not r["check"].startswith("PASS"):
            print(f"| {r['mib']} | {wl} | {r['mode']} | broken: see memcheck | - | - | - | - "
                  f"| - | - | {r['check']} |")
            continue
        thr = r["bytes"] / (r["total"] / 1000) if r["total"] else 0
        print(f"| {r['mib']} | {wl} | {r['mode']} | {r['total']} | {r['downtime']} | "
              f"{r.get('estimate', '-')} | {r['bytes']} | {r['rounds']} | {r['throttle']:.1f}% | {mbs(thr)} | "
              f"{r['check']} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="only the 64 MiB rows and the iperf line")
    ap.add_argument("--sizes", help="guest sizes in MiB, comma-separated "
                    f"(default {','.join(map(str, SIZES))})")
    ap.add_argument("--delays", help="live-migration delays, comma-separated "
                    f"(default {','.join(map(str, DELAYS))})")
    ap.add_argument("--all", action="store_true",
                    help="every delay live at every size (about 35 min)")
    ap.add_argument("--no-qemu", action="store_true", help="skip QEMU's reference")
    ap.add_argument("--timeout", type=int, default=ROW_TIMEOUT_S,
                    help="Tern's timeout= per migration, seconds")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "bench-logs"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        ([64] if args.quick else list(SIZES))
    delays = [int(d) for d in args.delays.split(",")] if args.delays else list(DELAYS)
    qemu = not (args.quick or args.no_qemu)
    if os.geteuid() != 0:
        sys.exit("mig_bench: needs root (network namespace, tap devices)")
    ternctl = os.path.join(REPO, "build", "tools", "ternctl")
    for path, what in ((os.path.join(args.esp, "tern", "guests", "migverify.elf"), "make"),
                       (ternctl, "make")):
        if not os.path.isfile(path):
            sys.exit(f"mig_bench: {path} missing (run {what})")
    if qemu and not os.path.exists("/bin/busybox"):
        sys.exit("mig_bench: apt-get install -y --no-install-recommends busybox-static")
    os.makedirs(args.logdir, exist_ok=True)
    t0 = time.monotonic()
    load0 = os.getloadavg()
    # Private copies: a rebuild during the run does no harm.
    tmp = tempfile.mkdtemp(prefix="mig-bench-")
    rows, refs, link_bps = [], [], None
    t = None
    try:
        shutil.copytree(args.esp, os.path.join(tmp, "esp"))
        args.esp = os.path.join(tmp, "esp")
        shutil.copy2(ternctl, os.path.join(tmp, "ternctl"))
        mt.TERNCTL = os.path.join(tmp, "ternctl")

        t = Tern(args)
        t.start()
        print(f"lab up after {time.monotonic() - t0:.0f} s (namespace {t.lab.ns})", flush=True)
        try:
            mbit, srv, nbytes, secs = t.iperf()
            refs.append({"iperf": True, "mbit": mbit, "srv": srv, "bytes": nbytes})
            print(f"  iperf tern-a -> tern-b: {mbit} Mbit/s (server {srv})", flush=True)
        except (RowFailed, ternlab.TestFailure) as e:
            print(f"  iperf failed: {e}", flush=True)
        with open(os.path.join(args.esp, "tern", "kernel.elf"), "rb") as f:
            plain = b"encrypt=on|off" in f.read()
        plan = []
        for mib in sizes:
            live = delays if (args.delays or args.all) else LIVE_PLAN.get(mib, DELAYS)
            plan += [(mib, d, "live") for d in live]
            plan += [(mib, d, "quick") for d in (QUICK_DELAYS if mib == min(sizes) or
                                                 args.all else QUICK_DELAYS_BIG)]
            if plain and mib == min(sizes):
                plan += [(mib, d, f"{m} encrypt=off") for d, m in PLAIN_ROWS]
        for mib, d, mode in plan:
            if not t.alive():
                rows.append({"mib": mib, "delay": d, "mode": mode,
                             "failed": "not run: a Tern host is gone (see the serial logs)"})
                continue
            rows.append(tern_row(t, mib, d, mode, args.timeout))
            r = rows[-1]
            # "The link" as the migration sees it: the idle live copy's rate.
            if link_bps is None and mode == "live" and d == IDLE_DELAY and \
                    r.get("check") == "PASS":
                link_bps = r["bytes"] / (r["total"] / 1000)
        t.stop()
        t = None
        if qemu:
            vmlinuz, _ = net_bench.fetch_kernel()
            initrd = os.path.join(tmp, "ref-initramfs.cpio.gz")
            build_ref_initramfs(initrd)
            print(f"QEMU reference: {os.path.basename(vmlinuz)}", flush=True)
            for dirty in (False, True):
                refs.append(qemu_run(args, tmp, vmlinuz, initrd, dirty))
    except (BenchError, TimeoutError, ternlab.LabError, subprocess.SubprocessError) as e:
        print(f"mig_bench: FAILED: {e}", file=sys.stderr)
        print(f"mig_bench: logs in {args.logdir}", file=sys.stderr)
        return 1
    finally:
        if t:
            t.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    qv = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                        text=True).stdout.splitlines()[0]
    load1 = os.getloadavg()
    header = [f"emulator: {qv}, TCG; Tern hosts -machine q35 -cpu qemu64,+svm,+npt "
              f"-smp {HOST_SMP} -m {HOST_MEM}, virtio-net on netlab's bridge",
              f"host: {os.cpu_count()} cores, load average {load0[0]:.2f} at the start, "
              f"{load1[0]:.2f} at the end; run took {time.monotonic() - t0:.0f} s",
              "guest: migverify; 'writes' = page writes/s x 4 KiB on the guest before the "
              "migration, (Nx) = that over the idle live row's bytes/total "
              + (f"({mbs(link_bps)} MB/s)" if link_bps else "(not measured)"),
              f"Tern: downtime target 300 ms (default), no bandwidth cap, timeout="
              f"{args.timeout}; MB = 10^6 bytes; MB/s = bytes sent / total"]
    for r in refs:
        if r.get("params"):
            header.append(f"QEMU reference: -smp 1 -m {QEMU_MEM_MIB}M, loopback TCP, "
                          f"{r['params']}; bytes = ram.transferred, rounds = "
                          "dirty-sync-count")
            break
    print_table(rows, refs, link_bps, header)
    notes = [describe(r) for r in rows if "failed" not in r]
    for r in refs:
        if "zero_pages" in r:
            notes.append(f"QEMU {'dirty' if r['dirty'] else 'idle'}: {r['normal']} normal "
                         f"pages, {r['zero_pages']} zero pages sent as markers")
    print("Notes:")
    for n in notes:
        print(f"- {n}")
    print(f"\ntotal {time.monotonic() - t0:.0f} s")
    bad = [r for r in rows + refs if "failed" in r or
           (r.get("check") and not r["check"].startswith("PASS"))]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
