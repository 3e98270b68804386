# Three sampler threads share one lock-protected buffer; the main thread
# reports what they collected. Metrics show in the board's health.
import _thread
import time
import fleet

lock = _thread.allocate_lock()
readings = []
finished = 0


def sampler(name, period_ms, count):
    global finished
    fleet.thread_name(name)
    for i in range(count):
        value = (i * 7 + len(name)) % 50
        with lock:
            readings.append((name, value))
        fleet.report(last=value)
        time.sleep_ms(period_ms)
    with lock:
        finished += 1


for name, period in (("temp", 100), ("humidity", 150), ("light", 200)):
    _thread.start_new_thread(sampler, (name, period, 5))

while True:
    with lock:
        if finished == 3:
            break
    time.sleep_ms(50)

print("board", fleet.name(), "collected", len(readings), "readings")
for name in ("temp", "humidity", "light"):
    values = [v for n, v in readings if n == name]
    print(" ", name, "min", min(values), "max", max(values))
