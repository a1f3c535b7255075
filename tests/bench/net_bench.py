#!/usr/bin/env python3
"""net_bench: TCP throughput of Tern's network stack (lwIP + its NIC
drivers) under QEMU TCG, next to a plain Linux VM on the same bridge, and
the idle CPU cost of both; prints one Markdown table.

    python3 tests/bench/net_bench.py [--esp build/esp] [--seconds 5]
        [--nic virtio-net-pci --nic e1000e] [--logdir build/bench-logs]

A benchmark, not a test (make test does not run it).  Needs root (netlab's
network namespace and taps), a built ESP (`make esp`), and the Debian
packages checked below (it names the apt-get line when one is missing).

For each NIC model (NetLab(nic=...), also given to the Linux VM) it boots
two Tern hosts (tern-a 10.77.0.1, tern-b 10.77.0.2) and one Linux VM
(10.77.0.200) on netlab's bridge, with Linux iperf2 (`iperf -s`) in the
namespace at 10.77.0.254, and measures with iperf2's protocol on port 5001:

  - Tern -> Tern, both ways: `iperf client` on one host, `iperf server
    start` on the other;
  - Tern <-> namespace: `iperf client 10.77.0.254` on tern-a, and
    `iperf -c 10.77.0.1` from the namespace;
  - Linux VM <-> namespace, the reference stack: `iperf -c 10.77.0.254`
    typed on the VM's console, and `iperf -c 10.77.0.200` from the
    namespace to the VM's `iperf -s`;
  - idle: CPU time (utime + stime from /proc/PID/stat, all threads) of
    each QEMU process over 10 s with nothing running, as % of one core.

Mbit/s is the receiver's figure (Tern's server log line, or iperf -s's
report); the sender's own figure is shown next to it.  1 Mbit = 10^6 bit.

The Linux VM: Debian's linux-image-amd64 (the .deb is fetched with
`apt-get download` into build/bench/ and unpacked with dpkg-deb -x, never
installed), booted with -kernel/-initrd and the same -machine, -cpu,
-smp and -m as the Tern hosts, and an initramfs built here: busybox-static,
the host's iperf with the libraries ldd lists, and the virtio-net and
e1000e modules of that kernel (and what they depend on, from their
.modinfo), loaded with insmod in dependency order.

Everything runs on the bench machine's cores at once (two Tern QEMUs, the
VM, iperf in the namespace): the numbers are emulator numbers, and every
row shares the machine with the same idle neighbours.
"""

import argparse
import gzip
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
import netlab  # noqa: E402
import ternlab  # noqa: E402

BENCH_DIR = os.path.join(REPO, "build", "bench")
PROMPT = r"tern> "
NICS = ("virtio-net-pci", "e1000e")
NS_ADDR = netlab.BRIDGE_ADDR            # Linux iperf2 in the namespace
VM_ADDR = f"{netlab.SUBNET}.200"
VM_MAC = "52:54:00:77:00:c8"
VM_TAP = "tapvm"
QEMU_CPU = "qemu64,+svm,+npt"           # ternlab.QemuHost's default
QEMU_MEM = "512M"                       # NetLab's default
QEMU_SMP = 2
IDLE_S = 10
BOOT_TIMEOUT = 120
# Modules for the VM's NICs; their dependencies are found in .modinfo.
VM_MODULES = ("virtio_pci", "virtio_net", "e1000e")
# What this script needs beyond tools/deps.sh.
BENCH_PACKAGES = {"busybox-static": "/bin/busybox", "iperf": "/usr/bin/iperf",
                  "qemu-system-x86": "/usr/bin/qemu-system-x86_64",
                  "dpkg": "/usr/bin/dpkg-deb", "apt": "/usr/bin/apt-get"}
IPERF_LINE = re.compile(r"\[\s*\d+\]\s+[\d.]+\s*-\s*([\d.]+) sec\s+[\d.]+ "
                        r"\w+\s+([\d.]+) Mbits/sec")
TERN_CLIENT = re.compile(r"^iperf: [\d.:]+: (\d+) bytes in ([\d.]+) s, "
                         r"([\d.]+) Mbit/s$", re.M)


