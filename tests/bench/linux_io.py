#!/usr/bin/env python3
"""linux_io: guest disk and network throughput under Tern, next to Tern's
own `disk bench` and next to a Linux VM under plain QEMU (issue 14).

    python3 tests/bench/linux_io.py [--esp build/esp-linux] [--secs 10]
                                    [--depth 8] [--only tern|qemu]

One run, one LUN (tgtd in the lab namespace, a 512 MiB file), one bridge:
  1. Tern's `disk bench` on the LUN: sequential 64 KiB and random 4 KiB,
     read and write, at --depth requests in flight;
  2. a Linux guest under Tern (the same kernel and initramfs as the tests)
     with the LUN as its virtio disk: tests/linux/rio.c does the same four
     loads with O_DIRECT and --depth threads; then rio sends 64 MiB over
     TCP to a sink in the namespace;
  3. the peer: the same kernel in QEMU TCG (no Tern, no nesting) with
     virtio-blk on the same LUN through QEMU's own iSCSI driver (libiscsi,
     Debian's qemu-block-extra) and virtio-net on a tap of the same bridge,
     running the same rio commands.
Prints one table.  A benchmark, not a test: it fails only when a run does
not work.  Build first with `make esp-linux`.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
sys.path.insert(0, os.path.join(REPO, "tests", "bench"))
import ternlab  # noqa: E402
import netlab  # noqa: E402
from tgt import Tgtd  # noqa: E402
import linux_boot  # noqa: E402  (DirectQemu: the kernel straight into QEMU)

PORTAL = "10.77.0.254"
IQN = "iqn.2026-12.lab.tern:bench"
KERNEL = "linux/vmlinuz"
INITRD = "linux/initrd.gz"
GUEST_PROMPT = "lx# "
LOADS = (("seq read 64K", "read", "seq", 65536), ("seq write 64K", "write", "seq", 65536),
         ("rand read 4K", "read", "rand", 4096), ("rand write 4K", "write", "rand", 4096))
TCP_MIB = 64
class BenchError(RuntimeError):
    pass


def rio_parse(out, what):
    m = re.search(r"rio: (\d+) ios, (\d+) bytes, ([\d.]+) s, ([\d.]+) MB/s, (\d+) iops", out)
    if not m:
        raise BenchError(f"{what}: rio said:\n{out}")
    return float(m.group(4)), int(m.group(5))


def guest_run(h, cmd, timeout):
    """cmd's output: after its echo (a stray prompt before it does not
    count), up to the next prompt."""
    time.sleep(0.5)
    h.mark()
    start = len(h.output())
    h.send(cmd + "\r")
    h.expect(re.escape(cmd[-12:]), 30)
    h.expect(re.escape(GUEST_PROMPT), timeout)
    return h.output()[start:]


def guest_loads(h, dev, args, what):
    res = {}
    for name, op, pat, bs in LOADS:
        out = guest_run(h, f"rio disk {dev} {op} {pat} {bs} {args.secs} {args.depth}",
                        args.secs * 6 + 60)
        res[name] = rio_parse(out, f"{what} {name}")
        print(f"  {what}: {name}: {res[name][0]:.1f} MB/s, {res[name][1]} iops", flush=True)
    return res


def guest_tcp(lab, h, what):
    sink = netlab.tcp_sink(lab.ns, PORTAL, 5502)
    try:
        time.sleep(1)
        out = guest_run(h, f"rio tcp {PORTAL} 5502 {TCP_MIB}", 600)
        got = int(sink.communicate(timeout=60)[0].strip() or 0)
    finally:
        if sink.poll() is None:
            sink.kill()
    m = re.search(r"rio: (\d+) bytes, ([\d.]+) s, ([\d.]+) Mbit/s", out)
    if not m or got != TCP_MIB << 20:
        raise BenchError(f"{what} TCP: sink got {got} bytes; rio said:\n{out}")
    print(f"  {what}: TCP to the namespace: {m.group(3)} Mbit/s", flush=True)
    return float(m.group(3))


# --- Tern ---------------------------------------------------------------------

def tern_disk_bench(con, args):
    res = {}
    for name, op, pat, bs in LOADS:
        out = con.run(f"disk bench bench {op} {pat} {bs} {args.secs} depth={args.depth}",
                      args.secs * 4 + 60)
        m = re.search(r"([\d.]+) MB/s", out)
        n = re.search(r"(\d+) IOPS|(\d+) iops", out)
        if not m:
            raise BenchError(f"disk bench {name}:\n{out}")
        res[name] = (float(m.group(1)), int(next(g for g in n.groups() if g)) if n else 0)
        print(f"  tern disk bench: {name}: {res[name][0]:.1f} MB/s", flush=True)
    return res


def run_tern(lab, args, url):
    h = lab.hosts[0]
    con = ternlab.Console(h, 60)
    res = {}
    out = con.run(f"disk attach bench {url}", 60)
    if "ready" not in out:
        raise BenchError(f"disk attach:\n{out}")
    res["bench"] = tern_disk_bench(con, args)
    out = con.run(f"vm create lx mem=256M kernel={KERNEL} initrd={INITRD} disk=bench nic=auto "
                  f"cmdline=\"console=ttyS0 loglevel=4 tern.ip=10.77.0.50/24\"")
    if "created" not in out:
        raise BenchError(f"vm create:\n{out}")
    con.run("vm start lx")
    h.mark()
    h.sendline("vm console lx")
    h.expect("attached to lx", 30)
    h.expect(r"TERN-LINUX-SHELL", 300)
    h.send("\r")
    h.expect(re.escape(GUEST_PROMPT), 60)
    try:
        res["guest"] = guest_loads(h, "/dev/vda", args, "tern guest")
        res["tcp"] = guest_tcp(lab, h, "tern guest")
    finally:
        time.sleep(1)
        h.send(b"\x1d")
        h.expect("detached", 30)
    res["info"] = con.run("vm info lx")
    con.run("vm stop lx")
    con.run("vm destroy lx")
    con.run("disk detach bench", 60)
    return res


# --- the peer -----------------------------------------------------------------

class PeerQemu(linux_boot.DirectQemu):
    """The kernel in QEMU TCG, inside the namespace, with the LUN through
    QEMU's iSCSI driver and a NIC on its own tap of the lab bridge."""

    def __init__(self, esp, url, ns, tap, logdir):
        super().__init__(os.path.join(esp, "tern", *KERNEL.split("/")),
                         os.path.join(esp, "tern", *INITRD.split("/")),
                         "console=ttyS0 loglevel=4 tern.ip=10.77.0.60/24", logdir)
        self.url, self.ns, self.tap = url, ns, tap

    def _popen(self, argv, stdout, stderr, env=None, cwd=None):
        i = argv.index("-nic")
        argv = argv[:i] + ["-drive", f"file={self.url},if=none,id=d0,format=raw,cache=none",
                           "-device", "virtio-blk-pci,drive=d0",
                           "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
                           "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01,romfile="] \
            + argv[i + 2:]
        super()._popen(["ip", "netns", "exec", self.ns, *argv], stdout, stderr, env=env, cwd=cwd)


