# A weather station for the demo lab: named threads that run for a while
# (10 minutes, or the seconds given as the first argument) so their states,
# stacks and metrics can be watched live with `fleetctl threads` and
# `fleetctl health`, and any one of them killed with `fleetctl kill`.
#   sensors  "temp", "humidity", "wind": sample, report the value as a metric
#   "uplink"  every second, collects the latest readings under a lock and prints them
#   main      waits for the run to end, then prints a summary
# A killed thread stops alone; the others go on (the uplink notes who went quiet).
import _thread
import sys
import time
import fleet

DURATION_S = int(sys.argv[1]) if len(sys.argv) > 1 else 600
PERIODS_MS = {"temp": 200, "humidity": 300, "wind": 150}

lock = _thread.allocate_lock()
latest = {}  # sensor name -> (sample number, value)
stop_at = time.ticks_add(time.ticks_ms(), DURATION_S * 1000)


def running():
    return time.ticks_diff(stop_at, time.ticks_ms()) > 0


def sample(name, i):
    # A deterministic wave per sensor: no randomness, easy to check by eye.
    base = {"temp": 20, "humidity": 55, "wind": 5}[name]
    return base + ((i * 5 + len(name) * 3) % 21 - 10) / 2


def sensor(name):
    fleet.thread_name(name)
    i = 0
    while running():
        value = sample(name, i)
        with lock:
            latest[name] = (i, value)
        fleet.report(value=value, samples=i + 1)
        i += 1
        time.sleep_ms(PERIODS_MS[name])


def uplink():
    fleet.thread_name("uplink")
    seen = {}
    sent = 0
    while running():
        time.sleep(1)
        with lock:
            snapshot = dict(latest)
        quiet = [n for n in sorted(snapshot) if seen.get(n) == snapshot[n][0]]
        seen = {n: snapshot[n][0] for n in snapshot}
        line = " ".join("%s=%.1f" % (n, snapshot[n][1]) for n in sorted(snapshot))
        print("uplink %d: %s%s" % (sent, line, ("  (quiet: %s)" % ",".join(quiet)) if quiet else ""))
        sent += 1
        fleet.report(sent=sent)


for name in sorted(PERIODS_MS):
    _thread.start_new_thread(sensor, (name,))
_thread.start_new_thread(uplink, ())
print("station", fleet.name(), "up for", DURATION_S, "s with sensors", ", ".join(sorted(PERIODS_MS)))

while running():
    time.sleep_ms(250)
time.sleep_ms(500)  # let the threads see the end
with lock:
    print("station", fleet.name(), "done:", ", ".join("%s %d samples" % (n, latest[n][0] + 1) for n in sorted(latest)))
