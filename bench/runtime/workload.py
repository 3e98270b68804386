# Thread-heavy workload for bench/runtime: THREADS threads each do ITERATIONS
# rounds of lock-protected counting plus a few function calls. Runs unchanged
# on the stock MicroPython unix port and on a threadfleet board.
import _thread
import sys
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
ITERATIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 100000

lock = _thread.allocate_lock()
counter = 0
done = 0


def square(x):
    return x * x


def accumulate(a, b):
    return a + square(b) % 7


def worker(n):
    global counter, done
    local = 0
    for i in range(n):
        local = accumulate(local, i)
        with lock:
            counter += 1
    with lock:
        done += 1


for _ in range(THREADS):
    _thread.start_new_thread(worker, (ITERATIONS,))

while True:
    with lock:
        if done == THREADS:
            break
    time.sleep_ms(1)

print("total", counter)
