# The program bench/jobs runs on every board: a worker thread and the main
# thread each print a few lines over about a second, then it ends.
import _thread
import time

done = _thread.allocate_lock()
done.acquire()


def worker():
    for i in range(5):
        print("worker", i)
        time.sleep_ms(100)
    done.release()


_thread.start_new_thread(worker, ())
for i in range(5):
    print("main", i)
    time.sleep_ms(200)
done.acquire()
print("bench app ok")
