#!/usr/bin/env python3
"""Guest integration tests: boot Tern in QEMU (AMD-V with nested paging
under TCG), run the Multiboot test guests from tests/guests/ through the
console's `vm` commands, and check what the guests and Tern report.

    python3 tests/lab/guest_tests.py [--only REGEX] [--esp DIR]
                                     [--logdir DIR] [--list]

All tests share one booted QEMU (3 CPUs: CPU 0 manages, CPUs 1 and 2 run
vCPUs) when they can; a test that finds it dead boots a new one.  Every test
destroys the VMs it created, so the order does not matter.
"""

import argparse
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

PROMPT = "tern> "
QEMU_CPU = "qemu64,+svm,+npt"
QEMU_SMP = 3            # CPU 0 manages; two guests may run at once
QEMU_MEM = "1G"

# `--bochs MODEL` runs the same suite under Bochs (Intel VT-x, EPT): the
# platform is known before the timeouts below become default arguments.
BOCHS_MODEL = None
for _i, _a in enumerate(sys.argv):
    if _a == "--bochs" and _i + 1 < len(sys.argv):
        BOCHS_MODEL = sys.argv[_i + 1]
SLOW = 5 if BOCHS_MODEL else 1          # Bochs runs ~100 MIPS
HOST_CPUS = QEMU_SMP
BOCHS_MEM_MB = 320
DIRTY_MEM = "16M" if BOCHS_MODEL else "64M"
VIRT_RE = (r"^virtualization: Intel VT-x with EPT" if BOCHS_MODEL
           else r"^virtualization: AMD-V \(SVM\) with nested paging")
PREFIX = "vmx" if BOCHS_MODEL else "svm"
# Dirty-log modes each platform must pass, and the modes the drop self-test
# (every harvest of one round discarded: the check must fail) runs in.
DIRTY_MODES = (["dbit", "wp", "pml"] if BOCHS_MODEL == "corei7_skylake_x"
               else ["dbit", "wp"])
DROP_MODES = ["dbit", "wp"]
MODE_LABEL = {"dbit": "d-bit", "wp": "write-protect", "pml": "pml"}
BOOT_TIMEOUT = 60 * SLOW
CMD_TIMEOUT = 20 * SLOW
GUEST_TIMEOUT = 60 * SLOW   # a test guest's whole run
DIRTYCHECK_TIMEOUT = 180 * SLOW

GUESTS = ("hello", "cpuid", "msr", "ports", "mmio", "dirty", "crash", "apic",
          "sse", "debug", "storm", "mbtest")

CFG = None        # argparse namespace, set in main()
TESTS = []        # (name, function)


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


TestFailure = ternlab.TestFailure
check = ternlab.check


# --- console ---------------------------------------------------------------

