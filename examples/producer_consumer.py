# A producer and two consumers hand work over through a queue guarded by a
# lock; the consumers poll with a short sleep, as MicroPython code often does.
import _thread
import time

lock = _thread.allocate_lock()
queue = []
done = [0]
consumed = {}


def producer(n):
    for i in range(n):
        with lock:
            queue.append(i)
        time.sleep_ms(10)
    with lock:
        queue.append(None)
        queue.append(None)


def consumer(name):
    count = 0
    while True:
        with lock:
            item = queue.pop(0) if queue else "empty"
        if item is None:
            break
        if item == "empty":
            time.sleep_ms(5)
            continue
        count += 1
    with lock:
        consumed[name] = count
        done[0] += 1


_thread.start_new_thread(producer, (40,))
_thread.start_new_thread(consumer, ("a",))
_thread.start_new_thread(consumer, ("b",))
while done[0] < 2:
    time.sleep_ms(20)
print("consumed", consumed["a"] + consumed["b"], "items")
