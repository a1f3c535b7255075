#!/usr/bin/env python3
"""linux_boot: boot Debian's kernel under Tern (in QEMU, AMD-V with nested
paging under TCG) and under plain QEMU TCG, and print one table: time from
start to the shell prompt, host CPU used by the idle guest, and Tern's exits
per second by kind while the guest idles (issue 13).

    python3 tests/bench/linux_boot.py [--esp build/esp-linux] [--idle 60]
                                      [--only tern|qemu]

Both columns run the same build/linux/vmlinuz and initrd.gz (the ESP's
tern/linux/ copies) with the same command line, one after the other in the
same run.  A benchmark, not a test: it fails only when a run does not work
(no prompt, a guest or emulator that stops, a command answering an error).
Build first with `make esp-linux`.
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
import ternlab  # noqa: E402

# The Tern host and the guest, as tests/lab/linux_tests.py runs them.
PROMPT = "tern> "
QEMU_CPU = "qemu64,+svm,+npt"
QEMU_SMP = 2            # CPU 0 manages the console, CPU 1 runs the vCPU
QEMU_MEM = "1G"
VM = "lx"
VM_MEM = "256M"
KERNEL = "linux/vmlinuz"
INITRD = "linux/initrd.gz"
CMDLINE = "console=ttyS0 earlyprintk=serial,ttyS0,115200 loglevel=7"
GUEST_PROMPT = "lx# "

# The peer: the same files straight into QEMU TCG, no firmware of ours.
PEER_CPU = "qemu64"
PEER_MEM = "256M"

BOOT_TIMEOUT = 90       # Tern to its prompt
CMD_TIMEOUT = 30
GUEST_TIMEOUT = 420     # start to the guest's shell prompt, either column
QUIET_SECS = 90         # no guest output this long: it stopped
BANNER_QUIET_SECS = 180 # decompression (linux_tests.py's banner timeout)
SETTLE_S = 5            # after the prompt, before the idle window opens

# Where each boot is timed, in the order the guest prints them (the /init
# markers are in tests/linux/init).
MILESTONES = (("banner", r"Linux version \d[^\n]*\n"),
              ("init", r"TERN-LINUX-INIT[^\n]*\n"),
              ("shell", r"TERN-LINUX-SHELL\n"),
              ("prompt", re.escape(GUEST_PROMPT)))

ERROR_RE = r"(?m:^error: [^\n]*(?=\n))"


class BenchError(RuntimeError):
    pass


# --- host CPU time from /proc ------------------------------------------------

HZ = os.sysconf("SC_CLK_TCK")


def _cpu_of(stat):
    """utime + stime, in seconds, from the text of a /proc stat file."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def proc_cpu(pid):
    """(whole process CPU s, {thread name: CPU s}) of a QEMU process.  Its
    threads are named with -name ...,debug-threads=on ("CPU 1/TCG")."""
    with open(f"/proc/{pid}/stat") as f:
        total = _cpu_of(f.read())
    threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.find("(") + 1:st.rfind(")")]
        threads[name] = threads.get(name, 0.0) + _cpu_of(st)
    return total, threads


# --- following a boot on a serial stream --------------------------------------

def follow_boot(h, t0, what):
    """Wait for each milestone on host h's serial stream (expect() resumes
    after the previous match); return {milestone: seconds since t0} and the
    banner line.  Fails when the guest is quiet for QUIET_SECS or past
    GUEST_TIMEOUT (a guest Tern stopped goes quiet: host log lines wait
    while `vm console` is attached)."""
    times, banner = {}, None
    deadline = t0 + GUEST_TIMEOUT
    for name, pattern in MILESTONES:
        rx = re.compile(pattern)
        last_len, last_change = -1, time.monotonic()
        while True:
            try:
                m = h.expect(rx, 5)
                break
            except ternlab.EmulatorExited as e:
                raise BenchError(f"{what}: the emulator went away before "
                                 f"the {name} milestone: {e}") from None
            except TimeoutError:
                pass
            now = time.monotonic()
            n = len(h.output())
            if n != last_len:
                last_len, last_change = n, now
            # Before the banner the guest decompresses in silence.
            quiet = QUIET_SECS if times else BANNER_QUIET_SECS
            if now - last_change > quiet or now > deadline:
                why = (f"no guest output for {quiet} s"
                       if now <= deadline else
                       f"not there {GUEST_TIMEOUT} s after the start")
                raise BenchError(f"{what}: no {name} milestone "
                                 f"({pattern!r}): {why}")
        times[name] = time.monotonic() - t0
        if name == "banner":
            banner = m.group(0).strip()
        print(f"  {what}: {name} at {times[name]:.1f} s", flush=True)
    return times, banner


