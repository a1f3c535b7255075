#!/usr/bin/env python3
"""tgt: run Debian's tgtd (tgt 1.0.85) as an iSCSI target for lab tests.

Python 3 standard library only.  Needs root when netns is given (ip netns
exec) and the Debian package tgt (apt-get install tgt); the self-test also
uses libiscsi-bin.

    lab = netlab.NetLab(hosts=1, extra_cfg={0: "disk = ...\\n"}).start()
    t = Tgtd(lab.ns, "10.77.0.254:3260", workdir=lab.tmpdir).start()
    t.add_target(1, "iqn.2024-01.org.tern.lab:disk1")
    t.add_lun(1, 1, os.path.join(lab.tmpdir, "disk1.img"), 64 << 20)
    t.bind_all(1)
    ...
    t.kill(); t.restart()          # crash, then the same target again
    t.stop()

tgtd runs in the foreground (`tgtd -f -C N --iscsi portal=ADDR:PORT`),
started as `ip netns exec NS tgtd ...`; ip netns exec execs, so the PID we
hold is tgtd's own (checked at start).  Its stdout and stderr go to
WORKDIR/tgtd-N.log.  N is the control port: tgtadm talks to tgtd over the
unix socket /var/run/tgtd/socket.N (path-based, so tgtadm runs from the
root namespace) and tgtd holds a lockf() lock on socket.N.lock; a free N is
one whose files do not exist (so a stale socket of another run is never
shared).  N must fit in a C short (< 32768).  tgtd ignores SIGTERM; stop()
deletes every target (`--op delete --force`), then asks
`tgtadm --mode system --op delete` (which tgt refuses while any target
exists), waits, and SIGKILLs the PID if it is still there.  tgtd gets
PR_SET_PDEATHSIG=SIGKILL, and atexit stops every Tgtd.  tgtd leaves its
socket files behind even on a clean exit; stop() removes them.

Facts about tgt 1.0.85 (checked by --selftest where marked [t], else read
from usr/spc.c, usr/iscsi/param.c, usr/target.c):

LUNs.  Every target has LUN 0, a "controller" (peripheral type 0x0c,
  STORAGE_ARRAY_CONTROLLER, backing store null).  File LUNs are the ones
  you add, from 1 up; `--lun 0` is refused.  REPORT LUNS lists 0 and
  them.  The default SCSI ID is "IET     000T000L" (T = tid, L = lun,
  hex) and the serial "beafTL", so the same tid/lun looks the same after
  a restart.  The file is served through the rdwr backing store
  (pread/pwrite, no O_SYNC unless bsoflags=sync); READ CAPACITY(16)
  reports 512-byte blocks and 8 logical blocks per physical [t].

Digests.  tgt supports HeaderDigest and DataDigest CRC32C, default None
  for both.  `tgtadm --lld iscsi --mode target --op update --tid T --name
  HeaderDigest --value CRC32C` (or DataDigest) enables it; set_param()
  does that.  tgt cannot force a digest: the value it stores always
  includes None (digest_str_to_val starts from DIGEST_NONE), and at login
  it picks CRC32C when both sides list it, whatever the initiator's
  order, and None otherwise; an initiator offering only None still logs
  in [t].  "--value None" turns it off again.  To exercise digests, the
  initiator has to offer CRC32C.

Persistent reservations (in memory only: no APTPL, so a tgtd restart or
  kill forgets all registrations and the reservation [t]; READ FULL
  STATUS is not implemented).  A registration belongs to an I_T nexus
  that tgt identifies by the session's TSIH and creation time, so a new
  login (reconnect) is a new nexus: it is not registered, even with the
  same initiator name and ISID [t]; the old registration stays behind
  (it is not removed when the session ends).
  - REGISTER AND IGNORE EXISTING KEY (service action 6): on a registered
    nexus sets the key (0 unregisters), on an unregistered one registers
    the key; never a conflict.  Plain REGISTER with a wrong key on a
    registered nexus, or with a non-zero key on an unregistered one, gets
    RESERVATION CONFLICT.  tgt does not stop two nexuses registering the
    same key [t].
  - RESERVE needs a registered nexus (else RESERVATION CONFLICT); with no
    reservation it takes it; a second RESERVE by the holder with the same
    type is GOOD, by anyone else CONFLICT.  The key field is not checked
    by RESERVE.  NB: type 6 is Exclusive Access - Registrants Only; Write
    Exclusive - Registrants Only is type 5 (SPC-4 table: 1 WE, 3 EA,
    5 WE-RO, 6 EA-RO, 7 WE-AR, 8 EA-AR).  Under 5 and 6 every registrant
    may read and write; a non-registrant gets RESERVATION CONFLICT for
    writes under 5 and for reads too under 6 [t] (by the source also for
    SYNCHRONIZE CACHE and MODE SENSE/SELECT under both).
  - PREEMPT (service action 4; PREEMPT AND ABORT is not implemented and
    gets ILLEGAL REQUEST): the caller must be registered with the key it
    gives (else CONFLICT), and the service-action key must be registered
    by someone (else CONFLICT).  If that key's nexus holds the
    reservation (types 1/3/5/6) the caller becomes the holder with the
    type in the CDB, and every registration with that key is removed
    [t].  With no reservation, the registrations with that key are
    removed and no reservation is created [t].  With a reservation held
    by some other key, registrations with the key are removed and the
    reservation stays (source only).  Service-action key 0 is ILLEGAL REQUEST unless
    the reservation is all-registrants (7/8).
  - The preempted nexus gets UNIT ATTENTION 2A/03 (RESERVATIONS
    PREEMPTED) on its next command (any but INQUIRY, REPORT LUNS and
    REQUEST SENSE); repeated, the command then fails with status 0x18
    RESERVATION CONFLICT (no sense data) because that nexus is no longer
    registered [t].  Registrants whose reservation was released by a
    PREEMPT/RELEASE get 2A/04 (RESERVATIONS RELEASED).  A preempted host
    can REGISTER AND IGNORE EXISTING KEY again and, under 5/6, write
    again: fencing holds only while it does not re-register [t].
  - Other UNIT ATTENTIONs tgt sends: 29/00 (POWER ON, RESET) on the
    first command of every new session [t] and, after a LUN RESET, to the
    initiator that sent it (others get 2F/00, commands cleared by another
    initiator); 3F/0E (REPORTED LUNS DATA HAS CHANGED) to existing
    sessions when a LUN is added or removed.  An initiator retries the
    command after any of them.
  - tgtadm cannot show PR state; pr_keys() reads it over iSCSI
    (PERSISTENT RESERVE IN READ KEYS / READ RESERVATION) from its own
    short session.

Command line:
  python3 tests/lab/tgt.py --selftest [--keep-logs DIR]
  makes a netns terntgt-<pid> (lo only, tgtd on 127.0.0.1:3260), serves a
  64 MiB file LUN, and checks it with libiscsi-bin (iscsi-ls, iscsi-inq,
  iscsi-readcapacity16), CHAP right and wrong, mutual CHAP, digests,
  persistent reservations with two initiators, kill -9 and restart.
  Prints PASS/FAIL lines; exit status 1 on any failure.
"""

