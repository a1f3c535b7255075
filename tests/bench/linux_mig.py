#!/usr/bin/env python3
"""linux_mig: live migration of a Debian guest with its disk and NIC,
Tern against QEMU, in one run (issue 15).  Prints one Markdown table.

    python3 tests/bench/linux_mig.py [--esp build/esp-linux]
        [--only tern|qemu] [--cases idle,dwriter,memwriter] [--no-quick]
        [--logdir build/bench-logs]

A benchmark, not a test: no timed asserts; exit status 1 when a migration
fails or the guest is not whole after it.  Needs root, `make esp-linux`
(and ternctl), tgtd, and for the QEMU side qemu-block-extra (libiscsi).

The lab is tests/lab/linux_mig_tests.py's (linux_io_tests' two Tern hosts,
QEMU TCG -cpu qemu64,+svm,+npt -smp 3 -m 1G, on the namespace's bridge
br0; tgtd at 10.77.0.254 with the 64 MiB LUN "sys", tid 1, and the 32 MiB
LUN "other", tid 2).  The same kernel and initramfs (build/esp-linux's
linux/vmlinuz and initrd.gz), 256 MiB and 2 vCPUs on both sides.

Tern: the guest "lm" (vcpus=2 disk=sys nic=auto, 10.77.0.60) boots on
tern-a and goes back and forth with `migrate lm ADDR live` (then `quick`),
polled with `migrate status` as the tests do; its `report:` line gives
total, downtime, bytes sent and rounds.

QEMU: two plain QEMU processes (TCG, -cpu qemu64 -smp 2 -m 256M) inside
the namespace, the LUN "other" through QEMU's iSCSI driver (libiscsi,
each process with its own initiator name), virtio-net on its own tap of
br0 (10.77.0.61); the destination starts with -incoming tcp:10.77.0.254:P
and the source is driven over QMP (auto-converge on, QEMU's other
parameters at their defaults): query-migrate's total-time, downtime and
ram.transferred.  The migration stream goes over the namespace's own
address (loopback), Tern's between two emulated hosts over the bridge.
While QEMU runs, the two Tern hosts are paused (QMP stop) so that they do
not share the 2 cores with it.

Workloads, each its own migration:
  idle       the shell only;
  dwriter    tests/linux/dwriter.c at 20 fdatasync'ed 4 KiB records/s on
             /dev/vda; afterwards every durable record must be whole on
             tgtd's backing file (check_dwriter_records);
  memwriter  a busybox loop rewriting a 16 MiB file in the guest's
             tmpfs-backed rootfs (/tmp), 1 MiB of random data per dd, a
             `usleep 250000` between (at most 4 MiB/s; the rate it really
             reached before the migration is measured);
  quick      (Tern only) `migrate lm ADDR quick`, idle: one round, the
             guest stopped throughout.
For every row the namespace pings the guest every 10 ms (PingMeter): the
longest silence around the migration is what its peers see of the
downtime.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.join(REPO, "tests", "bench"))
import ternlab  # noqa: E402
import netlab  # noqa: E402
import linux_tests  # noqa: E402  (guest_cmd, the guest's prompt)
import linux_io_tests as lio  # noqa: E402  (the lab with tgtd)
import linux_mig_tests as lmt  # noqa: E402  (the guest lm, PingMeter, dwriter)
import linux_boot  # noqa: E402  (DirectQemu: the kernel straight into QEMU)

CASES = ("idle", "dwriter", "memwriter")
QEMU_TID = 2                    # lio.TARGETS: "other", 32 MiB
QEMU_ADDR = "10.77.0.61"
QEMU_CPU = "qemu64"
QEMU_MEM = "256M"
QEMU_TIMEOUT = 900
PING_INTERVAL = 0.01
MW_MIB = 16                     # the memory writer's working set
MW_SLEEP_US = 250000            # between its 1 MiB writes
GUEST_PROMPT = linux_tests.GUEST_PROMPT
QEMU_PARAMS = []                # what query-migrate-parameters said


class BenchError(RuntimeError):
    pass


# --- the workloads (any object with run(cmd, timeout)) -------------------------

def mw_start(g):
    """Start the memory writer; (rate in bytes/s it reached over ~5 s)."""
    slices = " ".join(str(i) for i in range(MW_MIB))
    g.run(f"dd if=/dev/urandom of=/tmp/mw.src bs=1M count={MW_MIB} 2>/dev/null; "
          f"cp /tmp/mw.src /tmp/mw.dst; echo 0 >/tmp/mw.i; touch /tmp/mw.on", 180)
    g.run("( i=0; while [ -e /tmp/mw.on ]; do for s in " + slices + "; do "
          "dd if=/tmp/mw.src of=/tmp/mw.dst bs=1M count=1 skip=$s seek=$s conv=notrunc "
          f"2>/dev/null; i=$((i+1)); echo $i >/tmp/mw.i; usleep {MW_SLEEP_US}; done; done "
          ") >/dev/null 2>&1 &")
    time.sleep(2)
    n0, t0 = mw_count(g)
    time.sleep(5)
    n1, t1 = mw_count(g)
    if n1 <= n0:
        raise BenchError(f"the memory writer does not run ({n0} then {n1} MiB written)")
    return (n1 - n0) * (1 << 20) / (t1 - t0)


def mw_count(g):
    out = g.run("cat /tmp/mw.i")
    t = time.monotonic()
    m = re.search(r"^(\d+)\s*$", out, re.M)
    if not m:
        raise BenchError(f"the memory writer's counter:\n{out}")
    return int(m.group(1)), t


def mw_stop(g):
    n0, _ = mw_count(g)
    time.sleep(2)
    n1, _ = mw_count(g)
    g.run("rm -f /tmp/mw.on; sleep 2; rm -f /tmp/mw.src /tmp/mw.dst")
    if n1 <= n0:
        raise BenchError(f"the memory writer stopped on the destination ({n0} then {n1})")


def dw_stop_and_check(g, run, lun_path, what):
    st, out = lmt.stop_dwriter(g)
    if st["errors"]:
        raise BenchError(f"{what}: dwriter saw errors:\n{out}")
    n, bad = lmt.check_dwriter_records(lun_path, run, st["durable"])
    if bad:
        raise BenchError(f"{what}: {len(bad)} of {n} durable records bad on tgtd's file:\n"
                         + "\n".join(bad))
    return f"{n} records whole, dwriter gap {st['gap_ms']} ms"


def ping_gap(pm, t0, t1):
    time.sleep(2)       # the first replies after the resume
    gap, lost = pm.silence(t0, t1)
    pm.stop()
    return gap, lost


def wait_pings(pm, n=30, timeout=30):
    deadline = time.monotonic() + timeout
    while pm.count() < n:
        if time.monotonic() > deadline:
            raise BenchError(f"only {pm.count()} ping replies from the guest in {timeout} s")
        time.sleep(0.2)


# --- Tern ------------------------------------------------------------------------

def tern_row(case, mode, src):
    """One migration of lm from host src; the row."""
    dst = 1 - src
    lb = lmt.lab()
    row = {"vmm": "Tern", "case": case, "mode": mode, "dir": f"{'ab'[src]}->{'ab'[dst]}"}
    run = None
    with lmt.gsh(src) as g:
        if case == "dwriter":
            run = lmt.start_dwriter(g)
            time.sleep(3)
            st = lmt.dwriter_status(g)
            row["note"] = f"{st['durable']} records durable before"
        elif case == "memwriter":
            row["rate"] = mw_start(g)
    pm = lmt.PingMeter(lb.net.ns, lmt.VM_ADDR, PING_INTERVAL)
    try:
        wait_pings(pm)
        t0 = time.time()
        rep = lmt.migrate(src, mode)
        t1 = time.time()
        gap, lost = ping_gap(pm, t0, t1)
    finally:
        pm.stop()
    row.update(rep, wall=t1 - t0, gap=gap, lost=lost)
    resumed = dst_resumed(dst)
    if resumed:
        row["note"] = "; ".join(filter(None, (row.get("note"), resumed)))
    with lmt.gsh(dst) as g:
        after_move(g, row, case, run, lb.lun_path(lmt.SYS_TID), "Tern", f"tern-{'ab'[dst]}")
    return row


def after_move(g, row, case, run, lun_path, vmm, where):
    """The workload stopped and checked on the destination's shell g,
    which must still answer; the row printed."""
    if case == "dwriter":
        row["check"] = dw_stop_and_check(g, run, lun_path, vmm)
    elif case == "memwriter":
        mw_stop(g)
        row["check"] = "writer ran on"
    out = g.run("echo MIGOK-$((6*7))")
    if "MIGOK-42" not in out:
        raise BenchError(f"the shell on {where}:\n{out}")
    row.setdefault("check", "shell answers")
    print(f"  {describe(row)}", flush=True)


def dst_resumed(dst):
    """The destination's own account of the resume, for the notes: its
    last `resumed here (...)` log line, or ''."""
    try:
        text = lmt.host(dst)[1].raw("log 1000", 60)
    except (ternlab.LabError, ternlab.TestFailure, TimeoutError):
        return ""
    found = re.findall(r"migrate: \S+ from \S+ resumed here \(([^)]*)\)", text)
    return f"tern-{'ab'[dst]}: resumed {found[-1]}" if found else ""


def run_tern(args):
    rows = []
    lmt.lab()
    t = time.monotonic()
    lmt.home()
    print(f"  lm running on tern-a ({time.monotonic() - t:.0f} s to boot or bring home)",
          flush=True)
    src = 0
    plan = [(c, "live") for c in args.cases] + ([] if args.no_quick else [("idle", "quick")])
    for case, mode in plan:
        try:
            rows.append(tern_row(case, mode, src))
        except (BenchError, ternlab.TestFailure, TimeoutError) as e:
            rows.append({"vmm": "Tern", "case": case, "mode": mode,
                         "dir": f"{'ab'[src]}->{'ab'[1 - src]}", "failed": one_line(str(e))})
            print(f"  Tern {case} {mode}: FAILED: {e}", flush=True)
            break       # the guest's whereabouts are unknown: stop here
        src = 1 - src
    return rows


def pause_tern_hosts():
    """Freeze both Tern QEMUs (QMP stop) so that QEMU's run has the cores."""
    lb = lio._lab.get("main")
    if not lb:
        return
    i = lmt.where()
    if i is not None:
        lio.destroy(lb.cons[i], lmt.VM)
    for h in lb.net.hosts:
        try:
            h.qmp("stop")
        except ternlab.LabError as e:
            print(f"  (could not pause {h.name}: {e})", flush=True)


