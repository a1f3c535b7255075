#!/usr/bin/env python3
"""Linux guest tests: boot Tern in QEMU (AMD-V with nested paging under
TCG), create a VM from Debian's own kernel (build/linux/vmlinuz, `make
linux-guest`) and the busybox initramfs of tests/linux/, and follow its
boot through the host log.

    python3 tests/lab/linux_tests.py [--esp DIR] [--expect STAGE]
                                     [--bochs MODEL] [--append OPTS]
                                     [--only REGEX]
                                     [--logdir DIR] [--list]

Stages, each implying the ones before it:
    banner   "Linux version 6.1..." from the guest's UART (works today)
    init     /init's marker line (needs timer interrupts)
    shell    the busybox prompt, answering commands typed via `vm console`
    full     nproc, timer interrupts rising on every CPU, date vs host,
             the SSE check, poweroff and reboot
The default is banner; every test records how far the boot got and the
last guest lines either way.  Needs the ESP from `make esp-linux`.
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

PROMPT = "tern> "
QEMU_CPU = "qemu64,+svm,+npt"
QEMU_SMP = 2            # CPU 0 manages, one more per vCPU (--vcpus)
VCPUS = 1
for _i, _a in enumerate(sys.argv):
    if _a == "--vcpus" and _i + 1 < len(sys.argv):
        VCPUS = int(sys.argv[_i + 1])
        QEMU_SMP = VCPUS + 1
# The guest clock against the host's over this long (--clock-secs).
CLOCK_SECS = 60
QEMU_MEM = "1G"
VM = "lx"
VM_MEM = "256M"
KERNEL = "linux/vmlinuz"
INITRD = "linux/initrd.gz"
CMDLINE = "console=ttyS0 earlyprintk=serial,ttyS0,115200 loglevel=7"
STAGES = ("banner", "init", "shell", "full")
# `--bochs MODEL`: Intel VT-x with EPT under Bochs (~100 MIPS, far slower).
BOCHS_MODEL = None
for _i, _a in enumerate(sys.argv):
    if _a == "--bochs" and _i + 1 < len(sys.argv):
        BOCHS_MODEL = sys.argv[_i + 1]
# `--pvh`: boot the uncompressed vmlinux (ELF, PVH entry) instead of the
# bzImage: no in-guest decompression, which takes minutes under Bochs.
PVH = "--pvh" in sys.argv
if PVH:
    KERNEL = "linux/vmlinux"
SLOW = 10 if BOCHS_MODEL else 1
BOOT_TIMEOUT = 60 * SLOW
CMD_TIMEOUT = 20 * SLOW
BANNER_TIMEOUT = 180 * SLOW     # decompression under TCG and nested paging
QUIET_SECS = 20 * SLOW          # no new guest line this long: it stopped
SETTLE_TIMEOUT = 300 * SLOW
GUEST_PROMPT = "lx# "

CFG = None
TESTS = []
TestFailure = ternlab.TestFailure
check = ternlab.check


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


def want(stage):
    return STAGES.index(CFG.expect) >= STAGES.index(stage)


class Console(ternlab.Console):
    def __init__(self, host):
        super().__init__(host, CMD_TIMEOUT)

    def info(self, name):
        out = self.run(f"vm info {name}")
        d = {}
        for ln in out.split("\n"):
            k, sep, v = ln.partition(": ")
            if sep and re.fullmatch(r"[\w-]+", k):
                d[k] = v.strip()
        check("state" in d, f"'vm info {name}' printed no state:\n{out}")
        d["_text"] = out
        return d

    def guest_lines(self, name, n=None):
        # Bochs's serial port moves a byte at a time: a shorter window.
        n = n or (600 if BOCHS_MODEL else 2000)
        text = self.raw(f"log {n}", 60 * SLOW)
        return [m.group(1) for m in
                re.finditer(rf"\[{re.escape(name)}\] ([^\n]*)", text)]

    def cleanup(self, name):
        if not self.h.alive():
            return
        try:
            self.run(f"vm stop {name}")
            self.run(f"vm destroy {name}")
        except Exception:
            pass


def esp_dir():
    esp = CFG.esp
    for rel in (("EFI", "BOOT", "BOOTX64.EFI"), ("tern", *KERNEL.split("/")),
                ("tern", *INITRD.split("/"))):
        p = os.path.join(esp, *rel)
        check(os.path.isfile(p), f"{p} not found: 'make esp-linux' builds "
              f"the Linux suite's ESP")
    return esp


_shared = None


def console():
    global _shared
    if _shared is not None and _shared.h.alive():
        return _shared
    if BOCHS_MODEL:
        host = ternlab.BochsHost(esp_dir(), name="linux-vmx", cpu_model=BOCHS_MODEL,
                                 mem_mb=1024 if PVH else 512, cpus=QEMU_SMP,
                                 logdir=CFG.logdir)
    else:
        host = ternlab.QemuHost(esp_dir(), name="linux", mem=QEMU_MEM,
                                smp=QEMU_SMP, cpu=QEMU_CPU, logdir=CFG.logdir)
    con = Console(host)
    try:
        host.start()
        host.expect(r"console ready", BOOT_TIMEOUT)
        host.expect(re.escape(PROMPT), BOOT_TIMEOUT)
        print(f"  boot-to-prompt: {host.elapsed():.1f} s", flush=True)
    except Exception:
        host.stop()
        raise
    _shared = con
    return con


def stop_shared():
    global _shared
    if _shared is not None:
        _shared.h.stop()
        _shared = None


def tail(lines, n=25):
    return "\n".join("    | " + ln for ln in lines[-n:])


def follow_boot(con, name, pattern, timeout):
    """Poll the guest's lines until pattern shows, the VM stops, or no new
    line came for QUIET_SECS.  Returns (matched, lines, info)."""
    deadline = time.monotonic() + timeout
    last_n, last_change = -1, time.monotonic()
    while True:
        lines = con.guest_lines(name)
        if any(re.search(pattern, ln) for ln in lines):
            return True, lines, None
        info = con.info(name)
        if info["state"] != "running":
            return False, lines, info
        if len(lines) != last_n:
            last_n, last_change = len(lines), time.monotonic()
        elif lines and time.monotonic() - last_change > QUIET_SECS:
            return False, lines, info
        if time.monotonic() > deadline:
            return False, lines, info
        time.sleep(2)


def report_stop(con, lines, info):
    info = info or con.info(VM)
    faults = [ln for ln in lines if re.search(r"segfault at|general protection|traps:", ln)]
    if faults:
        print(f"  user/kernel faults in the guest ({len(faults)}):\n{tail(faults, 8)}")
    print(f"  guest stopped here: state {info['state']}"
          + (f", reason: {info['reason']}" if "reason" in info else "")
          + f"\n  {info.get('vcpu0', '')}\n  exits: {info.get('exits', '')}"
          f"\n  last guest lines:\n{tail(lines)}", flush=True)


@test
def linux_create_info():
    """vm create takes the bzImage and the initrd; vm info names them."""
    con = console()
    try:
        out = con.lines(f"vm create {VM} mem={VM_MEM} kernel={KERNEL} "
                        f"initrd={INITRD} cmdline=\"{CMDLINE}\"")
        check(out == [f"vm {VM} created (256 MiB)"],
              "vm create answered:\n" + "\n".join(out))
        d = con.info(VM)
        check(re.fullmatch(r"Linux bzImage, boot protocol 2\.1[2-9]",
                           d.get("kind", "")),
              f"vm info kind: {d.get('kind')!r}\n{d['_text']}")
        check(d.get("initrd") == INITRD, f"vm info initrd: {d.get('initrd')}")
        m = re.fullmatch(re.escape(CMDLINE) + r" tsc_early_khz=(\d+)",
                         d.get("cmdline", ""))
        check(m and int(m.group(1)) > 100000,
              f"vm info cmdline: {d.get('cmdline')!r}")
        # The same kernel with the operator's tsc_early_khz: kept as given.
        out = con.lines(f"vm create {VM}2 mem=128M kernel={KERNEL} "
                        f"cmdline=\"tsc_early_khz=1234\"")
        check(out == [f"vm {VM}2 created (128 MiB)"], "\n".join(out))
        check(con.info(f"{VM}2").get("cmdline") == "tsc_early_khz=1234",
              "operator's tsc_early_khz was not kept alone")
        con.run(f"vm destroy {VM}2")
        # An empty line becomes console=ttyS0.
        con.lines(f"vm create {VM}2 mem=128M kernel={KERNEL}")
        check(re.fullmatch(r"console=ttyS0 tsc_early_khz=\d+",
                           con.info(f"{VM}2").get("cmdline", "")),
              "the default command line is not console=ttyS0")
        con.run(f"vm destroy {VM}2")
        # Errors name the cause.  Debian's kernel wants init_size (~64 MiB)
        # from its 16 MiB pref_address.
        out = con.lines(f"vm create {VM}3 mem=64M kernel={KERNEL}")
        check(len(out) == 1 and "does not fit" in out[0], "\n".join(out))
        out = con.lines(f"vm create {VM}3 mem=64M kernel={KERNEL} initrd=nope.gz")
        check(len(out) == 1 and "nope.gz" in out[0] and out[0].startswith("error:"),
              "\n".join(out))
        out = con.lines(f"vm create {VM}3 mem=16M kernel=guests/hello.elf "
                        f"initrd={INITRD}")
        check(len(out) == 1 and "bzImage" in out[0], "\n".join(out))
        out = con.lines(f"vm create {VM}3 mem=16M kernel={INITRD}")
        check(len(out) == 1 and "bzImage" in out[0] and "Multiboot" in out[0],
              "\n".join(out))
    finally:
        con.cleanup(f"{VM}2")
        con.cleanup(f"{VM}3")


@test
def linux_cfg_vms():
    """tern.cfg's vm lines (tests/linux/tern-cfg-vms): one guest created at
    boot, an error line with the line number for each bad one."""
    con = console()
    try:
        log = con.raw("log 2000", 60)
        m = re.search(r"config: vm lxcfg created from line (\d+)", log)
        check(m, "no 'config: vm lxcfg created' at boot:\n" + log[-3000:])
        first = int(m.group(1))
        check(re.search(rf"config: line {first + 1}: vm lxcfg: duplicate name "
                        rf"\(first on line {first}\)", log),
              "no duplicate-name error line:\n" + log[-3000:])
        check(re.search(rf"config: line {first + 2}: vm: unknown key 'memory'", log),
              "no unknown-key error line:\n" + log[-3000:])
        check(re.search(rf"config: line {first + 3}: vm small: .*does not fit", log),
              "no error line for a guest too small for its kernel:\n" + log[-3000:])
        d = con.info("lxcfg")
        check(d["state"] == "created" and d.get("kind", "").startswith("Linux")
              and re.fullmatch(r"console=ttyS0 quiet tsc_early_khz=\d+",
                               d.get("cmdline", "")),
              f"vm info lxcfg:\n{d['_text']}")
        check("small" not in con.run("vm list"), "the bad guest was created")
        # autostart: the Multiboot hello guest ran at boot and finished.
        check(re.search(r"config: vm hi created from line \d+, starting", log),
              "no autostart line for hi:\n" + log[-3000:])
        deadline = time.monotonic() + 60
        while (d := con.info("hi"))["state"] == "running":
            check(time.monotonic() < deadline, f"hi still running:\n{d['_text']}")
            time.sleep(1)
        check(d["state"] == "stopped" and "exit code 0x10" in d.get("reason", "")
              and d.get("cmdline") == "from tern.cfg" and d.get("kind") == "Multiboot",
              f"vm info hi:\n{d['_text']}")
    finally:
        con.cleanup("lxcfg")
        con.cleanup("hi")


@test
def linux_boot():
    """Start the VM; the banner must come; later stages per --expect."""
    con = console()
    if "state" not in con.run(f"vm info {VM}"):
        con.lines(f"vm create {VM} mem={VM_MEM} kernel={KERNEL} "
                  f"vcpus={VCPUS} initrd={INITRD} cmdline=\"{CMDLINE}\"")
    out = con.lines(f"vm start {VM}")
    check(len(out) == 1 and "running on CPU" in out[0], "\n".join(out))
    t0 = time.monotonic()
    # Each milestone: (the --expect stage that requires it, its pattern).
    # Followed in order until one is missed; where the guest stopped is
    # printed either way (the input for the interrupt work).
    milestones = (("banner", r"Linux version 6\."),
                  ("init", r"TERN-LINUX-INIT"),
                  ("full", r"TERN-LINUX-SSE: ok"),
                  ("shell", r"TERN-LINUX-SHELL$"))
    for i, (stage, pattern) in enumerate(milestones):
        ok, lines, info = follow_boot(con, VM, pattern,
                                      BANNER_TIMEOUT if i == 0 else SETTLE_TIMEOUT)
        if not ok:
            print(f"  milestone {pattern!r} not reached", flush=True)
            report_stop(con, lines, info)
            check(not want(stage), f"no {pattern!r} from the guest")
            return
        line = next(ln for ln in lines if re.search(pattern, ln))
        print(f"  {time.monotonic() - t0:4.0f} s: {line[:110]}", flush=True)
    if want("shell"):
        shell_checks(con)


@test
def linux_pvh_kind():
    """vmlinux (ELF64 with the Xen PVH note) loads by PVH, vmlinuz as a
    bzImage, and a vmlinux too big for the VM's RAM is refused by name."""
    con = console()
    try:
        out = con.lines(f"vm create {VM}p mem=128M kernel=linux/vmlinux "
                        f"initrd={INITRD}")
        check(not any("error" in ln.lower() for ln in out), "\n".join(out))
        info = con.info(f"{VM}p")
        check(info.get("kind") == "Linux PVH (vmlinux ELF)", info["_text"])
        check(info.get("initrd") == INITRD, info["_text"])
        check(re.search(r"tsc_early_khz=\d+", info.get("cmdline", "")),
              info["_text"])
    finally:
        con.cleanup(f"{VM}p")
    try:
        con.lines(f"vm create {VM}p mem=128M kernel=linux/vmlinuz")
        info = con.info(f"{VM}p")
        check(info.get("kind", "").startswith("Linux bzImage"), info["_text"])
    finally:
        con.cleanup(f"{VM}p")
    # 72 MiB of segments from 16 MiB up do not fit in 64 MiB of RAM.
    out = "\n".join(con.lines(f"vm create {VM}p mem=64M kernel=linux/vmlinux"))
    check("PVH" in out and "not in guest RAM" in out, out)
    con.cleanup(f"{VM}p")