class BenchError(RuntimeError):
    pass


def check_packages():
    missing = [p for p, path in BENCH_PACKAGES.items()
               if not os.path.exists(path)]
    if missing:
        sys.exit("net_bench: missing Debian packages; run:\n  apt-get install "
                 f"-y --no-install-recommends {' '.join(missing)}")
    if os.geteuid() != 0:
        sys.exit("net_bench: needs root (network namespace, tap devices)")


# --- the Linux VM's kernel and initramfs -------------------------------------

def run(argv, cwd=None):
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}")
    return r.stdout


def fetch_kernel():
    """Unpack Debian's current linux-image-amd64 under build/bench/; return
    (vmlinuz path, modules folder)."""
    os.makedirs(BENCH_DIR, exist_ok=True)
    apt = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download"]
    meta = [f for f in os.listdir(BENCH_DIR)
            if f.startswith("linux-image-amd64_") and f.endswith(".deb")]
    if not meta:
        run(apt + ["linux-image-amd64"], cwd=BENCH_DIR)
        meta = [f for f in os.listdir(BENCH_DIR)
                if f.startswith("linux-image-amd64_")]
    deps = run(["dpkg-deb", "-f", os.path.join(BENCH_DIR, meta[0]),
                "Depends"])
    m = re.search(r"(linux-image-[\w.+-]+-amd64)", deps)
    if not m:
        raise BenchError(f"linux-image-amd64 depends on no image: {deps}")
    image = m.group(1)
    root = os.path.join(BENCH_DIR, image)
    if not os.path.isdir(root):
        debs = [f for f in os.listdir(BENCH_DIR)
                if f.startswith(image + "_") and f.endswith(".deb")]
        if not debs:
            run(apt + [image], cwd=BENCH_DIR)
            debs = [f for f in os.listdir(BENCH_DIR)
                    if f.startswith(image + "_") and f.endswith(".deb")]
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg-deb", "-x", os.path.join(BENCH_DIR, debs[0]), tmp])
        os.rename(tmp, root)
    boot = os.path.join(root, "boot")
    vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")][0]
    mods = os.path.join(root, "lib", "modules")
    return os.path.join(boot, vmlinuz), \
        os.path.join(mods, os.listdir(mods)[0], "kernel")


def module_index(moddir):
    """{name: path} for every module under moddir ('-' read as '_')."""
    idx = {}
    for dirpath, _dirs, files in os.walk(moddir):
        for f in files:
            m = re.fullmatch(r"(.+)\.ko(\.xz)?", f)
            if m:
                idx[m.group(1).replace("-", "_")] = os.path.join(dirpath, f)
    return idx


def module_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    # busybox insmod cannot decompress: hand it plain ELF.
    return lzma.decompress(data) if path.endswith(".xz") else data


def module_order(idx, roots):
    """The modules roots need, each after its dependencies (depends= in
    the module's .modinfo strings)."""
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        if name not in idx:
            raise BenchError(f"module {name} not in the kernel package")
        m = re.search(rb"\0depends=([^\0]*)\0", module_bytes(idx[name]))
        for dep in (m.group(1).decode().split(",") if m else []):
            if dep:
                visit(dep.replace("-", "_"))
        order.append(name)

    for r in roots:
        visit(r)
    return order


class Newc:
    """A cpio archive in the newc format the kernel's initramfs reads
    (Documentation/driver-api/early-userspace/buffer-format.rst)."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
            len(name) + 1, 0))
        self.ino += 1
        self.out += hdr.encode() + name.encode() + b"\0"
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, 0o040755)

    def file(self, name, data, mode=0o755):
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name.strip("/"), 0o120777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name.strip("/"), 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


VM_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {modules}; do
	insmod /lib/tern-bench/$m.ko || echo "BENCHVM insmod $m failed"
done
ip link set lo up
ip addr add {addr}/{prefix} dev eth0
ip link set eth0 up
iperf -s -f m &
sleep 1
echo "BENCHVM READY"
exec sh
"""


