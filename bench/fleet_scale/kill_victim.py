# bench/fleet_scale: one thread to kill; it sleeps until it is killed.
import time

while True:
    time.sleep(3600)