def detach(h):
    """Ctrl-] once the guest's output has settled: busybox sends a cursor
    query (ESC [ 6 n) just after its prompt, and a detach that cuts it in
    two leaves a lone ESC that swallows the start of 'detached'."""
    time.sleep(1.0)
    h.send(b"\x1d")


def guest_cmd(h, cmd, timeout=CMD_TIMEOUT):
    """Type cmd at the guest's shell; its output (from the echo to the
    next prompt), not the whole transcript."""
    h.mark()
    start = len(h.output())
    h.send(cmd + "\r")
    h.expect(re.escape(GUEST_PROMPT), timeout)
    return h.output()[start:]


def shell_checks(con):
    h = con.h
    h.mark()
    h.sendline(f"vm console {VM}")
    h.expect(rf"attached to {VM}", CMD_TIMEOUT)
    h.send("\r")
    h.expect(re.escape(GUEST_PROMPT), 60)
    try:
        if want("full"):
            out = guest_cmd(h, "nproc")
            check(re.search(rf"^\s*{VCPUS}\s*$", out, re.M),
                  f"nproc (want {VCPUS}):\n{out}")
            a = guest_cmd(h, "cat /proc/interrupts")
            time.sleep(2)
            b = guest_cmd(h, "cat /proc/interrupts")
            check(len(_timer_counts(a)) == VCPUS and
                  all(y > x for x, y in zip(_timer_counts(a), _timer_counts(b))),
                  f"timer interrupts not rising on every CPU:\n{a}\n{b}")
            out = guest_cmd(h, "date +%s")
            m = re.search(r"^(\d{9,})\s*$", out, re.M)
            check(m and abs(int(m.group(1)) - time.time()) < 120,
                  f"guest date far from the host's:\n{out}")
            # Every vCPU at once, each pinned: exits on one must not
            # disturb another's registers.
            out = guest_cmd(h, " ".join(f"taskset -c {c} ssecheck &"
                                        for c in range(VCPUS)) + " wait", 240)
            check(out.count("XMM0-15 kept") == VCPUS and "changed" not in out,
                  f"ssecheck on {VCPUS} vCPUs:\n{out}")
            clock_check(h)
    finally:
        detach(h)
        h.expect(r"detached", CMD_TIMEOUT)
    if want("full"):
        h.sendline(f"vm console {VM}")
        h.expect(rf"attached to {VM}", CMD_TIMEOUT)
        h.send("poweroff -f\r")
        time.sleep(5)
        detach(h)
        h.expect(r"detached", CMD_TIMEOUT)
        d = con.info(VM)
        check(d["state"] == "stopped" and "power" in d.get("reason", ""),
              f"after poweroff:\n{d['_text']}")
        reboot_check(con)