def guest_timer_irqs(h, what):
    """(the guest's local timer interrupts, summed over its CPUs, from the
    LOC line of /proc/interrupts; monotonic time of the answer), typed into
    the guest shell on h's serial stream."""
    h.mark()
    h.send("grep LOC: /proc/interrupts\r")
    try:
        m = h.expect(r"(?m)^\s*LOC:((?:\s+\d+)+)\s+Local timer", CMD_TIMEOUT)
        t = time.monotonic()
        h.expect(re.escape(GUEST_PROMPT), CMD_TIMEOUT)
    except TimeoutError as e:
        raise BenchError(f"{what}: no LOC line from /proc/interrupts: "
                         f"{e}") from None
    return sum(int(x) for x in m.group(1).split()), t


def guest_clocksource(h, what):
    """The guest's current clocksource.  Linux drops the TSC when its
    watchdog sees it drift from another clock, and with it the tickless
    idle; how often an idle guest wakes hangs on this."""
    h.mark()
    h.send("cat /sys/devices/system/clocksource/clocksource0/"
           "current_clocksource\r")
    try:
        m = h.expect(r"(?m)^([\w.-]+)\n", CMD_TIMEOUT)
        while m.group(1).startswith("lx") or m.group(1) == "cat":
            m = h.expect(r"(?m)^([\w.-]+)\n", CMD_TIMEOUT)
        h.expect(re.escape(GUEST_PROMPT), CMD_TIMEOUT)
    except TimeoutError as e:
        raise BenchError(f"{what}: no current_clocksource: {e}") from None
    if "Marking TSC unstable" in h.output():
        return m.group(1) + " (TSC marked unstable)"
    return m.group(1)


def shell_answers(h, what):
    """Type one command into the guest shell and check its answer, so that
    the prompt is a working shell and not just text."""
    h.send("echo BENCH-$((6*7))\r")
    try:
        h.expect(r"BENCH-42\n", CMD_TIMEOUT)
        h.expect(re.escape(GUEST_PROMPT), CMD_TIMEOUT)
    except TimeoutError as e:
        raise BenchError(f"{what}: the shell did not answer 'echo': "
                         f"{e}") from None


# --- Tern --------------------------------------------------------------------

class TernConsole(ternlab.Console):
    def cmd(self, cmd, want):
        """Run cmd; return the match of want in its output, or fail naming
        the answer (an 'error:' line or anything else)."""
        out = self.run(cmd)
        m = re.search(ERROR_RE, out)
        if m:
            raise BenchError(f"{cmd!r} answered {m.group(0)!r}")
        m = re.search(want, out)
        if not m:
            raise BenchError(f"{cmd!r} answered, without {want!r}:\n{out}")
        return m

    def sample(self, cpu, pid):
        """One snapshot for the idle window: exits by kind, the idle share
        of the vCPU's host CPU, Tern's uptime and QEMU's CPU time."""
        s = {}
        info = self.cmd(f"vm info {VM}", r"(?s)state: (\w+).*")
        s["t_info"] = time.monotonic()
        text = info.group(0)
        if info.group(1) != "running":
            raise BenchError(f"VM {VM} is {info.group(1)} while idle:\n{text}")
        m = re.search(r"(?m)^exits:([^\n]*)", text)
        s["exits"] = {k: int(v) for k, v in
                      re.findall(r"([\w-]+)=(\d+)", m.group(1) if m else "")}
        m = re.search(r"(?m)^vcpu0: cpu (-?\d+) rip \S+ exits (\d+) irqs "
                      r"(\d+)", text)
        if not m:
            raise BenchError(f"vm info {VM}: no vcpu0 line:\n{text}")
        s["exits_total"], s["irqs"] = int(m.group(2)), int(m.group(3))
        up = self.cmd("status", r"uptime: (\d+)d (\d+):(\d+):(\d+)\.(\d+)")
        d, hh, mm, ss, ms = (int(x) for x in up.groups())
        s["uptime"] = (((d * 24 + hh) * 60 + mm) * 60 + ss) + ms / 1000
        m = self.cmd("cpus", rf"(?m)^{cpu}\s+\d+\s+online\s+\d+\s+(\d+)%")
        s["idle_pct"] = int(m.group(1))
        s["t_proc"] = time.monotonic()
        s["proc"], s["threads"] = proc_cpu(pid)
        return s


