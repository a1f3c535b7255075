#!/usr/bin/env python3
"""NIC driver tests: boot Tern in QEMU with one NIC model on QEMU's user
networking (slirp: an ARP/DHCP peer at 10.0.2.2, no host network needed)
and prove the driver end to end with `nic test NAME` (one ARP request,
the reply printed) and the `nic` counters.  net_iperf_linux runs Tern's
iperf client and server against Linux iperf2 on a netlab bridge (root).
Checksum offload: the `nic` offload column per model, TCP from the host
through slirp (which checks TCP checksums) into Tern's iperf server, and
net_csum_offload_* on a netlab bridge, where the offloads are in use.

    python3 tests/lab/net_tests.py [--only REGEX] [--esp DIR] [--logdir DIR]
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMPT = r"tern> "
BOOT_TIMEOUT = 60
CMD_TIMEOUT = 20
SLIRP_MAC = "52:55:0a:00:02:02"     # QEMU user networking's gateway
QEMU_MAC = "52:54:00:12:34:56"      # QEMU's default for the first NIC
SLIRP_IPERF = "10.0.2.100"          # guestfwd to an iperf -s on the host

CFG = None
TESTS = []

check = ternlab.check


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


def nic_args(model, extra="", hostfwd=None):
    """hostfwd: a host port forwarded to Tern's 5001, and Tern's
    connections to SLIRP_IPERF:5001 forwarded to host port hostfwd + 1."""
    user = "user,id=n0"
    if hostfwd:
        relay = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "tcp_relay.py")
        user += (f",hostfwd=tcp:127.0.0.1:{hostfwd}-:5001,guestfwd=tcp:"
                 f"{SLIRP_IPERF}:5001-cmd:{sys.executable} {relay} {hostfwd + 1}")
    return ["-netdev", user, "-device", f"{model},netdev=n0,romfile={extra}"]


def boot(name, extra_args, machine="q35"):
    h = ternlab.QemuHost(CFG.esp, name=name, mem="1G", smp=2, machine=machine,
                         extra_args=extra_args, logdir=CFG.logdir, test=name)
    try:
        h.start()
        h.expect(r"console ready", BOOT_TIMEOUT)
        h.expect(PROMPT, BOOT_TIMEOUT)
    except BaseException:
        h.stop()
        raise
    return h


def nic_row(out, name):
    """Parse the `nic` row of one NIC into a dict."""
    m = re.search(
        rf"^{re.escape(name)}\s+(?P<model>.+?)\s+(?P<mac>(?:[0-9a-f]{{2}}:){{5}}"
        rf"[0-9a-f]{{2}})\s+(?P<link>up|down)\s+(?P<irq>poll|msi-x 0x[0-9a-f]+|"
        rf"msi 0x[0-9a-f]+)\s+(?P<offload>csum tx/rx|csum tx|csum rx|none)\s+"
        rf"rx (?P<rxp>\d+)/(?P<rxb>\d+) tx (?P<txp>\d+)/"
        rf"(?P<txb>\d+) drops (?P<drops>\d+) errors (?P<errs>\d+) irqs "
        rf"(?P<irqs>\d+) csum-frames tx (?P<csumtx>\d+) rx (?P<csumrx>\d+)"
        rf"\s*$", out, re.M)
    check(m, f"no well-formed row for {name} in `nic`:\n{out}")
    d = m.groupdict()
    for k in ("rxp", "rxb", "txp", "txb", "drops", "errs", "irqs", "csumtx",
              "csumrx"):
        d[k] = int(d[k])
    return d


def prove_nic(h, name, model_re, irq_re, want_irqs, offload):
    out = h.command(f"nic test {name}", timeout=CMD_TIMEOUT)
    check(f"arp reply from 10.0.2.2 is {SLIRP_MAC}" in out,
          f"`nic test {name}` got no ARP reply from slirp:\n{out}")
    out = h.command("nic", timeout=CMD_TIMEOUT)
    r = nic_row(out, name)
    print(f"  {name}: {out.strip().splitlines()[-1]}", flush=True)
    check(re.fullmatch(model_re, r["model"]), f"model {r['model']!r}")
    check(r["mac"] == QEMU_MAC, f"MAC {r['mac']} is not QEMU's {QEMU_MAC}")
    check(r["link"] == "up", f"{name}: link is down")
    check(r["txp"] >= 1 and r["txb"] >= 60, f"{name}: nothing sent: {r}")
    check(r["rxp"] >= 1 and r["rxb"] >= 42, f"{name}: nothing received: {r}")
    check(r["errs"] == 0, f"{name}: tx errors: {r}")
    check(re.fullmatch(irq_re, r["irq"]), f"{name}: interrupt mode {r['irq']!r}")
    check(r["offload"] == offload, f"{name}: offload {r['offload']!r}, "
          f"expected {offload!r}")
    if want_irqs:
        check(r["irqs"] > 0, f"{name}: no interrupts taken: {r}")
    prove_ip(h, name)
    return r


def prove_ip(h, name):
    """lwIP on top of the driver: a DHCP lease from slirp, then ICMP echo
    to the gateway with round-trip times."""
    lease = (rf"net: {re.escape(name)}: address 10\.0\.2\.15 netmask "
             rf"255\.255\.255\.0 gateway 10\.0\.2\.2 \(DHCP\)")
    if not re.search(lease, h.output()):
        h.expect(lease, 30)
    out = h.command("ping 10.0.2.2 3", timeout=CMD_TIMEOUT)
    check(re.search(r"^3 packets transmitted, 3 received, 0% packet loss", out, re.M),
          f"{name}: ping 10.0.2.2 failed:\n{out}")
    check(len(re.findall(r"^64 bytes from 10\.0\.2\.2: icmp_seq=\d+ ttl=\d+ "
                         r"time=[\d.]+ ms", out, re.M)) == 3,
          f"{name}: no per-reply RTT lines:\n{out}")


@test
def net_virtio_modern():
    with boot("virtio", nic_args("virtio-net-pci", "")) as h:
        check(re.search(r"virtio0: .*descriptors, irq msi-x", h.output()),
              "no virtio0 start line with MSI-X in the boot log")
        # QEMU offers CSUM/GUEST_CSUM only with a vnet-header peer (a
        # tap), not on slirp: this is the software path.
        prove_nic(h, "virtio0", r"virtio-net 1\.x", r"msi-x 0x[0-9a-f]+", True,
                  "none")
        check(re.search(r"virtio0: .*checksum offload tx off rx off",
                        h.output()), "virtio0 on slirp claims an offload")


def free_port():
    """A free host port p with p + 1 free too (for nic_args)."""
    for _ in range(50):
        with socket.socket() as s1, socket.socket() as s2:
            s1.bind(("127.0.0.1", 0))
            p = s1.getsockname()[1]
            try:
                s2.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
            return p
    raise ternlab.LabError("no two free adjacent ports")


def prove_tcp_slirp(h, name, port):
    """TCP both ways between Tern's iperf and the host's through slirp,
    which drops segments with a wrong TCP checksum: Tern's offloaded
    checksums must be right, or the transfer stalls.  Returns the `nic`
    rows after the send and after the receive."""
    ternlab.require_tool("iperf", "iperf")
    srv = subprocess.Popen(["iperf", "-s", "-B", "127.0.0.1", "-p",
                            str(port + 1)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           preexec_fn=ternlab._child_setup)
    try:
        time.sleep(0.5)
        out = h.command(f"iperf client {SLIRP_IPERF} 2", timeout=CMD_TIMEOUT)
    finally:
        os.kill(srv.pid, signal.SIGKILL)
        srv.communicate(timeout=10)
    m = re.search(r"^iperf: [\d.]+:5001: (\d+) bytes in [\d.]+ s, "
                  r"([\d.]+) Mbit/s$", out, re.M)
    check(m and int(m.group(1)) > 100000, f"{name}: tern -> host:\n{out}")
    print(f"  {name}: tern -> host through slirp: {m.group(0)}", flush=True)
    sent = nic_row(h.command("nic", timeout=CMD_TIMEOUT), name)
    out = h.command("iperf server start", timeout=CMD_TIMEOUT)
    check("listening on TCP port 5001" in out, f"iperf server start:\n{out}")
    r = subprocess.run(["iperf", "-c", "127.0.0.1", "-p", str(port), "-t", "2",
                        "-f", "m"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    rep = h.expect(r"iperf: from 10\.0\.2\.2:\d+: (\d+) bytes in (\d+) ms, "
                   r"([\d.]+) Mbit/s", 15)
    check(int(rep.group(1)) > 100000, f"{name}: little TCP data through "
          f"slirp: {rep.group(0)}\niperf -c:\n{r.stdout}")
    print(f"  {name}: host -> tern through slirp: {rep.group(0)}", flush=True)
    return sent, nic_row(h.command("nic", timeout=CMD_TIMEOUT), name)


@test
def net_e1000e_82574():
    port = free_port()
    with boot("e1000e", nic_args("e1000e", hostfwd=port)) as h:
        prove_nic(h, "e1000e0", r"82574L", r"msi 0x[0-9a-f]+", True, "csum tx/rx")
        sent, r = prove_tcp_slirp(h, "e1000e0", port)
        # Data segments went out with a checksum request (bare ACKs are
        # summed in software); the host's data came in checked by the NIC.
        check(sent["csumtx"] > 100, f"e1000e0: TX offload not used: {sent}")
        check(r["csumrx"] - sent["csumrx"] > 100,
              f"e1000e0: RX offload not used: {sent} then {r}")


@test
def net_e1000_82540_polled():
    # QEMU's 82540EM has no MSI capability and INTx routing needs _PRT:
    # the driver is polled from the 100 Hz tick.
    port = free_port()
    with boot("e1000", nic_args("e1000", hostfwd=port)) as h:
        prove_nic(h, "e1000-0", r"82540EM", r"poll", False, "csum tx/rx")
        sent, r = prove_tcp_slirp(h, "e1000-0", port)
        # QEMU's 82540EM sums over the field as the datasheet says, so
        # slirp accepting the data proves the pseudo-header sum too.  It
        # marks every received frame IXSM (no receive checksum results).
        check(sent["csumtx"] > 100, f"e1000-0: TX offload not used: {sent}")
        check(r["csumrx"] == 0, f"e1000-0: QEMU's 82540EM verified? {r}")


@test
def net_legacy_config_ports_on_pc():
    # i440FX has no MCFG: enumeration falls back to 0xCF8/0xCFC.
    with boot("pc", nic_args("virtio-net-pci", ""), machine="pc") as h:
        check(re.search(r"pci: \d+ functions \(legacy, no MCFG\)", h.output()),
              "PCI scan did not use the legacy ports on -machine pc")
        prove_nic(h, "virtio0", r"virtio-net 1\.x", r"msi-x 0x[0-9a-f]+", True,
                  "none")


@test
def net_no_nic_boots():
    with boot("nonic", []) as h:
        out = h.command("nic", timeout=CMD_TIMEOUT)
        check(re.search(r"^no NICs \(pci: \d+ functions, ecam\)", out, re.M),
              f"`nic` without a NIC:\n{out}")
        out = h.command("nic test virtio0", timeout=CMD_TIMEOUT)
        check(out.strip().startswith("error: "), f"`nic test` on nothing:\n{out}")


IPERF_RESULT = (r"^iperf: 10\.77\.0\.254:5001: (\d+) bytes in [\d.]+ s, "
                r"([\d.]+) Mbit/s$")


def wait_listen(lab, port, timeout=10):
    """Until something listens on TCP port inside the lab's namespace (a
    connection before that is refused, not retried)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = lab.ns_run(["ss", "-Hltn", f"sport = :{port}"])
        if "LISTEN" in r.stdout:
            return
        time.sleep(0.1)
    raise ternlab.LabError(f"nothing listens on port {port} in {lab.ns}")