def run_peer(lab, args, url):
    ternlab.require_file("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so", "qemu-block-extra")
    tap = "tapq"
    subprocess.run(["ip", "-n", lab.ns, "tuntap", "add", "dev", tap, "mode", "tap"], check=True)
    subprocess.run(["ip", "-n", lab.ns, "link", "set", tap, "master", "br0"], check=True)
    subprocess.run(["ip", "-n", lab.ns, "link", "set", tap, "up"], check=True)
    h = PeerQemu(args.esp, url, lab.ns, tap, args.logdir)
    res = {}
    try:
        h.start()
        h.expect(r"TERN-LINUX-SHELL", 300)
        h.send("\r")
        h.expect(re.escape(GUEST_PROMPT), 60)
        res["guest"] = guest_loads(h, "/dev/vda", args, "qemu guest")
        res["tcp"] = guest_tcp(lab, h, "qemu guest")
    finally:
        h.stop()
    return res


def table(tern, peer):
    print("\n| load | Tern disk bench | Linux guest under Tern | ratio | Linux VM under QEMU (libiscsi) |")
    print("|---|---|---|---|---|")
    for name, *_ in LOADS:
        b = tern.get("bench", {}).get(name)
        g = tern.get("guest", {}).get(name)
        q = peer.get("guest", {}).get(name) if peer else None
        ratio = f"{g[0] / b[0]:.2f}x" if b and g and b[0] else "-"

        def cell(x):
            return f"{x[0]:.1f} MB/s ({x[1]} iops)" if x else "-"
        print(f"| {name} | {cell(b)} | {cell(g)} | {ratio} | {cell(q)} |")
    print(f"| TCP to the namespace | - | {tern.get('tcp', '-')} Mbit/s | - | "
          f"{peer.get('tcp', '-') if peer else '-'} Mbit/s |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp-linux"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "bench-logs"))
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--only", choices=("tern", "qemu"))
    args = ap.parse_args()
    args.esp = os.path.abspath(args.esp)
    os.makedirs(args.logdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tern-bench-io-")
    lab = netlab.NetLab(hosts=1 if args.only != "qemu" else 0, esp_dir=args.esp,
                        logdir=args.logdir, mem="1G")
    tern, peer = {}, {}
    tgt = None
    try:
        lab.start()
        tgt = Tgtd(lab.ns, portal=f"{PORTAL}:3260", workdir=work)
        tgt.start()
        tgt.add_target(1, IQN)
        tgt.add_lun(1, 1, os.path.join(work, "bench.img"), size_bytes=512 << 20)
        tgt.bind_all(1)
        url = f"iscsi://{PORTAL}:3260/{IQN}/1"
        if args.only != "qemu":
            lab.wait_prompts(120)
            tern = run_tern(lab, args, url)
        if args.only != "tern":
            peer = run_peer(lab, args, url)
    except (BenchError, ternlab.LabError, TimeoutError) as e:
        print(f"linux_io: {e}", file=sys.stderr)
        return 1
    finally:
        if tgt:
            tgt.stop()
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    table(tern, peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
