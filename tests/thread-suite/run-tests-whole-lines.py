# Runs MicroPython's tests/run-tests.py (the first argument; the rest are its
# arguments) with print() writing each line in one piece.
#
# run-tests.py -j N prints each verdict ("pass  basics/x.py") from N threads,
# and print() writes its arguments one by one, so two verdicts can interleave
# into "pass pass  a.py\n b.py"; run-thread-suite.sh reads the verdicts line
# by line, so each line must be whole.
import builtins
import runpy
import sys
import threading

_lock = threading.Lock()


def print_whole_line(*args, sep=" ", end="\n", file=None, flush=False):
    out = file if file is not None else sys.stdout
    text = (" " if sep is None else sep).join(str(a) for a in args) + ("\n" if end is None else end)
    with _lock:
        out.write(text)
        if flush:
            out.flush()


builtins.print = print_whole_line
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
