#!/usr/bin/env python3
"""make run: a two-host Tern lab.  Boots build/esp-linux twice in QEMU
(AMD-V with nested paging under TCG), as tern-a (10.77.0.1) and tern-b
(10.77.0.2) on one bridge (br0, 10.77.0.254/24) in a private network
namespace ternlab-<pid> (tests/lab/netlab.py; needs root).  Starts two
guests on tern-a: "web", Debian's kernel with its own iSCSI LUN as a
virtio disk (attached on every host, so it can move) and a virtio NIC at
10.77.0.50 serving a counter on TCP port 7000, and "demo", the Multiboot
guest that verifies its memory across a migration; prints a banner with
the namespace, the hosts, the secret
file and ready-to-paste `ip netns exec ... ternctl` commands for both
hosts, then hands this terminal to tern-a's serial console.  tern-b keeps
running in the background; its serial output goes to its log
(build/run-logs/tern-b.serial.log).  Ctrl-] then q quits; a lone Ctrl-]
is sent on (Tern detaches `vm console` on it).

When stdin is not a terminal, stdin is forwarded to tern-a's serial and
its output to stdout; at EOF run.py waits until tern-a is back at its
prompt and quiet (or 15 s without output), then tears the lab down:

    printf 'status\\nnetcon\\n' | make run

Quitting, EOF, an error, SIGINT, SIGTERM or SIGHUP all stop every QEMU by
PID and delete the namespace.

    TERN_MEM=2G TERN_SMP=4 make run      bigger hosts (each; 1G, 3 CPUs)
    TERN_CPU=...                         QEMU -cpu (qemu64,+svm,+npt)
    TERN_HOSTS=3 make run                more hosts (1..26; default 2)
    TERN_NIC=e1000e make run             NIC model (virtio-net-pci)
    TERN_ESP=dir                         ESP to boot (build/esp-linux)
    TERN_DEMO=0 make run                 no demo guests
    TERN_DISK=0 make run                 no iSCSI target and no shared disk

The lab also runs Debian's tgtd in the namespace (10.77.0.254:3260, by
PID, tests/lab/tgt.py) with one 256 MiB file-backed LUN
(build/run-logs/shared-lun.img, kept between runs), and every host's
tern.cfg attaches it as disk `shared`.
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
import ternlab  # noqa: E402
from tgt import Tgtd  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ESP = os.environ.get("TERN_ESP", os.path.join(ROOT, "build", "esp-linux"))
MEM = os.environ.get("TERN_MEM", "1G")
SMP = os.environ.get("TERN_SMP", "3")
CPU = os.environ.get("TERN_CPU", "qemu64,+svm,+npt")
HOSTS = os.environ.get("TERN_HOSTS", "2")
NIC = os.environ.get("TERN_NIC", "virtio-net-pci")
LOGDIR = os.path.join(ROOT, "build", "run-logs")
TERNCTL = os.path.join(ROOT, "build", "tools", "ternctl")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd"
BOOT_TIMEOUT = 240      # seconds per host until its first prompt
EOF_QUIET = 1.0         # at stdin EOF: idle at the prompt this long, or
EOF_SILENT = 15.0       # ... no output at all for this long
DISK = os.environ.get("TERN_DISK", "1") != "0"
DISK_IQN = "iqn.2026-11.lab.tern:shared"
DISK_URL = f"iscsi://{netlab.BRIDGE_ADDR}:3260/{DISK_IQN}/1"
DISK_SIZE = 256 << 20
DEMO = [
    'vm create demo mem=64M kernel=guests/migverify.elf cmdline="delay=20000"',
    "vm start demo",
]
# The Linux guest: Debian's kernel with its own LUN as /dev/vda and a NIC
# on tern-a's switch (needs the Linux ESP, `make esp-linux`).
WEB_IQN = "iqn.2026-12.lab.tern:web"
WEB_URL = f"iscsi://{netlab.BRIDGE_ADDR}:3260/{WEB_IQN}/1"
WEB_SIZE = 256 << 20
WEB_ADDR = "10.77.0.50"
WEB_PORT = 7000
WEB = [
    "vm create web mem=256M kernel=linux/vmlinuz initrd=linux/initrd.gz disk=web nic=auto "
    f'cmdline="console=ttyS0 loglevel=4 tern.ip={WEB_ADDR}/24 tern.seqsrv={WEB_PORT}"',
    "vm start web",
    "vm list",
]

# An interactive session may last for hours: no 15-minute SIGKILL guard
# (QEMU still dies with us through PR_SET_PDEATHSIG and our teardown).
netlab.NsQemuHost.max_runtime = 30 * 86400


def fail(msg):
    sys.stderr.write(f"run: {msg}\n")
    sys.exit(1)


def preflight():
    for path, pkg in ((OVMF_CODE, "ovmf"), (OVMF_VARS, "ovmf")):
        if not os.path.exists(path):
            fail(f"{path} missing: apt-get install {pkg}")
    if not shutil.which("qemu-system-x86_64"):
        fail("qemu-system-x86_64 missing: apt-get install qemu-system-x86")
    if not shutil.which("ip"):
        fail("ip missing: apt-get install iproute2")
    if not os.path.exists(os.path.join(ESP, "EFI", "BOOT", "BOOTX64.EFI")):
        fail(f"no ESP at {ESP}: run make")
    if os.geteuid() != 0:
        fail("the lab needs root (a network namespace and tap devices): "
             "sudo make run")
    if DISK and not shutil.which("tgtd"):
        fail("tgtd missing (the lab's iSCSI target): apt-get install tgt, "
             "or TERN_DISK=0 make run")
    if not HOSTS.isdigit() or not 1 <= int(HOSTS) <= 26:
        fail(f"TERN_HOSTS={HOSTS}: want a number from 1 to 26")


def shown_path(path):
    """path relative to the current directory when it lies below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def write_out(data):
    """Write bytes to stdout (fd 1) in full; False if stdout is gone."""
    try:
        while data:
            n = os.write(1, data)
            data = data[n:]
    except OSError:
        return False
    return True


