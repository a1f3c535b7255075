#!/usr/bin/env python3
"""iscsi_bench: iSCSI block I/O from a Tern host to a tgtd LUN under QEMU
TCG, next to libiscsi's iscsi-perf in a Linux VM on the same bridge and
raw TCP over the same link; prints one Markdown table.

    python3 tests/bench/iscsi_bench.py [--seconds 5] [--depth 8]
        [--nic virtio-net-pci|e1000e] [--size 1G] [--quick]
        [--only tern|linux] [--esp build/esp] [--logdir build/bench/iscsi]

A benchmark, not a test (make test does not run it).  Needs root
(netlab's network namespace and taps), and the Debian packages checked
below (tgt, libiscsi-bin, plus net_bench.py's busybox-static, iperf and
qemu-system-x86); for the Tern rows also a built ESP and ternctl (`make`).
Exit status 1 only when something did not run (a row shows `failed:`).

One target for everything: tgtd (Debian's tgt) runs in the lab's network
namespace at 10.77.0.254:3260, its PID held, with one file-backed LUN (a
sparse file of --size under --logdir, made afresh each run; LUN 1 of
IQN below).  In the same run, on tests/lab/netlab.py's bridge:

  - Tern: one host (tern-a, 10.77.0.1, NetLab's -m 512M -smp 2, --nic),
    driven over a ternctl session as mig_bench.py does: `disk attach d0
    iscsi://10.77.0.254:3260/IQN/1` (must print "ready"), then per cell
    `disk bench d0 read|write seq|rand BS SECONDS depth=N`, whose line
    "N ios X MB/s N IOPS [in T s]" is parsed;
  - Linux: net_bench.py's Linux VM (Debian's kernel, a busybox
    initramfs, the same -machine/-cpu/-smp/-m and the same NIC model,
    10.77.0.200), whose initramfs also carries iscsi-perf with the
    libraries ldd lists.  iscsi-perf (libiscsi-bin) only reads: it sends
    READ16 and has no write mode, so the Linux write rows say so and show
    no numbers.  Its options used: -b blocks per request (BS / 512, the
    LUN's block size; the "FIXED transfer size" it prints is checked),
    -m requests in flight (the depth), -r random LBAs (any 512-byte LBA,
    so 4 KiB random reads are not 4 KiB-aligned), -t seconds, -l one
    progress line per second.  Its figure is its last "iops average";
  - raw TCP: `iperf client 10.77.0.254 S` on tern-a, and `iperf -c` typed
    on the Linux VM, to iperf2's `iperf -s` in the namespace (its PID
    held); Mbit/s is the receiver's figure.

MB/s is IOPS x BS / 10^6 for every storage row (Tern's and iscsi-perf's
own MB/s figures are in the note); for raw TCP it is Mbit/s / 8.  The
note also has the CPU time tgtd and the initiator's QEMU process used
during the cell (utime + stime from /proc/PID/stat).

Every row shares the machine with the same idle neighbours (the Tern host
idles during the Linux rows and the Linux VM during the Tern rows): the
numbers are emulator numbers.
"""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
import ternlab  # noqa: E402
import migrate_tests as mt  # noqa: E402  (Session: ternctl --json)
import net_bench  # noqa: E402  (Linux VM, initramfs, iperf, CPU time)
from net_bench import BenchError, cpu_seconds  # noqa: E402

from tgt import Tgtd  # noqa: E402  (tests/lab/tgt.py)

PORTAL = f"{netlab.BRIDGE_ADDR}:3260"
IQN = "iqn.2026-11.lab.tern:iscsi-bench"
TID, LUN = 1, 1                 # tgtd's LUN 0 is its controller
DISK = "d0"
URL = f"iscsi://{PORTAL}/{IQN}/{LUN}"
LUN_BLOCK = 512                 # tgtd's default block size
BOOT_TIMEOUT = 180
# (op, pattern, bytes per I/O)
CELLS = (("read", "seq", 65536), ("write", "seq", 65536),
         ("read", "rand", 4096), ("write", "rand", 4096))