def reboot_check(con):
    """`reboot -f` in a fresh guest: the VM alone restarts from its kernel
    (vm info counts the reset and says why) and boots to its shell again.
    The log keeps earlier guests' lines under the same name, so markers
    are counted, not searched for."""
    h = con.h

    def shell_markers():
        return sum(ln.endswith("TERN-LINUX-SHELL") for ln in con.guest_lines(VM))

    def wait_markers(more_than):
        deadline = time.monotonic() + SETTLE_TIMEOUT
        n = shell_markers()
        while n <= more_than and time.monotonic() < deadline:
            time.sleep(2)
            n = shell_markers()
        return n

    con.cleanup(VM)
    out = con.lines(f"vm create {VM} mem={VM_MEM} kernel={KERNEL} "
                    f"vcpus={VCPUS} initrd={INITRD} cmdline=\"{CMDLINE}\"")
    check(out == [f"vm {VM} created (256 MiB)"], "\n".join(out))
    base = shell_markers()
    con.lines(f"vm start {VM}")
    booted = wait_markers(base)
    check(booted > base, "no shell marker before the reboot check")
    h.sendline(f"vm console {VM}")
    h.expect(rf"attached to {VM}", CMD_TIMEOUT)
    h.send("\r")
    h.expect(re.escape(GUEST_PROMPT), 60)
    h.send("reboot -f\r")
    time.sleep(2)
    detach(h)
    h.expect(r"detached", CMD_TIMEOUT)
    again = wait_markers(booted)
    d = con.info(VM)
    check(again > booted and d["state"] == "running" and
          re.search(r"^resets: 1, the last: guest reset \(", d["_text"], re.M),
          f"after reboot: {again - booted} new shell markers\n{d['_text']}")


