# bench/fleet_scale: the load on every board: 10 MicroPython threads that
# sleep (the main thread and 9 it starts), as an idle lab's boards would run.
import _thread
import time

THREADS = 10


def sleeper():
    while True:
        time.sleep(3600)


for _ in range(THREADS - 1):
    _thread.start_new_thread(sleeper, ())
sleeper()