import argparse
import atexit
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlab  # noqa: E402
from iscsi_pdu import MiniInitiator, ScsiResult, parse_portal  # noqa: E402

IPC_DIR = "/var/run/tgtd"
_live = set()
_ports_taken = set()


class TgtError(ternlab.LabError):
    pass


def read_file_region(path, lba, count, block=512):
    """count blocks from block lba of a backing file (bytes)."""
    with open(path, "rb") as f:
        f.seek(lba * block)
        data = f.read(count * block)
    if len(data) < count * block:
        data += b"\0" * (count * block - len(data))   # sparse tail
    return data


def sha256_region(path, lba, count, block=512):
    return hashlib.sha256(read_file_region(path, lba, count, block)).hexdigest()


def _tcp_listening(pid, port):
    """Is anything in process pid's network namespace listening on TCP
    port?  (/proc/PID/net/tcp shows that namespace's sockets.)"""
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A" and \
                    int(parts[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _port_files(n):
    return [os.path.join(IPC_DIR, f"socket.{n}"),
            os.path.join(IPC_DIR, f"socket.{n}.lock")]


def _lock_is_free(path):
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return True
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)


def choose_control_port():
    """A control port N with no /var/run/tgtd/socket.N* files."""
    base = 1000 + (os.getpid() * 37) % 30000
    for i in range(2000):
        n = 1000 + (base - 1000 + i) % 31000
        if n in _ports_taken:
            continue
        if any(os.path.exists(p) for p in _port_files(n)):
            continue
        _ports_taken.add(n)
        return n
    raise TgtError("no free tgtd control port (too many socket.N files in "
                   f"{IPC_DIR}?)")