class Console(ternlab.Console):
    """Tern's serial console (ternlab.Console: the one command exchange)
    with the `vm` helpers the guest tests share."""

    def __init__(self, host):
        super().__init__(host, CMD_TIMEOUT)

    def error_line(self, cmd, want_re=None):
        """cmd must answer exactly one 'error: ' line (matching want_re)."""
        out = self.lines(cmd)
        check(len(out) == 1 and out[0].startswith("error: "),
              f"{cmd!r} should answer one 'error: ' line, got:\n"
              + "\n".join(out))
        if want_re:
            check(re.search(want_re, out[0], re.I),
                  f"{cmd!r}: error {out[0]!r} does not match {want_re!r}")
        return out[0]

    def log(self, n=400):
        """The last n host log lines (guest UART lines are '[NAME] ...').
        Some 30 KB of serial text: under Bochs on a loaded host that took
        over 30 s, so the timeout scales like every other one."""
        return self.raw(f"log {n}", 30 * SLOW)

    # -- VMs --

    def info(self, name):
        out = self.run(f"vm info {name}")
        d = {}
        for ln in out.split("\n"):
            k, sep, v = ln.partition(": ")
            if sep and re.fullmatch(r"[\w-]+", k):
                d[k] = v.strip()
        check("state" in d, f"'vm info {name}' printed no state:\n{out}")
        m = re.search(r"rip (0x[0-9a-f]+|0) exits (\d+)", d.get("vcpu0", ""))
        d["rip"] = int(m.group(1), 16) if m else None
        d["exits_total"] = int(m.group(2)) if m else None
        d["exit_counts"] = {k: int(v) for k, v in
                            re.findall(r"(\w+)=(\d+)", d.get("exits", ""))}
        d["_text"] = out
        return d

    def list_rows(self):
        rows = {}
        out = self.lines("vm list")
        check(out and out[0].split()[:5] ==
              ["NAME", "STATE", "MEMORY", "CPU", "EXIT"],
              "vm list: no 'NAME STATE MEMORY CPU EXIT' header:\n"
              + "\n".join(out))
        for ln in out[1:]:
            m = re.match(r"(\S+)\s+(\S+)\s+(\d+) MiB\s+cpu (-?\d+)\s+exit (\S+)",
                         ln)
            check(m, f"vm list: bad row {ln!r}")
            rows[m.group(1)] = {"state": m.group(2), "mem": int(m.group(3)),
                                "cpu": int(m.group(4)), "exit": m.group(5)}
        return rows

    def create(self, name, guest, mem="16M", cmdline=None, vcpus=1):
        cmd = f"vm create {name} mem={mem} kernel=guests/{guest}.elf"
        if vcpus != 1:
            cmd += f" vcpus={vcpus}"
        if cmdline is not None:
            cmd += f' cmdline="{cmdline}"'
        out = self.lines(cmd)
        mib = int(mem[:-1]) * (1024 if mem.endswith("G") else 1)
        check(out == [f"vm {name} created ({mib} MiB)"],
              f"{cmd!r} answered:\n" + "\n".join(out))

    def start(self, name):
        out = self.lines(f"vm start {name}")
        check(len(out) == 1 and
              re.fullmatch(rf"vm {name} running on CPU [1-9]\d*", out[0]),
              f"'vm start {name}' answered:\n" + "\n".join(out))
        return int(out[0].rsplit(" ", 1)[1])

    def simple(self, op, name, done):
        out = self.lines(f"vm {op} {name}")
        check(out == [f"vm {name} {done}"],
              f"'vm {op} {name}' answered:\n" + "\n".join(out))

    def destroy(self, name):
        self.simple("destroy", name, "destroyed")

    def wait_state(self, name, states, timeout=GUEST_TIMEOUT):
        """Poll `vm info` until the state is one of states; return info."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.info(name)
            if d["state"] in states:
                return d
            if time.monotonic() > deadline:
                raise TestFailure(
                    f"VM {name} still {d['state']!r} after {timeout} s "
                    f"(want {'/'.join(states)}):\n{d['_text']}")
            time.sleep(0.5)

    def wait_log(self, pattern, timeout=GUEST_TIMEOUT, n=400):
        deadline = time.monotonic() + timeout
        while True:
            text = self.log(n)
            m = re.search(pattern, text)
            if m:
                return m
            if time.monotonic() > deadline:
                raise TestFailure(f"{pattern!r} not in 'log {n}' after "
                                  f"{timeout} s; last lines:\n"
                                  + "\n".join(text.split("\n")[-15:]))
            time.sleep(0.5)

    def cleanup(self, *names):
        """Best effort: destroy VMs a failed test may have left behind."""
        if not self.h.alive():
            return
        try:
            rows = self.list_rows()
            for n in names:
                if n in rows:
                    if rows[n]["state"] in ("running", "paused"):
                        self.run(f"vm stop {n}")
                    self.run(f"vm destroy {n}")
        except Exception:
            pass


def guest_lines(log_text, vm):
    """The UART lines of one VM from `log N` output."""
    return [m.group(1) for m in
            re.finditer(rf"\[{re.escape(vm)}\] ([^\n]*)", log_text)]


def exit_code(info):
    m = re.search(r"guest wrote exit code (0x[0-9a-f]+) to port 0xf4",
                  info.get("reason", ""))
    return int(m.group(1), 16) if m else None


# --- the shared host -------------------------------------------------------

def esp_dir():
    """The built ESP; a missing build or guest is a failure, never a skip."""
    esp = CFG.esp
    loader = os.path.join(esp, "EFI", "BOOT", "BOOTX64.EFI")
    check(os.path.isfile(loader),
          f"{loader} not found: build the ESP first (make esp), or pass --esp")
    for g in GUESTS:
        p = os.path.join(esp, "tern", "guests", f"{g}.elf")
        check(os.path.isfile(p), f"{p} not found: 'make esp' builds the "
              f"test guests into the ESP")
    return esp


_shared = None
_boot_failure = None


def console():
    """The shared booted host's Console (booted again if a previous test
    killed it)."""
    global _shared, _boot_failure
    if _boot_failure is not None:
        raise TestFailure(f"the shared QEMU failed to boot: {_boot_failure}")
    if _shared is not None and _shared.h.alive():
        return _shared
    if _shared is not None:
        _shared.h.stop()
        _shared = None
    if BOCHS_MODEL:
        host = ternlab.BochsHost(esp_dir(), name="vmx", cpu_model=BOCHS_MODEL,
                                 mem_mb=BOCHS_MEM_MB, cpus=HOST_CPUS,
                                 logdir=CFG.logdir)
    else:
        host = ternlab.QemuHost(esp_dir(), name="guests", mem=QEMU_MEM,
                                smp=QEMU_SMP, cpu=QEMU_CPU, logdir=CFG.logdir)
    con = Console(host)
    try:
        host.start()
        host.expect(r"console ready", BOOT_TIMEOUT)
        host.expect(re.escape(PROMPT), BOOT_TIMEOUT)
        print(f"  boot-to-prompt: {host.elapsed():.1f} s "
              f"({BOCHS_MODEL or 'qemu'}, {HOST_CPUS} CPUs)", flush=True)
        status = con.run("status")
        check(re.search(VIRT_RE, status, re.M),
              f"Tern did not enable the expected back end:\n{status}")
    except Exception as e:
        host.stop()
        # Remembered, not retried: one failed boot per test would take
        # minutes.  The first test shows the whole output.
        _boot_failure = str(e).split("\n")[0]
        raise
    _shared = con
    return con


def stop_shared():
    if _shared is not None:
        _shared.h.stop()


def host_healthy(con):
    out = con.run("status")
    check(re.search(rf"^cpus: {HOST_CPUS}/{HOST_CPUS} online", out, re.M),
          f"'status' after the test is wrong:\n{out}")


def run_checks_guest(con, vm, guest, cmdline=None, mem="16M", vcpus=1):
    """Create, start and wait for a self-checking guest; destroy it.
    Return (info, guest UART lines)."""
    con.create(vm, guest, mem, cmdline, vcpus)
    try:
        con.start(vm)
        info = con.wait_state(vm, ("stopped", "failed"))
        lines = guest_lines(con.log(), vm)
        fails = [ln for ln in lines if re.match(r"CHECK \S+: FAIL", ln)]
        code = exit_code(info)
        check(info["state"] == "stopped" and code == 0x10,
              f"{guest}: state {info['state']}, reason "
              f"{info.get('reason')!r}, want exit code 0x10; failed checks:\n"
              + "\n".join(fails or lines[-10:]))
        check(not fails, f"{guest} exited 0x10 but printed:\n"
              + "\n".join(fails))
        done = [ln for ln in lines if ln.startswith(f"GUEST {guest} DONE")]
        m = re.fullmatch(rf"GUEST {guest} DONE pass=(\d+) fail=(\d+)",
                         done[-1] if done else "")
        check(m and int(m.group(2)) == 0 and int(m.group(1)) > 0,
              f"{guest}: DONE line {done}; last lines:\n"
              + "\n".join(lines[-10:]))
        rows = con.list_rows()
        check(vm in rows and rows[vm]["exit"] == "0x10" and
              rows[vm]["state"] == "stopped" and rows[vm]["cpu"] == -1,
              f"vm list row for {vm}: {rows.get(vm)}")
        return info, lines, int(m.group(1))
    finally:
        con.cleanup(vm)


# --- tests -----------------------------------------------------------------

@test
def svm_hello():
    con = console()
    info, lines, npass = run_checks_guest(con, "h1", "hello",
                                          cmdline="alpha beta=7")
    check(npass == 3, f"hello: pass={npass}, want 3")
    check(any(re.search(r'cmdline="[^"]*\balpha beta=7\b', ln)
              for ln in lines),
          "the guest did not see cmdline 'alpha beta=7':\n"
          + "\n".join(lines[:12]))
    check(info.get("cmdline") == "alpha beta=7",
          f"vm info cmdline: {info.get('cmdline')!r}")
    check("Hello from a Tern test guest" in lines,
          "no 'Hello from a Tern test guest' line")
    check(info["exit_counts"].get("io", 0) > 0,
          f"no io exits counted: {info['exits']!r}")
    rows = con.list_rows()
    check("h1" not in rows, f"h1 still listed after destroy: {rows}")
    host_healthy(con)


@test
def svm_console_async_logs():
    """Commands typed while guests stop: each guest's 'stopped' log line
    arrives at a moment the test does not choose, often in the middle of a
    command being typed.  Every command must still come back whole and
    right, and the raw serial text must keep the console's promise
    (kernel/mgmt/console.c): log lines start lines, and an erased line is
    followed by log lines and one redraw of the prompt and the input."""
    con = console()
    h = con.h
    raw_start = len(h.raw_output())
    text_start = len(h.output())
    # About 0.4 s a spin unit under QEMU: the guests stop while the
    # commands below are typed (0.1-0.2 s each), or just after.
    rng = random.Random(int(time.time()))
    rounds = 5 if BOCHS_MODEL else 8
    names = []
    try:
        for r in range(rounds):
            pair = [f"as{r}a", f"as{r}b"]
            for n in pair:
                con.create(n, "hello", cmdline=f"spin={rng.randint(0, 3)}")
                names.append(n)
            for n in pair:
                con.start(n)
            for _ in range(3):
                out = con.run("version")
                check(re.fullmatch(r"Tern \S+.*", out),
                      f"'version' answered {out!r}")
                check(set(pair) <= set(con.list_rows()),
                      "vm list lost a guest")
            for n in pair:
                d = con.wait_state(n, ("stopped",))
                check(exit_code(d) == 0x10, f"{n}: {d.get('reason')!r}")
                con.destroy(n)
        text = h.output()[text_start:]
        for n in names:
            hits = [ln for ln in text.split("\n") if f"vm {n}: stopped" in ln]
            check(len(hits) == 1 and ternlab.LOG_LINE_RE.fullmatch(hits[0]),
                  f"{n}: want one whole 'stopped' log line, got {hits!r}")
        batches, typing = ternlab.check_console_promise(
            h.raw_output()[raw_start:])
        check(batches >= 1, "no log line came while the prompt was shown")
        print(f"  {len(names)} guests stopped, {batches} redraws, {typing} "
              f"in the middle of a typed command", flush=True)
    finally:
        con.cleanup(*names)


@test
def svm_cpuid_filtered():
    con = console()
    _, lines, npass = run_checks_guest(con, "c1", "cpuid")
    for name in ("hypervisor_bit", "vmx_hidden", "svm_hidden",
                 "hv_signature", "monitor_hidden"):
        check(f"CHECK {name}: PASS" in lines,
              f"no 'CHECK {name}: PASS' from the cpuid guest")
    check(npass >= 9, f"cpuid: only {npass} checks ran")


@test
def svm_msr_gp():
    con = console()
    _, lines, npass = run_checks_guest(con, "m1", "msr")
    for name in ("fault_hook_selftest", "rdmsr_unknown_low_gp",
                 "wrmsr_unknown_high_gp", "efer_svme_hidden",
                 "star_linux_value", "star_all_ones", "sfmask_linux_value",
                 "sfmask_high_bits_gp", "lstar_noncanonical_gp",
                 "efer_reserved_bit_gp"):
        check(f"CHECK {name}: PASS" in lines,
              f"no 'CHECK {name}: PASS' from the msr guest")
    check(npass >= 24, f"msr: only {npass} checks ran")


@test
def svm_ports_all_ones():
    con = console()
    _, lines, npass = run_checks_guest(con, "p1", "ports")
    check(npass == 6, f"ports: pass={npass}, want 6")


@test
def svm_apic_timer_ipi():
    """The virtual LAPIC: reset state, self-IPI and TPR, the timer in
    periodic, one-shot and TSC-deadline modes, a masked timer; an NMI
    sent from the NMI handler waits for its IRET, then comes at once."""
    con = console()
    _, lines, npass = run_checks_guest(con, "ap1", "apic")
    check(npass == 21, f"apic: pass={npass}, want 21:\n" + "\n".join(lines[-20:]))


@test
def svm_apic_smp_start():
    """A second vCPU starts only through INIT, SIPI (SDM 9.4.4.1) into
    real mode at the SIPI page; a second SIPI does not restart it."""
    con = console()
    _, lines, npass = run_checks_guest(con, "ap2", "apic", cmdline="smp",
                                       vcpus=2)
    check(npass == 23, f"apic smp: pass={npass}, want 23:\n"
          + "\n".join(lines[-20:]))


@test
def svm_mmio_emulation():
    con = console()
    info, lines, npass = run_checks_guest(con, "mm1", "mmio")
    check(npass == 34, f"mmio: pass={npass}, want 34")
    for name in ("rep_stosd", "rep_movsd_to_mmio", "rep_movsd_from_mmio",
                 "rep_movsd_backward", "mov_moffs", "id_read_only"):
        check(f"CHECK {name}: PASS" in lines,
              f"no 'CHECK {name}: PASS' from the mmio guest")
    check(info["exit_counts"].get("stage2", 0) > 0,
          f"no stage2 exits counted for MMIO: {info.get('exits')!r}")


@test
def svm_mmio_segment_bases():
    """MMIO through FS:, GS: and SS: on segments with non-zero bases: the
    emulator must use the bases the guest loaded (refreshed on every
    exit), not the ones it had at boot."""
    con = console()
    _, lines, npass = run_checks_guest(con, "mm2", "mmio", cmdline="segs")
    for name in ("mmio_fs_base", "mmio_gs_base", "mmio_ss_base"):
        check(f"CHECK {name}: PASS" in lines,
              f"no 'CHECK {name}: PASS' from the mmio guest")
    check(npass == 37, f"mmio segs: pass={npass}, want 37")


def dirty_invariant(mode, label):
    con = console()
    vm = f"d{mode}"
    con.create(vm, "dirty", DIRTY_MEM)
    try:
        con.start(vm)
        con.wait_log(rf"\[{vm}\] DIRTY region", 30)
        out = con.lines(f"vm dirtycheck {vm} rounds=5 mode={mode}",
                        DIRTYCHECK_TIMEOUT)
        rounds = [ln for ln in out if ln.startswith("round ")]
        check(len(rounds) == 5, "want 5 'round i:' lines, got:\n"
              + "\n".join(out))
        for ln in rounds:
            m = re.fullmatch(r"round \d+: changed (\d+), lost (\d+)", ln)
            check(m and int(m.group(2)) == 0, f"bad round line {ln!r}")
        m = re.fullmatch(rf"dirtycheck PASS mode={label} rounds=5 "
                         r"changed=(\d+) reported=(\d+) lost=0", out[-1])
        check(m, "no 'dirtycheck PASS' line:\n" + "\n".join(out))
        changed, reported = int(m.group(1)), int(m.group(2))
        check(changed > 0, f"the guest changed no page: {out[-1]}")
        check(reported >= changed, f"reported < changed: {out[-1]}")
        info = con.info(vm)
        check(info["state"] == "running",
              f"the dirty guest is {info['state']} after the check:\n"
              f"{info['_text']}")
        check(info.get("dirty-log") == "off",
              f"dirtycheck left the dirty log on: {info.get('dirty-log')!r}")
        con.simple("stop", vm, "stopped")
        con.destroy(vm)
    finally:
        con.cleanup(vm)
    host_healthy(con)


def dirty_drop_detected(mode, label):
    """The invariant check must FAIL when a harvest is dropped on purpose:
    proof that a lost write would be caught."""
    con = console()
    vm = f"x{mode}"
    con.create(vm, "dirty", DIRTY_MEM)
    try:
        con.start(vm)
        con.wait_log(rf"\[{vm}\] DIRTY region", 30)
        out = con.lines(f"vm dirtycheck {vm} rounds=3 mode={mode} drop=2",
                        DIRTYCHECK_TIMEOUT)
        dropped = [ln for ln in out if "dropped on purpose" in ln]
        check(len(dropped) == 1, "want one dropped round:\n" + "\n".join(out))
        m = re.fullmatch(r"round 2: changed (\d+), lost (\d+) \(harvests dropped "
                         r"on purpose\)", dropped[0])
        check(m and int(m.group(2)) > 0 and m.group(1) == m.group(2),
              f"dropping the round's harvests must lose every changed page: "
              f"{dropped[0]!r}")
        m = re.fullmatch(rf"dirtycheck FAIL mode={label} rounds=3 changed=\d+ "
                         r"lost=(\d+)", out[-1])
        check(m and int(m.group(1)) > 0, "no 'dirtycheck FAIL' line:\n"
              + "\n".join(out))
    finally:
        con.cleanup(vm)
    host_healthy(con)


def register_dirty_tests():
    for m in DIRTY_MODES:
        TESTS.append((f"svm_dirty_invariant_{m}",
                      lambda m=m: dirty_invariant(m, MODE_LABEL[m])))
    for m in DROP_MODES:
        TESTS.append((f"svm_dirty_check_catches_dropped_harvest_{m}",
                      lambda m=m: dirty_drop_detected(m, MODE_LABEL[m])))
    if BOCHS_MODEL:
        TESTS.append(("svm_task_switch_stops_vm", task_switch_stops_vm))
    if BOCHS_MODEL and "pml" not in DIRTY_MODES:
        TESTS.append(("svm_pml_refused_without_pml", pml_refused))


def pml_refused():
    """A CPU model without PML must refuse the PML mode and say so."""
    con = console()
    con.create("np", "dirty", DIRTY_MEM)
    try:
        con.start("np")
        out = con.run("vm dirty np start pml")
        check(re.search(r"^error: vm dirty: .*not supported", out, re.M),
              f"PML mode was not refused: {out!r}")
        info = con.info("np")
        check(info.get("dirty-log") == "off", f"dirty log: {info.get('dirty-log')!r}")
    finally:
        con.cleanup("np")


@test
def svm_vms_isolated():
    """Two VMs cannot see each other's memory, and memory a destroyed VM
    gave back reaches the next VM scrubbed."""
    con = console()
    try:
        con.create("fill", "isolate", "32M", "fill")
        con.start("fill")
        con.wait_log(r"\[fill\] ISOLATE filled (\d+) pages", 60)
        _, lines, npass = run_checks_guest(con, "scan1", "isolate",
                                           cmdline="scan", mem="32M")
        check("CHECK no_foreign_marker: PASS" in lines,
              "the scanner saw the other VM's marker:\n" + "\n".join(lines))
        con.destroy("fill")
        _, lines, npass = run_checks_guest(con, "scan2", "isolate",
                                           cmdline="scan", mem="32M")
        check("CHECK fresh_ram_zero: PASS" in lines,
              "memory from a destroyed VM was not scrubbed:\n"
              + "\n".join(lines))
    finally:
        con.cleanup("fill", "scan1", "scan2")
    host_healthy(con)


@test
def svm_guest_crash_contained():
    con = console()
    names = ("cz", "ct", "cu", "ch", "cw", "cg", "ch2")
    try:
        # A halted guest runs beside the one that triple-faults.
        con.create("cz", "crash", cmdline="hlt")
        con.start("cz")
        con.wait_log(r"\[cz\] CRASH hlt", 30)
        con.create("ct", "crash", cmdline="triple")
        con.start("ct")
        info = con.wait_state("ct", ("failed", "stopped"))
        check(info["state"] == "failed" and
              "triple fault" in info.get("reason", ""),
              f"crash triple: state {info['state']}, reason "
              f"{info.get('reason')!r}")
        check("survived" not in con.log(),
              "the crash guest printed 'survived'")
        host_healthy(con)
        check(con.info("cz")["state"] == "running",
              "the halted guest stopped when its neighbour triple-faulted")
        # A new guest still runs fine afterwards.
        con.destroy("ct")
        con.create("cu", "crash", cmdline="ud")
        con.start("cu")
        info = con.wait_state("cu", ("failed", "stopped"))
        check(info["state"] == "failed" and
              "triple fault" in info.get("reason", ""),
              f"crash ud: state {info['state']}, reason "
              f"{info.get('reason')!r}")
        con.destroy("cu")
        run_checks_guest(con, "ch", "hello")
        # Stopping a halted vCPU works.
        con.simple("stop", "cz", "stopped")
        check(con.info("cz")["state"] == "stopped", "cz not stopped")
        con.destroy("cz")
        # A write to unbacked guest-physical memory stops the VM.
        con.create("cw", "crash", cmdline="wild")
        con.start("cw")
        info = con.wait_state("cw", ("failed", "stopped"))
        check(info["state"] == "failed" and
              re.search(r"unbacked", info.get("reason", "")),
              f"crash wild: state {info['state']}, reason "
              f"{info.get('reason')!r}")
        con.destroy("cw")
        # Random bytes executed as code: whatever they do stays in the VM.
        con.create("cg", "crash", cmdline="garbage")
        con.start("cg")
        con.wait_log(r"\[cg\] CRASH garbage", 30)
        time.sleep(2)
        info = con.info("cg")
        print(f"  crash garbage: {info['state']}, "
              f"{info.get('reason', 'no reason')}", flush=True)
        if info["state"] in ("running", "paused"):
            con.simple("stop", "cg", "stopped")
        check(exit_code(info) != 0x12,
              "crash garbage ran on after the random code (exit 0x12)?")
        con.destroy("cg")
        host_healthy(con)
        run_checks_guest(con, "ch2", "hello")
    finally:
        con.cleanup(*names)


def finish_checks_guest(con, vm, guest, min_pass):
    """A self-checking guest that ran must have stopped with exit code 0x10,
    no FAIL line and at least min_pass checks; return its UART lines."""
    info = con.wait_state(vm, ("stopped", "failed"))
    lines = guest_lines(con.log(600), vm)
    fails = [ln for ln in lines if re.match(r"CHECK \S+: FAIL", ln)]
    check(info["state"] == "stopped" and exit_code(info) == 0x10 and not fails,
          f"{vm}: state {info['state']}, reason {info.get('reason')!r}; "
          f"failed checks:\n" + "\n".join(fails or lines[-10:]))
    done = [ln for ln in lines if ln.startswith(f"GUEST {guest} DONE")]
    m = re.fullmatch(rf"GUEST {guest} DONE pass=(\d+) fail=0",
                     done[-1] if done else "")
    check(m and int(m.group(1)) >= min_pass,
          f"{vm}: DONE line {done}, want at least {min_pass} checks")
    return info, lines


@test
def svm_sse_state_survives_exits():
    """Two VMs at once (one per guest CPU), each with its own XMM/YMM and
    MXCSR pattern, force thousands of CPUID, port I/O, MMIO, RDMSR, CR0
    and XSETBV exits and check every register after each kind; each halts
    twice with its LAPIC timer armed, is paused and resumed meanwhile
    (which must not end the HLT) and is woken by the timer.  One keeps
    XCR0 at its reset value (noavx).  Catches host code that uses SSE
    while the guest's registers are loaded, state leaking between VMs, and
    a pause that lets a halted vCPU run on."""
    con = console()
    # The guest's timer must outlast the console round trips of two
    # pauses and resumes (slow under Bochs).
    wake = 2 * SLOW
    vms = {"se1": f"seed=1 hlt=2 wake={wake}", "se2": f"seed=2 hlt=2 noavx wake={wake}"}
    try:
        for vm, cmdline in vms.items():
            con.create(vm, "sse", cmdline=cmdline)
        for vm in vms:
            con.start(vm)
        for rnd in (1, 2):
            for vm in vms:
                con.wait_log(rf"\[{vm}\] SSE halted {rnd}\b", GUEST_TIMEOUT)
                time.sleep(0.2)
                con.simple("pause", vm, "paused")
                con.simple("resume", vm, "running")
        for vm in vms:
            info, lines = finish_checks_guest(con, vm, "sse", 9)
            for name in ("sse_after_cpuid", "sse_after_io", "sse_after_mmio",
                         "sse_after_msr", "sse_after_cr", "sse_after_hlt",
                         "sse_hlt_until_interrupt"):
                check(f"CHECK {name}: PASS" in lines,
                      f"{vm}: no 'CHECK {name}: PASS'")
            check(info["exit_counts"].get("cpuid", 0) >= 2000 and
                  info["exit_counts"].get("stage2", 0) >= 2000,
                  f"{vm}: too few exits: {info.get('exits')!r}")
    finally:
        con.cleanup(*vms)
    host_healthy(con)


@test
def svm_debug_exceptions_reflected():
    """#DB (single step, an instruction breakpoint in DR0) and #AC (at CPL
    3) are intercepted -- a guest must not be able to wedge its host CPU
    in a microcode loop delivering them (CVE-2015-8104, CVE-2015-5307) --
    and reflected: the guest's handlers see each exactly once, with the
    right RIP, DR6 and error code.  QEMU's TCG has no alignment checking,
    so #AC runs under Bochs only."""
    con = console()
    cmdline = None if BOCHS_MODEL else "noac"
    info, lines, npass = run_checks_guest(con, "dbg", "debug", cmdline=cmdline)
    names = ["db_single_step_once", "db_single_step_state",
             "db_breakpoint_once", "db_breakpoint_state"]
    if BOCHS_MODEL:
        names += ["ac_once", "ac_state"]
    for name in names:
        check(f"CHECK {name}: PASS" in lines, f"no 'CHECK {name}: PASS'")
    got = info["exit_counts"].get("exception", 0)
    check(got >= (3 if BOCHS_MODEL else 2),
          f"the exceptions were not intercepted: exits {info.get('exits')!r}")
    host_healthy(con)


