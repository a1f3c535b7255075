#!/usr/bin/env python3
"""Migration tests: Tern hosts in QEMU on a private LAN (netlab.py), the
migration-verification guest (tests/guests/migverify.c) moved between them.

After every migration the destination proves, page by page, that the
guest's counters have the shape its writing order allows (`vm memcheck`),
twice, to show it keeps making progress; the guest checks itself before
every store too and would stop with MIGVERIFY FAIL.  Cancels, a cut link
and a killed destination must leave the guest running, verified, on the
source, and nothing on the destination.  Pre-flight refuses a host with
too little memory, another CPU model, or another key.

    python3 tests/lab/migrate_tests.py [--only REGEX]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import netlab  # noqa: E402
from netcon_tests import wait_log  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TERNCTL = os.path.join(REPO, "build", "tools", "ternctl")
GUEST_MEM = "64M"
IDLE_DELAY = 20000      # migverify spin between pages: a slow writer
# Each round trip is ~8 s under TCG; 8 moves keep the repeated hand-off
# (each host both source and destination four times) inside make test's
# budget, next to the Linux guest's A->B->A in linux_mig_tests.py.
BACK_AND_FORTH = int(os.environ.get("TERN_BACK_AND_FORTH", "8"))
CFG = None
check = ternlab.check
_lab = {}


def lab():
    """The two-host lab most tests share (A: 10.77.0.1, B: 10.77.0.2)."""
    if "main" not in _lab:
        lb = netlab.NetLab(hosts=2, esp_dir=CFG.esp, logdir=CFG.logdir, mem="512M")
        lb.start()
        try:
            lb.wait_prompts(120)
            lb.secret_path = lb.secret_file()
            for h in lb.hosts:
                h.lab = lb
        except BaseException:
            lb.stop()
            raise
        _lab["main"] = lb
    reset(_lab["main"])
    return _lab["main"]


def stop_labs():
    close_sessions()
    for lb in list(_lab.values()):
        lb.stop()
    _lab.clear()


class Session:
    """A ternctl session to one host (the network console): clean replies,
    unlike the serial console, where log lines interleave with echo."""

    def __init__(self, lb, i):
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(i),
             "--secret-file", lb.secret_path, "--json", "--timeout", "300"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)

    def run(self, line, timeout):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        got = []
        t = threading.Thread(target=lambda: got.append(self.p.stdout.readline()))
        t.daemon = True
        t.start()
        t.join(timeout)
        if not got or not got[0]:
            raise ternlab.TestFailure(f"no reply to {line!r} within {timeout} s")
        rep = json.loads(got[0])
        out = rep.get("output", "")
        if not rep.get("ok"):
            out += f"error: {rep.get('error', '')}\n"
        return out.strip("\n")

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(5)
        except Exception:
            self.p.kill()
            self.p.wait()


_sessions = {}


def cmd(h, line, timeout=60):
    """Run a console command on host h over the network console."""
    key = id(h)
    if key not in _sessions:
        lb = h.lab
        _sessions[key] = Session(lb, lb.hosts.index(h))
    try:
        return _sessions[key].run(line, timeout)
    except (BrokenPipeError, ValueError, ternlab.TestFailure):
        s = _sessions.pop(key, None)
        if s:
            s.close()
        raise


def close_sessions():
    for s in list(_sessions.values()):   # a test's thread may drop one
        s.close()
    _sessions.clear()


def reset(lb):
    """Every test starts with no VMs and no migration on either host."""
    for h in lb.hosts:
        cmd(h, "migrate cancel")
        for name in re.findall(r"^(\S+)\s+(?:running|paused|stopped|created|failed)",
                               cmd(h, "vm list"), re.M):
            cmd(h, f"vm destroy {name}")


def start_guest(h, name, delay, extra=""):
    out = cmd(h, f'vm create {name} mem={GUEST_MEM} kernel=guests/migverify.elf '
                 f'cmdline="delay={delay}" {extra}'.strip())
    check(f"vm {name} created" in out, out)
    out = cmd(h, f"vm start {name}")
    check("running on CPU" in out, out)
    # Wait for pass 2: pass 1 (flat out) put data in every page.
    deadline = time.monotonic() + 60
    while not re.search(r"memcheck PASS .*pass=([2-9]|\d\d)", cmd(h, f"vm memcheck {name}")):
        check(time.monotonic() < deadline, f"{h.name}: {name} never finished pass 1")
        time.sleep(0.5)


def memcheck(h, name):
    out = cmd(h, f"vm memcheck {name}")
    m = re.search(r"memcheck PASS pages=(\d+) pass=(\d+) boundary=(\d+)", out)
    check(m, f"{h.name}: vm memcheck {name}:\n{out}")
    return int(m.group(2)), int(m.group(3))


def verify(h, name, settle=1.5):
    """Whole, and still running: two memchecks, the second further on."""
    log = cmd(h, "log 400")
    check(not re.search(rf"\[{name}\] MIGVERIFY FAIL", log),
          f"{h.name}: the guest found a bad page:\n{log[-1500:]}")
    p1 = memcheck(h, name)
    time.sleep(settle)
    p2 = memcheck(h, name)
    check(p2 > p1, f"{h.name}: {name} made no progress ({p1} then {p2}); vm info:\n"
          f"{cmd(h, f'vm info {name}')}\n{cmd(h, 'log 30')}")
    out = cmd(h, "vm list")
    check(re.search(rf"^{name}\s+running", out, re.M), f"{h.name}: vm list:\n{out}")


def gone(h, name):
    out = cmd(h, "vm list")
    check(not re.search(rf"^{name}\s", out, re.M), f"{h.name} still has {name}:\n{out}")


def wait_status(h, pattern, timeout=180):
    """Poll `migrate status` until it matches; return the status text."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = cmd(h, "migrate status")
        if re.search(pattern, out):
            return out
        time.sleep(0.5)
    raise ternlab.TestFailure(f"{h.name}: no {pattern!r} in `migrate status` within "
                              f"{timeout} s:\n{out}")