class Tgtd:
    """One tgtd process, in a network namespace (or the root one when
    netns is None).  See the module doc for the facts it relies on."""

    def __init__(self, netns, portal="10.77.0.254:3260", workdir=None,
                 control_port=None):
        self.netns = netns
        self.portal = portal
        self.host, self.port = parse_portal(portal)
        self.workdir = os.path.abspath(workdir) if workdir else \
            tempfile.mkdtemp(prefix=f"ternlab-{os.getpid()}-tgtd-")
        if control_port is not None and not 0 < control_port < 32768:
            raise ValueError("control_port must be 1..32767 (a C short)")
        self.control_port = control_port
        self.proc = None
        self.log_path = None
        self._log = None
        self.config = []          # tgtadm argv lists to replay on restart
        self.targets = {}         # tid -> iqn
        self.luns = {}            # (tid, lun) -> backing file

    # -- lifecycle --

    def start(self, timeout=20):
        """Start tgtd and wait until tgtadm answers and the portal listens.
        Replays the recorded configuration (nothing on a first start)."""
        if self.alive():
            return self
        if shutil.which("tgtd") is None or shutil.which("tgtadm") is None:
            raise ternlab.MissingToolError(
                "'tgtd' not found in PATH: install the Debian package 'tgt' "
                "(apt-get install tgt)")
        if self.netns is not None:
            if os.geteuid() != 0:
                raise TgtError("tgtd in a network namespace needs root")
            ternlab.require_tool("ip", "iproute2")
        if self.control_port is None:
            self.control_port = choose_control_port()
        else:
            _ports_taken.add(self.control_port)
        if not _lock_is_free(_port_files(self.control_port)[1]):
            raise TgtError(f"tgtd control port {self.control_port} is in use "
                           f"({_port_files(self.control_port)[1]} is locked)")
        os.makedirs(self.workdir, exist_ok=True)
        self.log_path = os.path.join(self.workdir,
                                     f"tgtd-{self.control_port}.log")
        self._log = open(self.log_path, "ab")
        self._log.write((f"\n===== tgtd -C {self.control_port} portal "
                         f"{self.portal} netns {self.netns} "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')} =====\n"
                         ).encode())
        self._log.flush()
        argv = ["tgtd", "-f", "-C", str(self.control_port),
                "--iscsi", f"portal={self.host}:{self.port}"]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, preexec_fn=ternlab._child_setup,
            start_new_session=True)
        _live.add(self)
        try:
            self._wait_ready(timeout)
            for argv in self.config:
                self._tgtadm(argv)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        comm_ok = False
        while True:
            if self.proc.poll() is not None:
                raise TgtError(f"tgtd exited with status {self.proc.returncode}"
                               f" during start: {self.log_tail()}")
            if not comm_ok:
                try:
                    with open(f"/proc/{self.proc.pid}/comm") as f:
                        comm_ok = f.read().strip() == "tgtd"
                except OSError:
                    pass
            if comm_ok and _tcp_listening(self.proc.pid, self.port):
                r = self._run_tgtadm(["--mode", "system", "--op", "show"])
                if r.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise TgtError(f"tgtd not ready after {timeout} s (pid "
                               f"{self.proc.pid} is tgtd: {comm_ok}): "
                               f"{self.log_tail()}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL tgtd (a crash) and reap it.  The configuration is kept
        for restart(); the backing files keep what was written."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def stop(self, timeout=10):
        """Orderly shutdown (targets deleted, system delete), SIGKILL after
        timeout seconds; removes the control socket files.  Idempotent."""
        if self.alive():
            for tid in sorted(self.targets):
                self._run_tgtadm(["--lld", "iscsi", "--mode", "target",
                                  "--op", "delete", "--force",
                                  "--tid", str(tid)])
            self._run_tgtadm(["--mode", "system", "--op", "delete"])
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        if self.control_port is not None:
            for p in _port_files(self.control_port):
                try:
                    os.unlink(p)
                except OSError:
                    pass
            _ports_taken.discard(self.control_port)
        _live.discard(self)

    def restart(self, timeout=20):
        """Kill tgtd if it runs, start it again on the same control port
        and portal, and re-create the same targets, LUNs, accounts,
        parameters and bindings, so initiators see the same target."""
        self.kill()
        return self.start(timeout)

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_tail(self, n=1500):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    # -- tgtadm --

    def _run_tgtadm(self, args, timeout=15):
        return subprocess.run(["tgtadm", "-C", str(self.control_port), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)

    def _tgtadm(self, args):
        r = self._run_tgtadm(args)
        if r.returncode != 0:
            raise TgtError(f"tgtadm {' '.join(args)}: exit {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()}")
        return r.stdout

    def tgtadm(self, *args, record=False):
        """Run tgtadm -C N ARGS (raise TgtError on failure); record=True
        replays it on restart()."""
        out = self._tgtadm(list(args))
        if record:
            self.config.append(list(args))
        return out

    def add_target(self, tid, iqn):
        self.tgtadm("--lld", "iscsi", "--mode", "target", "--op", "new",
                    "--tid", str(tid), "--targetname", iqn, record=True)
        self.targets[tid] = iqn

    def add_lun(self, tid, lun, backing_file, size_bytes=None, bsoflags=None, thin=False):
        """File LUN (lun >= 1; LUN 0 is tgt's controller).  size_bytes:
        create (or extend) the file as a sparse file of that size first.
        thin: thin provisioning (`--op update --params thin_provisioning=1`):
        tgt then lists UNMAP in VPD 0xb2 (LBPU, LBPWS, LBPWS10, LBPRZ),
        MAXIMUM UNMAP LBA and BLOCK DESCRIPTOR COUNT 0xffffffff in 0xb0, and
        both UNMAP and WRITE SAME with the UNMAP bit punch holes in the file
        (fallocate PUNCH_HOLE; usr/bs_rdwr.c).  Without it, UNMAP and the
        UNMAP bit are ILLEGAL REQUEST; WRITE SAME itself always works.
        Despite "no limit", an UNMAP descriptor's block count becomes a
        32-bit byte length: 4 GiB or more wraps and unmaps less (8 GiB:
        nothing, GOOD status) [t, storage_tests.py unmap_write_same]."""
        if lun < 1:
            raise ValueError("tgt reserves LUN 0 for its controller")
        backing_file = os.path.abspath(backing_file)
        if size_bytes is not None:
            with open(backing_file, "ab") as f:
                if f.tell() < size_bytes:
                    f.truncate(size_bytes)
        args = ["--lld", "iscsi", "--mode", "logicalunit", "--op", "new",
                "--tid", str(tid), "--lun", str(lun),
                "--backing-store", backing_file]
        if bsoflags:
            args += ["--bsoflags", bsoflags]
        self.tgtadm(*args, record=True)
        if thin:
            self.tgtadm("--lld", "iscsi", "--mode", "logicalunit", "--op", "update",
                        "--tid", str(tid), "--lun", str(lun),
                        "--params", "thin_provisioning=1", record=True)
        self.luns[(tid, lun)] = backing_file

    def bind_all(self, tid):
        self.tgtadm("--lld", "iscsi", "--mode", "target", "--op", "bind",
                    "--tid", str(tid), "--initiator-address", "ALL",
                    record=True)

    def bind_initiator(self, tid, name):
        self.tgtadm("--lld", "iscsi", "--mode", "target", "--op", "bind",
                    "--tid", str(tid), "--initiator-name", name, record=True)

    def _account(self, user, password):
        r = self._run_tgtadm(["--lld", "iscsi", "--mode", "account", "--op",
                              "new", "--user", user, "--password", password])
        if r.returncode != 0 and "exist" not in (r.stderr + r.stdout):
            raise TgtError(f"tgtadm account new {user}: {r.stderr.strip()}")
        self.config.append(["--lld", "iscsi", "--mode", "account", "--op",
                            "new", "--user", user, "--password", password])

    def set_chap(self, tid, user, password):
        """Incoming account: initiators must log in with CHAP user/password."""
        self._account(user, password)
        self.tgtadm("--lld", "iscsi", "--mode", "account", "--op", "bind",
                    "--tid", str(tid), "--user", user, record=True)

    def set_mutual(self, tid, user, password):
        """Outgoing account: the target answers the initiator's challenge
        as user/password (mutual CHAP)."""
        self._account(user, password)
        self.tgtadm("--lld", "iscsi", "--mode", "account", "--op", "bind",
                    "--tid", str(tid), "--user", user, "--outgoing",
                    record=True)

    def set_param(self, tid, name, value):
        """Target login parameter, e.g. ("HeaderDigest", "CRC32C"),
        ("DataDigest", "CRC32C"), ("MaxRecvDataSegmentLength", "65536"),
        ("InitialR2T", "No"), nop_interval / nop_count."""
        self.tgtadm("--lld", "iscsi", "--mode", "target", "--op", "update",
                    "--tid", str(tid), "--name", name, "--value", str(value),
                    record=True)

    def show(self, tid=None):
        """`tgtadm --op show` text: all targets, or one target's
        parameters when tid is given."""
        args = ["--lld", "iscsi", "--mode", "target", "--op", "show"]
        if tid is not None:
            args += ["--tid", str(tid)]
        return self.tgtadm(*args)

    # -- iSCSI side --

    def iqn(self, tid):
        return self.targets[tid]

    def url(self, tid, lun, user=None, password=None, **args):
        """libiscsi URL, e.g. iscsi://u%p@10.77.0.254:3260/IQN/1?header_digest=crc32c"""
        cred = f"{user}%{password}@" if user else ""
        q = "&".join(f"{k}={v}" for k, v in args.items())
        return (f"iscsi://{cred}{self.host}:{self.port}/{self.targets[tid]}/"
                f"{lun}" + (f"?{q}" if q else ""))

    def initiator(self, tid=None, **login_kw):
        """A MiniInitiator connected from inside the namespace; logged in
        to target tid when given (login_kw: chap=, mutual=, ...)."""
        name = login_kw.pop("initiator_name", "iqn.2024-01.org.tern.lab:mini")
        ini = MiniInitiator(self.portal, netns=self.netns,
                            initiator_name=name)
        if tid is not None:
            ini.login(self.targets[tid], **login_kw)
        return ini

    def pr_keys(self, tid, lun, chap=None):
        """Persistent-reservation state over iSCSI (tgtadm cannot show it):
        {"generation": n, "keys": [...], "holder": key or None,
         "type": type or None}."""
        ini = self.initiator(tid, chap=chap,
                             initiator_name="iqn.2024-01.org.tern.lab:prin")
        try:
            k = ini.pr_read_keys(lun)
            rsv = ini.pr_read_reservation(lun)
            if isinstance(k, ScsiResult) and k.sense_key == 6:   # UA
                k = ini.pr_read_keys(lun)
                rsv = ini.pr_read_reservation(lun)
            for r in (k, rsv):
                if isinstance(r, ScsiResult):
                    raise TgtError(f"PERSISTENT RESERVE IN: {r!r}")
            return {"generation": k[0], "keys": k[1], "holder": rsv[1],
                    "type": rsv[2]}
        finally:
            ini.logout()


def _stop_all():
    for t in list(_live):
        try:
            t.stop()
        except Exception:
            pass


atexit.register(_stop_all)


# --- self-test ------------------------------------------------------------

def _ns_run(ns, argv, timeout=30):
    full = argv if ns is None else ["ip", "netns", "exec", ns, *argv]
    try:
        r = subprocess.run(full, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out


def selftest(keep_logs=None):
    failures = 0

    def report(ok, name, detail=""):
        nonlocal failures
        line = f"{'PASS' if ok else 'FAIL'} {name}"
        if detail:
            line += f": {detail}"
        print(line, flush=True)
        if not ok:
            failures += 1
        return ok

    if os.geteuid() != 0:
        print("FAIL tgt selftest: needs root (ip netns)")
        return 1
    for tool, pkg in (("tgtd", "tgt"), ("iscsi-inq", "libiscsi-bin"),
                      ("ip", "iproute2")):
        if shutil.which(tool) is None:
            print(f"FAIL tgt selftest: '{tool}' missing: apt-get install {pkg}")
            return 1

    ns = f"terntgt-{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix=f"ternlab-{os.getpid()}-tgtselftest-")
    ns_made = False
    t = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, on_signal)
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    iqn = "iqn.2024-01.org.tern.lab:selftest"
    iqn2 = "iqn.2024-01.org.tern.lab:chap"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        ns_made = True
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)

        t = Tgtd(ns, "127.0.0.1:3260", workdir=workdir)
        t0 = time.monotonic()
        t.start()
        with open(f"/proc/{t.pid}/comm") as f:
            comm = f.read().strip()
        report(comm == "tgtd", "start: held PID is tgtd itself",
               f"pid {t.pid} comm {comm}, control port {t.control_port}, "
               f"ready in {time.monotonic() - t0:.2f} s")
        img = os.path.join(workdir, "lun1.img")
        t.add_target(1, iqn)
        t.add_lun(1, 1, img, 64 << 20)
        t.bind_all(1)
        report(os.stat(img).st_blocks == 0 and
               os.path.getsize(img) == 64 << 20, "add_lun: sparse 64 MiB file")
        sh = t.show()
        report("LUN: 0" in sh and "Type: controller" in sh and
               "LUN: 1" in sh and "Type: disk" in sh,
               "show: LUN 0 controller, LUN 1 disk")
        try:
            t.add_lun(1, 0, img)
            report(False, "add_lun(lun=0) refused")
        except ValueError:
            report(True, "add_lun(lun=0) refused")

        portal = "iscsi://127.0.0.1:3260"
        rc, out = _ns_run(ns, ["iscsi-ls", "-s", portal])
        report(rc == 0 and iqn in out and "Lun:0" in out and
               "STORAGE_ARRAY_CONTROLLER" in out and "Lun:1" in out,
               "iscsi-ls -s", " | ".join(out.strip().splitlines()[:3]))
        img2 = os.path.join(workdir, "lun2.img")
        t.add_target(2, iqn2)
        t.add_lun(2, 1, img2, 8 << 20)
        t.bind_all(2)
        t.set_chap(2, "ternuser", "ternsecret123")
        t.set_mutual(2, "terntarget", "targetsecret99")
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(1, 1)])
        report(rc == 0 and "DIRECT_ACCESS" in out and "IET" in out,
               "iscsi-inq LUN 1", f"rc={rc}")
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(1, 0)])
        report(rc == 0 and "STORAGE_ARRAY_CONTROLLER" in out,
               "iscsi-inq LUN 0 is the controller", f"rc={rc}")
        rc, out = _ns_run(ns, ["iscsi-readcapacity16", t.url(1, 1)])
        report(rc == 0 and "Total size:67108864" in out and
               "LOGICAL BLOCK LENGTH IN BYTES:512" in out,
               "iscsi-readcapacity16", f"rc={rc}")

        # CHAP (target 2: incoming ternuser, outgoing terntarget)
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(2, 1, "ternuser",
                                                  "ternsecret123")])
        report(rc == 0, "CHAP right password (libiscsi URL user%password@)",
               f"rc={rc}")
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(2, 1, "ternuser",
                                                  "wrongsecret99")], 20)
        report(rc not in (0, None), "CHAP wrong password refused",
               f"rc={rc} {out.strip().splitlines()[-1][:100] if out.strip() else ''}")
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(2, 1)], 20)
        report(rc not in (0, None), "no CHAP refused when the target wants it",
               f"rc={rc}")
        try:
            ini = t.initiator(2, chap=("ternuser", "ternsecret123"),
                              mutual=("terntarget", "targetsecret99"))
            ok = _ua_retry(lambda: ini.tur(1))[1].status == 0
            ini.logout()
            report(ok, "mutual CHAP (MiniInitiator checks the target's answer)")
        except Exception as e:
            report(False, "mutual CHAP", repr(e))
        try:
            t.initiator(2, chap=("ternuser", "ternsecret123"),
                        mutual=("terntarget", "not-the-secret"))
            report(False, "mutual CHAP with a wrong target secret detected")
        except Exception as e:
            report("mutual CHAP" in str(e),
                   "mutual CHAP with a wrong target secret detected", str(e)[:80])

        # Digests
        t.set_param(1, "HeaderDigest", "CRC32C")
        t.set_param(1, "DataDigest", "CRC32C")
        ini = t.initiator(1, header_digest="None,CRC32C",
                          data_digest="None,CRC32C")
        report(ini.hd and ini.dd, "digests: CRC32C chosen when offered "
               "(even listed second)", f"{ini.params.get('HeaderDigest')}/"
               f"{ini.params.get('DataDigest')}")
        blob = os.urandom(200 * 1024)
        first, w = _ua_retry(lambda: ini.write16(1, 2048, blob))
        report(first.asc_ascq == (0x29, 0x00), "new session: first command "
               "gets UNIT ATTENTION 29/00 (power on or reset)", repr(first))
        r = ini.read16(1, 2048, len(blob) // 512)
        ini.logout()
        report(w.status == 0 and r.data == blob,
               "digests: 200 KiB write/read with CRC32C header+data digests")
        report(sha256_region(img, 2048, len(blob) // 512) ==
               hashlib.sha256(blob).hexdigest(),
               "read_file_region: backing file holds the written data")
        ini = t.initiator(1, header_digest=False, data_digest=False)
        report(not ini.hd and not ini.dd and
               _ua_retry(lambda: ini.tur(1))[1].status == 0,
               "digests: an initiator offering only None still logs in "
               "(tgt cannot force digests)")
        ini.logout()
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(1, 1, header_digest="crc32c")])
        report(rc == 0, "digests: libiscsi header_digest=crc32c", f"rc={rc}")
        t.set_param(1, "HeaderDigest", "None")
        t.set_param(1, "DataDigest", "None")

        # Persistent reservations, two initiators A and B, C unregistered.
        failures += pr_checks(t, report)

        # kill -9 and restart
        before = sha256_region(img, 2048, len(blob) // 512)
        old_pid = t.pid
        t.kill()
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(1, 1)], 10)
        report(rc != 0, "after kill -9: target gone", f"rc={rc}")
        t0 = time.monotonic()
        t.restart()
        report(t.pid != old_pid, "restart: new tgtd process",
               f"pid {old_pid} -> {t.pid} in {time.monotonic() - t0:.2f} s")
        rc, out = _ns_run(ns, ["iscsi-inq", "-e", "1", "-c", "128",
                               t.url(1, 1)])
        report(rc == 0 and "beaf11" in out, "restart: serves again, same "
               "serial (beaf11)", f"rc={rc}")
        ini = t.initiator(1)
        r = _ua_retry(lambda: ini.read16(1, 2048, len(blob) // 512))[1]
        report(r.data == blob and before == hashlib.sha256(blob).hexdigest(),
               "restart: data written before the kill reads back", repr(r))
        ini.logout()
        pr = t.pr_keys(1, 1)
        report(pr["keys"] == [] and pr["holder"] is None,
               "restart: persistent reservations forgotten (no APTPL)", str(pr))
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(2, 1, "ternuser",
                                                  "ternsecret123")])
        report(rc == 0, "restart: CHAP account and binding replayed",
               f"rc={rc}")
        rc, out = _ns_run(ns, ["iscsi-inq", t.url(2, 1, "ternuser", "nope-nope-nope")])
        report(rc != 0, "restart: wrong CHAP still refused", f"rc={rc}")
        t.kill()
        t.restart()
        report(t.alive(), "restart twice")

        pid = t.pid
        t.stop()
        gone = not os.path.exists(f"/proc/{pid}")
        files = [p for p in _port_files(t.control_port) if os.path.exists(p)]
        report(gone and not files, "stop: tgtd gone, socket files removed",
               f"left: {files}")
    except KeyboardInterrupt as e:
        report(False, "tgt selftest interrupted", str(e))
    except Exception as e:
        import traceback
        traceback.print_exc()
        report(False, "tgt selftest", f"{type(e).__name__}: {e}")
        if t is not None:
            print(t.log_tail(), file=sys.stderr)
    finally:
        if t is not None:
            t.stop()
        if ns_made:
            subprocess.run(["ip", "netns", "del", ns])
        if keep_logs and t is not None and t.log_path and \
                os.path.exists(t.log_path):
            os.makedirs(keep_logs, exist_ok=True)
            shutil.copy(t.log_path, keep_logs)
        shutil.rmtree(workdir, ignore_errors=True)
        for s, h in old.items():
            signal.signal(s, h)
    left = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                          text=True).stdout
    report(ns not in left, "teardown: namespace removed")
    print(f"{'FAIL' if failures else 'PASS'} tgt selftest ({failures} failures)")
    return 1 if failures else 0