class Pump(threading.Thread):
    """Copies a host's serial log, as it grows, to stdout: the exact bytes
    QEMU sent (escape sequences included).  Hold .lock to print between
    chunks."""

    def __init__(self, path, offset):
        super().__init__(daemon=True, name="run-pump")
        self.lock = threading.Lock()
        self._f = open(path, "rb")
        self._f.seek(offset)
        # Skip the "===== ternlab ... =====" header ternlab writes at start.
        head = self._f.read(512)
        m = re.match(rb"\n?===== ternlab [^\n]*=====\n", head)
        self._f.seek(offset + (m.end() if m else 0))
        self._halt = threading.Event()
        self._out = True

    def drain(self):
        """Copy what is new; call with .lock held.  Returns bytes copied."""
        data = self._f.read(65536)
        if data and self._out:
            sys.stdout.flush()
            self._out = write_out(data)
        return len(data)

    def run(self):
        while not self._halt.is_set():
            with self.lock:
                n = self.drain()
            if not n:
                self._halt.wait(0.01)

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join(2)
        with self.lock:
            while self.drain():
                pass
        self._f.close()


def has_linux():
    return os.path.isfile(os.path.join(ESP, "tern", "linux", "vmlinuz"))


def wait_disk(host, name, timeout=60):
    """Until `disk list` shows name ready (tgtd starts after the hosts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = host.command("disk list", timeout=30)
        if re.search(rf"(?m)^{name}\s+ready", out):
            return True
        time.sleep(1)
    sys.stderr.write(f"\r\nrun: disk {name} not ready within {timeout} s; going on\r\n")
    return False


def type_demo(host):
    """Type the demo commands, each after the previous one's prompt."""
    cmds = list(DEMO)
    if DISK and has_linux() and wait_disk(host, "web"):
        cmds += WEB
    for cmd in cmds:
        try:
            host.command(cmd, timeout=60)
        except ternlab.EmulatorExited:
            raise
        except TimeoutError:
            sys.stderr.write(f"\r\nrun: no prompt after '{cmd}' within 60 s; "
                             "going on\r\n")


