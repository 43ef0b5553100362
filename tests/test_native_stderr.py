"""Native stderr redirection: C-level writes to fd 2 go to the log, Python's own stderr lines still reach the
terminal, and concurrent users (the web app's threads) leave fd 2 and ``sys.stderr`` as they found them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, threading, time
from mum.native_stderr import native_stderr_to
log = sys.argv[1]
original = sys.stderr
def worker(k):
    with native_stderr_to(log):
        os.write(2, f"native line {k}\n".encode())  # what COLMAP's C++ code does
        print(f"python line {k}", file=sys.stderr)
        time.sleep(0.05 * (k + 1))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
assert sys.stderr is original, "sys.stderr not restored"
os.write(2, b"native after\n")
print("python after", file=sys.stderr)
"""


def test_native_lines_go_to_the_log_python_lines_to_the_terminal(tmp_path):
    log = tmp_path / "native.log"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(log)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    terminal = proc.stderr.splitlines()
    assert sorted(terminal) == ["native after", "python after", "python line 0", "python line 1", "python line 2"]
    assert sorted(log.read_text().splitlines()) == ["native line 0", "native line 1", "native line 2"]