def attach(host):
    host.mark()
    host.sendline(f"vm console {VM}")
    host.expect(rf"attached to {VM}", CMD_TIMEOUT)


def detach(host):
    host.send(b"\x1d")
    host.expect(r"detached", CMD_TIMEOUT)
    host.expect(re.escape(PROMPT), CMD_TIMEOUT)


def run_tern(args, esp, env):
    host = ternlab.QemuHost(esp, name="linuxboot", mem=QEMU_MEM,
                            smp=QEMU_SMP, cpu=QEMU_CPU, logdir=args.logdir,
                            test="linux_boot",
                            extra_args=["-name", "linuxboot,debug-threads=on"])
    con = TernConsole(host, CMD_TIMEOUT)
    res = {}
    attached = False
    try:
        host.start()
        try:
            host.expect(r"console ready", BOOT_TIMEOUT)
            host.expect(re.escape(PROMPT), BOOT_TIMEOUT)
        except TimeoutError as e:
            raise BenchError(f"Tern did not boot to its prompt: {e}") from None
        print(f"  tern: host at its prompt in {host.elapsed():.1f} s",
              flush=True)
        env["tern"] = con.cmd("version", r"Tern [^\n]*").group(0).strip()
        con.cmd("status", r"virtualization: AMD-V \(SVM\) with nested paging")
        if args.baseline > 0:
            # Tern alone, no VM: what the host costs before any guest.
            c0, t = proc_cpu(host.proc.pid)[0], time.monotonic()
            time.sleep(args.baseline)
            res["baseline_s"] = args.baseline
            res["baseline"] = pct(proc_cpu(host.proc.pid)[0] - c0,
                                  time.monotonic() - t)
        con.cmd(f'vm create {VM} mem={VM_MEM} kernel={KERNEL} '
                f'initrd={INITRD} cmdline="{CMDLINE}"',
                rf"vm {VM} created \(\d+ MiB\)")
        m = con.cmd(f"vm info {VM}", r"(?m)^cmdline: ([^\n]*)")
        res["cmdline"] = m.group(1)

        # The clock starts when Enter of `vm start` has been typed; the
        # console is attached straight after, long before Linux prints.
        host.mark()
        host.sendline(f"vm start {VM}")
        t0 = time.monotonic()
        m = host.expect(rf"vm {VM} running on CPU (\d+)|{ERROR_RE}",
                        CMD_TIMEOUT)
        if not m.group(1):
            raise BenchError(f"vm start answered {m.group(0)!r}")
        cpu = int(m.group(1))
        res["cpu"] = cpu
        host.expect(re.escape(PROMPT), CMD_TIMEOUT)
        attach(host)
        attached = True
        try:
            res["times"], res["banner"] = follow_boot(host, t0, "tern")
            shell_answers(host, "tern")
            time.sleep(SETTLE_S)
            loc0 = guest_timer_irqs(host, "tern")
        finally:
            detach(host)
            attached = False

        # The window: console commands only at its ends, none inside.
        pid = host.proc.pid
        a = con.sample(cpu, pid)
        time.sleep(args.idle)
        b = con.sample(cpu, pid)
        attach(host)
        attached = True
        try:
            loc1 = guest_timer_irqs(host, "tern")
            res["clocksource"] = guest_clocksource(host, "tern")
            shell_answers(host, "tern")
        finally:
            detach(host)
            attached = False
        res["a"], res["b"], res["loc"] = a, b, (loc0, loc1)
        con.cmd(f"vm stop {VM}", rf"vm {VM} stopped")
        return res
    except BenchError as e:
        if host.alive() and attached:
            try:
                detach(host)
            except (TimeoutError, ternlab.LabError):
                pass
        if host.alive():
            try:
                info = con.run(f"vm info {VM}")
                lines = [ln for ln in con.raw("log 60").split("\n")
                         if f"[{VM}]" in ln or "vm " in ln][-15:]
                raise BenchError(f"{e}\n  vm info {VM}:\n    "
                                 + info.replace("\n", "\n    ")
                                 + "\n  last host log lines about it:\n    "
                                 + "\n    ".join(lines)) from None
            except (TimeoutError, ternlab.LabError):
                pass
        raise
    finally:
        res["serial_log"] = host.serial_log_path
        host.stop()


