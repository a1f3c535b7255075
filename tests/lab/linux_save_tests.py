#!/usr/bin/env python3
"""Quick migration through shared storage (issue 15): `vm save lm
to=save` on tern-a writes the running Debian guest (256 MiB, vcpus=2
disk=sys nic=auto) to a LUN both hosts attach, tern-a's QEMU is then
killed (the saving host dies), and `vm restore lm from=save` on tern-b
starts it there.

The lab is linux_mig_tests.py's (tern-a, tern-b, tgtd with "sys"
attached on both), with one more target of our own: "save" (tid 3,
320 MiB: a 256 MiB guest's worst-case stream), attached on both hosts.
Its helpers check the guest across the move: SeqClient (a TCP stream
from seqsrv, connected before the save, must go on in order), dwriter's
fdatasync'ed records (whole on tgtd's file), and the reservation of
"sys" (tern-b holds it after the restore).

Tests: refusals (no save on the disk yet, the guest's own disk, a disk
too small, no to=); the save on A, A killed, the restore on B, a second
restore refused, a corrupt stream and a corrupt header refused with
nothing kept (last: it stops the lab).  One lab, one boot of the guest.

    python3 tests/lab/linux_save_tests.py [--only REGEX] [--list]
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
import linux_tests  # noqa: E402
import linux_io_tests as lio  # noqa: E402
import linux_mig_tests as lm  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VM, VM_ADDR = lm.VM, lm.VM_ADDR
SAVE_TID, SAVE_NAME, SAVE_MIB = 3, "save", 320
SAVE_TIMEOUT = 900              # a 256 MiB guest under emulation, both ways
CFG = None
TESTS = []
check = ternlab.check

# Our LUN joins the lab's targets before the lab starts (Lab.start makes
# every target of lio.TARGETS).
lio.TARGETS.setdefault(SAVE_TID, (SAVE_NAME, SAVE_MIB))


def test(fn):
    TESTS.append((fn.__name__, fn))
    return fn


def lab():
    """linux_mig_tests' lab, with "save" attached on both hosts."""
    lb = lm.lab()
    if not getattr(lb, "save_ready", False):
        check(SAVE_TID in lio.TARGETS, "the save LUN is not among the lab's targets")
        for h in lb.net.hosts:
            lio.attach(h, SAVE_NAME, SAVE_TID)
        lb.save_ready = True
    return lb


def con(i):
    return lab().cons[i]