def _ua_retry(fn):
    """Run fn() (a MiniInitiator command); if it gets a UNIT ATTENTION,
    run it once more.  Returns (first result, final result)."""
    r1 = fn()
    return r1, (fn() if r1.sense_key == 6 else r1)


def pr_checks(t, report):
    """Persistent reservation behaviour of tgt, with MiniInitiators A, B
    (registrants) and C (never registered).  Returns 0 (report() counts)."""
    KA, KB = 0xAAAA, 0xBBBB
    WE_RO, EA_RO = 5, 6

    ua_then = _ua_retry

    def sess(name):
        return t.initiator(1, initiator_name=f"iqn.2024-01.org.tern.lab:{name}")

    a, b, c = sess("a"), sess("b"), sess("c")
    for x in (a, b, c):
        ua_then(lambda: x.tur(1))
    data = b"\x5a" * 512
    try:
        r = a.pr_out(1, 0, 0x1234, KA)
        report(r.status == 0x18, "PR: plain REGISTER with a non-zero key "
               "when unregistered -> CONFLICT", repr(r))
        r1 = a.pr_out(1, 6, 0, KA)
        r2 = a.pr_out(1, 6, 0xDEAD, KA)     # wrong old key, ignored
        report(r1.status == 0 and r2.status == 0,
               "PR: REGISTER AND IGNORE EXISTING KEY registers, and "
               "re-registers ignoring the old key", f"{r1} {r2}")
        r = a.pr_out(1, 0, 0xDEAD, KA)
        report(r.status == 0x18, "PR: plain REGISTER with a wrong key "
               "-> CONFLICT", repr(r))
        b.pr_out(1, 6, 0, KB)
        r = c.pr_out(1, 1, 0, 0, WE_RO)
        report(r.status == 0x18, "PR: RESERVE from an unregistered nexus "
               "-> CONFLICT", repr(r))

        for ptype, name in ((WE_RO, "type 5 WE-RO"), (EA_RO, "type 6 EA-RO")):
            r = a.pr_out(1, 1, KA, 0, ptype)
            report(r.status == 0, f"PR: A RESERVE {name}", repr(r))
            r = b.pr_out(1, 1, KB, 0, ptype)
            report(r.status == 0x18, f"PR: B RESERVE while A holds -> "
                   f"CONFLICT ({name})", repr(r))
            wb = b.write16(1, 10, data)
            rb = b.read16(1, 10, 1)
            report(wb.status == 0 and rb.status == 0,
                   f"PR: registrant B may write and read ({name})",
                   f"{wb} {rb}")
            wc = c.write16(1, 10, data)
            rc_ = c.read16(1, 10, 1)
            want_read = 0x18 if ptype == EA_RO else 0
            report(wc.status == 0x18 and rc_.status == want_read,
                   f"PR: non-registrant C: write CONFLICT, read "
                   f"{'CONFLICT' if want_read else 'allowed'} ({name})",
                   f"{wc} {rc_}")
            r = a.pr_out(1, 2, KA, 0, ptype)
            report(r.status == 0, f"PR: A RELEASE ({name})", repr(r))
            for x in (b, c):
                ua_then(lambda: x.tur(1))

        # PREEMPT when A holds type 5.
        a.pr_out(1, 1, KA, 0, WE_RO)
        r = b.pr_out(1, 4, KB, KA, WE_RO)
        st = t.pr_keys(1, 1)
        report(r.status == 0 and st["keys"] == [KB] and st["holder"] == KB
               and st["type"] == WE_RO,
               "PR: B PREEMPT A's key while A holds: B holds, A unregistered",
               f"{r} {st}")
        first, final = ua_then(lambda: a.write16(1, 10, data))
        report(first.status == 2 and first.sense_key == 6 and
               first.asc_ascq == (0x2A, 0x03) and final.status == 0x18,
               "PR: preempted A's write: UNIT ATTENTION 2A/03, then "
               "status 0x18 RESERVATION CONFLICT", f"{first} then {final}")
        r = a.read16(1, 10, 1)
        report(r.status == 0, "PR: preempted A may still read under type 5",
               repr(r))
        # A re-registers: a registrant again, so it can write (type 5).
        a.pr_out(1, 6, 0, KA)
        w = a.write16(1, 10, data)
        report(w.status == 0, "PR: preempted A re-registers (IGNORE) and "
               "can write again under type 5", repr(w))
        b.pr_out(1, 2, KB, 0, WE_RO)          # release
        for x in (a, c):
            ua_then(lambda: x.tur(1))

        # PREEMPT with no reservation: only removes registrations.
        st0 = t.pr_keys(1, 1)
        r = b.pr_out(1, 4, KB, KA, WE_RO)
        st = t.pr_keys(1, 1)
        report(r.status == 0 and st["holder"] is None and KA not in st["keys"],
               "PR: PREEMPT with no reservation removes A's registration, "
               "creates no reservation", f"{st0} -> {st}")
        first, final = ua_then(lambda: a.tur(1))
        report(first.asc_ascq == (0x2A, 0x03) and final.status == 0,
               "PR: ... and A gets UNIT ATTENTION 2A/03 (no conflict: no "
               "reservation)", f"{first} then {final}")
        r = b.pr_out(1, 4, KB, 0x999, WE_RO)
        report(r.status == 0x18, "PR: PREEMPT of an unregistered key "
               "-> CONFLICT", repr(r))
        r = b.pr_out(1, 5, KB, KB, WE_RO)
        report(r.status == 2 and r.sense_key == 5,
               "PR: PREEMPT AND ABORT not implemented (ILLEGAL REQUEST)",
               repr(r))

        # Registration is per I_T nexus (TSIH): a new session of the same
        # initiator name is not registered.
        b2 = sess("b")
        ua_then(lambda: b2.tur(1))
        r = b2.pr_out(1, 1, KB, 0, WE_RO)
        report(r.status == 0x18, "PR: a new session of B (same initiator "
               "name) is not registered: RESERVE -> CONFLICT", repr(r))
        b2.pr_out(1, 6, 0, KB)
        st = t.pr_keys(1, 1)
        report(st["keys"].count(KB) == 2, "PR: tgt lets two nexuses "
               "register the same key (old session's registration stays)",
               str(st))
        b2.logout()
        # Clean up: B clears everything.
        r = b.pr_out(1, 3, KB)
        report(r.status == 0 and t.pr_keys(1, 1)["keys"] == [],
               "PR: CLEAR", repr(r))
        # Registrations survive the session ending but not a restart
        # (checked by the caller).
        a.pr_out(1, 6, 0, KA)
        a.pr_out(1, 1, KA, 0, EA_RO)
    finally:
        for x in (a, b, c):
            x.logout()
    st = t.pr_keys(1, 1)
    report(st["holder"] == KA, "PR: registration and reservation outlive "
           "the session that made them", str(st))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--keep-logs", default=None,
                    help="copy tgtd's log here after the self-test")
    a = ap.parse_args()
    if a.selftest:
        return selftest(a.keep_logs)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