QUICK_CELLS = (("read", "seq", 65536), ("write", "rand", 4096))
QUICK_SECONDS = 2
PACKAGES = {"tgt": "/usr/sbin/tgtd", "libiscsi-bin": "/usr/bin/iscsi-perf"}
TERN_BENCH = re.compile(r"(\d+) ios ([\d.]+) MB/s (\d+) IOPS")
TERN_SECS = re.compile(r"\bin ([\d.]+) s\b")
PERF_AVG = re.compile(r"iops average (\d+) \((\d+) MB/s\)")
PERF_FIXED = re.compile(r"FIXED transfer size of (\d+) blocks \((\d+) byte\)")
NO_WRITE = "iscsi-perf has no write mode (it only sends READ16)"


class CellFailed(Exception):
    """This row has no numbers: the text says why."""


def one_line(text, limit=200):
    text = " / ".join(l.strip() for l in text.splitlines() if l.strip())
    return text if len(text) <= limit else text[:limit] + "..."


# --- the target ----------------------------------------------------------------

def tgtd_pid(tgt):
    return tgt.pid


def start_target(lab, workdir, size):
    lun_path = os.path.join(workdir, "lun.img")
    if os.path.exists(lun_path):
        os.unlink(lun_path)            # afresh: every run starts all holes
    with open(lun_path, "wb") as f:
        f.truncate(size)
    tgt = Tgtd(netns=lab.ns, portal=PORTAL, workdir=workdir).start()
    try:
        tgt.add_target(TID, IQN)
        tgt.add_lun(TID, LUN, lun_path, size)
        tgt.bind_all(TID)
        deadline = time.monotonic() + 10
        while "LISTEN" not in lab.ns_run(["ss", "-Hltn", "sport = :3260"]).stdout:
            if time.monotonic() > deadline:
                raise BenchError(f"tgtd does not listen on {PORTAL}")
            time.sleep(0.2)
    except BaseException:
        tgt.stop()
        raise
    return tgt, lun_path


class CpuWatch:
    """CPU seconds that tgtd and one QEMU use over a cell."""

    def __init__(self, tgt_pid, qemu_pid):
        self.pids = (tgt_pid, qemu_pid)

    def __enter__(self):
        self.c0 = [cpu_seconds(p) if p else 0.0 for p in self.pids]
        return self

    def __exit__(self, *exc):
        c1 = [cpu_seconds(p) if p else 0.0 for p in self.pids]
        self.tgt, self.qemu = (b - a for a, b in zip(self.c0, c1))
        return False

    def note(self):
        return f"tgtd CPU {self.tgt:.2f} s, QEMU CPU {self.qemu:.1f} s"


def row(initiator, workload, bs, depth, mbs=None, iops=None, note=""):
    return {"initiator": initiator, "workload": workload, "bs": bs,
            "depth": depth, "mbs": mbs, "iops": iops, "note": note}


def storage_row(initiator, cell, depth, iops=None, note="", failed=None):
    op, pat, bs = cell
    r = row(initiator, f"{pat} {op}", bs, depth, note=note)
    if failed is not None:
        r["failed"] = failed
    elif iops is not None:
        r["iops"], r["mbs"] = iops, iops * bs / 1e6
    return r


def tcp_row(initiator, got, sent, seconds):
    return row(initiator, f"raw TCP to the namespace, iperf2 {seconds} s", "-", "-",
               mbs=got / 8, note=f"{got:.1f} Mbit/s at the receiver (iperf -s), "
                                 f"sender {sent:.1f}")


# --- Tern --------------------------------------------------------------------