def banner(lab, secret):
    ns = lab.ns
    ctl = shown_path(TERNCTL)
    lines = [
        "",
        f"=== Tern lab: {lab.n} host{'s' if lab.n > 1 else ''} in network "
        f"namespace {ns} (bridge br0 {netlab.BRIDGE_ADDR}/{netlab.PREFIX}) ===",
    ]
    for i, h in enumerate(lab.hosts):
        role = "serial: this terminal" if i == 0 else "serial: background"
        lines.append(f"  {h.name}  {lab.address(i):<10}  {role:<21}  "
                     f"log {shown_path(h.serial_log_path)}")
    lines.append(f"  secret file: {secret}")
    if not os.access(TERNCTL, os.X_OK):
        lines.append(f"  ({ctl} is not built yet: make all)")
    lines.append("From another shell, as root (without a command, ternctl is "
                 "interactive; --json for JSON):")
    for i in range(lab.n):
        lines.append(f"  ip netns exec {ns} {ctl} --host {lab.address(i)} "
                     f"--secret-file {secret} status")
    if DISK:
        lines.append(f"Shared iSCSI disk: tgtd at {netlab.BRIDGE_ADDR}:3260, {DISK_IQN} LUN 1 "
                     f"(file {shown_path(os.path.join(LOGDIR, 'shared-lun.img'))}), attached "
                     "as 'shared' on every host:")
        lines.append("  disk list, disk info shared, disk write shared 0 8 0xab, "
                     "disk read shared 0 8, disk fence shared (on another host)")
    if DISK and has_linux() and os.environ.get("TERN_DEMO", "1") != "0":
        lines.append(f"Linux guest 'web' on {lab.hosts[0].name}: Debian's kernel, disk 'web' "
                     f"({WEB_IQN}) as /dev/vda, eth0 {WEB_ADDR} on the switch:")
        lines.append(f"  vm console web (Ctrl-] detaches), vm info web, switch; "
                     f"ip netns exec {ns} ping {WEB_ADDR}")
        lines.append(f"  watch its counter (a TCP stream from the guest): "
                     f"ip netns exec {ns} nc {WEB_ADDR} {WEB_PORT}")
        if lab.n > 1:
            lines.append(f"  move it, disk and NIC, while you watch: migrate web "
                         f"{lab.address(1)}   (then migrate status; back: migrate web "
                         f"{lab.address(0)} on {lab.hosts[1].name})")
    if lab.n > 1 and os.environ.get("TERN_DEMO", "1") != "0":
        lines.append(f"Move the demo guest to {lab.hosts[1].name} (here, or with ternctl):")
        lines.append(f"  migrate demo {lab.address(1)}        then: migrate status, "
                     f"vm memcheck demo (on {lab.hosts[1].name})")
        lines.append(f"  ip netns exec {ns} {ctl} --host {lab.address(0)} "
                     f"--secret-file {secret} migrate demo {lab.address(1)}")
    lines.append(f"Attached to {lab.hosts[0].name}'s serial console. "
                 "Ctrl-] q quits and stops the lab.")
    lines.append("")
    print("\n".join(lines), flush=True)


def output_len(host):
    return len(host.output())


def wait_idle(host):
    """After stdin EOF: wait until the host sits at its prompt with nothing
    more to say, or says nothing at all for EOF_SILENT seconds."""
    size, changed = output_len(host), time.monotonic()
    while host.alive():
        time.sleep(0.1)
        now, n = time.monotonic(), output_len(host)
        if n != size:
            size, changed = n, now
            continue
        quiet = now - changed
        if quiet >= EOF_SILENT or (quiet >= EOF_QUIET and
                                   host.output().endswith(host.prompt)):
            return


def passthrough(host, interactive):
    """Ctrl-] then q quits; Ctrl-] then anything else sends both on (Tern
    detaches `vm console` on Ctrl-]).  Returns a reason for stopping."""
    escape = False
    while host.alive():
        r, _, _ = select.select([0], [], [], 0.5)
        if not r:
            continue
        data = os.read(0, 1024)
        if not data:
            if not interactive:
                wait_idle(host)
            return "end of input"
        if escape and data[:1] in (b"q", b"Q"):
            return "Ctrl-] q"
        if data == b"\x1d" and not escape:
            escape = True
            continue
        host.send((b"\x1d" if escape else b"") + data)
        escape = False
    return f"{host.name}'s QEMU exited"


def qemu_errors(lab):
    """QEMU's own error lines from this run's part of each host's log."""
    text = ""
    for i in range(lab.n):
        path = os.path.join(LOGDIR, f"{lab.name(i)}.qemu.log")
        try:
            with open(path, errors="replace") as f:
                f.seek(max(0, os.path.getsize(path) - 8192))
                run = f.read().rsplit("===== ternlab ", 1)[-1]
        except OSError:
            continue
        text += "".join(f"run: {lab.name(i)}: {line}\n"
                        for line in run.splitlines()
                        if line.startswith("qemu-system-x86_64:"))
    return text


def namespace_left(ns):
    r = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return any(line.split()[0] == ns for line in r.stdout.splitlines()
               if line.strip())