# --- QEMU ------------------------------------------------------------------------

class MigQemu(linux_boot.DirectQemu):
    """The same kernel and initramfs in QEMU TCG inside the namespace: 2
    vCPUs, 256 MiB, the LUN through libiscsi, a NIC on its own tap of br0;
    with incoming=PORT it waits for a migration."""

    max_runtime = 3600

    def __init__(self, esp, name, url, ns, tap, logdir, incoming=None):
        super().__init__(os.path.join(esp, "tern", *lio.KERNEL.split("/")),
                         os.path.join(esp, "tern", *lio.INITRD.split("/")),
                         f"{lio.CMDLINE} tern.ip={QEMU_ADDR}/24", logdir)
        self.name, self.mem, self.cpu = name, QEMU_MEM, QEMU_CPU
        self.url, self.ns, self.tap, self.incoming = url, ns, tap, incoming

    def _popen(self, argv, stdout, stderr, env=None, cwd=None):
        argv = list(argv)
        argv[argv.index("-smp") + 1] = "2"
        argv[argv.index("-name") + 1] = f"{self.name},debug-threads=on"
        i = argv.index("-nic")
        argv[i:i + 2] = [
            "-iscsi", f"initiator-name=iqn.2026-12.lab.tern:qemu-{self.name}",
            "-drive", f"file={self.url},if=none,id=d0,format=raw,cache=none",
            "-device", "virtio-blk-pci,drive=d0",
            "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:99:00:61,romfile="]
        if self.incoming:
            argv += ["-incoming", f"tcp:{netlab.BRIDGE_ADDR}:{self.incoming}"]
        super()._popen(["ip", "netns", "exec", self.ns, *argv], stdout, stderr,
                       env=env, cwd=cwd)


