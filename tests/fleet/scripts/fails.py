# A thread that dies of an uncaught exception two calls deep, while the main
# thread goes on: fleetctl shows it `failed` with this traceback.
import _thread
import time
import fleet


def parse_reading(text):
    return int(text)


def checker():
    fleet.thread_name("checker")
    time.sleep_ms(300)
    parse_reading("not-a-number")


_thread.start_new_thread(checker, ())
time.sleep(3)
print("main thread still fine")
