#!/usr/bin/env python3
"""Foundation integration tests: boot the Tern ESP in QEMU and Bochs and
check the console contract.  A tiny runner, no pytest.

    python3 tests/lab/boot_tests.py [--only REGEX] [--qemu-only|--bochs-only]
                                    [--esp DIR] [--logdir DIR] [--selftest]

--selftest runs only the harness's own tests against OVMF's UEFI Shell (an
empty ESP); it needs no Tern build.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

BANNER_RE = r"Tern (\S+) .*booting"
PROMPT = r"tern> "
QEMU_MEM_MIB = 1024
QEMU_SMP = 2
BOCHS_MEM_MIB = 256
BOCHS_CPUS = 2
QEMU_BOOT_TIMEOUT = 60
BOCHS_BOOT_TIMEOUT = 240
CMD_TIMEOUT = 20
BOCHS_CMD_TIMEOUT = 60

CFG = None        # argparse namespace, set in main()
TESTS = []        # (name, emulator, group, function)


def test(emulator, group="tern"):
    def reg(fn):
        TESTS.append((fn.__name__, emulator, group, fn))
        return fn
    return reg


TestFailure = ternlab.TestFailure
check = ternlab.check


# --- helpers --------------------------------------------------------------

def esp_dir():
    """The built ESP; a missing build is a failure, never a skip."""
    esp = CFG.esp
    loader = os.path.join(esp, "EFI", "BOOT", "BOOTX64.EFI")
    check(os.path.isfile(loader),
          f"{loader} not found: build the ESP first (make), or pass --esp")
    return esp


def copy_esp():
    tmp = tempfile.mkdtemp(prefix="tern-esp-")
    dst = os.path.join(tmp, "esp")
    shutil.copytree(esp_dir(), dst)
    return tmp, dst


def boot_to_prompt(host, timeout):
    """Start host (if needed) and wait for banner, 'console ready' and the
    prompt; print and return the boot time."""
    host.start()
    host.expect(BANNER_RE, timeout)
    host.expect(r"console ready", timeout)
    host.expect(PROMPT, timeout)
    secs = host.elapsed()
    print(f"  boot-to-prompt: {secs:.1f} s ({host.kind} {host.name})",
          flush=True)
    return secs


def parse_status(out):
    m = re.search(r"^cpus: (\d+)/(\d+) online\s*$", out, re.M)
    check(m, f"no 'cpus: <online>/<total> online' line in status:\n{out}")
    online, total = int(m.group(1)), int(m.group(2))
    m = re.search(r"^memory: total (\d+) MiB, used (\d+) MiB, free (\d+) MiB"
                  r"\s*$", out, re.M)
    check(m, f"no 'memory: total N MiB, used N MiB, free N MiB' line in "
             f"status:\n{out}")
    mem = tuple(int(x) for x in m.groups())
    check(re.search(r"^uptime: \S", out, re.M),
          f"no 'uptime: ...' line in status:\n{out}")
    return online, total, mem


def check_memory(mem, lo, hi):
    total, used, free = mem
    check(lo <= total <= hi,
          f"memory total {total} MiB outside [{lo}, {hi}] MiB")
    check(used <= total and free <= total,
          f"memory used {used} / free {free} exceed total {total} MiB")
    # Rounding each figure down to MiB may lose up to 1 MiB per figure.
    check(abs(used + free - total) <= 2,
          f"memory used {used} + free {free} != total {total} MiB")


def check_malformed(host, timeout):
    out = host.command("frobnicate 1 2", timeout=timeout)
    lines = [ln for ln in out.split("\n") if ln.strip()]
    check(len(lines) == 1 and lines[0].startswith("error: "),
          f"'frobnicate 1 2' should print exactly one 'error: ' line, "
          f"got:\n{out}")


_shared = None


def shared_qemu():
    """One booted QEMU for the read-only console tests (rebooted if a
    previous test killed it; a failed boot is remembered, not retried)."""
    global _shared
    if isinstance(_shared, Exception):
        raise TestFailure(f"shared QEMU failed to boot: {_shared}")
    if _shared is not None and _shared.alive():
        return _shared
    host = ternlab.QemuHost(esp_dir(), name="shared", mem=f"{QEMU_MEM_MIB}M",
                            smp=QEMU_SMP, logdir=CFG.logdir,
                            test="shared-console")
    try:
        boot_to_prompt(host, QEMU_BOOT_TIMEOUT)
    except Exception as e:
        host.stop()
        _shared = TestFailure(str(e).split("\n")[0] +
                              " (output in the first failing test)")
        raise
    _shared = host
    return host


def stop_shared():
    if isinstance(_shared, ternlab.QemuHost):
        _shared.stop()


def refused_boot(mutate, want_re):
    """Boot a mutated copy of the ESP; the loader must print a
    'tern-boot: error:' line matching want_re, the kernel must not start,
    and the firmware must get control back."""
    tmp, esp = copy_esp()
    try:
        mutate(esp)
        with ternlab.QemuHost(esp, name="refused", logdir=CFG.logdir) as h:
            m = h.expect(r"tern-boot: error:[^\n]*\n", QEMU_BOOT_TIMEOUT)
            check(re.search(want_re, m.group(0)),
                  f"error line does not name the file ({want_re}): "
                  f"{m.group(0).strip()!r}")
            # Back in OVMF's boot manager: it reports the failed option or
            # moves on to the next one (the UEFI Shell).
            h.expect(r"BdsDxe: (failed to start|loading|starting)|Shell> ",
                     30)
            check(not re.search(BANNER_RE, h.output()),
                  "the kernel banner appeared although the loader refused")
            check(h.alive(), "QEMU exited: the loader did not return to the "
                  "firmware cleanly")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- QEMU foundation tests ------------------------------------------------

@test("qemu")
def qemu_banner_and_prompt():
    h = shared_qemu()
    text = h.output()
    banner = re.search(BANNER_RE, text)
    check(banner, "no banner")
    boot = re.search(r"^tern-boot:", text, re.M)
    check(boot and boot.start() < banner.start(),
          "no 'tern-boot:' loader line before the kernel banner")
    ready = text.find("console ready", banner.end())
    check(ready >= 0 and text.find("tern> ", ready) > ready,
          "'console ready' then 'tern> ' must follow the banner")
    out = h.command("version", timeout=CMD_TIMEOUT)
    # "Tern <version>", where <version> is the banner's; build details may
    # follow after a space.
    want = f"Tern {banner.group(1)}"
    first = out.strip().split("\n")[0]
    check(first == want or first.startswith(want + " "),
          f"'version' should print {want!r} (the banner's version), "
          f"got {out!r}")


@test("qemu")
def qemu_status_cpus_and_memory():
    h = shared_qemu()
    online, total, mem = parse_status(h.command("status", timeout=CMD_TIMEOUT))
    check(total == QEMU_SMP and online == QEMU_SMP,
          f"cpus {online}/{total}, expected {QEMU_SMP}/{QEMU_SMP} "
          f"with -smp {QEMU_SMP}")
    check_memory(mem, QEMU_MEM_MIB - 256, QEMU_MEM_MIB)


@test("qemu")
def qemu_malformed_command():
    h = shared_qemu()
    check_malformed(h, CMD_TIMEOUT)
    online, total, _ = parse_status(h.command("status", timeout=CMD_TIMEOUT))
    check(total == QEMU_SMP, "status after an error reports wrong CPUs")


@test("qemu")
def qemu_log():
    h = shared_qemu()
    out = h.command("log 5", timeout=CMD_TIMEOUT)
    lines = [ln for ln in out.split("\n") if ln.strip()]
    check(1 <= len(lines) <= 5,
          f"'log 5' printed {len(lines)} lines (want 1..5):\n{out}")
    check(not any(ln.startswith("error:") for ln in lines),
          f"'log 5' reported an error:\n{out}")


@test("qemu")
def qemu_corrupt_kernel_refused():
    def corrupt(esp):
        path = os.path.join(esp, "tern", "kernel.elf")
        check(os.path.isfile(path), f"{path} missing in the built ESP")
        junk = bytes((i * 131 + 17) & 0xff for i in range(8192))
        with open(path, "wb") as f:
            f.write(junk)
    refused_boot(corrupt, r"kernel\.elf")


@test("qemu")
def qemu_missing_config_refused():
    def drop_cfg(esp):
        path = os.path.join(esp, "tern", "tern.cfg")
        check(os.path.isfile(path), f"{path} missing in the built ESP")
        os.unlink(path)
    refused_boot(drop_cfg, r"tern\.cfg")


@test("qemu")
def qemu_exception_report_and_reboot():
    """An exception on a CPU prints vector, error code, registers and a
    stack trace and stops that CPU alone; `reboot` then resets the machine
    (QEMU runs with -no-reboot, so a reset ends it as 'guest-reset')."""
    with ternlab.QemuHost(esp_dir(), name="trap", logdir=CFG.logdir) as h:
        h.expect(PROMPT, QEMU_BOOT_TIMEOUT)
        out = h.command("debug trap 1", timeout=CMD_TIMEOUT)
        text = h.output()
        for pat in (r"\*\*\* EXCEPTION on CPU 1: vector 6 \(#UD invalid opcode\), "
                    r"error code 0", r"RIP [0-9a-f]{16} CS 0008", r"RAX [0-9a-f]{16}",
                    r"CR0 [0-9a-f]{16} CR2", r"stack trace", r"\[0\] ffffffff8",
                    r"\*\*\* CPU 1 stopped"):
            check(re.search(pat, text), f"exception report lacks {pat!r}:\n"
                  + text[-1500:])
        check("CPU 1 is stopped" in out, f"debug trap said: {out!r}")
        online, total, _ = parse_status(h.command("status", timeout=CMD_TIMEOUT))
        check((online, total) == (1, 2), f"status shows {online}/{total} CPUs, "
              "want 1/2 after CPU 1 stopped")
        h.sendline("reboot")
        rc = h.wait_exit(30)
        check(rc is not None, "QEMU still running 30 s after 'reboot'")
        check(h.shutdown_reason() == "guest-reset",
              f"reboot ended QEMU with reason {h.shutdown_reason()!r}")


@test("qemu")
def qemu_poweroff():
    # Runs last among the QEMU tests: it ends the shared instance.
    h = shared_qemu()
    h.sendline("poweroff")
    rc = h.wait_exit(30)
    check(rc is not None, f"QEMU still running 30 s after 'poweroff'; "
          f"last output:\n{h.output()[-1000:]}")
    reason = h.shutdown_reason()
    check(reason in ("guest-shutdown", "debug-exit"),
          f"QEMU exited (status {rc}) with reason {reason!r}, not a "
          f"power-off (guest-reset means a triple fault or reset)")
    h.stop()


# --- Bochs (Intel VT-x) ---------------------------------------------------

@test("bochs")
def bochs_boot_and_status():
    with ternlab.BochsHost(esp_dir(), name="bochs",
                           cpu_model="corei7_skylake_x",
                           mem_mb=BOCHS_MEM_MIB, cpus=BOCHS_CPUS,
                           logdir=CFG.logdir) as h:
        boot_to_prompt(h, BOCHS_BOOT_TIMEOUT)
        online, total, mem = parse_status(
            h.command("status", timeout=BOCHS_CMD_TIMEOUT))
        check(total == BOCHS_CPUS and online == BOCHS_CPUS,
              f"cpus {online}/{total}, Bochs was given {BOCHS_CPUS}")
        check_memory(mem, BOCHS_MEM_MIB // 2, BOCHS_MEM_MIB)
        check_malformed(h, BOCHS_CMD_TIMEOUT)
        h.sendline("poweroff")
        rc = h.wait_exit(60)
        check(rc is not None, "Bochs still running 60 s after 'poweroff'")
        check(h.powered_off(), f"Bochs exited (status {rc}) without an "
              f"ACPI soft power-off; see {h.out_log_path}")


# --- harness self-tests against OVMF's UEFI Shell (--selftest) -------------

SHELL = r"Shell> "


def _shell_session(host, boot_timeout, cmd_timeout):
    with tempfile.TemporaryDirectory(prefix="ternlab-empty-esp-") as empty:
        host.esp_dir = empty
        with host:
            # Any key but ESC skips the 5 s startup.nsh countdown at once
            # (ESC waits ~2 s for the rest of an escape sequence).
            host.expect(r"Press .*ESC", boot_timeout)
            host.send("q")
            host.expect(SHELL, 30)
            print(f"  boot-to-prompt: {host.elapsed():.1f} s "
                  f"({host.kind} UEFI Shell)", flush=True)
            out = host.command("ver", SHELL, cmd_timeout)
            check("UEFI Interactive Shell" in out, f"ver printed {out!r}")
            out = host.command("echo hello 0123456789abcdefghij", SHELL,
                               cmd_timeout)
            check(out == "hello 0123456789abcdefghij", f"echo gave {out!r}")
            try:
                host.expect(r"no such text", 0.5)
                raise TestFailure("expect() matched text that is not there")
            except ternlab.EmulatorExited:
                raise
            except TimeoutError as e:
                check("last output" in str(e), "TimeoutError lacks output")
            host.sendline("reset -s")
            rc = host.wait_exit(60)
            check(rc is not None, "emulator still running after 'reset -s'")
            try:
                host.expect(r"no such text", 5)
                raise TestFailure("expect() after exit did not raise")
            except ternlab.EmulatorExited:
                pass
            return rc


@test("qemu", group="selftest")
def selftest_qemu_uefi_shell():
    h = ternlab.QemuHost("/nonexistent", name="selftest", logdir=CFG.logdir)
    rc = _shell_session(h, 60, 20)
    check(rc == 0 and h.shutdown_reason() == "guest-shutdown",
          f"QEMU exit {rc}, reason {h.shutdown_reason()!r}")
    check(not h.alive(), "QEMU still alive after stop()")


@test("bochs", group="selftest")
def selftest_bochs_uefi_shell():
    h = ternlab.BochsHost("/nonexistent", name="selftest", mem_mb=BOCHS_MEM_MIB,
                          cpus=BOCHS_CPUS, logdir=CFG.logdir)
    rc = _shell_session(h, BOCHS_BOOT_TIMEOUT, 60)
    check(rc == 1 and h.powered_off(),
          f"Bochs exit {rc}, soft power-off seen: {h.powered_off()}")
    check(re.search(r"CPU1", open(h.bochs_log_path, errors="replace").read()),
          "Bochs log shows no second CPU")


@test("qemu", group="selftest")
def selftest_missing_tool_is_an_error():
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = "/nonexistent"
    try:
        for cls, pkg in ((ternlab.QemuHost, "qemu-system-x86"),
                         (ternlab.BochsHost, "bochs")):
            try:
                cls(REPO, logdir=CFG.logdir).start()
                raise TestFailure(f"{cls.__name__} started without its tool")
            except ternlab.MissingToolError as e:
                check(pkg in str(e), f"error does not name {pkg}: {e}")
    finally:
        os.environ["PATH"] = saved


# --- runner ---------------------------------------------------------------

def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX",
                    help="run only tests whose name matches REGEX")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--qemu-only", action="store_true")
    g.add_argument("--bochs-only", action="store_true")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--selftest", action="store_true",
                    help="run the harness self-tests (OVMF UEFI Shell) "
                         "instead of the Tern tests")
    ap.add_argument("--list", action="store_true", help="list tests and exit")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)

    group = "selftest" if CFG.selftest else "tern"
    chosen = []
    for name, emu, grp, fn in TESTS:
        if grp != group:
            continue
        if CFG.qemu_only and emu != "qemu" or CFG.bochs_only and emu != "bochs":
            continue
        if CFG.only and not re.search(CFG.only, name):
            continue
        chosen.append((name, fn))
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0

    return ternlab.run_suite(chosen, CFG.logdir, stop_shared)


if __name__ == "__main__":
    sys.exit(main())