def _guest_clock(h):
    """The guest's clock (/proc/uptime, 10 ms steps: busybox's date has
    no %N), paired with the host's monotonic time at the middle of the
    exchange."""
    t0 = time.monotonic()
    out = guest_cmd(h, "cat /proc/uptime")
    t1 = time.monotonic()
    m = re.search(r"^(\d+\.\d+) \d+\.\d+\s*$", out, re.M)
    check(m, f"cat /proc/uptime:\n{out}")
    return float(m.group(1)), (t0 + t1) / 2, t1 - t0


def clock_check(h):
    """The guest clock keeps the host's rate within 0.1 % over
    CLOCK_SECS (the issue's bound); the exchange's own length bounds the
    error of each sample."""
    g0, h0, e0 = _guest_clock(h)
    time.sleep(CLOCK_SECS)
    g1, h1, e1 = _guest_clock(h)
    rate = (g1 - g0) / (h1 - h0)
    slack = (e0 + e1 + 0.02) / (h1 - h0)
    print(f"  guest clock rate {rate:.6f} of the host's over {h1 - h0:.1f} s "
          f"(sampling uncertainty {slack * 100:.3f} %)", flush=True)
    check(abs(rate - 1) <= 0.001 + slack,
          f"guest clock rate {rate:.6f}, want 1 +- 0.001 (+{slack:.4f} sampling)")