# --- the peer: plain QEMU TCG -------------------------------------------------

class DirectQemu(ternlab.QemuHost):
    """qemu-system-x86_64 -accel tcg booting the kernel and initrd itself
    (-kernel/-initrd/-append), serial and QMP on unix sockets as for the
    Tern host, so that the same expect() follows its boot."""

    def __init__(self, kernel, initrd, cmdline, logdir):
        super().__init__(os.path.dirname(kernel), name="linuxboot-qemu",
                         mem=PEER_MEM, smp=1, cpu=PEER_CPU, logdir=logdir,
                         test="linux_boot")
        self.kernel, self.initrd, self.cmdline = kernel, initrd, cmdline

    def _check_tools(self):
        ternlab.require_tool("qemu-system-x86_64", "qemu-system-x86")

    def _launch(self):
        ser_l, ser_path = self._listen("serial.sock")
        qmp_l, qmp_path = self._listen("qmp.sock")
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", self.cpu,
                "-m", self.mem, "-smp", "1",
                "-name", "linuxboot-qemu,debug-threads=on",
                "-kernel", self.kernel, "-initrd", self.initrd,
                "-append", self.cmdline,
                "-display", "none", "-vga", "none", "-nic", "none",
                "-no-reboot",
                "-chardev", f"socket,id=ser0,path={ser_path},server=off",
                "-serial", "chardev:ser0",
                "-chardev", f"socket,id=qmp0,path={qmp_path},server=off",
                "-mon", "chardev=qmp0,mode=control"]
        self.argv = argv
        self._stderr_log = open(self.stderr_log_path, "ab")
        self._log_header(self._stderr_log)
        self._stderr_log.write((" ".join(argv) + "\n").encode())
        self._stderr_log.flush()
        self._popen(argv, stdout=self._stderr_log, stderr=self._stderr_log)
        try:
            deadline = time.monotonic() + 15
            self._sock = self._accept(ser_l, "serial", deadline)
            self._qmp = self._accept(qmp_l, "QMP", deadline)
        finally:
            ser_l.close()
            qmp_l.close()
        self._qmp_file = self._qmp.makefile("rb")
        self._qmp_replies = []
        self._qmp_cond = threading.Condition()
        self._qmp_next_id = 0
        threading.Thread(target=self._qmp_loop, daemon=True,
                         name=f"ternlab-{self.name}-qmp").start()
        self.qmp("qmp_capabilities")


def run_peer(args, esp):
    kernel = os.path.join(esp, "tern", *KERNEL.split("/"))
    initrd = os.path.join(esp, "tern", *INITRD.split("/"))
    host = DirectQemu(kernel, initrd, CMDLINE, args.logdir)
    res = {}
    try:
        # QEMU's start-up (argument parsing, SeaBIOS, loading the files)
        # is inside the time, as the firmware-less `vm start` is in Tern's.
        t0 = time.monotonic()
        host.start()
        res["times"], res["banner"] = follow_boot(host, t0, "qemu")
        shell_answers(host, "qemu")
        res["argv"] = host.argv
        time.sleep(SETTLE_S)
        loc0 = guest_timer_irqs(host, "qemu")
        pid = host.proc.pid
        a = {"t_proc": time.monotonic()}
        a["proc"], a["threads"] = proc_cpu(pid)
        time.sleep(args.idle)
        b = {"t_proc": time.monotonic()}
        b["proc"], b["threads"] = proc_cpu(pid)
        if not host.alive():
            raise BenchError("qemu: the emulator went away while idle")
        loc1 = guest_timer_irqs(host, "qemu")
        res["clocksource"] = guest_clocksource(host, "qemu")
        # Still a shell after the idle minute.
        shell_answers(host, "qemu")
        res["a"], res["b"], res["loc"] = a, b, (loc0, loc1)
        return res
    except ternlab.LabError as e:
        raise BenchError(f"qemu: {e}") from None
    finally:
        res["serial_log"] = host.serial_log_path
        host.stop()


