# Arms a 300 ms watchdog and never feeds it: the board's VM restarts, as a
# real board's would, and fleetd records a WATCHDOG_RESET event.
import machine
import time

wdt = machine.WDT(timeout=300)
print("watchdog armed")
time.sleep(10)
