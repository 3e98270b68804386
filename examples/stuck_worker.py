# A worker that never finishes on its own: it swallows ordinary exceptions
# and sleeps forever. On a threadfleet board it can still be killed remotely
# (fleet.ThreadKilled is a BaseException); here the program stops it itself
# after a while by running with `fleetboard run --timeout 2`.
import _thread
import time


def worker():
    while True:
        try:
            time.sleep(3600)
        except Exception as e:
            print("worker ignored", e)


_thread.start_new_thread(worker, ())
print("worker started; waiting forever")
while True:
    time.sleep(1)