# --- report --------------------------------------------------------------------

def environment():
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
    return {"qemu": qemu, "model": model, "ncpu": os.cpu_count(),
            "load0": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "os": f"{platform.system()} {platform.release()}"}


def pct(cpu_s, wall_s):
    return 100.0 * cpu_s / wall_s if wall_s > 0 else 0.0


def idle_rows(tern, peer):
    """Rows for the idle window: (label, tern cell, peer cell)."""
    rows = []
    tw = tern["b"]["t_proc"] - tern["a"]["t_proc"] if tern else 0
    pw = peer["b"]["t_proc"] - peer["a"]["t_proc"] if peer else 0
    cell = "not run"

    if tern:
        a, b, cpu = tern["a"], tern["b"], tern["cpu"]
        # `cpus` prints idle cycles * 100 / cycles since boot, rounded
        # down: each sample's idle time is in [p, p + 1) % of the uptime.
        t0, t1 = a["uptime"], b["uptime"]
        p0, p1 = a["idle_pct"], b["idle_pct"]
        lo = (p1 * t1 - (p0 + 1) * t0) / 100
        hi = ((p1 + 1) * t1 - p0 * t0) / 100
        win = t1 - t0
        busy_mid = 100 - pct((lo + hi) / 2, win)
        busy_err = pct((hi - lo) / 2, win)
        rows.append((f"host CPU {cpu} (runs the vCPU) not idle, Tern's "
                     "`cpus` (+- rounding)",
                     f"{busy_mid:.1f} % +- {busy_err:.1f}", "-"))
    else:
        rows.append(("host CPU running the vCPU not idle, Tern's `cpus`",
                     cell, "-"))

    def thread(res, name, wall):
        if not res:
            return cell
        d = res["b"]["threads"].get(name, 0.0) - \
            res["a"]["threads"].get(name, 0.0)
        return f"{pct(d, wall):.1f} %"

    tname = f"CPU {tern['cpu']}/TCG" if tern else "CPU 1/TCG"
    rows.append((f"QEMU thread of that CPU ('{tname}' / 'CPU 0/TCG'), "
                 "% of a core",
                 thread(tern, tname, tw), thread(peer, "CPU 0/TCG", pw)))
    rows.append(("whole QEMU process (/proc utime+stime), % of a core",
                 f"{pct(tern['b']['proc'] - tern['a']['proc'], tw):.1f} %"
                 if tern else cell,
                 f"{pct(peer['b']['proc'] - peer['a']['proc'], pw):.1f} %"
                 if peer else cell))
    if tern:
        # Tern's CPU 0 (console, timers) is the rest of the process.
        rows.append(("  of which Tern's CPU 0 thread ('CPU 0/TCG')",
                     thread(tern, "CPU 0/TCG", tw), "-"))

    return rows


def exit_rows(tern):
    if not tern:
        return [("exits/s", "not run", "-")]
    a, b = tern["a"], tern["b"]
    wall = b["t_info"] - a["t_info"]
    kinds = sorted(set(a["exits"]) | set(b["exits"]),
                   key=lambda k: -(b["exits"].get(k, 0) - a["exits"].get(k, 0)))
    rows = [("exits/s, all kinds (vcpu0 exits)",
             f"{(b['exits_total'] - a['exits_total']) / wall:.1f}", "-")]
    for k in kinds:
        n = b["exits"].get(k, 0) - a["exits"].get(k, 0)
        rows.append((f"  exits/s {k}", f"{n / wall:.1f}", "-"))
    rows.append(("interrupts injected/s (vcpu0 irqs)",
                 f"{(b['irqs'] - a['irqs']) / wall:.1f}", "-"))
    return rows


def loc_rate(res):
    if not res:
        return "not run"
    (n0, t0), (n1, t1) = res["loc"]
    return f"{(n1 - n0) / (t1 - t0):.1f}"


