# Fails the first time it runs on a board and passes the next time: a
# marker file on the board's flash remembers the first run (and is removed by
# the passing one, so the next job run starts over).
import os

MARKER = "/flaky_once.marker"
try:
    os.stat(MARKER)
    os.remove(MARKER)
    print("second run: passed")
except OSError:
    with open(MARKER, "w") as f:
        f.write("1")
    raise RuntimeError("first run fails on purpose")