@test
def svm_debug_regs_not_leaked():
    """Two VMs write DR0-3 and DR6 and stop; a third VM, on a CPU one of
    them used, must read DR0-3 = 0 and DR6 at its
    reset value, not what the others left (neither the VMCB nor the VMCS
    holds DR0-3; the VMCS has no DR6)."""
    con = console()
    names = ("dra", "drb", "drc")
    try:
        for n, seed in (("dra", 1), ("drb", 2)):
            con.create(n, "debug", cmdline=f"drset seed={seed}")
        cpus = {con.start("dra"), con.start("drb")}
        for n in ("dra", "drb"):
            finish_checks_guest(con, n, "debug", 1)
            con.destroy(n)
        con.create("drc", "debug", cmdline="drcheck")
        cpu = con.start("drc")
        check(cpu in cpus, f"the checker ran on CPU {cpu}, the setters on "
              f"{sorted(cpus)}")
        _, lines = finish_checks_guest(con, "drc", "debug", 2)
        for name in ("dr_fresh_zero", "dr6_fresh_reset"):
            check(f"CHECK {name}: PASS" in lines, f"no 'CHECK {name}: PASS'")
    finally:
        con.cleanup(*names)
    host_healthy(con)


@test
def svm_cpus_names_deaf_cpu():
    """A CPU that serves no cross-CPU call (`debug deaf`: interrupts off for
    4 s, as if wedged) must not hang the console: `cpus` answers within the
    1 s bound plus a margin, with an error naming that CPU; once the CPU
    listens again, `cpus` answers without error."""
    con = console()
    # Under Bochs every exchange is slower: the deaf spell and the margin
    # grow with SLOW, and the answer must still come well inside the spell.
    deaf_ms = 4000 * SLOW
    out = con.lines(f"debug deaf 2 {deaf_ms}")
    check(out == [f"CPU 2 ignores calls for {deaf_ms} ms"], f"debug deaf: {out}")
    t0 = time.monotonic()
    out = con.lines("cpus")
    took = time.monotonic() - t0
    errs = [ln for ln in out if ln.startswith("error: ")]
    check(took < 1.0 + 1.5 * SLOW, f"'cpus' took {took:.1f} s with CPU 2 deaf:\n"
          + "\n".join(out))
    check(len(errs) == 1 and re.search(r"\bCPU 2 did not answer\b.*within "
                                       r"1000 ms", errs[0]),
          "'cpus' should name CPU 2 in one error line:\n" + "\n".join(out))
    check(not any(re.search(r"\bCPU 1\b", e) for e in errs),
          f"CPU 1 was blamed too: {errs}")
    # Tern's clock and the wall clock differ under Bochs: wait for the
    # spell to end by asking, within a generous bound.
    time.sleep(max(0.0, deaf_ms / 1000 + 0.5 - (time.monotonic() - t0)))
    end = time.monotonic() + deaf_ms / 1000 * 3 + 10
    while True:
        out = con.lines("cpus")
        if not [ln for ln in out if ln.startswith("error: ")] or time.monotonic() > end:
            break
        time.sleep(1)
    check(not [ln for ln in out if ln.startswith("error: ")],
          "'cpus' after the deaf period:\n" + "\n".join(out))
    host_healthy(con)