def tern_rows(h, cells, args, tgt_pid, srv):
    """h: tern-a, driven over a ternctl session (migrate_tests.cmd)."""
    who = "Tern host"
    rows = []
    try:
        out = mt.cmd(h, f"disk attach {DISK} {URL}", BOOT_TIMEOUT)
        if re.search(r"^error: ", out, re.M) or not re.search(r"\bready\b", out, re.I):
            raise CellFailed(f"disk attach: {one_line(out)}")
        print(f"tern: {one_line(out)}", flush=True)
        attached = True
    except (CellFailed, ternlab.TestFailure, BrokenPipeError, ValueError) as e:
        attached = False
        reason = str(e) if isinstance(e, CellFailed) else f"disk attach: {e}"
        print(f"tern: FAILED {reason}", flush=True)
        rows += [storage_row(who, c, args.depth, failed=reason) for c in cells]
    for cell in cells if attached else ():
        op, pat, bs = cell
        line = f"disk bench {DISK} {op} {pat} {bs} {args.seconds} depth={args.depth}"
        try:
            with CpuWatch(tgt_pid, h.proc.pid) as cpu:
                out = mt.cmd(h, line, args.seconds + 120)
            m = TERN_BENCH.search(out)
            if re.search(r"^error: ", out, re.M) or not m:
                raise CellFailed(f"{line}: {one_line(out)}")
            for key, want in (("bs", bs), ("depth", args.depth)):
                got = re.search(rf"\b{key}=(\d+)", out)
                if got and int(got.group(1)) != want:
                    raise CellFailed(f"{line}: ran {key}={got.group(1)}: {one_line(out)}")
            ios, mbs, iops = int(m.group(1)), m.group(2), int(m.group(3))
            secs = TERN_SECS.search(out[m.end():])
            if secs and float(secs.group(1)) > 0:
                iops_f = ios / float(secs.group(1))
                own = f"Tern: {ios} ios in {secs.group(1)} s, {mbs} MB/s"
            else:
                iops_f = iops
                own = f"Tern: {ios} ios, {mbs} MB/s"
            rows.append(storage_row(who, cell, args.depth, iops_f,
                                    f"{own}; {cpu.note()}"))
        except (CellFailed, ternlab.TestFailure, BrokenPipeError, ValueError) as e:
            rows.append(storage_row(who, cell, args.depth, failed=str(e)))
        print(f"tern: {rows[-1]}", flush=True)
    s = min(args.seconds, 10)          # Tern's iperf client runs 1..10 s
    try:
        out = mt.cmd(h, f"iperf client {net_bench.NS_ADDR} {s}", s + 60)
        m = net_bench.TERN_CLIENT.search(out)
        if not m:
            raise CellFailed(f"iperf client: {one_line(out)}")
        rows.append(tcp_row(who, srv.next_report(), float(m.group(3)), s))
    except (CellFailed, BenchError, ternlab.TestFailure, BrokenPipeError,
            ValueError) as e:
        rows.append(row(who, "raw TCP to the namespace", "-", "-"))
        rows[-1]["failed"] = str(e)
    print(f"tern: {rows[-1]}", flush=True)
    # The other way, namespace -> Tern: the direction of every read.
    try:
        mt.cmd(h, "iperf server start")
        h.mark()
        sent = net_bench.ns_client(h.lab, h.lab.address(0), s)
        got = net_bench.tern_server_report(h, net_bench.NS_ADDR)
        rows.append(row(who, f"raw TCP from the namespace, iperf2 {s} s", "-", "-",
                        mbs=got / 8, note=f"{got:.1f} Mbit/s at the receiver (Tern), "
                                          f"sender {sent:.1f}"))
    except (BenchError, TimeoutError, ternlab.TestFailure, BrokenPipeError,
            ValueError) as e:
        rows.append(row(who, "raw TCP from the namespace", "-", "-"))
        rows[-1]["failed"] = str(e)
    finally:
        mt.cmd(h, "iperf server stop")
    print(f"tern: {rows[-1]}", flush=True)
    return rows


# --- Linux VM with iscsi-perf --------------------------------------------------

def perf_cell(vm, i, cell, args, tgt_pid):
    op, pat, bs = cell
    who = "Linux VM, iscsi-perf"
    if op != "read":
        return storage_row(who, cell, args.depth, note=NO_WRITE)
    s = args.seconds
    # iscsi-perf's -t can overshoot if a progress tick skips a second (an
    # unsigned countdown): busybox timeout ends it with SIGINT, after which
    # it drains and prints its average as usual.
    perf = (f"iscsi-perf -l -m {args.depth} -b {bs // LUN_BLOCK}"
            f"{' -r' if pat == 'rand' else ''} -t {s} {URL}")
    vm.mark()
    with CpuWatch(tgt_pid, vm.proc.pid) as cpu:
        vm.sendline(f"echo BENCHVM BEGIN {i}; timeout -s INT -k 10 {s + 30} "
                    f"{perf}; echo BENCHVM RC=$? {i}")
        m = vm.expect(rf"^BENCHVM BEGIN {i}\s*$([\s\S]*?)^BENCHVM RC=(\d+) {i}\s*$",
                      s + 120)
    out, rc = m.group(1), int(m.group(2))
    avg = PERF_AVG.findall(out)
    fixed = PERF_FIXED.search(out)
    if rc != 0 or not avg:
        return storage_row(who, cell, args.depth,
                           failed=f"{perf}: exit {rc}: {one_line(out[-600:])}")
    if not fixed or int(fixed.group(2)) != bs:
        return storage_row(who, cell, args.depth,
                           failed=f"{perf}: transfer size is not {bs} bytes: "
                                  f"{fixed.group(0) if fixed else 'not printed'}")
    iops, mib = map(int, avg[-1])
    return storage_row(who, cell, args.depth, iops,
                       f"iscsi-perf: {iops} IOPS average, {mib} MiB/s; "
                       f"{cpu.note()}")


