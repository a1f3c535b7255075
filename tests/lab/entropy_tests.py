#!/usr/bin/env python3
"""Entropy and TCP sequence-number tests: one Tern host in QEMU (TCG,
qemu64: no RDRAND, so the TSC-jitter source) on the lab LAN
(tests/lab/netlab.py), and optionally Bochs for the jitter measurement.

 - isn_unpredictable: eight TCP connections from the namespace to the
   console port; a raw socket reads Tern's SYN-ACKs.  lwIP's own ISN is a
   counter (consecutive ISNs differ by tcp_ticks, a small number); with
   RFC 6528 ISNs (LWIP_HOOK_TCP_ISN) the differences are 32-bit random.
 - jitter_min_entropy_qemu: `entropy sample 4096` gives the most common
   TSC distance's count; its SP 800-90B 6.3.1 estimate must be at least
   the 1 bit per sample that net/stack/entropy.c claims.
 - bochs_jitter_fails_closed: Bochs is deterministic, the jitter source
   has no entropy there, and the start-up test must fail at boot.
 - bochs_rdseed_ok: Bochs's Skylake-X model has RDSEED, health ok.
 - stuck_refuses_tls: `entropy stuck` (the test hook) fails the health
   tests; TLS is then refused with a log line on both the console port and
   a migration connect, while the serial console keeps working.

    python3 tests/lab/entropy_tests.py [--only REGEX]
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402
from netcon_tests import wait_log  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TERNCTL = os.path.join(REPO, "build", "tools", "ternctl")
PORT = 7023
MIG_PORT = 7024        # CFG_DEFAULT_MIGRATE_PORT
CLAIMED_H = 1.0         # ENT_JITTER_H_HALVES / 2 in net/stack/entropy.c
CFG = None
check = ternlab.check
_lab = []


def lab():
    if _lab:
        return _lab[0]
    lb = netlab.NetLab(hosts=1, esp_dir=CFG.esp, logdir=CFG.logdir)
    lb.start()
    try:
        lb.wait_prompts(120)
        lb.secret_path = lb.secret_file()
        wait_log(lb.hosts[0], rf"netcon: listening on TCP port {PORT}", 30)
    except BaseException:
        lb.stop()
        raise
    _lab.append(lb)
    return lb


def stop_lab():
    while _lab:
        _lab.pop().stop()


# Runs inside the namespace: a raw IPPROTO_TCP socket sees every TCP
# segment that reaches the namespace, so Tern's SYN-ACKs with their ISNs.
SNIFF = r"""
import socket, struct, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.settimeout(0.2)
isns = {}
for _ in range(n):
    s = socket.create_connection((host, port), timeout=10)
    lport = s.getsockname()[1]
    deadline = time.monotonic() + 5
    while lport not in isns and time.monotonic() < deadline:
        try:
            pkt, addr = raw.recvfrom(65535)
        except socket.timeout:
            continue
        ihl = (pkt[0] & 15) * 4
        sport, dport, seq = struct.unpack("!HHI", pkt[ihl:ihl + 8])
        flags = pkt[ihl + 13]
        if addr[0] == host and sport == port and flags & 0x12 == 0x12:
            isns[dport] = seq
    s.close()
    time.sleep(0.3)
for p, seq in isns.items():
    print(p, seq)