@test
def svm_invd_continues():
    """INVD (intercepted on SVM, an unconditional exit on VT-x) is skipped:
    guest RAM is always write-back, so there is nothing to invalidate.
    (QEMU 7.2's TCG never raises the SVM INVD intercept, so under QEMU this
    only proves INVD harmless; svm.c's case runs on real AMD hardware.)"""
    con = console()
    info, lines, npass = run_checks_guest(con, "iv", "crash", cmdline="invd")
    check("CHECK invd_continues: PASS" in lines,
          "no 'CHECK invd_continues: PASS':\n" + "\n".join(lines[-10:]))
    host_healthy(con)


def task_switch_stops_vm():
    """A task switch is not emulated: only that VM stops, with a reason
    that says so, while a neighbour runs on and the console answers.
    Bochs only: QEMU 7.2's TCG does not implement the SVM task-switch
    intercept (it performs the switch: the guest then takes #TS), while
    on VT-x a task switch always exits."""
    con = console()
    try:
        con.create("tz", "crash", cmdline="hlt")
        con.start("tz")
        con.wait_log(r"\[tz\] CRASH hlt", 30)
        con.create("ts", "crash", cmdline="tss")
        con.start("ts")
        info = con.wait_state("ts", ("failed", "stopped"))
        check(info["state"] == "failed" and
              re.search(r"task switch not supported", info.get("reason", "")),
              f"crash tss: state {info['state']}, reason "
              f"{info.get('reason')!r}")
        check("CRASH tss survived" not in con.log(),
              "the tss guest ran on after its task switch")
        host_healthy(con)
        check(con.info("tz")["state"] == "running",
              "the halted neighbour stopped when the task switch failed")
        con.simple("stop", "tz", "stopped")
    finally:
        con.cleanup("tz", "ts")


