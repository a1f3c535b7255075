#!/usr/bin/env python3
"""Run a few test commands at once and report each whole.

    python3 tests/lab/parallel.py 'CMD1' 'CMD2' ...

Bochs runs one thread, so two Bochs suites on a two-core machine take
the time of the longer one.  Each command's output goes to a log under
build/test-logs and is printed in one piece when it ends (interleaved
lines from two suites cannot be read); the exit status is non-zero if
any command failed, and names them.
"""
import os
import subprocess
import sys
import time

LOGS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "..", "build", "test-logs")


def main(cmds):
    os.makedirs(LOGS, exist_ok=True)
    runs = []
    for i, cmd in enumerate(cmds):
        path = os.path.join(LOGS, f"parallel.{i}.out")
        out = open(path, "w")
        p = subprocess.Popen(cmd, shell=True, stdout=out,
                             stderr=subprocess.STDOUT)
        runs.append((cmd, p, out, path, time.monotonic()))
        print(f"parallel: started '{cmd}' (pid {p.pid}, log {path})",
              flush=True)
    failed = []
    left = list(runs)
    while left:
        for r in list(left):
            cmd, p, out, path, t0 = r
            if p.poll() is None:
                continue
            left.remove(r)
            out.close()
            print(f"==== '{cmd}': exit {p.returncode} after "
                  f"{time.monotonic() - t0:.0f} s ====", flush=True)
            with open(path, errors="replace") as f:
                sys.stdout.write(f.read())
            sys.stdout.flush()
            if p.returncode:
                failed.append(cmd)
        time.sleep(0.5)
    if failed:
        print("parallel: failed: " + "; ".join(failed), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