def print_table(env, tern, peer, args):
    rows = []
    for name, label in (("banner", "start -> kernel banner (Linux version)"),
                        ("init", "start -> /init (TERN-LINUX-INIT)"),
                        ("prompt", "start -> shell prompt (boot to shell)")):
        rows.append((f"{label}, s",
                     f"{tern['times'][name]:.1f}" if tern else "not run",
                     f"{peer['times'][name]:.1f}" if peer else "not run"))
    idle = "idle: "
    rows += [(idle + lbl, t, p) for lbl, t, p in idle_rows(tern, peer)]
    if tern and "baseline" in tern:
        rows.append((f"Tern host alone before the VM ({tern['baseline_s']:.0f}"
                     " s): whole QEMU process, % of a core",
                     f"{tern['baseline']:.1f} %", "-"))
    rows.append((idle + "guest clocksource at the end",
                 tern["clocksource"] if tern else "not run",
                 peer["clocksource"] if peer else "not run"))
    rows.append((idle + "guest local timer interrupts/s (LOC in "
                 "/proc/interrupts)", loc_rate(tern), loc_rate(peer)))
    rows += [(idle + lbl, t, p) for lbl, t, p in exit_rows(tern)]

    w0 = max(len(r[0]) for r in rows)
    w1 = max(12, max(len(r[1]) for r in rows))
    h1, h2 = "Tern (AMD-V)", "QEMU TCG"
    print()
    print("Linux guest benchmark (tests/bench/linux_boot.py)")
    print(f"  date:     {env['date']}")
    print(f"  host:     {env['model']}, {env['ncpu']} cores, load average "
          f"{env['load0']:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
          f"{env['os']}")
    print(f"  emulator: {env['qemu']}")
    if tern:
        print(f"  tern:     {env.get('tern', '?')}; QEMU -machine q35 -cpu "
              f"{QEMU_CPU} -smp {QEMU_SMP} -m {QEMU_MEM}; VM mem={VM_MEM}, "
              f"1 vCPU on host CPU {tern['cpu']}")
    if peer:
        print(f"  qemu:     -accel tcg -cpu {PEER_CPU} -m {PEER_MEM} -smp 1 "
              "-kernel -initrd -append (machine pc)")
    banner = (tern or peer)["banner"]
    print(f"  guest:    {banner[:100]}")
    print(f"  cmdline:  {tern['cmdline'] if tern else CMDLINE}"
          + ("  (QEMU: without tsc_early_khz)" if tern and peer else ""))
    print(f"  idle:     {args.idle:.0f} s, from {SETTLE_S} s after the "
          "prompt; console commands only at its ends")
    print()
    print(f"| {'':<{w0}} | {h1:>{w1}} | {h2:>10} |")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 1)}:|{'-' * 11}:|")
    for r in rows:
        print(f"| {r[0]:<{w0}} | {r[1]:>{w1}} | {r[2]:>10} |")
    print()


# --- main --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp-linux"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build",
                                                     "bench-logs"))
    ap.add_argument("--idle", type=float, default=60.0,
                    help="seconds of idle guest to measure (default 60)")
    ap.add_argument("--baseline", type=float, default=20.0,
                    help="seconds of Tern host alone, before the VM, to "
                         "measure QEMU's CPU (default 20, 0: none)")
    ap.add_argument("--only", choices=("tern", "qemu"),
                    help="run one column only")
    args = ap.parse_args()
    if args.idle < 1:
        ap.error("--idle must be at least 1 s")
    for p in ("EFI/BOOT/BOOTX64.EFI", "tern/kernel.elf",
              "tern/" + KERNEL, "tern/" + INITRD):
        if not os.path.isfile(os.path.join(args.esp, p)):
            sys.exit(f"linux_boot: {args.esp}/{p} missing: run "
                     "'make esp-linux'")

    t_start = time.monotonic()
    # A private copy: others may rebuild the ESP while this runs, and
    # both columns must boot the very same files.
    tmp = tempfile.mkdtemp(prefix="linux-bench-esp-")
    esp = os.path.join(tmp, "esp")
    shutil.copytree(args.esp, esp)
    env = environment()
    tern = peer = None
    try:
        if args.only != "qemu":
            print("Tern: booting the host, then the Linux VM", flush=True)
            tern = run_tern(args, esp, env)
        if args.only != "tern":
            print("QEMU TCG: booting the same kernel and initrd", flush=True)
            peer = run_peer(args, esp)
    except (BenchError, TimeoutError, ternlab.LabError) as e:
        print(f"linux_boot: FAILED: {e}", file=sys.stderr)
        print(f"linux_boot: serial logs in {args.logdir}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(env, tern, peer, args)
    print(f"total {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
