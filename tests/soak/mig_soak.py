#!/usr/bin/env python3
"""mig_soak: migrations back and forth between two lab hosts with faults
injected at random, checking after every one that nothing was lost.

    python3 tests/soak/mig_soak.py [-n 1000] [--seed S] [--esp build/esp]
                                   [--faults live,quick,cancel,cut,kill,hostile]

Not a test in `make test`: a soak, for hours.  The guest is the
migration-verification guest (it checks every page before each store and
`vm memcheck` checks the counters' shape from outside).  Each iteration
picks one of:

  live, quick   a plain migration to the other host;
  cancel        `migrate cancel` at a random moment (connecting, pre-copy,
                stop-and-copy, or too late: then the move completes);
  cut           the destination's link down for 1-15 s during pre-copy
                (short cuts recover: TCP retransmits; long ones fail);
  kill          the destination's QEMU killed at a random moment, then
                booted again (after COMMIT the guest's only copy died with
                it: the source's paused copy is resumed with `vm resume
                NAME force`, the operator's way out, and counted);
  hostile       a TLS client sends the destination garbage first, then a
                plain live migration follows.

After each: the guest runs on exactly one host; memcheck passes and makes
progress there; no MIGVERIFY FAIL; neither host has a migration under
way; and each host's free memory, every time it is back in the same role
(holding the guest or not), is within 1 MiB of what it was the third time
once it has finished a move both as source and as destination since its
boot (the first moves allocate buffers kept for the next ones).  The first
broken invariant stops the soak with the logs kept; the end prints the
counts per fault and outcome.
"""

import argparse
import collections
import os
import random
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
import ternlab  # noqa: E402
import netlab  # noqa: E402
import migrate_tests as mt  # noqa: E402

