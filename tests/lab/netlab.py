#!/usr/bin/env python3
"""netlab: N Tern hosts in QEMU on one private Ethernet segment.

A network namespace (ternlab-<pid>) holds a bridge (br0, 10.77.0.254/24)
and one tap device per host; each QEMU runs inside the namespace
(`ip netns exec`, which execs, so the PID we hold is QEMU's) with a
virtio-net NIC on its tap.  Nothing routes out of the namespace.  Every
host boots its own copy of the ESP with its own tern/tern.cfg (hostname
tern-a, tern-b, ...; address 10.77.0.1/24, .2, ...; the lab secret).

Teardown is by PID (ternlab's QemuHost.stop) and then `ip netns del`,
on success, failure, exceptions and SIGINT/SIGTERM alike; namespaces left
by a netlab that was SIGKILLed are removed at the next start.  Needs root
(ip netns) and iproute2.  Standard library only.

    with NetLab(hosts=2) as lab:
        a, b = lab.hosts
        print(a.command("ping 10.77.0.2 3"))
        lab.ns_run(["ping", "-c", "1", "10.77.0.1"])

Per-host tern.cfg additions: NetLab(hosts=2, extra_cfg={0: "disk = ...\n"}).
An iSCSI target for the hosts: after start(), tgt.Tgtd(lab.ns,
"10.77.0.254:3260", workdir=lab.tmpdir) (see tests/lab/tgt.py), or
fake_iscsi_target.FakeTarget("10.77.0.254:3260", netns=lab.ns).

Command line: python3 tests/lab/netlab.py [--hosts N] [--esp DIR]
    [--nic virtio-net-pci|e1000e|e1000] [--keep SECONDS]
boots the hosts, shows each one's `nic` and network log lines, tries
ping between them and from the namespace, and tears everything down.
"""

import argparse
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402

SUBNET = "10.77.0"
BRIDGE_ADDR = f"{SUBNET}.254"
PREFIX = 24
DEFAULT_SECRET = "ternlab-shared-secret"
NS_PREFIX = "ternlab-"

_labs = set()


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise ternlab.LabError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def remove_stale_namespaces():
    """Delete ternlab-<pid> namespaces whose netlab process is gone."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        m = re.match(rf"{NS_PREFIX}(\d+)\b", line)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            _ip("netns", "del", f"{NS_PREFIX}{m.group(1)}", check=False)
        except PermissionError:
            pass


def host_config(hostname, address, secret, console_port=7023, idle=None,
                log_level="info", extra=None):
    """tern.cfg text; secret None leaves the network console off; extra
    (text) is appended as is, e.g. "disk = ...\n"."""
    text = (f"# written by tests/lab/netlab.py\n"
            f"hostname = {hostname}\n"
            f"address = {address}\n"
            f"console_port = {console_port}\n"
            f"log_level = {log_level}\n")
    if secret is not None:
        text += f"secret = \"{secret}\"\n"
    if idle is not None:
        text += f"console_idle_timeout = {idle}\n"
    if extra:
        text += extra if extra.endswith("\n") else extra + "\n"
    return text


class NsQemuHost(ternlab.QemuHost):
    """A QemuHost whose QEMU runs inside a network namespace."""

    def __init__(self, esp_dir, netns, **kw):
        super().__init__(esp_dir, **kw)
        self.netns = netns

    def _popen(self, argv, stdout, stderr, env=None, cwd=None):
        super()._popen(["ip", "netns", "exec", self.netns, *argv],
                       stdout, stderr, env=env, cwd=cwd)


class NetLab:
    def __init__(self, hosts=2, esp_dir="build/esp", secret=DEFAULT_SECRET,
                 nic="virtio-net-pci", mem="512M", smp=2, logdir=None,
                 idle=None, log_level="info", secrets=None, cpu=None,
                 host_opts=None, extra_cfg=None):
        """secrets: per-host secret overrides ({index: secret or None});
        idle: console_idle_timeout for every host; cpu: QEMU -cpu;
        host_opts: per-host overrides ({index: {"cpu": ..., "mem": ...}});
        extra_cfg: per-host text appended to tern.cfg ({index: "k = v\n"})."""
        if not 0 <= hosts <= 26:
            raise ValueError("hosts must be 0..26")   # 0: the network only
        self.n = hosts
        self.esp_dir = os.path.abspath(esp_dir)
        self.secret = secret
        self.nic = nic
        self.mem = mem
        self.smp = smp
        self.logdir = logdir
        self.idle = idle
        self.log_level = log_level
        self.secrets = secrets or {}
        self.cpu = cpu
        self.host_opts = host_opts or {}
        self.extra_cfg = extra_cfg or {}
        self.ns = f"{NS_PREFIX}{os.getpid()}"
        self.hosts = []
        self.tmpdir = None
        self._ns_made = False

    @staticmethod
    def name(i):
        return f"tern-{chr(ord('a') + i)}"

    @staticmethod
    def address(i):
        return f"{SUBNET}.{i + 1}"

    @staticmethod
    def mac(i):
        return f"52:54:00:77:00:{i + 1:02x}"

    # -- lifecycle --

    def start(self):
        if os.geteuid() != 0:
            raise ternlab.LabError("netlab needs root (ip netns, tap devices)")
        ternlab.require_tool("ip", "iproute2")
        ternlab.require_tool("qemu-system-x86_64", "qemu-system-x86")
        if self.n and not os.path.isdir(os.path.join(self.esp_dir, "tern")):
            raise ternlab.LabError(f"{self.esp_dir}: no tern/ folder (run make)")
        _labs.add(self)
        remove_stale_namespaces()
        try:
            self._make_network()
            self.tmpdir = tempfile.mkdtemp(prefix=f"ternlab-{os.getpid()}-netlab-")
            for i in range(self.n):
                self.hosts.append(self._start_host(i))
        except BaseException:
            self.stop()
            raise
        return self

    def _make_network(self):
        ns = self.ns
        _ip("netns", "add", ns)
        self._ns_made = True
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", ns, "addr", "add", f"{BRIDGE_ADDR}/{PREFIX}", "dev", "br0")
        _ip("-n", ns, "link", "set", "br0", "up")
        for i in range(self.n):
            tap = f"tap{i}"
            _ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
            _ip("-n", ns, "link", "set", tap, "master", "br0")
            _ip("-n", ns, "link", "set", tap, "up")

    def _start_host(self, i):
        name = self.name(i)
        esp = os.path.join(self.tmpdir, f"esp-{name}")
        shutil.copytree(self.esp_dir, esp)
        with open(os.path.join(esp, "tern", "tern.cfg"), "w") as f:
            f.write(host_config(name, f"{self.address(i)}/{PREFIX}",
                                self.secrets.get(i, self.secret),
                                idle=self.idle, log_level=self.log_level,
                                extra=self.extra_cfg.get(i)))
        net = ["-netdev", f"tap,id=n0,ifname=tap{i},script=no,downscript=no",
               "-device", f"{self.nic},netdev=n0,mac={self.mac(i)}"]
        opts = self.host_opts.get(i, {})
        kw = {"cpu": opts.get("cpu", self.cpu)} if opts.get("cpu", self.cpu) else {}
        h = NsQemuHost(esp, self.ns, name=name, mem=opts.get("mem", self.mem),
                       smp=self.smp, logdir=self.logdir, extra_args=net, **kw)
        h.start()
        return h

    def stop(self):
        """Kill every QEMU (by PID), delete the namespace.  Idempotent."""
        for h in self.hosts:
            try:
                h.stop()
            except Exception:
                pass
        self.hosts = []
        if self._ns_made:
            # Deleting the namespace deletes its bridge and taps with it.
            _ip("netns", "del", self.ns, check=False)
            self._ns_made = False
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
        _labs.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- helpers --

    def wait_prompts(self, timeout=120):
        for h in self.hosts:
            h.expect(h.prompt, timeout)

    def ns_run(self, argv, timeout=30):
        """Run a command inside the namespace (e.g. ping, ternctl)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)

    def secret_file(self):
        path = os.path.join(self.tmpdir, "secret")
        with open(path, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(path, 0o600)
        return path


_SINK = """
import socket, sys
addr, port, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(1)
s.settimeout(600)
c, _ = s.accept()
c.settimeout(120)
n = 0
while not limit or n < limit:
    b = c.recv(1 << 16)
    if not b:
        break
    n += len(b)
c.close()
print(n)
"""


def tcp_sink(ns, addr, port, limit=0):
    """A TCP listener at addr:port in namespace ns that takes one
    connection and counts its bytes (until EOF, or limit bytes): a Popen
    whose stdout is the count when it ends (communicate())."""
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", _SINK, addr,
                             str(port), str(limit)], stdout=subprocess.PIPE, text=True)