@test
def svm_lifecycle_errors():
    con = console()
    try:
        con.error_line("vm start nosuchvm", r"nosuchvm")
        con.create("le", "hello")
        con.error_line("vm create le mem=16M kernel=guests/hello.elf",
                       r"\ble\b|exist|duplicate|in use")
        con.error_line("vm create lm mem=3M kernel=guests/hello.elf",
                       r"mem|memory|size|small")
        con.error_line("vm create lk mem=16M kernel=guests/nope.elf",
                       r"nope\.elf")
        con.error_line("vm create lc mem=16M kernel=tern.cfg", r"multiboot")
        # More than the host has (QEMU_MEM is 1G).
        con.error_line("vm create lb mem=2G kernel=guests/hello.elf",
                       r"mem|memory|free")
        con.error_line("vm create lx mem=16M", r"kernel")
        con.error_line("vm pause le", r"created")
        rows = con.list_rows()
        check(set(rows) >= {"le"} and
              not set(rows) & {"lm", "lk", "lc", "lx", "lb"},
              f"failed creates left VMs behind: {sorted(rows)}")
        # The VM whose duplicate was refused still works.
        con.start("le")
        info = con.wait_state("le", ("stopped", "failed"))
        check(exit_code(info) == 0x10, f"le: {info.get('reason')!r}")
        con.error_line("vm pause le", r"stopped")
        con.error_line("vm resume le", r"stopped")
        con.error_line("vm start le", r"stopped|created")
        con.destroy("le")
        con.error_line("vm destroy le", r"\ble\b")
        con.error_line("vm info le", r"\ble\b")
        # Both guest CPUs busy (two halted guests): a third cannot start.
        for n in ("l1", "l2"):
            con.create(n, "crash", cmdline="hlt")
        cpus = {con.start("l1"), con.start("l2")}
        check(cpus == {1, 2}, f"two guests ran on CPUs {sorted(cpus)}, "
              f"want 1 and 2")
        con.create("le", "hello")
        con.error_line("vm start le", r"CPU")
        check(con.info("le")["state"] == "created",
              "a refused start changed the VM's state")
        con.simple("stop", "l1", "stopped")
        con.start("le")
        info = con.wait_state("le", ("stopped", "failed"))
        check(exit_code(info) == 0x10,
              f"le on a freed CPU: {info.get('reason')!r}")
        for n in ("l2", "le", "l1"):
            if n == "l2":
                con.simple("stop", n, "stopped")
            con.destroy(n)
        check(con.list_rows() == {}, "VMs left behind")
        host_healthy(con)
    finally:
        con.cleanup("le", "lm", "lk", "lc", "lx", "lb", "l1", "l2")