def start_target(lab):
    """tgtd in the lab namespace with the shared LUN (the hosts are booting
    meanwhile; a tern.cfg disk keeps trying until its target answers)."""
    lun = os.path.join(LOGDIR, "shared-lun.img")
    if not os.path.exists(lun) or os.path.getsize(lun) != DISK_SIZE:
        with open(lun, "wb") as f:
            f.truncate(DISK_SIZE)
    tgt = Tgtd(lab.ns, portal=f"{netlab.BRIDGE_ADDR}:3260", workdir=LOGDIR).start()
    tgt.add_target(1, DISK_IQN)
    tgt.add_lun(1, 1, lun)
    tgt.bind_all(1)
    web = os.path.join(LOGDIR, "web-lun.img")
    if not os.path.exists(web) or os.path.getsize(web) != WEB_SIZE:
        with open(web, "wb") as f:
            f.truncate(WEB_SIZE)
    tgt.add_target(2, WEB_IQN)
    tgt.add_lun(2, 1, web)
    tgt.bind_all(2)
    return tgt


def on_signal(signum, frame):
    raise SystemExit(f"signal {signal.Signals(signum).name}")


def main():
    preflight()
    # SIGTERM/SIGHUP unwind through finally, so no QEMU and no namespace
    # outlives us.  ternlab chains its own handlers (stop every QEMU) in
    # front of these when the first host starts; SIGINT raises
    # KeyboardInterrupt as usual.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    interactive = os.isatty(0)
    tty_state = termios.tcgetattr(0) if interactive else None
    extra = {i: f"disk = shared {DISK_URL}\n" for i in range(int(HOSTS))} if DISK else None
    if DISK:
        for i in extra:                         # the Linux guest's, on every host:
            extra[i] += f"disk = web {WEB_URL}\n"  # it migrates with its disk
    lab = netlab.NetLab(hosts=int(HOSTS), esp_dir=ESP, nic=NIC, mem=MEM,
                        smp=SMP, cpu=CPU, logdir=LOGDIR, extra_cfg=extra)
    tgt = None
    pump = None
    status = 0
    why = None
    try:
        names = ", ".join(lab.name(i) for i in range(lab.n))
        print(f"Tern: booting {ESP} in QEMU as {names} ({CPU}, {SMP} CPUs, "
              f"{MEM} and a {NIC} each) in namespace {lab.ns}; showing "
              f"{lab.name(0)}'s console", flush=True)
        os.makedirs(LOGDIR, exist_ok=True)
        log_a = os.path.join(LOGDIR, f"{lab.name(0)}.serial.log")
        offset = os.path.getsize(log_a) if os.path.exists(log_a) else 0
        lab.start()
        if DISK:
            tgt = start_target(lab)
        a = lab.hosts[0]
        pump = Pump(a.serial_log_path, offset)
        pump.start()
        for h in lab.hosts:
            h.expect(h.prompt, BOOT_TIMEOUT)
        if os.environ.get("TERN_DEMO", "1") != "0":
            type_demo(a)
        secret = lab.secret_file()
        time.sleep(0.2)             # let the last prompt reach the log
        with pump.lock:
            while pump.drain():
                pass
            banner(lab, secret)
        if interactive:
            tty.setraw(0)
            a.send(b"\r")           # a fresh prompt below the banner
        why = passthrough(a, interactive)
    except KeyboardInterrupt:
        why, status = "interrupted", 130
    except SystemExit as e:
        why, status = str(e.code), 1
    except (ternlab.LabError, TimeoutError) as e:
        status = 1
        if ternlab.interrupted():   # ternlab's handler stopped the QEMUs
            why = f"signal {signal.Signals(ternlab.interrupted()).name}"
        else:
            why = "error"
            if tty_state:
                termios.tcsetattr(0, termios.TCSADRAIN, tty_state)
            sys.stderr.write(f"\nrun: {e}\n{qemu_errors(lab)}"
                             f"run: logs in {shown_path(LOGDIR)}\n")
    finally:
        # Nothing may interrupt the teardown.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if pump:
            pump.stop()
        if tgt:
            tgt.stop()
        if tty_state:
            termios.tcsetattr(0, termios.TCSADRAIN, tty_state)
        print(f"\nrun: {why or 'exiting'}: stopping {lab.n} QEMU "
              f"process{'es' if lab.n != 1 else ''} and namespace {lab.ns}",
              flush=True)
        lab.stop()
        if namespace_left(lab.ns):
            print(f"run: WARNING: namespace {lab.ns} is still there: "
                  f"ip netns del {lab.ns}", flush=True)
            status = status or 1
        else:
            print("run: lab stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
