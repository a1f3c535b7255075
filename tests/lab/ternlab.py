"""ternlab: boot a UEFI ESP directory in QEMU or Bochs and drive its serial
console like a person at a terminal.

Python 3 standard library only.  See tests/lab/README.md for the facts this
relies on (invocations, timings, gotchas).

    with QemuHost("build/esp", name="a") as h:
        h.expect(r"tern> ", timeout=60)
        out = h.command("status")
"""

import atexit
import codecs
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd"
VGABIOS = "/usr/share/vgabios/vgabios.bin"
BOCHS_PLUGINS = "/usr/lib/x86_64-linux-gnu/bochs/plugins"

DEFAULT_LOGDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "..", "..", "build", "test-logs")

# Name of the test now running; written into every log header.  The runner
# sets it through set_test_name().
_current_test = "-"


def set_test_name(name):
    global _current_test
    _current_test = name


class LabError(RuntimeError):
    """The lab itself is broken (missing tool, emulator failed to start)."""


class MissingToolError(LabError):
    pass


class EmulatorExited(TimeoutError):
    """expect() cannot succeed because the emulator is gone.  A subclass of
    TimeoutError so callers that catch timeouts also catch this."""


def require_file(path, package):
    if not os.path.exists(path):
        raise MissingToolError(
            f"{path} not found: install the Debian package '{package}' "
            f"(apt-get install {package})")


def require_tool(tool, package):
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(
            f"'{tool}' not found in PATH: install the Debian package "
            f"'{package}' (apt-get install {package})")
    return path


# --- process hygiene ------------------------------------------------------

_live_hosts = set()
_live_lock = threading.Lock()
_handlers_installed = False


def _stop_all_hosts():
    with _live_lock:
        hosts = list(_live_hosts)
    for h in hosts:
        try:
            h.stop()
        except Exception:
            pass


_signalled = None


def interrupted():
    """The signal number that made the harness stop every host, or None."""
    return _signalled


def _on_signal(signum, frame):
    global _signalled
    _signalled = signum
    _stop_all_hosts()
    prev = _prev_handlers.get(signum)
    if prev is signal.SIG_IGN:
        return
    if callable(prev):
        prev(signum, frame)
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_prev_handlers = {}


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all_hosts)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        _prev_handlers[sig] = signal.getsignal(sig)
        signal.signal(sig, _on_signal)


try:
    _prctl = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _prctl = None


def _child_setup():
    # Runs in the child between fork and exec.  PR_SET_PDEATHSIG (prctl(2))
    # makes the kernel SIGKILL the emulator if this Python process dies
    # without running its atexit hooks (e.g. it was SIGKILLed itself).
    # The libc handle is looked up before fork: nothing here may allocate.
    if _prctl is not None:
        _prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 == PR_SET_PDEATHSIG


# --- terminal text --------------------------------------------------------

# CSI sequences (cursor moves and colours from the UEFI console), OSC, two-
# byte escapes, and the \r and NUL bytes that only get in the way of regexes.
_ANSI_RE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])"
    r"|[\r\x00]")


def strip_ansi(text):
    return _ANSI_RE.sub("", text)


# Tern's console (kernel/mgmt/console.c, kernel/lib/lineedit.h) erases the line
# being typed with CR ESC [ K before it prints log lines above it, then
# draws the prompt and the partial input again.  The harness reads that
# sequence as a terminal does, "forget this line so far", so that every log
# line starts a line and a command's echo stays whole on one line.
ERASE_LINE = "\r\x1b[K"
TERN_PROMPT = "tern> "
# A host log line as the console prints it: "[    1.234567] I text".
LOG_LINE_RE = re.compile(r"\[\s*\d+\.\d+\] [EWID] [^\n]*")


def drop_log_lines(text):
    """text without the host log lines in it (each is a whole line)."""
    return "".join(ln for ln in text.splitlines(keepends=True)
                   if not LOG_LINE_RE.fullmatch(ln.rstrip("\n")))


