# Two named workers that print a tick every half second for five minutes:
# the dashboard kills one and the other goes on.
import _thread
import time
import fleet


def work(name):
    fleet.thread_name(name)
    for i in range(600):
        print(name, "tick", i)
        time.sleep_ms(500)


_thread.start_new_thread(work, ("worker-a",))
_thread.start_new_thread(work, ("worker-b",))
time.sleep(300)
