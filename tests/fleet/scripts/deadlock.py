# Two threads take two locks in opposite order and wait for each other
# forever: the board reports a cycle in its lock wait-for graph (a deadlock).
# The main thread ends after the first argument's seconds (default 120).
import _thread
import sys
import time
import fleet

a = _thread.allocate_lock()
b = _thread.allocate_lock()


def take(name, first, second):
    fleet.thread_name(name)
    with first:
        time.sleep_ms(300)  # both hold their first lock before either asks for the second
        with second:
            print(name, "got both locks")


_thread.start_new_thread(take, ("left", a, b))
_thread.start_new_thread(take, ("right", b, a))
time.sleep(int(sys.argv[1]) if len(sys.argv) > 1 else 120)