def _remove_stale_tmpdirs():
    # A harness killed by SIGKILL cannot clean up; its emulators die through
    # PDEATHSIG, and its temp dirs (named after its PID) go here.
    tmp = tempfile.gettempdir()
    for entry in os.listdir(tmp):
        m = re.fullmatch(r"ternlab-(\d+)-.*", entry)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
        except PermissionError:
            pass


def _free_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class _ConsoleHost:
    """Serial console plumbing shared by both emulators."""

    kind = "host"
    prompt = r"tern> "
    chunk_size = 4          # bytes per write: well under a 16-byte UART FIFO
    chunk_delay = 0.02      # seconds between chunks
    max_runtime = 900       # hard SIGKILL guard, seconds

    def __init__(self, esp_dir, name, logdir, test):
        self.esp_dir = os.path.abspath(esp_dir)
        self.name = name
        self.logdir = os.path.abspath(logdir or DEFAULT_LOGDIR)
        self.test = test
        self.proc = None
        self.tmpdir = None
        self.start_time = None
        self.returncode = None
        self._sock = None
        self._reader = None
        self._cond = threading.Condition()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._text = ""
        self._raw = []              # decoded serial text, escapes and all
        self._raw_len = 0
        self._pos = 0
        self._eof = False
        self._serial_log = None
        self._watchdog = None
        self._stopped = False
        self._stop_lock = threading.Lock()

    # -- lifecycle --

    def _check_tools(self):
        raise NotImplementedError

    def _launch(self):
        """Start the emulator, set self.proc and self._sock."""
        raise NotImplementedError

    def start(self):
        if self.proc is not None:
            return self
        self._check_tools()
        if not os.path.isdir(self.esp_dir):
            raise LabError(f"ESP directory {self.esp_dir} does not exist")
        os.makedirs(self.logdir, exist_ok=True)
        _install_handlers()
        _remove_stale_tmpdirs()
        self.tmpdir = tempfile.mkdtemp(
            prefix=f"ternlab-{os.getpid()}-{self.kind}-{self.name}-")
        with _live_lock:
            _live_hosts.add(self)
        self._stopped = False
        self._serial_log = open(self.serial_log_path, "ab")
        self._log_header(self._serial_log)
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        self._watchdog = threading.Timer(self.max_runtime, self._kill)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"ternlab-{self.name}-serial")
        self._reader.start()
        return self

    @property
    def serial_log_path(self):
        return os.path.join(self.logdir, f"{self.name}.serial.log")

    def _log_header(self, f):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        test = self.test if self.test is not None else _current_test
        f.write((f"\n===== ternlab {self.kind} host={self.name} test={test} "
                 f"start={stamp} =====\n").encode())
        f.flush()

    def _popen(self, argv, stdout, stderr, env=None, cwd=None):
        self.start_time = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            env=env, cwd=cwd, preexec_fn=_child_setup, start_new_session=True)

    def _kill(self):
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _shutdown_emulator(self):
        """Ask nicely, if the emulator supports it; stop() then SIGKILLs."""

    def stop(self):
        """Kill what this host started and clean up.  Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self._shutdown_emulator()
                except Exception:
                    pass
            self._kill()
            if self.proc is not None:
                try:
                    self.returncode = self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            if self._watchdog is not None:
                self._watchdog.cancel()
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._sock.close()
            if self._reader is not None and \
                    self._reader is not threading.current_thread():
                self._reader.join(5)
            self._close_logs()
            if self._serial_log is not None:
                self._serial_log.close()
                self._serial_log = None
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None
            with _live_lock:
                _live_hosts.discard(self)

    def _close_logs(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        """Exit status of the emulator, or None if still running after
        timeout seconds."""
        if self.proc is None:
            return None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def _exit_note(self):
        # The serial socket closes a moment before the process is reaped.
        rc = self.wait_exit(3)
        if rc is None:
            return "closed its serial port (still running)"
        return f"exited (status {rc}{self._exit_detail()})"

    def _exit_detail(self):
        return ""

    def elapsed(self):
        """Seconds since the emulator was launched."""
        return time.monotonic() - self.start_time if self.start_time else 0.0

    # -- serial input side --

    def _read_loop(self):
        sock = self._sock
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if self._serial_log is not None:
                try:
                    self._serial_log.write(data)
                    self._serial_log.flush()
                except (ValueError, OSError):
                    pass
            self._append(self._decoder.decode(data))
        self._append(self._decoder.decode(b"", final=True), final=True)
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _append(self, text, final=False):
        with self._cond:
            self._raw_len += len(text)
            self._raw.append(text)
            pend = self._pending + text
            hold = ""
            esc = pend.rfind("\x1b")
            if not final and esc >= 0 and len(pend) - esc < 64 and \
                    _ANSI_RE.match(pend, esc) is None:
                pend, hold = pend[:esc], pend[esc:]
            if not final and pend.endswith("\r"):
                # It may be the start of ERASE_LINE.
                pend, hold = pend[:-1], "\r" + hold
            self._pending = hold
            parts = pend.split(ERASE_LINE)
            self._text += strip_ansi(parts[0])
            for part in parts[1:]:
                self._text = self._text[:self._text.rfind("\n") + 1]
                self._text += strip_ansi(part)
            self._pos = min(self._pos, len(self._text))
            self._cond.notify_all()

    def output(self):
        """All serial text so far as a terminal shows it: ANSI escapes,
        \\r and NUL removed, and a line erased by ERASE_LINE gone."""
        with self._cond:
            return self._text

    def raw_output(self):
        """All serial text so far, as received (escapes, \\r and all)."""
        with self._cond:
            return "".join(self._raw)

    def mark(self):
        """Forget everything received so far for the purpose of expect()."""
        with self._cond:
            self._pos = len(self._text)

    def _tail(self, n=2048):
        with self._cond:
            return self._text[-n:]

    def expect(self, pattern, timeout=30):
        """Wait for pattern (str or compiled regex) in the output after the
        previous match; return the re.Match (its .string is the whole
        output).  Raises TimeoutError (EmulatorExited if the emulator went
        away first) with the last 2 KB of output in the message."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern

        def found():
            m = rx.search(self._text, self._pos)
            if m:
                self._pos = m.end()
            return m

        return self._wait_for(found, timeout, f"match for {rx.pattern!r}", 0)

    def _wait_for(self, found, timeout, what, since):
        """Wait, holding the lock between looks, until found() returns
        something; raise EmulatorExited or TimeoutError naming what (a
        string, or a function giving one), with the last 2 KB of output from
        since on."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = found()
                if got:
                    return got
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    desc = what() if callable(what) else what
                    tail = self._text[since:][-2048:]
                    if self._eof:
                        raise EmulatorExited(
                            f"{self.kind} '{self.name}' {self._exit_note()} "
                            f"while waiting for {desc}; last output:\n{tail}")
                    raise TimeoutError(
                        f"{self.kind} '{self.name}': no {desc} within "
                        f"{timeout} s; last output:\n{tail}")
                self._cond.wait(min(left, 0.5))

    # -- serial output side --

    def send(self, text):
        """Type text into the serial console, a few bytes at a time."""
        if self._sock is None:
            raise LabError(f"{self.kind} '{self.name}' not started")
        data = text.encode() if isinstance(text, str) else bytes(text)
        for i in range(0, len(data), self.chunk_size):
            try:
                self._sock.sendall(data[i:i + self.chunk_size])
            except OSError as e:
                raise EmulatorExited(
                    f"{self.kind} '{self.name}': serial send failed ({e}); "
                    f"last output:\n{self._tail()}") from e
            time.sleep(self.chunk_delay)

    def sendline(self, text=""):
        self.send(text + "\r")

    def exchange(self, cmd, timeout=30):
        """Type cmd at Tern's prompt and wait for its echo line and the next
        prompt.  Return (raw, clean): raw is the echo line and everything up
        to the next prompt, host log lines included; clean is the command's
        output alone, without the echo and the log lines.

        This is the one place every suite types a command at Tern's serial
        console.  It relies on what the console promises (console.c): the
        echo "tern> CMD" is whole on one line of output(), and log lines
        are whole lines.  It looks for the echo from the start of the line
        the cursor is on, not from a byte offset, because a prompt that is
        being redrawn when the command is typed is only partly received."""
        with self._cond:
            base = self._text.rfind("\n") + 1
        self.sendline(cmd)
        echo = re.compile(rf"(?m)^{re.escape(TERN_PROMPT + cmd)}\n")
        prompt = re.compile(rf"(?m)^{re.escape(TERN_PROMPT)}")
        state = {"what": f"the echo line of {cmd!r}"}

        def found():
            m = echo.search(self._text, base)
            p = prompt.search(self._text, m.end()) if m else None
            if m and not p:
                state["what"] = f"the prompt after {cmd!r}"
            if not p:
                return None
            self._pos = p.end()
            out = self._text[m.end():p.start()]
            return self._text[m.start():p.start()], drop_log_lines(out)

        return self._wait_for(found, timeout, lambda: state["what"], base)

    def command(self, cmd, prompt_regex=None, timeout=30):
        """Type cmd + Enter, wait for its echo and for the next prompt, and
        return the text between them (leading/trailing newlines trimmed).
        At Tern's prompt (prompt_regex None) this is exchange(): the output
        keeps the host log lines.  Another prompt (the UEFI shell's) is
        matched as it comes."""
        if prompt_regex in (None, self.prompt, TERN_PROMPT):
            raw = self.exchange(cmd, timeout)[0]
            return raw.split("\n", 1)[1].strip("\n") if "\n" in raw else ""
        prompt = re.compile(prompt_regex)
        self.sendline(cmd)
        echo = self.expect(re.escape(cmd), timeout)
        m = self.expect(prompt, timeout)
        return m.string[echo.end():m.start()].strip("\n")


class Console:
    """Line-oriented access to Tern's serial console on a host: the
    command exchange every suite uses (_ConsoleHost.exchange)."""

    def __init__(self, host, cmd_timeout=30):
        self.h = host
        self.cmd_timeout = cmd_timeout

    def raw(self, cmd, timeout=None):
        """The echo line and everything up to the next prompt, with the
        host log lines (for `log N`, whose lines look the same)."""
        return self.h.exchange(cmd, timeout or self.cmd_timeout)[0]

    def run(self, cmd, timeout=None):
        """The command's own output, without the echo, the host log lines
        and blank lines at either end."""
        return self.h.exchange(cmd, timeout or self.cmd_timeout)[1].strip("\n")

    def lines(self, cmd, timeout=None):
        return [ln for ln in self.run(cmd, timeout).split("\n") if ln.strip()]


# --- QEMU -----------------------------------------------------------------

class QemuHost(_ConsoleHost):
    """qemu-system-x86_64 (TCG) with OVMF, the ESP as a virtual FAT disk,
    serial on a unix socket and QMP on another."""

    kind = "qemu"

    def __init__(self, esp_dir, name="a", mem="1G", smp=2,
                 cpu="qemu64,+svm,+npt", machine="q35", logdir=None,
                 extra_args=(), test=None, esp_writable=False,
                 esp_device="virtio-blk-pci", no_reboot=True):
        super().__init__(esp_dir, name, logdir, test)
        self.mem = mem
        self.smp = smp
        self.cpu = cpu
        self.machine = machine
        self.extra_args = list(extra_args)
        self.esp_writable = esp_writable
        self.esp_device = esp_device
        self.no_reboot = no_reboot
        self.events = []            # QMP events, in order
        self._qmp = None
        self._qmp_file = None
        self._qmp_lock = threading.Lock()
        self._stderr_log = None
        self.argv = None

    def _check_tools(self):
        require_tool("qemu-system-x86_64", "qemu-system-x86")
        require_file(OVMF_CODE, "ovmf")
        require_file(OVMF_VARS, "ovmf")

    @property
    def stderr_log_path(self):
        return os.path.join(self.logdir, f"{self.name}.qemu.log")

    def _listen(self, fname):
        path = os.path.join(self.tmpdir, fname)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(1)
        return s, path

    def _accept(self, lsock, what, deadline):
        lsock.settimeout(0.2)
        while True:
            try:
                conn, _ = lsock.accept()
                conn.settimeout(None)
                return conn
            except socket.timeout:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(
                    f"QEMU did not connect its {what} socket "
                    f"(status {self.proc.poll()}); see {self.stderr_log_path}:"
                    f"\n{self._read_stderr_tail()}")

    def _read_stderr_tail(self):
        try:
            with open(self.stderr_log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 2048))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _launch(self):
        vars_copy = os.path.join(self.tmpdir, "OVMF_VARS.fd")
        shutil.copyfile(OVMF_VARS, vars_copy)
        ser_l, ser_path = self._listen("serial.sock")
        qmp_l, qmp_path = self._listen("qmp.sock")
        esp = f"fat:rw:{self.esp_dir}" if self.esp_writable \
            else f"fat:{self.esp_dir},readonly=on"
        # The harness listens and QEMU connects as a client during start-up,
        # before the guest runs, so not one byte of serial output is lost.
        argv = [
            "qemu-system-x86_64",
            "-machine", self.machine, "-cpu", self.cpu,
            "-smp", str(self.smp), "-m", str(self.mem),
            "-display", "none", "-vga", "none",
            "-boot", "menu=off",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-drive", f"if=none,id=esp,format=raw,file={esp}",
            "-device", f"{self.esp_device},drive=esp,bootindex=0",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-chardev", f"socket,id=ser0,path={ser_path},server=off",
            "-serial", "chardev:ser0",
            "-chardev", f"socket,id=qmp0,path={qmp_path},server=off",
            "-mon", "chardev=qmp0,mode=control",
        ]
        if self.no_reboot:
            # A triple fault ends the run (SHUTDOWN event, reason
            # guest-reset) instead of silently booting again.
            argv.append("-no-reboot")
        if not any(a in ("-nic", "-netdev", "-net") for a in self.extra_args):
            argv += ["-nic", "none"]
        argv += self.extra_args
        self.argv = argv
        self._stderr_log = open(self.stderr_log_path, "ab")
        self._log_header(self._stderr_log)
        self._stderr_log.write((" ".join(argv) + "\n").encode())
        self._stderr_log.flush()
        self._popen(argv, stdout=self._stderr_log, stderr=self._stderr_log)
        try:
            deadline = time.monotonic() + 15
            self._sock = self._accept(ser_l, "serial", deadline)
            self._qmp = self._accept(qmp_l, "QMP", deadline)
        finally:
            ser_l.close()
            qmp_l.close()
        self._qmp_file = self._qmp.makefile("rb")
        self._qmp_replies = []
        self._qmp_cond = threading.Condition()
        self._qmp_next_id = 0
        threading.Thread(target=self._qmp_loop, daemon=True,
                         name=f"ternlab-{self.name}-qmp").start()
        self.qmp("qmp_capabilities")

    def _qmp_loop(self):
        f = self._qmp_file
        while True:
            try:
                line = f.readline()
            except (OSError, ValueError):
                line = b""
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._qmp_cond:
                if "event" in msg:
                    self.events.append(msg)
                elif "QMP" not in msg:
                    self._qmp_replies.append(msg)
                self._qmp_cond.notify_all()
        with self._qmp_cond:
            self._qmp_replies.append({"error": {"desc": "QMP closed"},
                                      "id": None, "closed": True})
            self._qmp_cond.notify_all()

    def qmp(self, command, timeout=10, **arguments):
        """Run one QMP command; return its 'return' value or raise LabError."""
        with self._qmp_lock:
            self._qmp_next_id += 1
            ident = self._qmp_next_id
            msg = {"execute": command, "id": ident}
            if arguments:
                msg["arguments"] = arguments
            self._qmp.sendall(json.dumps(msg).encode() + b"\n")
            deadline = time.monotonic() + timeout
            with self._qmp_cond:
                while True:
                    for r in self._qmp_replies:
                        if r.get("id") == ident or r.get("closed"):
                            if not r.get("closed"):
                                self._qmp_replies.remove(r)
                            if "error" in r:
                                raise LabError(f"QMP {command}: {r['error']}")
                            return r.get("return")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise LabError(f"QMP {command}: no reply in {timeout} s")
                    self._qmp_cond.wait(left)

    def monitor(self, hmp_command, timeout=10):
        """Run a human-monitor command (e.g. 'info registers') and return its
        text."""
        return self.qmp("human-monitor-command", timeout=timeout,
                        **{"command-line": hmp_command})

    def shutdown_reason(self):
        """The reason of QEMU's SHUTDOWN event ('guest-shutdown' for ACPI
        power-off, 'guest-reset' for a reset/triple fault under -no-reboot,
        'host-qmp-quit', ...), 'debug-exit' when the guest wrote to
        isa-debug-exit (odd exit status, no event), or None."""
        for ev in self.events:
            if ev.get("event") == "SHUTDOWN":
                return ev.get("data", {}).get("reason")
        rc = self.proc.poll() if self.proc else None
        if rc is not None and rc > 0 and rc & 1:
            return "debug-exit"
        return None

    def _exit_detail(self):
        # Called with self._cond held: must not wait for QMP replies.
        return f", {self.shutdown_reason() or 'no SHUTDOWN event'}"

    def debug_exit_code(self):
        """The value the guest wrote to isa-debug-exit, or None."""
        rc = self.proc.poll() if self.proc else None
        if rc is not None and rc > 0 and rc & 1 and \
                self.shutdown_reason() == "debug-exit":
            return rc >> 1
        return None

    def _shutdown_emulator(self):
        if self._qmp is not None:
            try:
                self.qmp("quit", timeout=2)
            except LabError:
                pass
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass

    def _close_logs(self):
        if self._qmp is not None:
            try:
                self._qmp.close()
            except OSError:
                pass
        if self._stderr_log is not None:
            self._stderr_log.close()
            self._stderr_log = None


# --- Bochs ----------------------------------------------------------------

class BochsHost(_ConsoleHost):
    """Bochs 2.7 (VMX with EPT) booting the 2 MB OVMF image; serial on a TCP
    socket Bochs serves on localhost, the ESP as a vvfat disk."""

    kind = "bochs"
    chunk_size = 1          # Bochs polls its socket slowly: one byte a time
    chunk_delay = 0.02

    def __init__(self, esp_dir, name="b", cpu_model="corei7_skylake_x",
                 mem_mb=256, cpus=2, ips=100_000_000, logdir=None, test=None,
                 esp_image=False, extra_config=""):
        super().__init__(esp_dir, name, logdir, test)
        self.cpu_model = cpu_model
        self.mem_mb = mem_mb
        self.cpus = cpus
        self.ips = ips
        self.esp_image = esp_image
        self.extra_config = extra_config
        self.port = None
        self._out_log = None

    def _check_tools(self):
        require_tool("bochs", "bochs")
        require_file(OVMF_CODE, "ovmf")
        require_file(OVMF_VARS, "ovmf")
        require_file(VGABIOS, "vgabios")
        if not any(n.startswith("libbx_term_gui.so")
                   for n in os.listdir(BOCHS_PLUGINS)
                   if os.path.isdir(BOCHS_PLUGINS)):
            raise MissingToolError(
                f"Bochs term display plugin missing in {BOCHS_PLUGINS}: "
                "install the Debian package 'bochs-term'")
        if self.esp_image:
            require_tool("mformat", "mtools")
            require_tool("mcopy", "mtools")

    @property
    def out_log_path(self):
        return os.path.join(self.logdir, f"{self.name}.bochs.out")

    @property
    def bochs_log_path(self):
        return os.path.join(self.logdir, f"{self.name}.bochs.log")

    def _bochsrc(self, disk_line):
        return "\n".join([
            f"megs: {self.mem_mb}",
            f"cpu: model={self.cpu_model}, count={self.cpus}, ips={self.ips}",
            # OVMF only boots here as the 2 MB VARS+CODE image; Bochs maps a
            # ROM image so it ends at 4 GiB, so no address= is needed.
            "romimage: file=ovmf-2m.fd",
            f"vgaromimage: file={VGABIOS}",
            "display_library: term",
            "pci: enabled=1, chipset=i440fx",
            "ata0: enabled=1",
            disk_line,
            "boot: disk",
            # Bochs accepts one client before it starts the CPU, so no
            # early output is lost.
            f"com1: enabled=1, mode=socket-server, dev=localhost:{self.port}",
            "log: bochs.log",
            # ACPI soft-off is reported as a PANIC; 'fatal' makes Bochs exit
            # (status 1) instead of asking on the terminal.
            "panic: action=fatal",
            "error: action=report",
            "info: action=report",
            "debug: action=ignore",
            self.extra_config,
            "",
        ])

    def _disk_line(self):
        if not self.esp_image:
            return f"ata0-master: type=disk, mode=vvfat, path={self.esp_dir}"
        img = os.path.join(self.tmpdir, "esp.img")
        build_fat_image(self.esp_dir, img)
        return f"ata0-master: type=disk, mode=flat, path={img}"

    def _launch(self):
        with open(os.path.join(self.tmpdir, "ovmf-2m.fd"), "wb") as out:
            for part in (OVMF_VARS, OVMF_CODE):
                with open(part, "rb") as f:
                    out.write(f.read())
        with open(os.path.join(self.tmpdir, "debugger.rc"), "w") as f:
            f.write("c\nquit\n")
        disk = self._disk_line()
        self._out_log = open(self.out_log_path, "ab")
        self._log_header(self._out_log)
        env = dict(os.environ, TERM="dumb")
        last_err = None
        for _attempt in range(3):
            self.port = _free_tcp_port()
            with open(os.path.join(self.tmpdir, "bochsrc"), "w") as f:
                f.write(self._bochsrc(disk))
            self._popen(["bochs", "-q", "-f", "bochsrc", "-rc", "debugger.rc"],
                        stdout=self._out_log, stderr=subprocess.STDOUT,
                        env=env, cwd=self.tmpdir)
            try:
                self._sock = self._connect()
                return
            except LabError as e:   # port taken by someone else: retry
                last_err = e
                self._kill()
                self.proc.wait(5)
        raise last_err

    def _connect(self):
        deadline = time.monotonic() + 20
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect(("127.0.0.1", self.port))
                return s
            except OSError:
                s.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(
                    f"Bochs did not open its serial socket on port {self.port} "
                    f"(status {self.proc.poll()}); see {self.out_log_path}")
            time.sleep(0.05)

    def powered_off(self):
        """True if Bochs reported an ACPI soft power-off (Bochs then exits
        with status 1, as for any other 'fatal' panic)."""
        try:
            with open(os.path.join(self.tmpdir or "", "bochs.log"), "rb") as f:
                return b"ACPI control: soft power off" in f.read()
        except OSError:
            pass
        return self._saved_log_has(b"ACPI control: soft power off")

    def _saved_log_has(self, needle):
        try:
            with open(self.out_log_path, "rb") as f:
                return needle in f.read()
        except OSError:
            return False

    def _close_logs(self):
        if self._out_log is not None:
            self._out_log.close()
            self._out_log = None
        if self.tmpdir is not None:
            src = os.path.join(self.tmpdir, "bochs.log")
            if os.path.exists(src):
                with open(self.bochs_log_path, "ab") as dst:
                    self._log_header(dst)
                    with open(src, "rb") as f:
                        shutil.copyfileobj(f, dst)


def build_fat_image(src_dir, img_path, size_mb=64):
    """Build a FAT32 hard-disk image (no partition table) holding src_dir,
    with mtools: no loop mounts, no root needed."""
    require_tool("mformat", "mtools")
    require_tool("mcopy", "mtools")
    total = 0
    for root, _dirs, files in os.walk(src_dir):
        for fn in files:
            total += os.path.getsize(os.path.join(root, fn))
    size_mb = max(size_mb, 40, total // (1 << 20) * 2 + 16)
    with open(img_path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mformat", "-i", img_path, "-F", "::"], check=True,
                   capture_output=True)
    entries = os.listdir(src_dir)
    if entries:
        subprocess.run(["mcopy", "-i", img_path, "-s", "-Q"] +
                       [os.path.join(src_dir, e) for e in entries] + ["::"],
                       check=True, capture_output=True)
    return img_path


# --- a tiny test runner shared by the suites -------------------------------

class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


_RAW_LOG_START = re.compile(r"\[\s*\d+\.\d+\] [EWID] ")
_RAW_BATCH = re.compile(re.escape(ERASE_LINE)
                        + r"((?:\[\s*\d+\.\d+\] [EWID] [^\r\n\x1b]*\r\n)+)"
                        + re.escape(TERN_PROMPT))


def check_console_promise(raw):
    """Check raw serial text (raw_output()) against what Tern's console
    promises about host log lines (kernel/mgmt/console.c): each starts a line,
    after CR LF or after the CR ESC [ K that erased the line being typed;
    each erase is followed by whole log lines, then the prompt and the
    partial input drawn once.  Return the number of such batches and how
    many of them came while a command was being typed."""
    for m in _RAW_LOG_START.finditer(raw):
        before = raw[max(0, m.start() - 4):m.start()]
        check(before.endswith("\r\n") or before == ERASE_LINE,
              f"a log line does not start a line: "
              f"{raw[max(0, m.start() - 60):m.end() + 40]!r}")
    batches = list(_RAW_BATCH.finditer(raw))
    seen = {b.start() for b in batches}
    for m in re.finditer(re.escape(ERASE_LINE), raw):
        rest = raw[m.start():]
        # The text may end in the middle of the last batch.
        if m.start() not in seen and TERN_PROMPT in rest:
            raise TestFailure(f"an erased line not followed by log lines "
                              f"and one redraw: {rest[:200]!r}")
    typing = 0
    for b in batches:
        erased = strip_ansi(raw[raw.rfind("\n", 0, b.start()) + 1:b.start()])
        typing += erased.startswith(TERN_PROMPT) and erased != TERN_PROMPT
    return len(batches), typing


def run_suite(chosen, logdir, cleanup):
    """Run (name, fn) pairs in order, print PASS/FAIL lines and the closing
    'N passed, M failed' line; cleanup() runs at the end whatever happens.
    Returns the process exit status."""
    import traceback
    os.makedirs(logdir, exist_ok=True)
    passed = failed = 0
    t_all = time.monotonic()
    try:
        for name, fn in chosen:
            set_test_name(name)
            t0 = time.monotonic()
            try:
                fn()
            except KeyboardInterrupt:
                failed += 1
                print(f"FAIL {name}: interrupted", flush=True)
                break
            except Exception as e:
                failed += 1
                reason = str(e) or type(e).__name__
                if not isinstance(e, (TestFailure, TimeoutError, LabError)):
                    reason = "".join(traceback.format_exception(e)).strip()
                print(f"FAIL {name}: {reason}", flush=True)
            else:
                passed += 1
                print(f"PASS {name} ({time.monotonic() - t0:.1f}s)",
                      flush=True)
            if interrupted():
                print(f"  interrupted by signal {interrupted()}; "
                      f"emulators stopped", flush=True)
                break
    finally:
        cleanup()
        set_test_name("-")
    print(f"  total {time.monotonic() - t_all:.1f} s; logs in {logdir}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not chosen else 0