def linux_rows(vm, cells, args, tgt_pid, srv):
    rows = []
    for i, cell in enumerate(cells):
        try:
            rows.append(perf_cell(vm, i, cell, args, tgt_pid))
        except BenchError as e:
            rows.append(storage_row("Linux VM, iscsi-perf", cell, args.depth,
                                    failed=str(e)))
        print(f"linux: {rows[-1]}", flush=True)
    s = args.seconds
    try:
        sent = net_bench.vm_client(vm, net_bench.NS_ADDR, s)
        rows.append(tcp_row("Linux VM", srv.next_report(), sent, s))
    except BenchError as e:
        rows.append(row("Linux VM", "raw TCP to the namespace", "-", "-"))
        rows[-1]["failed"] = str(e)
    print(f"linux: {rows[-1]}", flush=True)
    return rows


# --- output --------------------------------------------------------------------

def size_text(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def print_table(rows, header):
    print()
    for line in header:
        print(line)
    print()
    print("| initiator | workload | bs | depth | MB/s | IOPS | note |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        bs = size_text(r["bs"]) if isinstance(r["bs"], int) else r["bs"]
        if "failed" in r:
            mbs, iops, note = "-", "-", f"failed: {one_line(r['failed'], 300)}"
        else:
            mbs = f"{r['mbs']:.1f}" if r["mbs"] is not None else "-"
            iops = f"{r['iops']:.0f}" if r["iops"] is not None else "-"
            note = r["note"]
        note = note.replace("|", "\\|")
        print(f"| {r['initiator']} | {r['workload']} | {bs} | {r['depth']} | "
              f"{mbs} | {iops} | {note} |")
    print()


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)(?:i?B)?", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 512M)")
    n = int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]
    if n < 16 << 20 or n % LUN_BLOCK:
        raise argparse.ArgumentTypeError("the LUN must be at least 16 MiB, "
                                         "in 512-byte blocks")
    return n