def migrate(src, dst_addr, name, args="", timeout=240):
    out = cmd(src, f"migrate {name} {dst_addr} {args}".strip())
    check(re.search(rf"^migrating {name} to ", out, re.M), out)
    out = wait_status(src, r"outgoing: .*: (done|failed|cancelled)", timeout)
    check(re.search(r"outgoing: .*: done", out), f"migration failed:\n{out}")
    m = re.search(r"report: total (\d+) ms, downtime (\d+) ms, (\d+) bytes sent, "
                  r"(\d+) rounds, throttle ([\d.]+)%", out)
    check(m, f"no report line:\n{out}")
    rep = dict(zip(("total", "downtime", "bytes", "rounds"), map(int, m.groups()[:4])))
    rep["throttle"] = float(m.group(5))
    est = ""
    m = re.search(r"downtime: measured (\d+) ms, estimated (\d+) ms \(fixed (\d+) "
                  r"(measured|prior) ", out)
    if m:
        rep["estimated"], rep["fixed"] = int(m.group(2)), int(m.group(3))
        rep["fixed_from"] = m.group(4)
        est = f" (estimated {m.group(2)}, fixed {m.group(3)} {m.group(4)})"
    print(f"  {name} -> {dst_addr} {args or 'live'}: {rep['total']} ms total, "
          f"downtime {rep['downtime']} ms{est}, {rep['bytes'] // 1024} KiB, "
          f"{rep['rounds']} rounds, throttle {rep['throttle']}%, "
          f"{rep['bytes'] / max(rep['total'], 1) / 1000:.1f} MB/s", flush=True)
    return rep, out


def dst_clean(h, name, timeout=40):
    """The destination dropped its copy and says why."""
    deadline = time.monotonic() + timeout
    while True:
        out = cmd(h, "vm list")
        if not re.search(rf"^{name}\s", out, re.M):
            break
        check(time.monotonic() < deadline, f"{h.name} kept {name}:\n{out}")
        time.sleep(1)
    check(re.search(rf"migrate: incoming {name} from .* failed: .*nothing kept",
                    h.output()), f"{h.name}: no 'nothing kept' line")


# ---- the tests ----

def one_way(mode, delay):
    lb = lab()
    a, b = lb.hosts
    name = f"g{mode[0]}{'b' if delay == 0 else 'i'}"
    start_guest(a, name, delay)
    rep, _ = migrate(a, lb.address(1), name, mode)
    if mode == "quick":
        check(rep["rounds"] == 1, f"quick migration took {rep['rounds']} rounds")
    verify(b, name)
    gone(a, name)
    cmd(b, f"vm destroy {name}")