@test
def svm_console_attach():
    con = console()
    h = con.h
    try:
        con.create("ca", "dirty", DIRTY_MEM)
        con.start("ca")
        con.wait_log(r"\[ca\] DIRTY region", 30)
        h.mark()
        h.sendline("vm console ca")
        h.expect(r"attached to ca: Ctrl-\] detaches", CMD_TIMEOUT)
        # The guest's UART output now comes to this console.
        h.expect(r"DIRTY progress \d+", 30)
        # Typed text goes to the guest, not to the command line: a command
        # typed now must not run.
        h.send("status\r")
        time.sleep(1)
        check("cpus:" not in h.output()[-2000:].split("attached to ca")[-1],
              "'status' typed while attached ran on the host console")
        h.mark()
        h.send(b"\x1d")
        h.expect(r"detached\s*\n" + re.escape(PROMPT), CMD_TIMEOUT)
        host_healthy(con)
        check(con.info("ca")["state"] == "running",
              "the guest stopped while the console was attached")
        con.simple("stop", "ca", "stopped")
        con.destroy("ca")
        con.error_line("vm console nosuchvm", r"nosuchvm")
    finally:
        con.cleanup("ca")


@test
def svm_pause_resume():
    con = console()
    try:
        con.create("pr", "dirty", DIRTY_MEM)
        con.start("pr")
        con.wait_log(r"\[pr\] DIRTY region", 30)
        con.simple("pause", "pr", "paused")
        rows = con.list_rows()
        check(rows.get("pr", {}).get("state") == "paused",
              f"vm list after pause: {rows.get('pr')}")
        a = con.info("pr")
        time.sleep(0.5)
        b = con.info("pr")
        check(a["state"] == b["state"] == "paused", f"state {b['state']}")
        check(a["rip"] is not None and a["rip"] == b["rip"],
              f"rip moved while paused: {a['rip']:#x} -> {b['rip']:#x}")
        check(a["exits_total"] == b["exits_total"],
              f"exits grew while paused: {a['exits_total']} -> "
              f"{b['exits_total']}")
        con.error_line("vm pause pr", r"paused")
        con.simple("resume", "pr", "running")
        deadline = time.monotonic() + 30
        while True:
            c = con.info("pr")
            check(c["state"] == "running", f"state after resume {c['state']}")
            if c["exits_total"] > b["exits_total"]:
                break
            check(time.monotonic() < deadline,
                  f"exits did not grow within 30 s of resume: "
                  f"{b['exits_total']} -> {c['exits_total']}")
            time.sleep(0.5)
        check(con.list_rows()["pr"]["cpu"] >= 1,
              "vm list shows no CPU for the resumed guest")
        con.simple("stop", "pr", "stopped")
        con.destroy("pr")
    finally:
        con.cleanup("pr")