GUEST = "soak"
FAULTS = ("live", "quick", "cancel", "cut", "kill", "hostile")
MIG_PORT = 7024
WARMUP = 3
check = ternlab.check


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.counts = collections.Counter()
        self.free = {}          # (host index, holds guest) -> MiB after warm-up
        self.seen = collections.Counter()
        # Since its boot, has the host finished a move as source and as
        # destination?  Each side allocates buffers it keeps on its first
        # move (the destination's record buffer, TLS, the decoder).
        self.done_as = {0: set(), 1: set()}
        self.lb = None
        self.at = 0             # index of the host running the guest

    # ---- lab ----
    def start(self):
        self.lb = mt.lab()
        mt.start_guest(self.lb.hosts[0], GUEST, mt.IDLE_DELAY)
        self.at = 0

    def host(self, i):
        return self.lb.hosts[i]

    def restart(self, i):
        """Host i's QEMU killed (by PID, through its own stop) and booted
        again with the same ESP and address."""
        h = self.lb.hosts[i]
        s = mt._sessions.pop(id(h), None)
        if s:
            s.close()
        h.stop()
        shutil.rmtree(os.path.join(self.lb.tmpdir, f"esp-{h.name}"), ignore_errors=True)
        nh = self.lb._start_host(i)
        nh.lab = self.lb
        self.lb.hosts[i] = nh
        nh.expect(nh.prompt, 180)
        # A fresh boot warms up again: its memory baselines start over.
        for key in [k for k in self.seen if k[0] == i]:
            self.seen.pop(key)
            self.free.pop(key, None)
        self.done_as[i] = set()

    # ---- checks ----
    def where(self):
        rows = []
        for i in (0, 1):
            out = mt.cmd(self.host(i), "vm list")
            m = re.search(rf"^{GUEST}\s+(\S+)", out, re.M)
            rows.append(m.group(1) if m else None)
        return rows

    def invariants(self, what):
        rows = self.where()
        running = [i for i in (0, 1) if rows[i] == "running"]
        check(len(running) == 1, f"{what}: the guest is {rows[0]!r} on A and "
              f"{rows[1]!r} on B (exactly one must run it)")
        self.at = running[0]
        other = 1 - self.at
        check(rows[other] is None, f"{what}: a stale copy ({rows[other]}) on "
              f"{self.host(other).name}")
        mt.verify(self.host(self.at), GUEST, settle=0.5)
        for i in (0, 1):
            st = mt.cmd(self.host(i), "migrate status")
            check(not re.search(r": (connecting|pre-flight|pre-copy|stop-and-copy|"
                                r"verifying|committed)\b", st),
                  f"{what}: {self.host(i).name} still migrating:\n{st}")
            m = re.search(r"memory: total \d+ MiB, used \d+ MiB, free (\d+) MiB",
                          mt.cmd(self.host(i), "status"))
            check(m, f"{what}: no memory line in status")
            key = (i, i == self.at)
            free = int(m.group(1))
            if self.done_as[i] != {"src", "dst"}:
                continue
            self.seen[key] += 1
            # The first moves each way allocate what stays allocated by
            # design (buffers kept for the next migration): the baseline
            # is taken once a host has been in the role WARMUP times.
            if self.seen[key] < WARMUP:
                continue
            first = self.free.setdefault(key, free)
            check(free >= first - 1, f"{what}: {self.host(i).name} has {free} MiB "
                  f"free, {first} MiB the first time in the same role: a leak")

    def wait_end(self, h, timeout=300):
        return mt.wait_status(h, r"outgoing: .*: (done|failed|cancelled)", timeout)

    def settle_dst(self, j):
        """After a failed or cancelled move the destination drops its copy."""
        deadline = time.monotonic() + 60
        while re.search(rf"^{GUEST}\s", mt.cmd(self.host(j), "vm list"), re.M):
            check(time.monotonic() < deadline, f"{self.host(j).name} kept {GUEST}")
            time.sleep(1)

    # ---- faults ----
    def start_move(self, args):
        out = mt.cmd(self.host(self.at), f"migrate {GUEST} "
                     f"{self.lb.address(1 - self.at)} {args}".strip())
        check(re.search(r"^migrating ", out, re.M), out)

    def outcome(self, st):
        m = re.search(r"outgoing: .*: (done|failed|cancelled)", st)
        return m.group(1) if m else "?"

    def f_plain(self, mode):
        mt.migrate(self.host(self.at), self.lb.address(1 - self.at), GUEST, mode)
        return "done"

    def f_cancel(self):
        j = 1 - self.at
        self.start_move(self.rng.choice(["live bandwidth=4", "quick bandwidth=4", "live"]))
        time.sleep(self.rng.uniform(0, 6))
        mt.cmd(self.host(self.at), "migrate cancel")
        res = self.outcome(self.wait_end(self.host(self.at)))
        if res != "done":
            self.settle_dst(j)
        return res

    def f_cut(self):
        j = 1 - self.at
        self.start_move("live bandwidth=4")
        mt.wait_status(self.host(self.at), r"outgoing: .*: (pre-copy|done|failed)", 60)
        time.sleep(self.rng.uniform(0, 3))
        down = self.rng.uniform(1, 15)
        netlab._ip("-n", self.lb.ns, "link", "set", f"tap{j}", "down")
        try:
            time.sleep(down)
        finally:
            netlab._ip("-n", self.lb.ns, "link", "set", f"tap{j}", "up")
        res = self.outcome(self.wait_end(self.host(self.at)))
        if res != "done":
            self.settle_dst(j)
        return f"{res} ({'short' if down < 8 else 'long'} cut)"

    def f_kill(self):
        i, j = self.at, 1 - self.at
        self.start_move(self.rng.choice(["live bandwidth=4", "quick bandwidth=4"]))
        time.sleep(self.rng.uniform(0.5, 8))
        self.restart(j)
        st = self.wait_end(self.host(i))
        res = self.outcome(st)
        if res == "done":
            # It moved, then the destination died with the only copy.
            # A real operator restarts it elsewhere; here the source has
            # nothing left, so start over.
            mt.start_guest(self.host(i), GUEST, mt.IDLE_DELAY)
            return "done, then lost with the killed host (guest restarted)"
        if re.search(rf"^{GUEST}\s+paused", mt.cmd(self.host(i), "vm list"), re.M):
            out = mt.cmd(self.host(i), f"vm resume {GUEST} force")
            check(re.search(r"resum", out), out)
            return f"{res} after COMMIT: resumed with force"
        return res

    def f_hostile(self):
        j = 1 - self.at
        garbage = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 4096)))
        first = self.rng.choice([b"", b"HELLO 1 data=tls\n", b"HELLO 9\n", b"MIGRATE x\n"])
        argv = ["ip", "netns", "exec", self.lb.ns, "openssl", "s_client", "-quiet",
                "-connect", f"{self.lb.address(j)}:{MIG_PORT}", "-tls1_2",
                "-psk_identity", "tern", "-psk", self.lb.secret.encode().hex()]
        try:
            subprocess.run(argv, input=first + garbage, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)
        mt.migrate(self.host(self.at), self.lb.address(j), GUEST, "live")
        return "done after garbage"

    def one(self, n, fault):
        t0 = time.monotonic()
        src = self.at
        if fault in ("live", "quick"):
            res = self.f_plain(fault)
        else:
            res = getattr(self, f"f_{fault}")()
        self.counts[(fault, res)] += 1
        if res.startswith("done") and "lost" not in res:
            self.done_as[src].add("src")
            self.done_as[1 - src].add("dst")
        self.invariants(f"#{n} {fault} ({res})")
        print(f"#{n:5d} {fault:8s} {res:50s} guest on {self.host(self.at).name} "
              f"({time.monotonic() - t0:.0f} s)", flush=True)

    def run(self):
        faults = self.args.faults.split(",")
        for f in faults:
            if f not in FAULTS:
                sys.exit(f"mig_soak: unknown fault {f!r} (known: {', '.join(FAULTS)})")
        self.start()
        self.invariants("start")
        t0 = time.monotonic()
        try:
            for n in range(1, self.args.n + 1):
                self.one(n, self.rng.choice(faults))
        finally:
            print(f"\nmig_soak: {sum(self.counts.values())} iterations in "
                  f"{time.monotonic() - t0:.0f} s, seed {self.args.seed}")
            print("| fault | outcome | count |\n|---|---|---:|")
            for (f, r), c in sorted(self.counts.items()):
                print(f"| {f} | {r} | {c} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "soak-logs"))
    ap.add_argument("--faults", default=",".join(FAULTS))
    args = ap.parse_args()
    mt.CFG = argparse.Namespace(esp=os.path.abspath(args.esp),
                                logdir=os.path.abspath(args.logdir), only=None,
                                bochs=None, list=False)
    os.makedirs(mt.CFG.logdir, exist_ok=True)
    ternlab.require_tool("openssl", "openssl")
    soak = Soak(args)
    try:
        soak.run()
    except ternlab.TestFailure as e:
        print(f"mig_soak: FAILED: {e}\nmig_soak: logs in {mt.CFG.logdir}", file=sys.stderr)
        return 1
    finally:
        mt.stop_labs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