"""


def t_isn(lb):
    r = lb.ns_run([sys.executable, "-c", SNIFF, lb.address(0), str(PORT), "8"],
                  timeout=120)
    pairs = [tuple(map(int, l.split())) for l in r.stdout.split("\n")
             if re.fullmatch(r"\d+ \d+", l)]
    check(len(pairs) == 8, f"SYN-ACKs seen for {len(pairs)} of 8 connections:\n{r.stdout}")
    isns = [seq for _, seq in pairs]
    diffs = [(b - a) % 2**32 for a, b in zip(isns, isns[1:])]
    small = [d for d in diffs if d < 2**24]
    print(f"  ISNs {[hex(i) for i in isns]}")
    print(f"  differences {diffs}")
    # A counter gives 7 small differences; random 32-bit ISNs give one
    # under 2^24 with probability 1/256, three or more about 2e-6.
    check(len(small) <= 2, f"{len(small)} of 7 consecutive ISN differences are below "
          f"2^24 (a counter, not RFC 6528): {diffs}")
    check(len(set(isns)) == len(isns), f"repeated ISNs: {isns}")


def mcv_min_entropy(out):
    m = re.search(r"jitter samples (\d+) distinct (\d+) mcv (\d+)", out)
    check(m, f"entropy sample: no statistics in:\n{out}")
    n, distinct, mcv = map(int, m.groups())
    p = mcv / n
    pu = min(1.0, p + 2.576 * math.sqrt(p * (1 - p) / (n - 1)))
    return n, distinct, mcv, -math.log2(pu)


def check_min_entropy(h, timeout):
    for _ in range(3):
        n, distinct, mcv, hmin = mcv_min_entropy(
            h.command("entropy sample 4096", timeout=timeout))
        print(f"  {h.kind}: {n} TSC distances, {distinct} distinct, most common "
              f"{mcv} times: H_min >= {hmin:.2f} bits per sample (claimed {CLAIMED_H})")
        check(hmin >= CLAIMED_H, f"{h.kind}: measured {hmin:.2f} bits < claimed {CLAIMED_H}")
    out = h.command("entropy", timeout=timeout)
    check(re.search(r"entropy: TSC jitter, health ok", out), f"entropy:\n{out}")


def t_jitter_qemu(lb):
    check_min_entropy(lb.hosts[0], 60)


def t_bochs_jitter():
    # A Bochs CPU model without RDRAND/RDSEED, so the jitter source is the
    # one in use.  Bochs is deterministic (its TSC and timers count
    # instructions): the measured min-entropy is 0 and the start-up test
    # must fail at boot, leaving TLS off and the serial console working.
    with ternlab.BochsHost(CFG.esp, name="bochs-core2", cpu_model="core2_penryn_t9600",
                           mem_mb=256, cpus=1, logdir=CFG.logdir) as h:
        h.expect(h.prompt, 600)
        n, distinct, mcv, hmin = mcv_min_entropy(h.command("entropy sample 4096", timeout=300))
        print(f"  bochs: {n} TSC distances, {distinct} distinct, most common "
              f"{mcv} times: H_min >= {hmin if hmin > 0 else 0.0:.2f} bits per sample (claimed {CLAIMED_H})")
        out = h.command("entropy", timeout=60)
        if hmin < CLAIMED_H:
            check("health FAILED" in out and "TLS refused" in out,
                  f"a source below its claimed entropy passed the health tests:\n{out}")
            check(re.search(r"E entropy: TSC jitter repetition count test failed after "
                            r"\d+ samples", h.output()), "no start-up test failure logged")
        else:
            check("health ok" in out, f"entropy:\n{out}")
        check("uptime" in h.command("status", timeout=60), "serial status after the failure")


def t_bochs_rdseed():
    # The Bochs model the other suites use has RDSEED: health-tested, ok.
    with ternlab.BochsHost(CFG.esp, name="bochs-skx", cpu_model="corei7_skylake_x",
                           mem_mb=256, cpus=1, logdir=CFG.logdir) as h:
        h.expect(h.prompt, 600)
        out = h.command("entropy", timeout=60)
        print("  " + out.strip().replace("\n", "\n  "))
        check(re.search(r"entropy: RDSEED, health ok \((\d+) samples", out), f"entropy:\n{out}")


def t_stuck(lb):
    h = lb.hosts[0]
    out = h.command("entropy", timeout=30)
    check(re.search(r"health ok \(\d+ samples", out), f"entropy before:\n{out}")
    r = lb.ns_run([TERNCTL, "--host", lb.address(0), "--secret-file", lb.secret_path,
                   "status"], timeout=60)
    check(r.returncode == 0 and "hostname" in r.stdout, f"ternctl before: {r.stdout}")
    r = lb.ns_run([TERNCTL, "--host", lb.address(0), "--secret-file", lb.secret_path,
                   "netcon"], timeout=60)
    print("  " + r.stdout.strip().replace("\n", "\n  "))
    check(re.match(r"entropy: TSC jitter, health ok \(\d+ samples", r.stdout),
          f"netcon before: {r.stdout}")
    mark = len(h.output())
    out = h.command("entropy stuck", timeout=60)
    check("health FAILED" in out and "repetition count test failed" in out,
          f"entropy stuck:\n{out}")
    wait_log(h, r"E entropy: TSC jitter repetition count test failed after \d+ samples"
             r" \(SP 800-90B 4\.4\): TLS refused", since=mark)
    # The console port refuses before any handshake, with the reason.
    r = lb.ns_run([TERNCTL, "--host", lb.address(0), "--secret-file", lb.secret_path,
                   "status"], timeout=60)
    check(r.returncode != 0 and "hostname" not in r.stdout,
          f"ternctl after the failure: rc {r.returncode} {r.stdout}")
    wait_log(h, rf"W tls: refused a connection on port {PORT}: the entropy health "
             r"tests failed", since=mark)
    # So does the migration listener (TLS too).
    got = lb.ns_run([sys.executable, "-c", f"""
import socket
try:
    s = socket.create_connection(("{lb.address(0)}", {MIG_PORT}), timeout=10)
    s.settimeout(10)
    print("got", len(s.recv(100)))
except OSError as e:
    print("closed", type(e).__name__)
"""], timeout=30)
    check("got 0" in got.stdout or "closed" in got.stdout, f"migration port: {got.stdout}")
    wait_log(h, rf"W tls: refused a connection on port {MIG_PORT}: the entropy health "
             r"tests failed", since=mark)
    # The serial console still answers, and says why.
    out = h.command("netcon", timeout=30)
    check("entropy: TSC jitter, health FAILED" in out and "TLS refused" in out,
          f"netcon after the failure:\n{out}")
    out = h.command("status", timeout=30)
    check("hostname: tern-a" in out, f"status on serial:\n{out}")


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
    tests = [("isn_unpredictable", lambda: t_isn(lab())),
             ("jitter_min_entropy_qemu", lambda: t_jitter_qemu(lab())),
             ("stuck_refuses_tls", lambda: t_stuck(lab())),
             ("bochs_jitter_fails_closed", t_bochs_jitter),
             ("bochs_rdseed_ok", t_bochs_rdseed)]
    chosen = [(n, fn) for n, fn in tests if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    ternlab.require_tool("ip", "iproute2")
    if not os.access(TERNCTL, os.X_OK):
        raise ternlab.LabError(f"{TERNCTL} missing: run make")
    return ternlab.run_suite(chosen, CFG.logdir, stop_lab)


if __name__ == "__main__":
    sys.exit(main())