def tool_version(argv, rx):
    r = subprocess.run(argv, capture_output=True, text=True)
    m = re.search(rx, r.stdout + r.stderr)
    return m.group(1) if m else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=None,
                    help="seconds per cell (default 5, --quick 2)")
    ap.add_argument("--depth", type=int, default=8,
                    help="I/Os in flight (Tern depth=, iscsi-perf -m)")
    ap.add_argument("--nic", default="virtio-net-pci", choices=net_bench.NICS,
                    help="NIC model of the Tern host and the Linux VM")
    ap.add_argument("--size", type=parse_size, default=1 << 30,
                    help="LUN size (sparse file; default 1G)")
    ap.add_argument("--quick", action="store_true",
                    help=f"only {', '.join(f'{p} {o} {size_text(b)}' for o, p, b in QUICK_CELLS)}"
                         f", {QUICK_SECONDS} s each")
    ap.add_argument("--only", choices=("tern", "linux"),
                    help="only the Tern host or only the Linux VM")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(net_bench.BENCH_DIR, "iscsi"),
                    help="logs, the LUN file and the initramfs")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else 5
    # ternctl sessions wait 300 s for a reply (migrate_tests.Session).
    if not 1 <= args.seconds <= 240 or not 1 <= args.depth <= 256:
        ap.error("--seconds must be 1..240 and --depth 1..256")
    cells = QUICK_CELLS if args.quick else CELLS
    tern, linux = args.only in (None, "tern"), args.only in (None, "linux")

    net_bench.check_packages()
    missing = [p for p, path in PACKAGES.items() if not os.path.exists(path)]
    if missing:
        sys.exit("iscsi_bench: missing Debian packages; run:\n  apt-get install "
                 f"-y --no-install-recommends {' '.join(missing)}")
    ternctl = os.path.join(REPO, "build", "tools", "ternctl")
    if tern:
        for path in (os.path.join(args.esp, "tern", "kernel.elf"), ternctl):
            if not os.path.isfile(path):
                sys.exit(f"iscsi_bench: {path} missing (run make)")
    os.makedirs(args.logdir, exist_ok=True)
    t0 = time.monotonic()
    load0 = os.getloadavg()
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    tmp = tempfile.mkdtemp(prefix="iscsi-bench-")
    rows = []
    lab = tgt = srv = vm = None
    lun_path = None
    vmlinuz = None
    try:
        if tern:
            # Private copies: a rebuild during the run does no harm.
            shutil.copytree(args.esp, os.path.join(tmp, "esp"))
            args.esp = os.path.join(tmp, "esp")
            shutil.copy2(ternctl, os.path.join(tmp, "ternctl"))
            mt.TERNCTL = os.path.join(tmp, "ternctl")
        if linux:
            vmlinuz, moddir = net_bench.fetch_kernel()
            initrd = os.path.join(args.logdir, "initramfs.cpio.gz")
            net_bench.build_initramfs(moddir, initrd,
                                      programs=("iperf", "iscsi-perf"))
        lab = netlab.NetLab(hosts=1 if tern else 0, esp_dir=args.esp, nic=args.nic,
                            mem=net_bench.QEMU_MEM, smp=net_bench.QEMU_SMP,
                            logdir=args.logdir)
        lab.start()
        if tern:
            lab.secret_path = lab.secret_file()
        if linux:
            vm = net_bench.LinuxVm(lab, args.nic, vmlinuz, initrd, args.logdir)
            vm.start()
        tgt, lun_path = start_target(lab, args.logdir, args.size)
        srv = net_bench.NsServer(lab)
        lab.wait_prompts(BOOT_TIMEOUT)
        if vm:
            vm.expect(r"^BENCHVM READY", BOOT_TIMEOUT)
        print(f"up after {time.monotonic() - t0:.0f} s (namespace {lab.ns}, "
              f"tgtd PID {tgtd_pid(tgt)}, LUN {URL})", flush=True)
        if tern:
            h = lab.hosts[0]
            h.lab = lab
            rows += tern_rows(h, cells, args, tgtd_pid(tgt), srv)
        if linux:
            rows += linux_rows(vm, cells, args, tgtd_pid(tgt), srv)
    except (BenchError, TimeoutError, ternlab.LabError,
            subprocess.SubprocessError) as e:
        print(f"iscsi_bench: FAILED: {e}", file=sys.stderr)
        print(f"iscsi_bench: logs in {args.logdir}", file=sys.stderr)
        return 1
    finally:
        mt.close_sessions()
        if srv:
            srv.stop()
        if vm:
            vm.stop()
        if tgt:
            tgt.stop()
        if lab:
            lab.stop()
        if lun_path and os.path.exists(lun_path):
            os.unlink(lun_path)
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = os.getloadavg()
    qemu = net_bench.run(["qemu-system-x86_64", "--version"]).splitlines()[0]
    tgtd_v = tool_version(["tgtd", "-V"], r"([\d.]+)")
    perf_v = tool_version(["dpkg-query", "-W", "libiscsi-bin"], r"\t(\S+)")
    header = [
        f"iSCSI benchmark (tests/bench/iscsi_bench.py), {date}; load average "
        f"{load0[0]:.2f} at the start, {load1[0]:.2f} at the end; nic {args.nic}",
        "",
        f"- target: tgtd {tgtd_v} in the lab "
        f"namespace at {PORTAL}, LUN {LUN}: {size_text(args.size)} sparse file, "
        f"{LUN_BLOCK}-byte blocks, made afresh for this run",
        f"- emulator: {qemu}, TCG, -machine q35 -cpu {net_bench.QEMU_CPU} "
        f"-smp {net_bench.QEMU_SMP} -m {net_bench.QEMU_MEM} (Tern host and Linux VM "
        f"alike); host: {os.cpu_count()} cores; {args.seconds} s per cell, "
        f"depth {args.depth}",
        f"- MB = 10^6 bytes; storage MB/s = IOPS x bs; raw TCP MB/s = the "
        f"receiver's Mbit/s / 8; run took {time.monotonic() - t0:.0f} s",
    ]
    if linux:
        header.append(
            f"- Linux VM: {os.path.basename(vmlinuz)}, iscsi-perf from libiscsi-bin "
            f"{perf_v}; "
            f"random = any {LUN_BLOCK}-byte LBA (not 4 KiB-aligned)")
    print_table(rows, header)
    return 1 if any("failed" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