@test
def net_iperf_linux():
    """Tern's lwiperf against Linux iperf2 (Debian `iperf`), both ways, on
    a netlab bridge: `iperf client` to `iperf -s` in the namespace, then
    `iperf -c` from the namespace to `iperf server start`."""
    ternlab.require_tool("iperf", "iperf")
    with netlab.NetLab(hosts=1, esp_dir=CFG.esp, logdir=CFG.logdir) as lab:
        lab.wait_prompts(BOOT_TIMEOUT)
        h = lab.hosts[0]
        out = h.command("iperf client 10.77.0.254 1", timeout=CMD_TIMEOUT)
        check(re.search(r"^error: iperf client: .*refused", out, re.M),
              f"iperf client with no server:\n{out}")
        srv = subprocess.Popen(["ip", "netns", "exec", lab.ns, "iperf", "-s"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, preexec_fn=ternlab._child_setup)
        try:
            wait_listen(lab, 5001)
            out = h.command("iperf client 10.77.0.254 3", timeout=CMD_TIMEOUT)
        finally:
            os.kill(srv.pid, signal.SIGKILL)
            linux_out = srv.communicate(timeout=10)[0]
        m = re.search(IPERF_RESULT, out, re.M)
        check(m and float(m.group(2)) > 0,
              f"iperf client: no result:\n{out}\nLinux iperf -s:\n{linux_out}")
        print(f"  tern -> linux: {m.group(0)}", flush=True)

        out = h.command("iperf server start", timeout=CMD_TIMEOUT)
        check("listening on TCP port 5001" in out, f"iperf server start:\n{out}")
        r = lab.ns_run(["iperf", "-c", netlab.NetLab.address(0), "-t", "3",
                        "-f", "m"], timeout=30)
        m = re.search(r"sec\s+[\d.]+ \w+\s+([\d.]+) Mbits/sec", r.stdout)
        check(r.returncode == 0 and m and float(m.group(1)) > 0,
              f"iperf -c to Tern failed (exit {r.returncode}):\n{r.stdout}")
        print(f"  linux -> tern: {m.group(1)} Mbit/s (Linux iperf -c)", flush=True)
        rep = h.expect(r"iperf: from 10\.77\.0\.254:\d+: (\d+) bytes in "
                       r"(\d+) ms, ([\d.]+) Mbit/s", 10)
        check(int(rep.group(1)) > 0, f"Tern's server report: {rep.group(0)}")
        out = h.command("iperf server stop", timeout=CMD_TIMEOUT)
        check("stopped" in out, f"iperf server stop:\n{out}")
        r = lab.ns_run(["iperf", "-c", netlab.NetLab.address(0), "-t", "1"],
                       timeout=30)
        check("refused" in r.stdout, f"port 5001 still open after stop:\n"
              f"{r.stdout}")


def csum_offload_lab(nic, name):
    """Two hosts on a netlab bridge (taps with virtio-net headers, so QEMU
    offers virtio-net's checksum features): `nic` shows both offloads,
    then Tern-to-Tern TCP and namespace-to-Tern TCP go through them (the
    receiver's bare ACKs are summed in software: lwip_port.c)."""
    ternlab.require_tool("iperf", "iperf")
    with netlab.NetLab(hosts=2, nic=nic, esp_dir=CFG.esp,
                       logdir=CFG.logdir) as lab:
        lab.wait_prompts(BOOT_TIMEOUT)
        a, b = lab.hosts
        for h in lab.hosts:
            r = nic_row(h.command("nic", timeout=CMD_TIMEOUT), name)
            check(r["offload"] == "csum tx/rx", f"{h.name}: {r}")
        out = b.command("iperf server start", timeout=CMD_TIMEOUT)
        check("listening on TCP port 5001" in out, f"iperf server start:\n{out}")
        out = a.command(f"iperf client {netlab.NetLab.address(1)} 2",
                        timeout=CMD_TIMEOUT)
        m = re.search(r"^iperf: [\d.]+:5001: (\d+) bytes in [\d.]+ s, "
                      r"([\d.]+) Mbit/s$", out, re.M)
        check(m and int(m.group(1)) > 100000, f"tern-a -> tern-b:\n{out}")
        print(f"  {name}: tern-a -> tern-b: {m.group(0)}", flush=True)
        r = lab.ns_run(["iperf", "-c", netlab.NetLab.address(1), "-t", "2",
                        "-f", "m"], timeout=30)
        m = re.search(r"sec\s+[\d.]+ \w+\s+([\d.]+) Mbits/sec", r.stdout)
        check(r.returncode == 0 and m and float(m.group(1)) > 0,
              f"iperf -c to tern-b failed:\n{r.stdout}")
        ra = nic_row(a.command("nic", timeout=CMD_TIMEOUT), name)
        rb = nic_row(b.command("nic", timeout=CMD_TIMEOUT), name)
        print(f"  {name}: tern-a csum-frames tx {ra['csumtx']} rx "
              f"{ra['csumrx']}; tern-b tx {rb['csumtx']} rx {rb['csumrx']}",
              flush=True)
        check(ra["csumtx"] > 100, f"tern-a sent TCP without offload: {ra}")
        check(rb["csumrx"] > 100, f"tern-b's NIC vouched for no frame: {rb}")
        check(ra["errs"] == 0 and rb["errs"] == 0, f"tx errors: {ra} {rb}")


@test
def net_csum_offload_virtio():
    csum_offload_lab("virtio-net-pci", "virtio0")


@test
def net_csum_offload_e1000e():
    csum_offload_lab("e1000e", "e1000e0")


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    chosen = [(n, fn) for n, fn in TESTS
              if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    return ternlab.run_suite(chosen, CFG.logdir, lambda: None)


if __name__ == "__main__":
    sys.exit(main())