def save_status(i, timeout):
    """Poll `vm save status` on host i until the save or restore is done
    or failed; (done?, the output)."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = con(i).run("vm save status")
        m = re.search(r"^(save|restore): .*?: (done|failed)", out, re.M)
        if m:
            return m.group(2) == "done", out
        time.sleep(1)
    raise ternlab.TestFailure(f"tern-{'ab'[i]}: no end in `vm save status` within "
                              f"{timeout} s:\n{out}")


def report(out):
    m = re.search(r"report: (?:saved|restored) in (\d+) ms, (\d+) bytes, (\d+) MiB of RAM",
                  out)
    check(m, f"no report line:\n{out}")
    return tuple(map(int, m.groups()))


def header_state():
    """The save area's header on tgtd's file: (magic ok, state)."""
    with open(lab().tgt.luns[(SAVE_TID, 1)], "rb") as f:
        b = f.read(16)
    return b[:8] == b"TERNSAVE", int.from_bytes(b[10:12], "little")


@test
def save_refusals():
    """Before any save: a restore from the save LUN is refused (no save
    there) and leaves nothing on tern-b; `vm save` to the guest's own
    disk, to a disk too small for the guest, or without to= is refused
    and the guest runs on."""
    lab()
    lm.home()
    out = con(1).run(f"vm restore {VM} from={SAVE_NAME}")
    check(re.search(rf"^restoring {VM} from {SAVE_NAME}", out, re.M), f"vm restore:\n{out}")
    done, out = save_status(1, 60)
    check(not done and "no save on this disk" in out, f"restore of an empty LUN:\n{out}")
    check(not lm.has_vm(1), f"tern-b kept something:\n{con(1).run('vm list')}")
    out = con(0).run(f"vm save {VM} to=sys")
    check(out.startswith("error:") and "held by VM" in out, f"vm save to=sys:\n{out}")
    lio.attach(lab().net.hosts[0], "other", 2)      # lio.TARGETS: 32 MiB
    out = con(0).run(f"vm save {VM} to=other")
    check(out.startswith("error:") and "may need" in out, f"vm save to a small disk:\n{out}")
    out = con(0).run(f"vm save {VM}")
    check(out.startswith("error:") and "to=DISK" in out, f"vm save without to=:\n{out}")
    out = con(0).run(f"vm restore {VM} from={SAVE_NAME}")
    check(out.startswith("error:") and "exists here" in out, f"restore over a VM:\n{out}")
    check(lm.has_vm(0) == "running", f"{VM} after the refusals: {lm.has_vm(0)}")
    print("  refusals: " + re.search(r"^restore: .*", save_status(1, 5)[1], re.M).group(0),
          flush=True)


@test
def save_a_kill_a_restore_b():
    """`vm save lm to=save` on tern-a while seqsrv streams to the
    namespace and dwriter writes; tern-a's QEMU is killed; `vm restore lm
    from=save` on tern-b: the guest runs there, the TCP stream goes on in
    order, dwriter's records are whole, tern-b holds sys's reservation,
    and a second restore of the same save is refused.  Last: tern-a is
    gone afterwards, so the lab is stopped at the end."""
    lb = lab()
    lm.home()
    with lm.gsh(0) as g:
        lm.start_seqsrv(g)
        run = lm.start_dwriter(g)
    cl = lm.SeqClient(lb.net.ns, VM_ADDR, idle=SAVE_TIMEOUT)
    try:
        check(cl.wait_connected() is None, f"the client: {cl.final}")
        time.sleep(3)
        with lm.gsh(0) as g:
            st0 = lm.dwriter_status(g)
        rec0 = cl.status()["records"]
        check(rec0 > 0, f"no records before the save: {cl.status()}")

        out = con(0).run(f"vm save {VM} to={SAVE_NAME}", 60)
        check(re.search(rf"^saving {VM} to {SAVE_NAME}", out, re.M), f"vm save:\n{out}")
        done, out = save_status(0, SAVE_TIMEOUT)
        check(done, f"the save failed:\n{out}\n{con(0).run('log 30')}")
        save_ms, save_bytes, mem_mib = report(out)
        check(not lm.has_vm(0), f"tern-a still has {VM} after the save:\n"
              f"{con(0).run('vm list')}")
        ok, state = header_state()
        check(ok and state == 1, f"the save area's header: magic {ok}, state {state}")

        hb = lb.net.hosts[0]
        hb._kill()          # SIGKILL to tern-a's QEMU: the saving host dies
        hb.stop()

        out = con(1).run(f"vm restore {VM} from={SAVE_NAME}", 60)
        check(re.search(rf"^restoring {VM} from {SAVE_NAME}", out, re.M),
              f"vm restore:\n{out}")
        done, out = save_status(1, SAVE_TIMEOUT)
        check(done, f"the restore failed:\n{out}\n{con(1).run('log 30')}")
        rest_ms, rest_bytes, _ = report(out)
        info = con(1).run(f"vm info {VM}")
        check(re.search(r"^state: running", info, re.M) and "vda: virtio-blk" in info and
              "net0: virtio-net" in info, f"tern-b after the restore:\n{info}")
        ok, state = header_state()
        check(ok and state == 2, f"the header after the restore: magic {ok}, state {state}")

        # The TCP stream goes on (TCP's retransmission backs off while the
        # guest was away: give it time).
        deadline = time.monotonic() + 120
        st = cl.status()
        while time.monotonic() < deadline and st["ended"] is None and st["records"] <= rec0 + 50:
            time.sleep(2)
            st = cl.status()
        check(st["ended"] is None and st["records"] > rec0 + 50,
              f"the stream after the restore: {st}")
        with lm.gsh(1) as g:
            st1 = lm.dwriter_status(g)
            check(st1["durable"] > st0["durable"] and st1["errors"] == 0,
                  f"dwriter on tern-b: {st0} then {st1}")
            st2, dout = lm.stop_dwriter(g)
        check(st2["errors"] == 0, f"dwriter saw errors:\n{dout}")
        lm.lun_check(run, st2, "across save on A, restore on B")

        keys = con(1).run("disk keys sys", 60)
        m = re.search(r"^reservation: type \d+, holder ([0-9a-f]+) \(this host\)", keys, re.M)
        check(m, f"tern-b does not hold sys's reservation:\n{keys}")
        pr = lb.tgt.pr_keys(lm.SYS_TID, 1)
        check(pr["holder"] == int(m.group(1), 16),
              f"tgtd says the holder is {pr['holder']!r}, tern-b says {m.group(1)}")

        # The same save cannot start a second copy.
        out = con(1).run(f"vm restore lm2 from={SAVE_NAME} any")
        check(re.search(r"^restoring lm2 ", out, re.M), f"second restore:\n{out}")
        done, out = save_status(1, 60)
        check(not done and "restored already" in out, f"a second restore:\n{out}")
        check(not re.search(r"^lm2\s", con(1).run("vm list"), re.M), "lm2 exists on tern-b")

        # Hostile save areas, written into tgtd's file: a stream that fails
        # its checks (a CONFIG byte: the record CRC) and a header whose
        # CRC does not match are refused with the reason, nothing kept.
        path = lb.tgt.luns[(SAVE_TID, 1)]
        for off, what, want in ((4096 + 16 + 16 + 44, "a stream byte", "checksum mismatch"),
                                (48 + 1, "a header byte", "CRC does not match")):
            with open(path, "r+b") as f:
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ 0x20]))
            out = con(1).run(f"vm restore lm2 from={SAVE_NAME} any force")
            check(re.search(r"^restoring lm2 ", out, re.M), f"restore ({what}):\n{out}")
            done, out = save_status(1, 60)
            check(not done and want in out, f"a save with {what} changed:\n{out}")
            check(not re.search(r"^lm2\s", con(1).run("vm list"), re.M),
                  f"lm2 kept on tern-b after {what} changed")
            print("  " + re.search(r"^restore: .*", out, re.M).group(0), flush=True)
        check(lm.has_vm(1) == "running", f"{VM} on tern-b after the refusals: {lm.has_vm(1)}")

        rep = cl.stop()
        why = lm.seq_verdict(rep, rec0 + 50)
        check(why is None, f"the TCP stream across save and restore: {why}\n{rep}")
        print(f"  stream: {rep['records']} records in order, longest gap "
              f"{rep['max_gap']:.1f} s", flush=True)
        nic = getattr(lb.net, "nic", "?")
        print(f"  BENCH vm save: {save_ms} ms, {save_bytes >> 20} MiB written "
              f"({save_bytes / max(save_ms, 1) / 1000:.1f} MB/s); vm restore: {rest_ms} ms, "
              f"{rest_bytes >> 20} MiB read ({rest_bytes / max(rest_ms, 1) / 1000:.1f} MB/s); "
              f"guest RAM {mem_mib} MiB, 2 vCPUs; link: QEMU {nic} on a tap to tgtd "
              f"(no set link speed)", flush=True)
    finally:
        lm.quietly(cl.stop)
        lm.stop_labs()      # tern-a is gone: a later run gets a fresh lab


def main(argv=None):
    global CFG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="REGEX")
    ap.add_argument("--esp", default=os.path.join(REPO, "build", "esp-linux"))
    ap.add_argument("--logdir", default=os.path.join(REPO, "build", "test-logs"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--list", action="store_true")
    CFG = ap.parse_args(argv)
    CFG.esp = os.path.abspath(CFG.esp)
    CFG.logdir = os.path.abspath(CFG.logdir)
    chosen = [(n, fn) for n, fn in TESTS if not CFG.only or re.search(CFG.only, n)]
    if CFG.list:
        for name, _ in chosen:
            print(name)
        return 0
    ternlab.require_tool("ip", "iproute2")
    ternlab.require_tool("ping", "iputils-ping")
    if not os.access(lm.TERNCTL, os.X_OK):
        raise ternlab.LabError(f"{lm.TERNCTL} missing: run make")
    lm.CFG = lio.CFG = linux_tests.CFG = CFG
    return ternlab.run_suite(chosen, CFG.logdir, lm.stop_labs)


if __name__ == "__main__":
    sys.exit(main())
