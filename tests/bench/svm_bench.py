#!/usr/bin/env python3
"""svm_bench: boot Tern in QEMU (TCG, AMD-V with nested paging) and print one
table of what its SVM backend costs:

  1. exit round trip (cycles and us per exit) for CPUID, port I/O and
     VMMCALL through Tern's generic run loop, next to `vm benchexit`, the
     bare VMRUN/#VMEXIT loop on the same CPU;
  2. guest memory write bandwidth with dirty logging off, in D-bit mode and
     in write-protect mode;
  3. the cost of one dirty-log harvest of a 1 GiB guest that writes all the
     time, per harvest and per GiB, in both modes.

    python3 tests/bench/svm_bench.py [--esp build/esp] [--reps 3]

A benchmark, not a test: it only fails when a run does not work (boot, a
command answering an error, a guest not reporting).  Build first with
`make esp`.  Timings under QEMU TCG are emulator timings, not hardware ones.
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
import ternlab  # noqa: E402

PROMPT = "tern> "
QEMU_CPU = "qemu64,+svm,+npt"
QEMU_MEM = "2G"
QEMU_SMP = 2            # CPU 0 manages the console, CPU 1 runs the one vCPU
BOOT_TIMEOUT = 90
CMD_TIMEOUT = 30

# Exit round trips: N exits per run.  Under TCG one exit costs 40-100 us, so
# N = 50000 keeps a run at 2-5 s.
EXIT_N = 50000
EXIT_OPS = (("cpuid", "CPUID leaf 0"),
            ("pio", "IN 0x1230 (unclaimed)"),
            ("hypercall", "VMMCALL"))
# Write bandwidth: a 64 MiB guest writes WRITE_MB MiB WRITE_PASSES times per
# run; write-protect mode faults once per 4 KiB page in the first pass.
WRITE_MB = 48
WRITE_PASSES = 2
WRITE_MODES = (("off", "dirty log off"), ("dbit", "D-bit"),
               ("wp", "write-protect"))
# Harvest: a 1 GiB guest keeps rewriting 512 MiB.
HARVEST_VM_MEM = "1024M"
HARVEST_CMDLINE = "op=write mb=512 passes=100"
HARVEST_SETTLE_S = 1.0

ERROR_RE = r"(?m:^error: [^\n]*(?=\n))"
ASYNC_RE = re.compile(r"\[\s*(\d+\.\d+)\] [EWID] ([^\n]*)")


class BenchError(RuntimeError):
    pass


# --- console ---------------------------------------------------------------

class Console:
    """Commands on Tern's console.  Asynchronous log lines may land anywhere
    in the output, even inside the echo, so a command's answer is found by
    a pattern, never by its position."""

    def __init__(self, host):
        self.h = host
        self.seen = {}          # (timestamp, text) -> True, from `log N`

    def cmd(self, cmd, want, timeout=CMD_TIMEOUT):
        """Type cmd, wait for a whole line that ends with the want pattern
        (or an 'error:' line) and the prompt after it; return the match."""
        self.h.mark()
        self.h.sendline(cmd)
        # The lookahead waits for the end of the line: the text arrives in
        # pieces, and "cycles=(\d+)" would match its first digits.
        rx = re.compile(f"(?:{want})(?=\\n)|{ERROR_RE}")
        m = self.h.expect(rx, timeout)
        if m.group(0).startswith("error: "):
            raise BenchError(f"{cmd!r} answered {m.group(0)!r}")
        self.h.expect(re.escape(PROMPT), timeout)
        return m

    def log_lines(self, n=120):
        """New host log lines ([ts] L text) since the last call, oldest
        first, each seen once however often `log N` shows it."""
        self.h.mark()
        start = len(self.h.output())
        self.h.sendline(f"log {n}")
        m = self.h.expect(re.escape(PROMPT), CMD_TIMEOUT)
        new = []
        for lm in ASYNC_RE.finditer(m.string[start:m.start()]):
            key = (lm.group(1), lm.group(2))
            if key not in self.seen:
                self.seen[key] = True
                new.append(lm.group(2))
        return new

    def wait_guest(self, vm, pattern, count, timeout, cue=None):
        """Wait until the guest vm has logged count lines matching pattern
        (counted from the last `log N`); return their matches.  Guest UART
        lines reach only the host log, so `log N` is the authority; a cue
        (a regex on the console stream, such as Tern's asynchronous
        "vm NAME: stopped" line) is waited for first, so that the polling
        does not load the host while a measurement runs."""
        rx = re.compile(rf"\[{re.escape(vm)}\] (?:{pattern})")
        deadline = time.monotonic() + timeout
        if cue is not None:
            try:
                self.h.expect(cue, timeout)
            except ternlab.EmulatorExited:
                raise
            except TimeoutError:
                pass
        found = []
        while True:
            for ln in self.log_lines():
                m = rx.match(ln)
                if m:
                    found.append(m)
                if re.match(rf"vm {re.escape(vm)}: stopped: (?!guest wrote "
                            r"exit code 0x10)", ln):
                    raise BenchError(f"VM {vm} failed: {ln}")
            if len(found) >= count:
                return found[:count]
            if time.monotonic() > deadline:
                raise BenchError(f"VM {vm}: {len(found)}/{count} lines "
                                 f"matching {pattern!r} after {timeout} s")
            time.sleep(0.3)

    def create(self, vm, mem, cmdline):
        self.cmd(f'vm create {vm} mem={mem} kernel=guests/bench.elf '
                 f'cmdline="{cmdline}"', rf"vm {vm} created \(\d+ MiB\)")

    def start(self, vm):
        self.cmd(f"vm start {vm}", rf"vm {vm} running on CPU \d+")

    def destroy(self, vm):
        self.cmd(f"vm destroy {vm}", rf"vm {vm} destroyed")

    def state(self, vm):
        return self.cmd(f"vm info {vm}", r"state: (\w+)").group(1)

    def wait_state(self, vm, state, timeout=15):
        deadline = time.monotonic() + timeout
        while self.state(vm) != state:
            if time.monotonic() > deadline:
                raise BenchError(f"VM {vm} not {state} after {timeout} s")
            time.sleep(0.3)

    def key(self, vm, meter=None, cue=None, timeout=60):
        """Type one key into the guest's UART and detach (Ctrl-]).  While
        attached, the guest's UART text also shows on the console, so the
        run can be watched for (cue) without polling; meter, if given, is
        started with the key and stopped at the cue."""
        self.h.mark()
        self.h.sendline(f"vm console {vm}")
        self.h.expect(rf"attached to {re.escape(vm)}", CMD_TIMEOUT)
        if meter is not None:
            meter.start()
        self.h.send("k")
        sample = None
        if cue is not None:
            try:
                self.h.expect(cue, timeout)
            except ternlab.EmulatorExited:
                raise
            except TimeoutError:
                pass
            if meter is not None:
                sample = meter.stop()
        self.h.send("\x1d")
        self.h.expect(r"detached", CMD_TIMEOUT)
        self.h.expect(re.escape(PROMPT), CMD_TIMEOUT)
        return sample

    def dirty(self, vm, action, timeout=CMD_TIMEOUT):
        if action == "harvest":
            m = self.cmd(f"vm dirty {vm} harvest",
                         r"(\d+) pages dirty \(harvest of (\d+) MiB took "
                         r"(\d+) us\)", timeout)
            return int(m.group(1)), int(m.group(2)), int(m.group(3))
        self.cmd(f"vm dirty {vm} {action}", r"dirty logging (?:on|off)[^\n]*")
        return None


# --- host CPU time of QEMU's vCPU threads ---------------------------------

class ThreadMeter:
    """Host CPU seconds each QEMU vCPU thread ("CPU 0/TCG", "CPU 1/TCG";
    QEMU names them with -name ...,debug-threads=on) used between start()
    and stop().  Under TCG a guest's speed is the host CPU time its thread
    gets: on a small, shared host the TSC-timed numbers swing with the load,
    the CPU time per operation much less."""

    def __init__(self, pid):
        self.pid = pid
        self.hz = os.sysconf("SC_CLK_TCK")
        self.t0 = self.c0 = None

    def _sample(self):
        out = {}
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return out
        for t in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{t}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            name = st[st.find("(") + 1:st.rfind(")")]
            m = re.fullmatch(r"CPU (\d+)/TCG", name)
            fields = st.rsplit(")", 1)[1].split()
            if m and len(fields) > 12:
                out[int(m.group(1))] = (int(fields[11]) +
                                        int(fields[12])) / self.hz
        return out

    def start(self):
        self.t0, self.c0 = time.monotonic(), self._sample()

    def stop(self):
        """(wall seconds, {vcpu: host CPU seconds})."""
        wall = time.monotonic() - self.t0
        c1 = self._sample()
        return wall, {k: c1[k] - self.c0.get(k, 0.0) for k in c1}


def shares(samples):
    """'a/b': mean share of a host core that vCPU threads 0 and 1 got."""
    return "/".join(
        f"{statistics.mean(s[1].get(k, 0.0) / s[0] for s in samples):.2f}"
        for k in (0, 1))


# --- measurements ------------------------------------------------------------

def measure_exits(con, meter, reps, n):
    """Rounds of: minimal loop, then each op through the generic loop, so
    that a change in host load hits all of them alike.  Returns, per loop,
    a list of (TSC cycles per exit, host CPU s of vCPU 1 per exit, sample)."""
    res = {"minimal": [], **{op: [] for op, _ in EXIT_OPS}}
    for r in range(reps):
        for i, (op, _) in enumerate(EXIT_OPS):
            vm = f"x{op[0]}{r}"
            con.create(vm, "64M", f"op={op} n={n}")
            if i == 0:
                # The floor, measured on this created VM before it starts.
                meter.start()
                m = con.cmd(f"vm benchexit {vm} n={n}",
                            r"BENCH minimal n=(\d+) cycles=(\d+)",
                            timeout=max(60, n * 1e-3))
                smp = meter.stop()
                k = int(m.group(1))
                res["minimal"].append((int(m.group(2)) / k,
                                       smp[1].get(1, 0.0) / k, smp))
            meter.start()
            con.start(vm)
            m = con.wait_guest(vm, rf"BENCH {op} n=(\d+) cycles=(\d+)", 1,
                               max(60, n * 1e-3),
                               cue=rf"vm {re.escape(vm)}: stopped")[0]
            smp = meter.stop()
            k = int(m.group(1))
            res[op].append((int(m.group(2)) / k, smp[1].get(1, 0.0) / k, smp))
            con.wait_state(vm, "stopped")
            con.destroy(vm)
    return res


def measure_writes(con, meter, reps):
    """One 64 MiB guest, runs=3*reps, waiting for a key before each run;
    the dirty-log mode is switched while it waits (no guest writes then).
    Returns, per mode, a list of (bytes, TSC cycles, pages dirty, sample)."""
    vm = "w"
    runs = len(WRITE_MODES) * reps
    con.create(vm, "64M", f"op=write mb={WRITE_MB} passes={WRITE_PASSES} "
                          f"runs={runs} wait")
    con.start(vm)
    con.wait_guest(vm, r"flags=", 1, 30)     # booted, now waiting for a key
    res = {mode: [] for mode, _ in WRITE_MODES}
    for _ in range(reps):
        for mode, _ in WRITE_MODES:
            if mode != "off":
                con.dirty(vm, f"start {mode}")
            smp = con.key(vm, meter, r"BENCH write bytes=\d+ cycles=\d+\n")
            m = con.wait_guest(vm, r"BENCH write bytes=(\d+) cycles=(\d+)",
                               1, 60)[0]
            pages = None
            if mode != "off":
                # Sanity: the log saw every page written (plus the guest's
                # stack and data pages).
                pages = con.dirty(vm, "harvest")[0]
                con.dirty(vm, "stop")
            res[mode].append((int(m.group(1)), int(m.group(2)), pages, smp))
    con.wait_state(vm, "stopped")
    con.destroy(vm)
    return res


def measure_harvest(con, reps, wp_live):
    vm = "big"
    con.create(vm, HARVEST_VM_MEM, HARVEST_CMDLINE)
    con.start(vm)
    con.wait_guest(vm, r"mmap\[3\]", 1, 30)  # the write loop starts next
    time.sleep(0.5)
    res = {}
    for mode in ("dbit", "wp"):
        if mode == "wp" and not wp_live:
            # Tern bug (see tests/bench/README.md): `vm dirty start wp` on
            # a guest that is writing can fail it with "unexpected stage-2
            # fault in RAM"; starting the log while paused avoids the race.
            con.cmd(f"vm pause {vm}", rf"vm {vm} paused")
            con.dirty(vm, f"start {mode}")
            con.cmd(f"vm resume {vm}", rf"vm {vm} running")
        else:
            con.dirty(vm, f"start {mode}")
        time.sleep(HARVEST_SETTLE_S)
        res[mode] = [con.dirty(vm, "harvest", 120) for _ in range(reps)]
        st = con.state(vm)
        if st != "running":
            tail = [ln for ln in con.log_lines(40) if vm in ln][-3:]
            raise BenchError(f"VM {vm} is {st} after the {mode} harvests: "
                             + " | ".join(tail))
        con.dirty(vm, "stop")
    con.cmd(f"vm stop {vm}", rf"vm {vm} stopped")
    con.destroy(vm)
    return res


# --- report ----------------------------------------------------------------

def host_description():
    qemu = subprocess.run(["qemu-system-x86_64", "--version"],
                          capture_output=True, text=True).stdout.split("\n")[0]
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return qemu, model, os.cpu_count(), os.getloadavg()


def print_table(hdr, exits, writes, harvest, args):
    mhz = hdr["mhz"]
    rows = []
    fmt = "{:<38} {:<24} {:>4} {:>10} {:>17}  {}"

    def row(*cols):
        rows.append(fmt.format(*cols).rstrip())

    def mean(xs):
        return statistics.mean(xs)

    rows.append("")
    rows.append(f"1. Exit round trip: {args.n} exits per run, {args.reps} "
                "runs per loop, interleaved.  us/exit = TSC cycles / n / MHz "
                "(wall time);")
    rows.append("   cpu-us/exit = host CPU time of QEMU's vCPU-1 thread / n "
                "(under TCG this is the cost; wall time also swings with "
                "host load)")
    row("  loop", "guest instruction", "runs", "us/exit", "min..max",
        "cycles/exit  x minimal | cpu-us/exit (min..max)  x minimal | "
        "host cores vCPU0/vCPU1")
    base_us = mean(c for c, _, _ in exits["minimal"]) / mhz
    base_cpu = mean(h for _, h, _ in exits["minimal"]) * 1e6
    loops = [("minimal", "  minimal VMRUN/#VMEXIT (benchexit)",
              "CPUID, host loop")] + \
        [(op, f"  generic run loop: {op}", desc) for op, desc in EXIT_OPS]
    for key, label, desc in loops:
        rs = exits[key]
        us = [c / mhz for c, _, _ in rs]
        cpu = [h * 1e6 for _, h, _ in rs]
        row(label, desc, len(rs), f"{mean(us):.2f}",
            f"{min(us):.2f}..{max(us):.2f}",
            f"{mean(c for c, _, _ in rs):>9,.0f}  {mean(us) / base_us:>6.2f}x"
            f" | {mean(cpu):>6.2f} ({min(cpu):.2f}..{max(cpu):.2f})"
            f"  {mean(cpu) / base_cpu:>5.2f}x | {shares([x[2] for x in rs])}")

    rows.append("")
    rows.append(f"2. Guest write bandwidth: 64 MiB VM writes {WRITE_MB} MiB "
                f"x {WRITE_PASSES} passes = {WRITE_MB * WRITE_PASSES} MiB per "
                f"run with 64-bit stores, {args.reps} runs per mode, "
                "interleaved;")
    rows.append("   MB/s = 10^6 bytes / (TSC cycles / MHz); extra us per page "
                "= (cycles - mean cycles with the log off) / MHz / pages in "
                "the region")
    row("  dirty-log mode", "console command", "runs", "MB/s", "min..max",
        "x off | extra us per 4 KiB page written | pages dirty at harvest | "
        "host cores vCPU0/vCPU1")
    off_cyc = mean(c for _, c, _, _ in writes["off"])
    off_bw = mean(b / (c / mhz) for b, c, _, _ in writes["off"])
    for mode, desc in WRITE_MODES:
        rs = writes[mode]
        bw = [b / (c / mhz) for b, c, _, _ in rs]
        cyc = mean(c for _, c, _, _ in rs)
        npages = WRITE_MB * 256
        extra = "-" if mode == "off" else \
            f"{(cyc - off_cyc) / mhz / npages:.2f}"
        pages = [p for _, _, p, _ in rs if p is not None]
        pg = "-" if not pages else str(pages[0]) if min(pages) == max(pages) \
            else f"{min(pages)}..{max(pages)}"
        row(f"  {desc}", "-" if mode == "off" else f"vm dirty w start {mode}",
            len(rs), f"{mean(bw):,.0f}", f"{min(bw):,.0f}..{max(bw):,.0f}",
            f"{mean(bw) / off_bw:.2f}x"
            f" | {extra} | {pg} | {shares([x[3] for x in rs])}")

    rows.append("")
    rows.append(f"3. Harvest cost: {HARVEST_VM_MEM[:-1]} MiB VM running "
                f"'{HARVEST_CMDLINE}', {args.reps} back-to-back harvests "
                f"{HARVEST_SETTLE_S:.0f} s after `vm dirty start`;")
    rows.append("   us as Tern reports it ('P pages dirty (harvest of M MiB "
                "took U us)'); us/GiB = us / (M / 1024)")
    row("  dirty-log mode", "console command", "runs", "us/harvest",
        "min..max", "us per GiB of guest RAM | pages dirty per harvest")
    for mode, desc in (("dbit", "D-bit"), ("wp", "write-protect")):
        hs = harvest[mode]
        us = [h[2] for h in hs]
        gib = hs[0][1] / 1024
        cmd = f"vm dirty big start {mode}"
        if mode == "wp" and not args.wp_live:
            cmd += " *"
        row(f"  {desc}", cmd, len(hs), f"{mean(us):,.0f}",
            f"{min(us):,}..{max(us):,}",
            f"{mean(us) / gib:,.0f} | {' '.join(str(h[0]) for h in hs)}")
    if not args.wp_live:
        rows.append("  * with the VM paused around `vm dirty start wp` "
                    "(works around a Tern race, see tests/bench/README.md)")

    print()
    print("Tern SVM benchmark (tests/bench/svm_bench.py)")
    print(f"  emulator: {hdr['qemu']}, TCG (multi-threaded), -machine q35 "
          f"-cpu {QEMU_CPU} -smp {QEMU_SMP} -m {QEMU_MEM}")
    print(f"  host:     {hdr['model']}, {hdr['ncpu']} cores, load average "
          f"{hdr['load'][0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
          f"{platform.system()} {platform.release()}")
    print(f"  tern:     {hdr['version']}")
    print(f"  {hdr['clock']}  (cycles below are TSC cycles at "
          f"{mhz:.0f} MHz)")
    print("\n".join(rows))
    print()


# --- main --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build",
                                                     "bench-logs"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=EXIT_N,
                    help="exits per exit-round-trip run")
    ap.add_argument("--wp-live", action="store_true",
                    help="start write-protect logging on the running 1 GiB "
                         "guest instead of pausing it first (shows the race)")
    args = ap.parse_args()
    if args.reps < 1 or args.n < 1:
        ap.error("--reps and --n must be positive")
    for p in ("EFI/BOOT/BOOTX64.EFI", "tern/kernel.elf",
              "tern/guests/bench.elf"):
        if not os.path.isfile(os.path.join(args.esp, p)):
            sys.exit(f"svm_bench: {args.esp}/{p} missing: run 'make esp'")

    t_start = time.monotonic()
    # A private copy: others may rebuild build/esp while this runs, and the
    # guests are read from it long after boot.
    tmp = tempfile.mkdtemp(prefix="svm-bench-esp-")
    esp = os.path.join(tmp, "esp")
    shutil.copytree(args.esp, esp)
    qemu, model, ncpu, load = host_description()
    host = ternlab.QemuHost(esp, name="svmbench", mem=QEMU_MEM, smp=QEMU_SMP,
                            cpu=QEMU_CPU, logdir=args.logdir, test="svm_bench",
                            extra_args=["-name", "svmbench,debug-threads=on"])
    con = Console(host)
    try:
        host.start()
        host.expect(r"console ready", BOOT_TIMEOUT)
        host.expect(re.escape(PROMPT), BOOT_TIMEOUT)
        print(f"booted to the prompt in {host.elapsed():.1f} s", flush=True)
        clock = con.cmd("status", r"clock: TSC (\d+) MHz[^\n]*")
        con.cmd("status", r"virtualization: AMD-V \(SVM\) with nested paging")
        version = con.cmd("version", r"Tern [^\n]*").group(0).strip()
        hdr = {"qemu": qemu, "model": model, "ncpu": ncpu, "load": load,
               "mhz": float(clock.group(1)), "clock": clock.group(0).strip(),
               "version": version}
        con.log_lines(200)              # mark the boot log as seen
        meter = ThreadMeter(host.proc.pid)

        t = time.monotonic()
        exits = measure_exits(con, meter, args.reps, args.n)
        print(f"exit round trips done ({time.monotonic() - t:.0f} s)",
              flush=True)
        t = time.monotonic()
        writes = measure_writes(con, meter, args.reps)
        print(f"write bandwidth done ({time.monotonic() - t:.0f} s)",
              flush=True)
        t = time.monotonic()
        harvest = measure_harvest(con, args.reps, args.wp_live)
        print(f"harvest cost done ({time.monotonic() - t:.0f} s)", flush=True)
    except (BenchError, TimeoutError, ternlab.LabError) as e:
        print(f"svm_bench: FAILED: {e}", file=sys.stderr)
        print(f"svm_bench: serial log: {host.serial_log_path}",
              file=sys.stderr)
        return 1
    finally:
        host.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(hdr, exits, writes, harvest, args)
    print(f"total {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