def t_live_idle():
    one_way("live", IDLE_DELAY)


def t_live_busy():
    one_way("live", 0)


def t_quick_idle():
    one_way("quick", IDLE_DELAY)


def t_quick_busy():
    one_way("quick", 0)


def unencrypted(mode, name):
    lb = lab()
    a, b = lb.hosts
    start_guest(a, name, IDLE_DELAY)
    rep, out = migrate(a, lb.address(1), name, f"{mode} encrypt=off")
    check(f"{mode} unencrypted: done" in out, out)
    verify(b, name)
    gone(a, name)
    cmd(b, f"vm destroy {name}")


def t_live_unencrypted():
    """encrypt=off: the stream on a plain TCP link opened with a one-time
    token given over TLS; control stays on TLS."""
    unencrypted("live", "gu")


def t_quick_unencrypted():
    """encrypt=off, quick: the stream's throughput over the plain link."""
    unencrypted("quick", "gq")


def start_flip_relay(lb, dst, *args):
    """tests/lab/mig_flip_relay.py on the bridge's address, in front of dst."""
    log = open(os.path.join(CFG.logdir, "mig_flip_relay.log"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", lb.ns, sys.executable,
                          os.path.join(REPO, "tests", "lab", "mig_flip_relay.py"),
                          netlab.BRIDGE_ADDR, "7024", dst, "7024", *args],
                         stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1)
    check(p.poll() is None, f"the relay exited: {open(log.name).read()}")
    return p, log


def relayed_move(lb, a, name, relay_args, timeout):
    """A quick encrypt=off move of name from a to B through the relay;
    the source's final status and what the relay logged."""
    p, log = start_flip_relay(lb, lb.address(1), *relay_args)
    try:
        out = cmd(a, f"migrate {name} {netlab.BRIDGE_ADDR} quick encrypt=off "
                     f"timeout={timeout}")
        check(re.search(rf"^migrating {name} to ", out, re.M), out)
        out = wait_status(a, r"outgoing: .*: (done|failed|cancelled)", timeout * 2)
    finally:
        p.kill()
        p.wait()
        log.close()
    return out, open(log.name).read()


def t_unencrypted_page_flipped():
    """Issue #17: an on-path relay on the encrypt=off data link flips one
    byte of a page and fixes its CRC32C and the record CRC chain.  The
    destination refuses the record by its MAC, keeps nothing, and the
    source keeps the guest running, whole."""
    lb = lab()
    a, b = lb.hosts
    start_guest(a, "fl", IDLE_DELAY)
    out, relay = relayed_move(lb, a, "fl", (), 120)
    print("  relay: " + "; ".join(relay.split("\n")[:4]), flush=True)
    check(re.search(r"^FLIPPED page \d+", relay, re.M), f"the relay flipped nothing:\n{relay}")
    check(re.search(r"outgoing: fl .*: failed: .*record MAC mismatch", out),
          f"the altered page was not refused by its MAC:\n{out}")
    dst_clean(b, "fl")
    check(re.search(r"incoming fl from [\d.:]+ failed: record \d+ \(RAM\) at byte \d+: "
                    r"record MAC mismatch", b.output()), "no MAC reason on the destination")
    verify(a, "fl")
    cmd(a, "vm destroy fl")


def t_unencrypted_data_link_other_address():
    """Issue #17: the data link is taken only from the TLS peer's address.
    A relay passes TLS on from the bridge's address and opens the data link
    (with the right token) from a second one: the destination refuses it,
    the migration fails and the guest keeps running on the source."""
    lb = lab()
    a, b = lb.hosts
    other = f"{netlab.SUBNET}.253"
    subprocess.run(["ip", "-n", lb.ns, "addr", "replace", f"{other}/{netlab.PREFIX}",
                    "dev", "br0"], check=True)
    start_guest(a, "ob", IDLE_DELAY)
    try:
        out, relay = relayed_move(lb, a, "ob", ("--page-nth", "0", "--data-from", other),
                                  60)
    finally:
        subprocess.run(["ip", "-n", lb.ns, "addr", "del", f"{other}/{netlab.PREFIX}",
                        "dev", "br0"], check=False)
    check(re.search(rf"^RELAY .* -> {re.escape(lb.address(1))}:7025", relay, re.M),
          f"the relay never opened the data link:\n{relay}")
    check(re.search(r"outgoing: ob .*: failed: ", out), f"not refused:\n{out}")
    check(re.search(rf"refused a data link from {re.escape(other)}:\d+: ob came over TLS "
                    rf"from {re.escape(netlab.BRIDGE_ADDR)}", b.output()),
          "no refusal by address on the destination")
    dst_clean(b, "ob")
    verify(a, "ob")
    cmd(a, "vm destroy ob")