# --- hostile guests --------------------------------------------------------

CONSOLE_LIMIT_MS = 100     # the bound on the console's answer


def console_latency(con, n=50, cmd="vm list"):
    """Time n exchanges of a cheap command; return the sorted times in ms.
    The time is from sending the line to seeing the next prompt, so it
    includes the emulated UART both ways."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        con.run(cmd)
        times.append((time.monotonic() - t0) * 1000)
    return sorted(times)


def latency_text(t):
    return (f"min {t[0]:.0f} median {t[len(t) // 2]:.0f} "
            f"p90 {t[len(t) * 9 // 10]:.0f} max {t[-1]:.0f} ms (n={len(t)})")


def storm_latency(con, label, limit, noise, n=50, check_it=True):
    """console_latency during a storm, printed; returns the times.  On
    QEMU the vCPUs are host threads: on a loaded machine a busy one keeps
    the console CPU's thread off a core for a scheduler slice, which the
    spin control (busy vCPUs, not one exit) shows as a few slow answers
    with nothing for Tern to do.  So: the 90th percentile must be under
    the limit, and answers over it may not outnumber the control's
    (noise, per answer) by more than 2 in n.  Over that, one more round
    decides (a storm's effect comes back, a hiccup does not)."""
    def ok(t):
        slow = sum(1 for x in t if x > limit)
        return (t[len(t) * 9 // 10] <= limit and
                slow <= 2 + round(noise * len(t))), slow

    t = console_latency(con, n)
    print(f"  console during {label}: {latency_text(t)}", flush=True)
    good, slow = ok(t)
    if check_it and not good:
        t = console_latency(con, n)
        print(f"  again: {latency_text(t)}", flush=True)
        good, slow = ok(t)
        check(good, f"{label}: {slow} of {n} answers over {limit} ms "
              f"(spin control: {noise:.0%}), p90 {t[n * 9 // 10]:.0f} ms, "
              f"in two rounds")
    return t


@test
def svm_hostile_guests_contained():
    """A guest storming MMIO, port, IPI exits or writing garbage to its
    LAPIC/IOAPIC, on two vCPUs, slows only itself: the host console answers
    ~50 `vm list` within CONSOLE_LIMIT_MS (times SLOW under Bochs) while it
    runs, but for the emulator's own scheduling hiccups (storm_latency), the storming VM stops and is destroyed on
    request, and a well-behaved guest run beside it completes.  One vCPU
    triple-faulting while the other storms stops exactly that VM."""
    con = console()
    limit = CONSOLE_LIMIT_MS * SLOW
    names = ["base"]
    try:
        base = console_latency(con)
        print(f"  console idle: {latency_text(base)}", flush=True)
        modes = (["mmio"] if BOCHS_MODEL else
                 ["spin", "mmio", "ports", "ipi", "garbage"])
        worst = []
        noise = 0.0     # the spin control's share of slow answers
        for mode in modes:
            vm = f"st{mode[:3]}"
            names.append(vm)
            con.create(vm, "storm", cmdline=f"{mode} smp", vcpus=2)
            con.start(vm)
            con.wait_log(rf"\[{vm}\] STORM mode", 30 * SLOW)
            time.sleep(1)
            t = storm_latency(con, f"{mode} storm", limit, noise,
                              check_it=mode != "spin")
            if mode == "spin":
                noise = sum(1 for x in t if x > limit) / len(t)
            worst.append((t[-1], mode, t))
            info = con.info(vm)
            check(info["state"] == "running",
                  f"storm {mode}: VM {info['state']}, reason "
                  f"{info.get('reason')!r}")
            con.simple("stop", vm, "stopped")
            check(con.info(vm)["state"] == "stopped",
                  f"storm {mode}: not stopped after 'vm stop'")
            con.destroy(vm)
            check(vm not in con.list_rows(), f"{vm} listed after destroy")
        # A well-behaved guest completes beside a one-vCPU storm (the
        # shared host has two CPUs for vCPUs).
        for mode in ([] if BOCHS_MODEL else ["ipi", "garbage"]):
            vm, ok = f"s1{mode[:3]}", f"ok{mode[:3]}"
            names += [vm, ok]
            con.create(vm, "storm", cmdline=mode)
            con.start(vm)
            con.wait_log(rf"\[{vm}\] STORM mode", 30 * SLOW)
            time.sleep(1)
            run_checks_guest(con, ok, "hello")
            t = storm_latency(con, f"1-vCPU {mode} storm + hello", limit,
                              noise, n=20)
            worst.append((t[-1], f"1-vCPU {mode}", t))
            con.simple("stop", vm, "stopped")
            con.destroy(vm)
        # One vCPU triple-faults, the other keeps storming.
        con.create("sttri", "storm", cmdline="triple smp", vcpus=2)
        names.append("sttri")
        con.start("sttri")
        t = storm_latency(con, "triple+storm", limit, noise, n=20)
        worst.append((t[-1], "triple", t))
        info = con.wait_state("sttri", ("failed", "stopped"))
        check(info["state"] == "failed" and
              "triple fault" in info.get("reason", ""),
              f"storm triple: state {info['state']}, reason "
              f"{info.get('reason')!r}")
        check("STORM triple: survived" not in con.log(),
              "the BSP survived its triple fault")
        con.destroy("sttri")
        host_healthy(con)
        # storm_latency checked every storm's answers against the limit.
        print("  worst per storm: " + ", ".join(
            f"{mode} {ms:.0f} ms" for ms, mode, _ in worst), flush=True)
    finally:
        con.cleanup(*names)


@test
def svm_multiboot_test_suite_kernel():
    """A kvm-unit-tests style kernel: argv[0] first on the command line, an
    env= module of KEY=VALUE lines (plus a second module), the loader's
    flat GDT surviving a #UD before the kernel's own LGDT, fw_cfg, the
    pc-testdev scratch port, and PIT ticks through the 8259 and LINT0."""
    con = console()
    name = "guests/mbtest.elf"
    cmd = (f"vm create mb1 mem=16M kernel={name} env=guests/mbtest.env "
           f"module=guests/hello.elf cmdline=\"expect={name} x=1\"")
    try:
        out = con.lines(cmd)
        check(out == ["vm mb1 created (16 MiB)"], f"{cmd!r} answered:\n"
              + "\n".join(out))
        info = con.info("mb1")
        check(info.get("modules") == "guests/mbtest.env,guests/hello.elf",
              f"vm info modules: {info.get('modules')!r}")
        con.start("mb1")
        _, lines = finish_checks_guest(con, "mb1", "mbtest", 14)
        check(any(f'cmdline="{name} expect={name} x=1"' in ln
                  for ln in lines),
              "the guest's command line is not 'PROGRAM CMDLINE':\n"
              + "\n".join(lines[:8]))
        con.destroy("mb1")
        con.error_line("vm create mb2 mem=16M kernel=guests/mbtest.elf "
                       "module=guests/nonesuch", r"nonesuch.*not on the ESP")
    finally:
        con.cleanup("mb1", "mb2")
    host_healthy(con)


# --- runner ----------------------------------------------------------------

def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX",
                    help="run only tests whose name matches REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--list", action="store_true", help="list tests and exit")
    ap.add_argument("--bochs", metavar="MODEL",
                    help="run under Bochs with this CPU model (Intel VT-x)")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)

    register_dirty_tests()
    if BOCHS_MODEL:
        TESTS[:] = [(n.replace("svm_", "vmx_", 1), fn) for n, fn in TESTS]
    chosen = [(n, fn) for n, fn in TESTS
              if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0

    return ternlab.run_suite(chosen, CFG.logdir, stop_shared)


if __name__ == "__main__":
    sys.exit(main())
