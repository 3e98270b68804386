# Two threads that sleep for the first argument's seconds (default 60) and
# print a line each second: a program a job can time out, cancel or kill.
import _thread
import sys
import time

seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60


def sleep_loop(name):
    for i in range(seconds):
        print(name, "tick", i)
        time.sleep(1)


_thread.start_new_thread(sleep_loop, ("worker",))
sleep_loop("main")