def build_initramfs(moddir, out_path, programs=("iperf",)):
    """programs: host binaries copied to the same path, with the
    libraries and the dynamic loader that ldd lists."""
    arc = Newc()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib/tern-bench"):
        arc.dir(d)
    arc.chardev("dev/console", 5, 1)   # init's stdio, before devtmpfs
    with open("/bin/busybox", "rb") as f:
        arc.file("bin/busybox", f.read())
    files = set()
    for prog in programs:
        path = shutil.which(prog)
        files.add(path)
        for line in run(["ldd", path]).splitlines():
            m = re.search(r"(/\S+) \(0x", line)
            if m:
                files.add(m.group(1))
    for path in sorted(files):
        with open(path, "rb") as f:
            arc.file(path, f.read())
    idx = module_index(moddir)
    order = module_order(idx, VM_MODULES)
    for name in order:
        arc.file(f"lib/tern-bench/{name}.ko", module_bytes(idx[name]), 0o644)
    arc.file("init", VM_INIT.format(modules=" ".join(order), addr=VM_ADDR,
                                    prefix=netlab.PREFIX).encode())
    with open(out_path, "wb") as f:
        f.write(gzip.compress(arc.finish(), 6))
    return order


# --- the Linux VM ------------------------------------------------------------

class LinuxVm:
    """QEMU with -kernel/-initrd inside the lab's namespace, its serial
    console on stdin/stdout.  `ip netns exec` execs, so proc.pid is
    QEMU's: it is killed by that PID."""

    def __init__(self, lab, nic, vmlinuz, initrd, logdir):
        self.lab, self.nic = lab, nic
        self.vmlinuz, self.initrd = vmlinuz, initrd
        self.log_path = os.path.join(logdir, "linuxvm.serial.log")
        self.proc = None
        self._text = ""
        self._pos = 0
        self._cond = threading.Condition()

    def start(self):
        ns = self.lab.ns
        for args in (["tuntap", "add", "dev", VM_TAP, "mode", "tap"],
                     ["link", "set", VM_TAP, "master", "br0"],
                     ["link", "set", VM_TAP, "up"]):
            run(["ip", "-n", ns] + args)
        argv = ["ip", "netns", "exec", ns, "qemu-system-x86_64",
                "-machine", "q35", "-cpu", QEMU_CPU, "-smp", str(QEMU_SMP),
                "-m", QEMU_MEM, "-display", "none", "-vga", "none",
                "-monitor", "none", "-serial", "stdio", "-no-reboot",
                "-kernel", self.vmlinuz, "-initrd", self.initrd,
                "-append", "console=ttyS0 loglevel=3 panic=-1",
                "-netdev", f"tap,id=n0,ifname={VM_TAP},script=no,downscript=no",
                "-device", f"{self.nic},netdev=n0,mac={VM_MAC},romfile="]
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== {os.path.basename(sys.argv[0])} linux vm "
                        f"nic={self.nic} =====\n".encode())
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=ternlab._child_setup)
        threading.Thread(target=self._read, daemon=True).start()

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

    def mark(self):
        with self._cond:
            self._pos = len(self._text)

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
                    raise BenchError(f"Linux VM: no {pattern!r} within "
                                     f"{timeout} s; last output:\n"
                                     f"{self._text[-1500:]}")
                self._cond.wait(0.5)

    def sendline(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc:
            self._log.close()
        self.proc = None


# --- measurements --------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a whole process (all threads), in seconds; 0 once
    the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pids, seconds):
    """{pid: % of one core} over the same idle window."""
    c0 = {p: cpu_seconds(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    return {p: (cpu_seconds(p) - c0[p]) / wall * 100 for p in pids}


class NsServer:
    """`iperf -s -f m` in the namespace, its report in a file."""

    def __init__(self, lab):
        self.path = os.path.join(lab.tmpdir, "ns-iperf.txt")
        self.out = open(self.path, "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns, "iperf", "-s", "-f", "m"],
            stdout=self.out, stderr=subprocess.STDOUT,
            preexec_fn=ternlab._child_setup)
        self.seen = 0
        deadline = time.monotonic() + 10
        while "LISTEN" not in lab.ns_run(["ss", "-Hltn", "sport = :5001"]).stdout:
            if time.monotonic() > deadline:
                raise BenchError("iperf -s in the namespace did not listen")
            time.sleep(0.1)

    def next_report(self, timeout=15):
        """Mbit/s of the next session iperf -s reports."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path) as f:
                f.seek(self.seen)
                text = f.read()
            m = IPERF_LINE.search(text)
            if m:
                self.seen += len(text[:m.end()].encode())
                return float(m.group(2))
            if time.monotonic() > deadline:
                raise BenchError(f"iperf -s reported nothing:\n{text}")
            time.sleep(0.2)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.out.close()


def tern_cmd(h, cmd, timeout=30):
    out = h.command(cmd, PROMPT, timeout)
    if re.search(r"^error: ", out, re.M):
        raise BenchError(f"{h.name}: {cmd!r}: {out}")
    return out


def tern_client(h, addr, seconds):
    out = tern_cmd(h, f"iperf client {addr} {seconds}", seconds + 30)
    m = TERN_CLIENT.search(out)
    if not m:
        raise BenchError(f"{h.name}: no iperf result:\n{out}")
    return float(m.group(3))


def tern_server_report(h, peer, timeout=15):
    m = h.expect(rf"iperf: from {re.escape(peer)}:\d+: \d+ bytes in \d+ ms, "
                 r"([\d.]+) Mbit/s", timeout)
    return float(m.group(1))


def ns_client(lab, addr, seconds):
    r = lab.ns_run(["iperf", "-c", addr, "-t", str(seconds), "-f", "m"],
                   timeout=seconds + 30)
    m = IPERF_LINE.search(r.stdout)
    if r.returncode != 0 or not m:
        raise BenchError(f"iperf -c {addr} (exit {r.returncode}):\n{r.stdout}")
    return float(m.group(2))


def vm_client(vm, addr, seconds):
    """`iperf -c addr` typed on the Linux VM's console: the sender's
    Mbit/s."""
    vm.mark()
    vm.sendline(f"iperf -c {addr} -t {seconds} -f m")
    return float(vm.expect(IPERF_LINE.pattern, seconds + 30).group(2))


def measure_nic(nic, args, vmlinuz, initrd):
    """[(path, direction, receiver Mbit/s, sender Mbit/s)] and the idle
    CPU rows for one NIC model."""
    rows, idle = [], []
    a_addr, b_addr = netlab.NetLab.address(0), netlab.NetLab.address(1)
    lab = netlab.NetLab(hosts=2, esp_dir=args.esp, nic=nic, mem=QEMU_MEM,
                        smp=QEMU_SMP, logdir=args.logdir)
    vm = srv = None
    try:
        lab.start()
        vm = LinuxVm(lab, nic, vmlinuz, initrd, args.logdir)
        vm.start()
        lab.wait_prompts(BOOT_TIMEOUT)
        vm.expect(r"^BENCHVM READY", BOOT_TIMEOUT)
        a, b = lab.hosts
        srv = NsServer(lab)
        print(f"{nic}: booted; idle for {IDLE_S} s", flush=True)
        time.sleep(2)
        cpu = idle_cpu([a.proc.pid, b.proc.pid, vm.proc.pid], IDLE_S)
        idle.append(("Tern host (tern-a)", cpu[a.proc.pid]))
        idle.append(("Tern host (tern-b)", cpu[b.proc.pid]))
        idle.append(("Linux VM", cpu[vm.proc.pid]))

        s = args.seconds
        for src, dst, dst_addr, src_addr in ((a, b, b_addr, a_addr),
                                            (b, a, a_addr, b_addr)):
            tern_cmd(dst, "iperf server start")
            dst.mark()
            sent = tern_client(src, dst_addr, s)
            got = tern_server_report(dst, src_addr)
            tern_cmd(dst, "iperf server stop")
            rows.append(("Tern <-> Tern", f"{src.name} -> {dst.name}", got, sent))
            print(f"{nic}: {rows[-1]}", flush=True)

        sent = tern_client(a, NS_ADDR, s)
        rows.append(("Tern <-> Linux iperf2 (namespace)", "tern-a -> ns",
                     srv.next_report(), sent))
        print(f"{nic}: {rows[-1]}", flush=True)
        tern_cmd(a, "iperf server start")
        a.mark()
        sent = ns_client(lab, a_addr, s)
        rows.append(("Tern <-> Linux iperf2 (namespace)", "ns -> tern-a",
                     tern_server_report(a, NS_ADDR), sent))
        tern_cmd(a, "iperf server stop")
        print(f"{nic}: {rows[-1]}", flush=True)

        sent = vm_client(vm, NS_ADDR, s)
        rows.append(("Linux VM <-> Linux iperf2 (namespace), reference",
                     "vm -> ns", srv.next_report(), sent))
        print(f"{nic}: {rows[-1]}", flush=True)
        vm.mark()
        sent = ns_client(lab, VM_ADDR, s)
        got = float(vm.expect(IPERF_LINE.pattern, 15).group(2))
        rows.append(("Linux VM <-> Linux iperf2 (namespace), reference",
                     "ns -> vm", got, sent))
        print(f"{nic}: {rows[-1]}", flush=True)
    finally:
        if srv:
            srv.stop()
        if vm:
            vm.stop()
        lab.stop()
    return rows, idle


def print_table(results, args, header):
    print()
    print("Tern network benchmark (tests/bench/net_bench.py)")
    for line in header:
        print(f"  {line}")
    print()
    print("| NIC model | path | direction | Mbit/s | note |")
    print("|---|---|---|---:|---|")
    for nic, (rows, idle) in results.items():
        for path, direction, got, sent in rows:
            print(f"| {nic} | {path} | {direction} | {got:.1f} | "
                  f"sender reported {sent:.1f} |")
    for nic, (rows, idle) in results.items():
        for who, pct in idle:
            print(f"| {nic} | {who}, idle {IDLE_S} s | - | - | QEMU CPU "
                  f"{pct:.1f} % of one core |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build",
                                                     "bench-logs"))
    ap.add_argument("--seconds", type=int, default=5,
                    help="length of each iperf run (1..10: Tern's client "
                         "runs at most 10 s)")
    ap.add_argument("--nic", action="append", choices=NICS,
                    help="NIC model (repeatable; default: both)")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 10:
        ap.error("--seconds must be 1..10")
    check_packages()
    if not os.path.isfile(os.path.join(args.esp, "tern", "kernel.elf")):
        sys.exit(f"net_bench: {args.esp}: no tern/kernel.elf (run make esp)")
    os.makedirs(args.logdir, exist_ok=True)
    t0 = time.monotonic()
    # A private copy of the ESP: a rebuild during the run does no harm.
    tmp = tempfile.mkdtemp(prefix="net-bench-")
    try:
        esp = os.path.join(tmp, "esp")
        shutil.copytree(args.esp, esp)
        args.esp = esp
        vmlinuz, moddir = fetch_kernel()
        initrd = os.path.join(BENCH_DIR, "initramfs.cpio.gz")
        mods = build_initramfs(moddir, initrd)
        print(f"linux vm: {os.path.basename(vmlinuz)}, modules "
              f"{' '.join(mods)}", flush=True)
        results = {}
        for nic in args.nic or NICS:
            results[nic] = measure_nic(nic, args, vmlinuz, initrd)
    except (BenchError, TimeoutError, ternlab.LabError) as e:
        print(f"net_bench: FAILED: {e}", file=sys.stderr)
        print(f"net_bench: logs in {args.logdir}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    qemu = run(["qemu-system-x86_64", "--version"]).splitlines()[0]
    # iperf -v exits 1.
    iperf = subprocess.run(["iperf", "-v"], capture_output=True,
                           text=True).stderr.strip() or "iperf2"
    header = [f"emulator: {qemu}, TCG, -machine q35 -cpu {QEMU_CPU} "
              f"-smp {QEMU_SMP} -m {QEMU_MEM} (Tern hosts and Linux VM alike)",
              f"host: {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.2f} at the end; peer: {iperf}",
              f"linux vm: {os.path.basename(vmlinuz)}; each run "
              f"{args.seconds} s; Mbit/s = the receiver's figure"]
    print_table(results, args, header)
    print(f"total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