class QShell:
    """The guest's serial shell on a MigQemu, as lmt's helpers want it."""

    def __init__(self, h):
        self.h = h

    def run(self, cmd, timeout=lio.CMD_TIMEOUT):
        time.sleep(0.3)     # a late prompt must not end the next command
        return linux_tests.guest_cmd(self.h, cmd, timeout)


def add_tap(ns, tap):
    for argv in (["tuntap", "add", "dev", tap, "mode", "tap"], ["link", "set", tap, "master",
                 "br0"], ["link", "set", tap, "up"]):
        subprocess.run(["ip", "-n", ns, *argv], check=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def qemu_migrate(src, dst, port):
    """Drive src's migration to dst over QMP; (query-migrate, wall s, t0, t1)."""
    src.qmp("migrate-set-capabilities", capabilities=[
        {"capability": "auto-converge", "state": True}])
    t0 = time.time()
    src.qmp("migrate", uri=f"tcp:{netlab.BRIDGE_ADDR}:{port}")
    deadline = time.monotonic() + QEMU_TIMEOUT
    while True:
        time.sleep(0.25)
        q = src.qmp("query-migrate")
        if q.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            src.qmp("migrate_cancel")
            raise BenchError(f"QEMU's migration not complete within {QEMU_TIMEOUT} s: {q}")
    t1 = time.time()
    if q["status"] != "completed":
        raise BenchError(f"QEMU's migration {q['status']}: {q.get('error-desc', '')}")
    # The source says completed when it has sent the last byte; the
    # destination runs once it has loaded it.
    deadline = time.monotonic() + 60
    while (st := dst.qmp("query-status")["status"]) != "running":
        if st not in ("inmigrate", "paused") or time.monotonic() > deadline:
            raise BenchError(f"QEMU's destination is {st} after the migration")
        time.sleep(0.1)
    return q, t1 - t0, t0, t1


def qemu_row(case, src, dst, port, ns, lun_path):
    row = {"vmm": "QEMU", "case": case, "mode": "live", "dir": f"{src.name}->{dst.name}"}
    g = QShell(src)
    run = None
    if case == "dwriter":
        run = lmt.start_dwriter(g)
        time.sleep(3)
        st = lmt.dwriter_status(g)
        row["note"] = f"{st['durable']} records durable before"
    elif case == "memwriter":
        row["rate"] = mw_start(g)
    pm = lmt.PingMeter(ns, QEMU_ADDR, PING_INTERVAL)
    try:
        wait_pings(pm)
        q, wall, t0, t1 = qemu_migrate(src, dst, port)
        gap, lost = ping_gap(pm, t0, t1)
    finally:
        pm.stop()
    ram = q.get("ram", {})
    row.update(total=q["total-time"], downtime=q["downtime"], bytes=ram.get("transferred"),
               rounds=ram.get("dirty-sync-count"), wall=wall, gap=gap, lost=lost,
               throttle=q.get("cpu-throttle-percentage", 0))
    # The destination's serial: its shell answers there.
    g = QShell(dst)
    dst.send("\r")
    dst.expect(re.escape(GUEST_PROMPT), 60)
    after_move(g, row, case, run, lun_path, "QEMU", "QEMU's destination")
    return row


def run_qemu(args):
    ternlab.require_file("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so", "qemu-block-extra")
    lb = lmt.lab()
    pause_tern_hosts()
    ns = lb.net.ns
    taps = ("tapq0", "tapq1")
    for tap in taps:
        add_tap(ns, tap)
    url = lio.url(QEMU_TID)
    rows, vms = [], []
    try:
        cur = MigQemu(args.esp, "qmig0", url, ns, taps[0], args.logdir)
        vms.append(cur)
        t = time.monotonic()
        cur.start()
        cur.expect(r"TERN-LINUX-SHELL", 300)
        cur.send("\r")
        cur.expect(re.escape(GUEST_PROMPT), 60)
        print(f"  QEMU guest up ({time.monotonic() - t:.0f} s)", flush=True)
        p = cur.qmp("query-migrate-parameters")
        QEMU_PARAMS.append(f"max-bandwidth {p.get('max-bandwidth', 0) / 2**20:.0f} MiB/s, "
                           f"downtime-limit {p.get('downtime-limit')} ms, auto-converge on")
        time.sleep(10)     # settle, as the Tern guest has long since
        for n, case in enumerate(args.cases, 1):
            port = free_port()
            dst = MigQemu(args.esp, f"qmig{n}", url, ns, taps[n % 2], args.logdir,
                          incoming=port)
            vms.append(dst)
            dst.start()
            time.sleep(2)
            try:
                rows.append(qemu_row(case, cur, dst, port, ns, lb.lun_path(QEMU_TID)))
            except (BenchError, ternlab.LabError, ternlab.TestFailure, TimeoutError) as e:
                rows.append({"vmm": "QEMU", "case": case, "mode": "live",
                             "dir": f"{cur.name}->{dst.name}", "failed": one_line(str(e))})
                print(f"  QEMU {case}: FAILED: {e}", flush=True)
                break
            cur.stop()
            vms.remove(cur)
            cur = dst
    finally:
        for vm in vms:
            vm.stop()
        for tap in taps:
            subprocess.run(["ip", "-n", ns, "link", "del", tap], capture_output=True)
    return rows


# --- the table ----------------------------------------------------------------------

def one_line(text, limit=300):
    text = " / ".join(ln.strip() for ln in text.strip().splitlines() if ln.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def workload(r):
    if r["case"] == "memwriter" and r.get("rate"):
        return f"memwriter ({r['rate'] / 2**20:.1f} MiB/s)"
    return r["case"]


def describe(r):
    if "failed" in r:
        return f"{r['vmm']} {r['case']} {r['mode']} {r['dir']}: FAILED: {r['failed']}"
    return (f"{r['vmm']} {workload(r)} {r['mode']} {r['dir']}: total {r['total']} ms, "
            f"downtime {r['downtime']} ms, ping gap {r['gap'] * 1000:.0f} ms "
            f"({r['lost']} lost), {r['bytes']} bytes, {r['rounds']} rounds, wall "
            f"{r['wall']:.1f} s; {r.get('check', '')}"
            + (f"; {r['note']}" if r.get("note") else "")
            + (f"; QEMU throttle {r['throttle']}%" if r.get("throttle") else ""))


def table(rows):
    print("\n| VMM | workload | mode | total ms | downtime ms (reported) "
          "| ping gap ms (lost at 10 ms) | MiB sent | rounds | after |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['vmm']} | {r['case']} | {r['mode']} | failed: {r['failed']} "
                  "| - | - | - | - | - |")
            continue
        print(f"| {r['vmm']} | {workload(r)} | {r['mode']} | {r['total']} | {r['downtime']} | "
              f"{r['gap'] * 1000:.0f} ({r['lost']}) | {r['bytes'] / 2**20:.1f} | "
              f"{r['rounds']} | {r.get('check', '')} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp-linux"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "bench-logs"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", choices=("tern", "qemu"))
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated, of {','.join(CASES)}")
    ap.add_argument("--no-quick", action="store_true", help="no quick-migration row")
    args = ap.parse_args()
    args.esp, args.logdir = os.path.abspath(args.esp), os.path.abspath(args.logdir)
    args.cases = [c for c in args.cases.split(",") if c]
    if any(c not in CASES for c in args.cases):
        ap.error(f"--cases: choose from {','.join(CASES)}")
    if os.geteuid() != 0:
        sys.exit("linux_mig: needs root (network namespace, taps)")
    if not os.access(lmt.TERNCTL, os.X_OK):
        sys.exit(f"linux_mig: {lmt.TERNCTL} missing: run make")
    ternlab.require_tool("ping", "iputils-ping")
    os.makedirs(args.logdir, exist_ok=True)
    lio.CFG = linux_tests.CFG = lmt.CFG = args
    # ternlab SIGKILLs a host after 15 min; the run takes longer.
    netlab.NsQemuHost.max_runtime = 7200
    t0 = time.monotonic()
    load0 = os.getloadavg()
    rows = []
    try:
        if args.only != "qemu":
            print("Tern:", flush=True)
            rows += run_tern(args)
        if args.only != "tern":
            print("QEMU:", flush=True)
            rows += run_qemu(args)
    except (BenchError, ternlab.LabError, ternlab.TestFailure, TimeoutError,
            subprocess.SubprocessError) as e:
        print(f"linux_mig: FAILED: {e}", file=sys.stderr)
        rows.append({"vmm": "-", "case": "-", "mode": "-", "dir": "-",
                     "failed": one_line(str(e))})
    finally:
        lmt.stop_labs()
    qv = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                        text=True).stdout.splitlines()[0]
    load1 = os.getloadavg()
    print(f"\nlinux_mig: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, {qv}, TCG; load {load0[0]:.2f} at the start, "
          f"{load1[0]:.2f} at the end; {time.monotonic() - t0:.0f} s")
    if QEMU_PARAMS:
        print(f"QEMU's migration: {QEMU_PARAMS[0]}")
    table(rows)
    for r in rows:
        print(f"- {describe(r)}")
    bad = [r for r in rows if "failed" in r]
    if bad:
        print(f"linux_mig: {len(bad)} row(s) failed; logs in {args.logdir}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
