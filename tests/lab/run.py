#!/usr/bin/env python3
"""make run: boot build/esp in QEMU (AMD-V with nested paging under TCG),
start a demo guest from the console, then hand this terminal to Tern's
serial console.  Ctrl-] then q quits (QEMU is stopped by PID).

    TERN_MEM=2G TERN_SMP=4 make run      a bigger host
    TERN_DEMO=0 make run                 no demo guest
"""
import os
import select
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
import time
import tty

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ESP = os.environ.get("TERN_ESP", os.path.join(ROOT, "build", "esp"))
MEM = os.environ.get("TERN_MEM", "1G")
SMP = os.environ.get("TERN_SMP", "3")
CPU = os.environ.get("TERN_CPU", "qemu64,+svm,+npt")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd"
DEMO = [
    'vm create demo mem=32M kernel=guests/dirty.elf cmdline="seed=7"',
    "vm start demo",
    "vm list",
]


def fail(msg):
    sys.stderr.write(f"run: {msg}\n")
    sys.exit(1)


def launch(tmp):
    for path, pkg in ((OVMF_CODE, "ovmf"), (OVMF_VARS, "ovmf")):
        if not os.path.exists(path):
            fail(f"{path} missing: apt-get install {pkg}")
    if not shutil.which("qemu-system-x86_64"):
        fail("qemu-system-x86_64 missing: apt-get install qemu-system-x86")
    if not os.path.exists(os.path.join(ESP, "EFI", "BOOT", "BOOTX64.EFI")):
        fail(f"no ESP at {ESP}: run make")
    shutil.copy(OVMF_VARS, os.path.join(tmp, "vars.fd"))
    sock_path = os.path.join(tmp, "serial.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(sock_path)
    lsock.listen(1)
    proc = subprocess.Popen([
        "qemu-system-x86_64", "-machine", "q35", "-cpu", CPU, "-smp", SMP,
        "-m", MEM, "-display", "none", "-vga", "none", "-nodefaults",
        "-boot", "menu=off", "-nic", "none", "-no-user-config",
        "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,file={tmp}/vars.fd",
        "-drive", f"if=none,id=esp,format=raw,file=fat:{ESP},readonly=on",
        "-device", "virtio-blk-pci,drive=esp,bootindex=0",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-chardev", f"socket,id=ser0,path={sock_path}",
        "-serial", "chardev:ser0"], stdin=subprocess.DEVNULL)
    lsock.settimeout(30)
    conn, _ = lsock.accept()
    lsock.close()
    return proc, conn


def type_demo(conn, seen):
    """Wait for the prompt, then type the demo commands slowly."""
    deadline = time.time() + 90
    while b"tern> " not in seen and time.time() < deadline:
        r, _, _ = select.select([conn], [], [], 0.5)
        if r:
            data = conn.recv(4096)
            if not data:
                return seen
            os.write(1, data)
            seen += data
    for cmd in DEMO:
        for ch in (cmd + "\r").encode():
            conn.sendall(bytes([ch]))
            time.sleep(0.003)
        time.sleep(0.3)
    return seen


def passthrough(conn, proc):
    """Ctrl-] then q quits; Ctrl-] then anything else sends both on (Tern
    detaches `vm console` on Ctrl-])."""
    escape = False
    inputs = [conn, 0]
    while proc.poll() is None:
        r, _, _ = select.select(inputs, [], [], 0.5)
        if conn in r:
            data = conn.recv(4096)
            if not data:
                return
            os.write(1, data)
        if 0 in r:
            data = os.read(0, 1024)
            if not data:
                inputs = [conn]     # stdin closed: keep showing output
                continue
            if escape and data[:1] in (b"q", b"Q"):
                return
            if data == b"\x1d" and not escape:
                escape = True
                continue
            conn.sendall((b"\x1d" if escape else b"") + data)
            escape = False


def main():
    # SIGTERM/SIGHUP unwind through finally, so QEMU never outlives us.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    tmp = tempfile.mkdtemp(prefix="tern-run-")
    proc = None
    tty_state = termios.tcgetattr(0) if os.isatty(0) else None
    try:
        print(f"Tern: booting {ESP} in QEMU ({CPU}, {SMP} CPUs, {MEM}); "
              "Ctrl-] q quits (a lone Ctrl-] is sent on, for 'vm console')")
        proc, conn = launch(tmp)
        seen = b""
        if os.environ.get("TERN_DEMO", "1") != "0":
            seen = type_demo(conn, seen)
        if tty_state:
            tty.setraw(0)
        passthrough(conn, proc)
    finally:
        if tty_state:
            termios.tcsetattr(0, termios.TCSADRAIN, tty_state)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        print("\nrun: QEMU stopped")


if __name__ == "__main__":
    main()
