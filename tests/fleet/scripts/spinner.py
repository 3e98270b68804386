# A thread that keeps one core busy and one that sits deep in its stack, for
# the first argument's seconds (default 30): what a health history must show
# as a thread's CPU and stack columns.
import _thread
import sys
import time

seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 30


def spin():
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += 1


def deep(depth):
    if depth > 0:
        return deep(depth - 1) + 1
    time.sleep(seconds)
    return 0


_thread.start_new_thread(spin, ())
deep(40)
