"""Applications: command-line tool, web app, training and evaluation front ends."""

import signal
import sys
import threading

# A Ctrl-C while torch loads (a command's first second or two, before its own handler) is held until the import
# ends, then is one line and exit status 130: raised inside torch's import, it was a 20-line traceback, or was
# swallowed there and the command ran on. Only Python's own Ctrl-C handler is replaced (not an ignored SIGINT).
_held: list = []
_previous = None
if threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    _previous = signal.signal(signal.SIGINT, lambda signum, frame: _held.append(signum))
try:
    import mum  # noqa: F401  (sets the CPU threading policy before torch is imported)
finally:
    if _previous is not None:
        signal.signal(signal.SIGINT, _previous)
if _held:
    print("error: interrupted", file=sys.stderr)
    raise SystemExit(130)