def t_back_and_forth():
    lb = lab()
    hosts = lb.hosts
    start_guest(hosts[0], "bf", IDLE_DELAY)
    t0 = time.monotonic()
    for i in range(BACK_AND_FORTH):
        src, dst = hosts[i % 2], hosts[(i + 1) % 2]
        rep, _ = migrate(src, lb.address((i + 1) % 2), "bf")
        verify(dst, "bf", settle=0.5)
        gone(src, "bf")
        # Every live move says what it expected the stop to cost; from
        # a host's second move to the same peer on, the fixed part is
        # the one measured on that link, not the prior (earlier tests
        # on the same lab may have measured it sooner).
        check("estimated" in rep, f"move {i + 1}: no estimate in migrate status")
        check(i < 2 or rep["fixed_from"] == "measured", f"move {i + 1}: fixed "
              f"part from {rep['fixed_from']}, not measured on this link")
    print(f"  {BACK_AND_FORTH} migrations in {time.monotonic() - t0:.0f} s", flush=True)
    cmd(hosts[BACK_AND_FORTH % 2], "vm destroy bf")


def t_from_ternctl():
    """ternctl starts a migration, follows it and exits 0 with the report."""
    lb = lab()
    a, b = lb.hosts
    start_guest(b, "tc", IDLE_DELAY)
    r = subprocess.run(["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(1),
                        "--secret-file", lb.secret_path, "migrate", "tc", lb.address(0)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=300)
    check(r.returncode == 0 and "report: total" in r.stdout,
          f"ternctl migrate: rc {r.returncode}\n{r.stdout}\n{r.stderr}")
    verify(a, "tc")
    gone(b, "tc")
    r = subprocess.run(["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(0),
                        "--secret-file", lb.secret_path, "migrate", "tc", "10.77.0.99",
                        "timeout=15"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    check(r.returncode == 1 and re.search(r": failed: ", r.stdout),
          f"ternctl migrate to nowhere: rc {r.returncode}\n{r.stdout}\n{r.stderr}")
    verify(a, "tc")
    cmd(a, "vm destroy tc")


def cancel_case(args, phase_re, name):
    lb = lab()
    a, b = lb.hosts
    start_guest(a, name, IDLE_DELAY)
    out = cmd(a, f"migrate {name} {lb.address(1)} {args}")
    check(re.search(r"^migrating ", out, re.M), out)
    if phase_re:
        wait_status(a, rf"outgoing: .*: {phase_re}", 60)
        time.sleep(1)
    out = cmd(a, "migrate cancel")
    check("migration cancelled" in out, out)
    out = cmd(a, "migrate status")
    check(re.search(r"outgoing: .*: cancelled: cancelled by the operator", out), out)
    verify(a, name)
    return lb, a, b


def t_cancel_preflight():
    lb = lab()
    a, b = lb.hosts
    start_guest(a, "cp", IDLE_DELAY)
    # Both lines in one go: the cancel runs while the TLS handshake is
    # still under way.
    r = subprocess.run(["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(0),
                        "--secret-file", lb.secret_path],
                       input=f"migrate cp {lb.address(1)}\nmigrate status\nmigrate cancel\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    check(r.returncode == 0, f"ternctl: {r.stdout}\n{r.stderr}")
    check(re.search(r"outgoing: .*: (connecting|pre-flight)", r.stdout),
          f"cancel did not land in pre-flight:\n{r.stdout}")
    check("migration cancelled" in r.stdout, r.stdout)
    verify(a, "cp")
    time.sleep(2)
    gone(b, "cp")
    cmd(a, "vm destroy cp")


def t_cancel_precopy():
    lb, a, b = cancel_case("live bandwidth=2", "pre-copy", "cc")
    dst_clean(b, "cc")
    cmd(a, "vm destroy cc")


def t_cancel_stopcopy():
    lb, a, b = cancel_case("quick bandwidth=2", "stop-and-copy", "cs")
    dst_clean(b, "cs")
    cmd(a, "vm destroy cs")


def t_link_cut_precopy():
    lb = lab()
    a, b = lb.hosts
    start_guest(a, "lc", IDLE_DELAY)
    out = cmd(a, f"migrate lc {lb.address(1)} live bandwidth=4")
    check(re.search(r"^migrating ", out, re.M), out)
    wait_status(a, r"outgoing: .*: pre-copy", 60)
    time.sleep(1)
    netlab._ip("-n", lb.ns, "link", "set", "tap1", "down")
    try:
        out = wait_status(a, r"outgoing: .*: (failed|done)", 60)
        check(re.search(r": failed: the link stalled", out), out)
        verify(a, "lc")
    finally:
        netlab._ip("-n", lb.ns, "link", "set", "tap1", "up")
    dst_clean(b, "lc")
    cmd(a, "vm destroy lc")


def t_dest_killed_stopcopy():
    """Last on the shared lab: it kills host B."""
    lb = lab()
    a, b = lb.hosts
    start_guest(a, "dk", IDLE_DELAY)
    out = cmd(a, f"migrate dk {lb.address(1)} quick bandwidth=2")
    check(re.search(r"^migrating ", out, re.M), out)
    wait_status(a, r"outgoing: .*: stop-and-copy", 60)
    time.sleep(1)
    _sessions.pop(id(b)).close()
    b.stop()
    out = wait_status(a, r"outgoing: .*: (failed|done)", 60)
    check(re.search(r": failed: ", out), out)
    verify(a, "dk")
    cmd(a, "vm destroy dk")
    stop_labs()


def t_preflight_refusals():
    """A: source.  B: too little memory.  C: another CPU model.  D: another key."""
    stop_labs()
    lb = netlab.NetLab(hosts=4, esp_dir=CFG.esp, logdir=CFG.logdir, mem="512M",
                       host_opts={1: {"mem": "160M"}, 2: {"cpu": "max"}},
                       secrets={3: "not-the-lab-secret"})
    _lab["refusals"] = lb
    lb.start()
    lb.wait_prompts(180)
    lb.secret_path = lb.secret_file()
    for h in lb.hosts:
        h.lab = lb
    a = lb.hosts[0]
    cmd(a, 'vm create big mem=192M kernel=guests/migverify.elf cmdline="delay=20000"')
    cmd(a, "vm start big")
    cases = [(1, r"the destination refused: not enough memory: the guest needs \d+ MiB, "
                 r"\d+ MiB free"),
             (2, r"the destination refused: CPU differs at CPUID leaf"),
             (3, r"cannot connect or authenticate")]
    for i, want in cases:
        out = cmd(a, f"migrate big {lb.address(i)}")
        check(re.search(r"^migrating ", out, re.M), out)
        out = wait_status(a, r"outgoing: .*: (failed|done)", 60)
        check(re.search(want, out), f"to {lb.hosts[i].name}: want {want!r}:\n{out}")
        if i != 3:  # D does not share the key: its console is closed to us
            gone(lb.hosts[i], "big")
        verify(a, "big")
    stop_labs()


def loopback_case(h, mem, mode, timeout):
    """One host migrates a guest to itself (127.0.0.1, as= a new name):
    the whole path, vendor back end included, on one machine.  Serial
    console only (no NIC needed); log_level warn keeps it quiet."""
    out = h.command(f'vm create lb mem={mem} kernel=guests/migverify.elf '
                    f'cmdline="delay={IDLE_DELAY}"', timeout=timeout)
    check("vm lb created" in out, out)
    out = h.command("vm start lb", timeout=timeout)
    check("running on CPU" in out, out)
    deadline = time.monotonic() + timeout * 3
    while not re.search(r"memcheck PASS .*pass=([2-9]|\d\d)", h.command("vm memcheck lb",
                                                                          timeout=timeout)):
        check(time.monotonic() < deadline, "lb never finished pass 1")
        time.sleep(1)
    out = h.command(f"migrate lb 127.0.0.1 as=lb2 {mode}", timeout=timeout)
    check(re.search(r"^migrating lb to 127\.0\.0\.1:7024", out, re.M), out)
    deadline = time.monotonic() + timeout * 6
    while True:
        out = h.command("migrate status", timeout=timeout)
        if re.search(r"outgoing: .*: (done|failed|cancelled)", out):
            break
        check(time.monotonic() < deadline, f"loopback migration did not end:\n{out}")
        time.sleep(2)
    check(re.search(r"outgoing: lb to 127\.0\.0\.1, .*: done", out), out)
    check(re.search(r"incoming: lb2 from 127\.0\.0\.1:\d+: resumed", out), out)
    print("  " + re.search(r"report: .*", out).group(0), flush=True)
    out = h.command("vm list", timeout=timeout)
    check(re.search(r"^lb2\s+running", out, re.M) and not re.search(r"^lb\s", out, re.M),
          f"after the loopback migration:\n{out}")
    p1 = re.search(r"memcheck PASS .*pass=(\d+) boundary=(\d+)",
                   h.command("vm memcheck lb2", timeout=timeout))
    time.sleep(3)
    p2 = re.search(r"memcheck PASS .*pass=(\d+) boundary=(\d+)",
                   h.command("vm memcheck lb2", timeout=timeout))
    check(p1 and p2 and tuple(map(int, p2.groups())) > tuple(map(int, p1.groups())),
          f"lb2 not whole or not running: {p1 and p1.group(0)} / {p2 and p2.group(0)}")
    h.command("vm destroy lb2", timeout=timeout)


def secret_esp(tmp):
    """A copy of the ESP whose tern.cfg has a secret (migration needs one)."""
    esp = os.path.join(tmp, "esp")
    shutil.copytree(CFG.esp, esp)
    with open(os.path.join(esp, "tern", "tern.cfg"), "w") as f:
        f.write(netlab.host_config("tern-solo", "dhcp", netlab.DEFAULT_SECRET,
                                   log_level="warn"))
    return esp


def nic_mac(h, name):
    out = cmd(h, f"vm info {name}")
    m = re.search(r"virtio-net pci \S+, mac ([0-9a-f:]{17})", out)
    check(m, f"{h.name}: no NIC in vm info {name}:\n{out}")
    return m.group(1)


def t_nic_auto_renamed():
    """nic=auto derives the MAC from the VM's name; a guest migrated
    under another name (as=) keeps the MAC its driver and its peers
    know (the stream's CONFIG names the MAC itself)."""
    lb = lab()
    a, b = lb.hosts
    start_guest(a, "gm", IDLE_DELAY, "nic=auto")
    mac = nic_mac(a, "gm")
    migrate(a, lb.address(1), "gm", "as=gm2")
    verify(b, "gm2")
    gone(a, "gm")
    got = nic_mac(b, "gm2")
    check(got == mac, f"the NIC's MAC changed across the move: {mac} on "
          f"{a.name}, {got} on {b.name}")
    print(f"  gm (nic=auto, {mac}) -> gm2 on {b.name}: same MAC", flush=True)
    cmd(b, "vm destroy gm2")


def t_loopback():
    with tempfile.TemporaryDirectory(prefix="ternlab-mig-") as tmp:
        h = ternlab.QemuHost(secret_esp(tmp), name="solo", mem="512M", smp=3,
                             logdir=CFG.logdir)
        with h:
            h.expect(r"tern> ", 120)
            loopback_case(h, GUEST_MEM, "live", 60)


def t_loopback_bochs():
    with tempfile.TemporaryDirectory(prefix="ternlab-mig-") as tmp:
        h = ternlab.BochsHost(secret_esp(tmp), name="solo-vmx", cpu_model=CFG.bochs,
                              mem_mb=320, cpus=3, logdir=CFG.logdir)
        with h:
            h.expect(r"tern> ", 300)
            out = h.command("status", timeout=120)
            check("Intel VT-x" in out, out)
            loopback_case(h, "8M", "live encrypt=off", 120)


# ---- strangers on the console and migration ports (issue #17 item 3) ----

CONSOLE_PORT = 7023
MIGRATE_PORT = 7024


def idle_peers(lb, addr, port, n, src=None):
    """n TCP connections from the namespace that never speak: a process
    that holds them open (whatever the host does with them) until killed."""
    bind = f", source_address=('{src}', 0)" if src else ""
    code = (f"import socket, time\n"
            f"s = [socket.create_connection(('{addr}', {port}), timeout=10{bind})"
            f" for _ in range({n})]\n"
            f"print('open', len(s), flush=True)\n"
            f"time.sleep(600)\n")
    p = subprocess.Popen(["ip", "netns", "exec", lb.ns, sys.executable, "-c", code],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != f"open {n}":
        p.kill()
        raise ternlab.TestFailure(f"idle peers to {addr}:{port}: {line!r} "
                                  f"{p.stderr.read()[-500:]}")
    return p


def ternctl_once(lb, i, args, timeout=60):
    return subprocess.run(["ip", "netns", "exec", lb.ns, TERNCTL, "--host", lb.address(i),
                           "--secret-file", lb.secret_path, "--timeout", "30", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def handshake_ms(h, since):
    """The network console's handshake times logged since an offset."""
    return [int(x) for x in re.findall(r"netcon: \S+: authenticated \(\S+\) in (\d+) ms",
                                       h.output()[since:])]


def t_strangers_no_lockout():
    """Nine idle TCP connections to the console port and one to the
    migration port, all still open: an operator's fresh ternctl is served
    at once and a migration goes through (they used to hold every console
    slot for 10 s and the one incoming-migration slot for 15 s)."""
    lb = lab()
    a, b = lb.hosts
    start_guest(a, "sx", IDLE_DELAY)
    mark_a, mark_b = len(a.output()), len(b.output())
    peers = []
    try:
        peers.append(idle_peers(lb, lb.address(1), CONSOLE_PORT, 9))
        peers.append(idle_peers(lb, lb.address(1), MIGRATE_PORT, 1))
        t0 = time.monotonic()
        r = ternctl_once(lb, 1, ["netcon"])
        dt = time.monotonic() - t0
        failed = []
        if r.returncode != 0 or "network console: TCP port" not in r.stdout:
            failed.append(f"the operator was kept out by idle peers (rc {r.returncode}, "
                          f"{dt:.1f} s):\n{r.stdout}{r.stderr}")
        waiting = len(re.findall(r"^\d+\s+10\.77\.0\.254:\d+\s+handshake ", r.stdout, re.M))
        print(f"  operator: rc {r.returncode} after {dt:.1f} s with 9 idle console peers; "
              f"{waiting} of them pending", flush=True)
        if waiting > 3:
            failed.append(f"{waiting} handshakes pending from one address:\n{r.stdout}")
        # The migration too, while the idle peer holds its link to B open.
        try:
            migrate(a, lb.address(1), "sx", "quick", timeout=240)
        except ternlab.TestFailure as e:
            failed.append(f"the migration was kept out by an idle peer: {e}")
        check(not failed, "\n".join(failed))
        check(all(p.poll() is None for p in peers), "an idle peer's process ended")
        verify(b, "sx")
        gone(a, "sx")
        cmd(b, "vm destroy sx")
        # The newcomers evicted the oldest idle peers of their address.
        wait_log(b, r"W netcon: dropped 10\.77\.0\.254:\d+: no TLS handshake after \d+ ms",
                 20, mark_b)
        # Refusals beyond the burst are counted, not logged one by one.
        wait_log(b, r"W netcon: (\d+ more refusals not logged|.*\(\d+ more refusals "
                 r"not logged\))", 30, mark_b)
        ms_ = handshake_ms(b, mark_b) + handshake_ms(a, mark_a)
        if ms_:
            print(f"  console TLS handshakes here: {min(ms_)}..{max(ms_)} ms", flush=True)
    finally:
        for p in peers:
            p.kill()
            p.wait()


def t_allow_list():
    """console_allow / migrate_allow: a peer not on the list is dropped at
    accept (no TLS work); a listed peer is served."""
    stop_labs()
    cfg = "console_allow = 10.77.0.254, 10.77.0.2\nmigrate_allow = 10.77.0.0/30\n"
    lb = netlab.NetLab(hosts=2, esp_dir=CFG.esp, logdir=CFG.logdir, mem="512M",
                       extra_cfg={0: cfg})
    _lab["allow"] = lb
    lb.start()
    lb.wait_prompts(120)
    lb.secret_path = lb.secret_file()
    for h in lb.hosts:
        h.lab = lb
    a, b = lb.hosts
    wait_log(a, r"netcon: listening on TCP port 7023 .*console_allow set", 30)
    subprocess.run(["ip", "-n", lb.ns, "addr", "add", "10.77.0.253/24", "dev", "br0"],
                   check=True)
    mark = len(a.output())
    probe = """
import socket, sys, time
t = time.monotonic()
try:
    s = socket.create_connection(("{addr}", {port}), timeout=10,
                                 source_address=("{src}", 0))
    s.settimeout(8)
    d = s.recv(1)
    how = "eof" if not d else "data"
except socket.timeout:
    how = "open"
except OSError as e:
    how = type(e).__name__
print(how, round(time.monotonic() - t, 1))
"""

    def run_probe(port, src):
        r = subprocess.run(["ip", "netns", "exec", lb.ns, sys.executable, "-c",
                            probe.format(addr=lb.address(0), port=port, src=src)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        return (r.stdout.strip() or r.stderr.strip()[-300:])

    got = run_probe(CONSOLE_PORT, "10.77.0.253")
    check(re.match(r"(eof|ConnectionResetError) [0-2]\.\d$", got),
          f"console from 10.77.0.253 (not listed): {got}")
    wait_log(a, r"W netcon: refused 10\.77\.0\.253:\d+: not on console_allow", 20, mark)
    got = run_probe(MIGRATE_PORT, "10.77.0.254")
    check(re.match(r"(eof|ConnectionResetError) [0-2]\.\d$", got),
          f"migration port from 10.77.0.254 (not listed): {got}")
    wait_log(a, r"W migrate: refused a connection from 10\.77\.0\.254:\d+: not on "
             r"migrate_allow", 20, mark)
    check(not re.search(r"tls: |authenticated", a.output()[mark:]),
          f"TLS work for a peer not on the list:\n{a.output()[mark:]}")
    # Listed peers: the operator (10.77.0.254) and host B migrating in.
    r = ternctl_once(lb, 0, ["version"])
    check(r.returncode == 0, f"listed operator refused: {r.stdout}{r.stderr}")
    start_guest(b, "al", IDLE_DELAY)
    migrate(b, lb.address(0), "al", "quick", timeout=240)
    verify(a, "al")
    cmd(a, "vm destroy al")


TESTS = [
    ("live_idle", t_live_idle),
    ("live_busy", t_live_busy),
    ("quick_idle", t_quick_idle),
    ("quick_busy", t_quick_busy),
    ("live_unencrypted", t_live_unencrypted),
    ("quick_unencrypted", t_quick_unencrypted),
    ("unencrypted_page_flipped", t_unencrypted_page_flipped),
    ("unencrypted_data_link_other_address", t_unencrypted_data_link_other_address),
    ("from_ternctl", t_from_ternctl),
    ("cancel_preflight", t_cancel_preflight),
    ("cancel_precopy", t_cancel_precopy),
    ("cancel_stopcopy", t_cancel_stopcopy),
    ("link_cut_precopy", t_link_cut_precopy),
    ("loopback_as_new_name", t_loopback),
    ("nic_auto_renamed", t_nic_auto_renamed),
    ("back_and_forth", t_back_and_forth),
    ("dest_killed_stopcopy", t_dest_killed_stopcopy),
    ("preflight_refusals", t_preflight_refusals),
    ("strangers_no_lockout", t_strangers_no_lockout),
    ("allow_list", t_allow_list),
]


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--bochs", metavar="MODEL",
                    help="Intel VT-x under Bochs: the loopback migration only")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    tests = [(f"vmx_loopback_{CFG.bochs}", t_loopback_bochs)] if CFG.bochs else TESTS
    chosen = [(n, fn) for n, fn in tests if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    ternlab.require_tool("ip", "iproute2")
    if not os.access(TERNCTL, os.X_OK):
        raise ternlab.LabError(f"{TERNCTL} missing: run make")
    return ternlab.run_suite(chosen, CFG.logdir, stop_labs)


if __name__ == "__main__":
    sys.exit(main())