def _stop_all_labs():
    for lab in list(_labs):
        lab.stop()


atexit.register(_stop_all_labs)


def _on_signal(signum, frame):
    _stop_all_labs()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--esp", default="build/esp")
    ap.add_argument("--nic", default="virtio-net-pci")
    ap.add_argument("--logdir", default=None)
    ap.add_argument("--keep", type=float, default=0,
                    help="seconds to keep the lab up before teardown")
    args = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    t0 = time.monotonic()
    with NetLab(hosts=args.hosts, esp_dir=args.esp, nic=args.nic,
                logdir=args.logdir) as lab:
        print(f"netlab: namespace {lab.ns}, bridge br0 {BRIDGE_ADDR}/{PREFIX}, "
              f"{lab.n} hosts")
        lab.wait_prompts()
        print(f"netlab: all prompts after {time.monotonic() - t0:.1f} s")
        for i, h in enumerate(lab.hosts):
            print(f"--- {h.name} (pid {h.proc.pid}, {lab.address(i)}) nic:")
            print(h.command("nic", timeout=30))
            net_lines = [l for l in h.output().splitlines()
                         if re.search(r"\] [EWI] (net|lwip|entropy)", l)]
            print("\n".join(net_lines[-8:]))
        if lab.n >= 2:
            a = lab.hosts[0]
            print(f"--- {a.name}: ping {lab.address(1)} 3")
            print(a.command(f"ping {lab.address(1)} 3", timeout=30))
        for i in range(lab.n):
            r = lab.ns_run(["ping", "-c", "2", "-W", "2", lab.address(i)])
            print(f"--- namespace: ping {lab.address(i)}: exit {r.returncode}")
            print(r.stdout.strip())
        if args.keep:
            time.sleep(args.keep)
    print(f"netlab: torn down after {time.monotonic() - t0:.1f} s")
    r = _ip("netns", "list", check=False)
    left = [l for l in r.stdout.splitlines() if l.startswith(lab.ns)]
    print(f"netlab: namespace {'LEFT BEHIND' if left else 'removed'}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
