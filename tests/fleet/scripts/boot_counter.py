# A main.py that counts its boots in a file (files survive resets), says why
# the board last started, and resets the board itself until its third boot;
# then it stays. The boot tests (tests/board/boot_test.py,
# tests/fleet/machine_test.py) push it to /main.py.
import machine, time

try:
    n = int(open("/count").read())
except OSError:
    n = 0
n += 1
open("/count", "w").write(str(n))
cause = {machine.SOFT_RESET: "soft", machine.HARD_RESET: "hard"}.get(machine.reset_cause(), "other")
print("boot", n, cause)
if n < 3:
    time.sleep_ms(300)  # a moment for the lab to see this boot's program
    machine.reset()
while True:
    time.sleep_ms(100)
