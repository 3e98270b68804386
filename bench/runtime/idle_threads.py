# Memory footprint probe for bench/runtime: a board running 16 threads
# (the main one plus 15 sleepers).
import _thread
import time

started = 0
lock = _thread.allocate_lock()


def sleeper():
    global started
    with lock:
        started += 1
    time.sleep(1)


for _ in range(15):
    _thread.start_new_thread(sleeper, ())
time.sleep(1.5)
print("threads", started + 1)