def _timer_counts(text):
    """Per-CPU counts of the 'LOC' (local timer) line of /proc/interrupts."""
    m = re.search(r"^\s*LOC:((?:\s+\d+)+)", text, re.M)
    return [int(x) for x in m.group(1).split()] if m else []


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp-linux"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--expect", choices=STAGES, default="banner",
                    help="the last boot stage that must be reached")
    ap.add_argument("--bochs", metavar="MODEL",
                    help="run under Bochs with this CPU model (Intel VT-x)")
    ap.add_argument("--pvh", action="store_true",
                    help="boot linux/vmlinux by PVH instead of the bzImage")
    ap.add_argument("--append", metavar="OPTS", default="",
                    help="more guest kernel options (e.g. idle=poll, nolapic)")
    ap.add_argument("--vcpus", type=int, default=1,
                    help="vCPUs of the guest (QEMU gets one CPU more)")
    ap.add_argument("--clock-secs", type=int, default=60,
                    help="how long the clock-rate check measures")
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    global CLOCK_SECS
    CLOCK_SECS = CFG.clock_secs
    if CFG.append:
        global CMDLINE
        CMDLINE = f"{CMDLINE} {CFG.append}"
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    chosen = [(n, fn) for n, fn in TESTS
              if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    return ternlab.run_suite(chosen, CFG.logdir, stop_shared)


if __name__ == "__main__":
    sys.exit(main())
