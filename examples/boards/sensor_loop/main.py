# Sensor loop as it ships on an ESP32 or RP2040 board (main.py on flash):
# a _thread samples an ADC into a lock-protected ring, asyncio tasks average
# and report, a machine.Timer blinks the LED, and the main loop feeds a
# watchdog so a hung loop resets the board.
import _thread
import asyncio
import sys
import time

import machine

try:
    import fleet  # only on threadfleet boards: the averages show in health
except ImportError:
    fleet = None

# What differs between boards: the LED, the ADC input and the timer id
# (the ESP32 has hardware timers 0-3 only, the RP2040 virtual ones only).
BOARDS = {
    "esp32": {"led": 2, "adc_pin": 34, "timer": 0},  # GPIO34: ADC1 channel 6
    "rp2": {"led": "LED", "adc_pin": 26, "timer": -1},  # GPIO26: ADC channel 0
}
DEFAULT_BOARD = {"led": 2, "adc_pin": 0, "timer": -1}

SAMPLE_MS = 20
RING_SIZE = 32  # 640 ms of samples at SAMPLE_MS
AVERAGE_MS = 250
REPORT_MS = 1000
BLINK_MS = 250
WDT_TIMEOUT_MS = 3000  # under the RP2040's 8388 ms ceiling
FEED_MS = 500


class Ring:
    """The last RING_SIZE samples; written by the sampler thread, read by
    the averaging task, both under one lock."""

    def __init__(self, size):
        self.values = [0] * size
        self.next = 0
        self.count = 0
        self.total = 0
        self.lock = _thread.allocate_lock()

    def put(self, value):
        with self.lock:
            self.values[self.next] = value
            self.next = (self.next + 1) % len(self.values)
            self.count = min(self.count + 1, len(self.values))
            self.total += 1

    def snapshot(self):
        with self.lock:
            return self.values[: self.count], self.total


class State:
    def __init__(self):
        self.running = True
        self.average = None
        self.blinks = 0


def sampler(adc, ring, state):
    while state.running:
        ring.put(adc.read_u16())
        time.sleep_ms(SAMPLE_MS)


async def average(ring, state):
    while True:
        values, _ = ring.snapshot()
        if values:
            state.average = sum(values) // len(values)
        await asyncio.sleep_ms(AVERAGE_MS)


async def report(ring, state):
    n = 0
    while True:
        await asyncio.sleep_ms(REPORT_MS)
        n += 1
        _, samples = ring.snapshot()
        print("report", n, "adc_avg_u16", state.average, "samples", samples, "blinks", state.blinks)
        if fleet and state.average is not None:
            fleet.report(adc_avg_u16=state.average)


async def main(ring, state, wdt):
    asyncio.create_task(average(ring, state))
    asyncio.create_task(report(ring, state))
    # The main loop feeds the watchdog: if the event loop stalls (a task
    # that never awaits), the board resets.
    while True:
        wdt.feed()
        await asyncio.sleep_ms(FEED_MS)


def run():
    board = BOARDS.get(sys.platform, DEFAULT_BOARD)
    led = machine.Pin(board["led"], machine.Pin.OUT, value=0)
    adc = machine.ADC(machine.Pin(board["adc_pin"]))
    ring = Ring(RING_SIZE)
    state = State()

    def blink(timer):
        led.toggle()
        state.blinks += 1

    timer = machine.Timer(board["timer"], mode=machine.Timer.PERIODIC, period=BLINK_MS, callback=blink)
    wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)
    _thread.start_new_thread(sampler, (adc, ring, state))
    print("sensor loop on", sys.platform, "led", board["led"], "timer", board["timer"])
    try:
        asyncio.run(main(ring, state, wdt))
    finally:
        state.running = False
        timer.deinit()
        led.off()


run()
