#!/usr/bin/python3
"""The simulated hardware behind `machine`, as a lab drives it through the
control channel (issue #14): a Pin IRQ handler runs when the lab drives the
pin, an unfed WDT restarts the VM with an event and WDT_RESET as the reset
cause, machine.reset() restarts the VM while the channel answers, Timer
callbacks run while threads hold the GIL, disable_irq() excludes other
threads and held-back handlers, an inverted Signal drives its pin low,
time_pulse_us measures a pulse the lab drives, and SetPin/SetAdc refuse
what a bench could not do.

Run by tests/interop/board_fixture.py against a board with the default
(generic) profile: pins 0-63, ADC channels 0-7, hardware timers 0-3. Each
test leaves the board with no live threads and no pin driven. The tests
assert outcomes, never timings: every wait is a bounded poll (the one pulse
width is checked against the lab's own clock, with a wide margin).
"""

import re
import time
import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, Events, poll
from threadfleet.board.v1 import board_pb2 as pb

board = BoardUnderTest.from_env()
# The pins these tests drive; released after each test (a lab's drive
# survives resets, as a wire on the bench would).
DRIVEN_PINS = (4, 5)
# A VM restart: every thread killed (200 ms grace at most), a fresh heap.
RESTART_TIMEOUT_S = 10


def start(source, name):
    return board.stub().StartProgram(pb.StartProgramRequest(source=source, name=name), timeout=CONTROL_DEADLINE_S)


def get_machine():
    return board.stub().GetMachine(pb.GetMachineRequest(), timeout=CONTROL_DEADLINE_S).machine


def set_pin(pin, value=0, release=False):
    return board.stub().SetPin(pb.SetPinRequest(pin=pin, value=value, release=release), timeout=CONTROL_DEADLINE_S).pin


def pin_state(pin):
    found = [p for p in get_machine().pins if p.pin == pin]
    return found[0] if found else None


def wait_for_output(program_id, text, timeout_s=5):
    return poll(f"{text!r} in program {program_id}'s output", timeout_s, lambda: text in board.output(program_id))


class MachineTestCase(unittest.TestCase):
    def tearDown(self):
        for pin in DRIVEN_PINS:
            set_pin(pin, release=True)
        board.reset()


class PinTest(MachineTestCase):
    def test_irq_handler_runs_when_the_lab_drives_the_pin_while_the_program_sleeps(self):
        started = start(
            "import machine, time\n"
            "p = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_DOWN)\n"
            "p.irq(lambda pin: print('irq', pin.value()), machine.Pin.IRQ_RISING)\n"
            "print('armed')\n"
            "time.sleep(3600)\n",
            "button",
        )
        wait_for_output(started.program_id, b"armed")
        self.assertEqual(pin_state(4).value, 0)

        driven = set_pin(4, 1)
        self.assertTrue(driven.lab_driven)
        self.assertEqual(driven.value, 1)
        wait_for_output(started.program_id, b"irq 1\n")
        set_pin(4, 0)  # a falling edge: not a trigger of this handler

        state = pin_state(4)
        self.assertEqual(state.mode, pb.PIN_MODE_IN)
        self.assertEqual(state.pull, pb.PIN_PULL_DOWN)
        self.assertTrue(state.irq)
        self.assertEqual(state.irq_count, 1)
        self.assertEqual(board.output(started.program_id).count(b"irq"), 1)

    def test_released_pin_reads_its_pull_again(self):
        started = start(
            "import machine, time\n"
            "p = machine.Pin(5, machine.Pin.IN, machine.Pin.PULL_UP)\n"
            "print('ready')\n"
            "time.sleep(3600)\n",
            "pulled",
        )
        wait_for_output(started.program_id, b"ready")
        self.assertEqual(set_pin(5, 0).value, 0)
        released = set_pin(5, release=True)
        self.assertFalse(released.lab_driven)
        self.assertEqual(released.value, 1)

    def test_program_output_pin_shows_in_the_health_snapshot_and_setpin_on_it_is_failed_precondition(self):
        started = start(
            "import machine, time\nled = machine.Pin('LED', machine.Pin.OUT)\nled.on()\nprint('lit')\n"
            "time.sleep(3600)\n",
            "led",
        )
        wait_for_output(started.program_id, b"lit")
        led = [p for p in board.snapshot().machine.pins if p.pin == 2]  # the generic profile's LED
        self.assertEqual(len(led), 1)
        self.assertEqual((led[0].mode, led[0].value), (pb.PIN_MODE_OUT, 1))
        with self.assertRaises(grpc.RpcError) as caught:
            set_pin(2, 0)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("pin 2 is an output", caught.exception.details())

    def test_unknown_pin_and_value_not_a_level_are_invalid_argument_naming_them(self):
        with self.assertRaises(grpc.RpcError) as caught:
            set_pin(64, 1)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("pin 64 does not exist", caught.exception.details())
        with self.assertRaises(grpc.RpcError) as caught:
            set_pin(4, 2)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("value 2", caught.exception.details())


class AdcTest(MachineTestCase):
    def test_program_reads_what_the_lab_set(self):
        adc = board.stub().SetAdc(pb.SetAdcRequest(channel=3, value_u16=32768), timeout=CONTROL_DEADLINE_S).adc
        self.assertTrue(adc.lab_set)
        program, output = board.run_to_end("import machine\na = machine.ADC(3)\nprint(a.read_u16(), a.read_uv())\n")
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, output)
        self.assertEqual(output, b"32768 1650025\n")

    def test_unknown_channel_is_invalid_argument_naming_it(self):
        with self.assertRaises(grpc.RpcError) as caught:
            board.stub().SetAdc(pb.SetAdcRequest(channel=8, value_u16=1), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("channel 8 does not exist", caught.exception.details())


class ResetTest(MachineTestCase):
    def test_unfed_watchdog_restarts_the_vm_with_an_event_and_wdt_reset_as_the_cause(self):
        with Events(board) as events:
            started = start("import machine, time\nmachine.WDT(timeout=300)\nprint('armed')\ntime.sleep(3600)\n", "wdt")
            event = events.wait_for(pb.EVENT_KIND_WATCHDOG_RESET)
        self.assertIn("watchdog not fed", event.message)
        machine = get_machine()
        self.assertEqual(machine.reset_cause, pb.RESET_CAUSE_WATCHDOG)
        self.assertGreaterEqual(machine.watchdog.resets, 1)
        self.assertFalse(machine.watchdog.armed)  # a fresh VM has no watchdog
        self.assertEqual(board.program(started.program_id).state, pb.PROGRAM_STATE_KILLED)
        program, output = board.run_to_end("import machine\nprint(machine.reset_cause() == machine.WDT_RESET)\n")
        self.assertEqual(output, b"True\n")

    def test_fed_watchdog_keeps_the_program_running(self):
        program, output = board.run_to_end(
            "import machine, time\nw = machine.WDT(timeout=500)\n"
            "for _ in range(10):\n    time.sleep_ms(100)\n    w.feed()\nprint('alive')\n",
            timeout_s=10,
        )
        self.assertEqual(output, b"alive\n")

    def test_machine_reset_restarts_the_vm_while_listthreads_answers(self):
        answers = []

        def list_threads():
            answers.append(board.stub().ListThreads(pb.ListThreadsRequest(), timeout=CONTROL_DEADLINE_S))

        with Events(board) as events:
            started = start("import machine, time\nprint('resetting')\nmachine.reset()\nprint('not reached')\n", "r")
            event = events.wait_for(pb.EVENT_KIND_MACHINE_RESET, while_waiting=list_threads)
        self.assertIn("machine.reset()", event.message)
        self.assertTrue(answers)
        self.assertEqual(board.program(started.program_id).state, pb.PROGRAM_STATE_KILLED)
        self.assertEqual(board.output(started.program_id), b"resetting\n")
        self.assertEqual(get_machine().reset_cause, pb.RESET_CAUSE_HARD)
        program, output = board.run_to_end("print('fresh')\n")
        self.assertEqual(output, b"fresh\n")

    def test_soft_reset_and_deepsleep_restart_the_vm_with_their_cause(self):
        for call, message, cause in (
            ("machine.soft_reset()", "machine.soft_reset()", pb.RESET_CAUSE_SOFT),
            ("machine.deepsleep(100)", "machine.deepsleep()", pb.RESET_CAUSE_DEEPSLEEP),
        ):
            with self.subTest(call=call):
                with Events(board) as events:
                    start(f"import machine\n{call}\n", "sleeper")
                    event = events.wait_for(pb.EVENT_KIND_MACHINE_RESET)
                self.assertIn(message, event.message)
                self.assertEqual(get_machine().reset_cause, cause)


class TimerTest(MachineTestCase):
    def test_timer_callbacks_run_while_threads_hold_the_gil(self):
        # Two threads spin (never sleep) for a second; the callbacks can only
        # run at their GIL bounces, as on a port.
        program, output = board.run_to_end(
            "import machine, time, _thread\n"
            "n = [0]\n"
            "def tick(t):\n"
            "    n[0] += 1\n"
            "t = machine.Timer(0, mode=machine.Timer.PERIODIC, period=20, callback=tick)\n"
            "def spin():\n"
            "    end = time.ticks_add(time.ticks_ms(), 1000)\n"
            "    while time.ticks_diff(end, time.ticks_ms()) > 0:\n"
            "        pass\n"
            "_thread.start_new_thread(spin, ())\n"
            "spin()\n"
            "print('fired while spinning', n[0] > 0)\n"
            "t.deinit()\n",
            timeout_s=10,
        )
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, output)
        self.assertEqual(output, b"fired while spinning True\n")
        timer = [t for t in get_machine().timers if t.id == 0][0]
        self.assertEqual((timer.mode, timer.period_ms, timer.running), (pb.TIMER_MODE_PERIODIC, 20, False))
        self.assertGreater(timer.fired, 0)

    def test_timer_and_irq_handler_end_with_their_program(self):
        program, _ = board.run_to_end(
            "import machine\n"
            "machine.Timer(1, period=60000, callback=lambda t: None)\n"
            "machine.Pin(5, machine.Pin.IN).irq(lambda p: None)\n"
        )
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED)
        poll("timer 1 stopped", 5, lambda: not [t for t in get_machine().timers if t.id == 1 and t.running])
        poll("pin 5's handler gone", 5, lambda: not pin_state(5).irq)


class ProgramInputTest(MachineTestCase):
    def test_timers_beyond_the_slots_and_bad_periods_ids_timeouts_and_freqs_raise_naming_the_limit(self):
        poll("no timer of an earlier test running", 5, lambda: not [t for t in get_machine().timers if t.running])
        program, output = board.run_to_end(
            "import machine\n"
            "def tried(f):\n"
            "    try:\n"
            "        f()\n"
            "        return 'ok'\n"
            "    except Exception as e:\n"
            "        return '%s: %s' % (type(e).__name__, e)\n"
            "cb = lambda t: None\n"
            "ts = [machine.Timer(-1, period=60000, callback=cb) for _ in range(8)]\n"
            "print(tried(lambda: machine.Timer(-1, period=60000, callback=cb)))\n"
            "for t in ts:\n"
            "    t.deinit()\n"
            "print(tried(lambda: machine.Timer(-1, freq=5000, callback=cb)))\n"
            "print(tried(lambda: machine.Timer(-1, period=0, callback=cb)))\n"
            "print(tried(lambda: machine.Timer(99)))\n"
            "print(tried(lambda: machine.WDT(timeout=0)))\n"
            "print(tried(lambda: machine.freq(2000000000)))\n"
            "print(machine.freq())\n"
        )
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, output)
        self.assertEqual(
            output.decode().splitlines(),
            [
                "OSError: all timers are in use",
                "ValueError: timer period under 1 ms (freq over 1 kHz)",
                "ValueError: Timer needs a positive period or freq",
                "ValueError: Timer(99) doesn't exist",
                "ValueError: WDT timeout must be 1 ms or more",
                "ValueError: freq must be 1 MHz to 1 GHz",
                str(get_machine().freq_hz),
            ],
        )


class DisableIrqTest(MachineTestCase):
    def test_disable_irq_excludes_another_thread(self):
        # MicroPython's tests/thread/disable_irq.py, shortened.
        program, output = board.run_to_end(
            "import machine, time, _thread\n"
            "count = 0\n"
            "done = []\n"
            "def inc(times):\n"
            "    global count\n"
            "    for _ in range(times):\n"
            "        a = machine.disable_irq()\n"
            "        c = count\n"
            "        for i in range(20):\n"
            "            b = machine.disable_irq()\n"
            "            machine.enable_irq(b)\n"
            "        count = c + 1\n"
            "        machine.enable_irq(a)\n"
            "    done.append(1)\n"
            "_thread.start_new_thread(inc, (500,))\n"
            "inc(500)\n"
            "while len(done) < 2:\n"
            "    time.sleep_ms(10)\n"
            "print('count', count)\n",
            timeout_s=20,
        )
        self.assertEqual(output, b"count 1000\n")

    def test_timer_callback_is_held_back_until_enable_irq(self):
        program, output = board.run_to_end(
            "import machine, time\n"
            "n = [0]\n"
            "def tick(t):\n"
            "    n[0] += 1\n"
            "t = machine.Timer(2, period=50, callback=tick)\n"
            "s = machine.disable_irq()\n"
            "end = time.ticks_add(time.ticks_ms(), 300)\n"
            "while time.ticks_diff(end, time.ticks_ms()) > 0:\n"
            "    pass\n"
            "masked = n[0]\n"
            "machine.enable_irq(s)\n"
            "time.sleep_ms(200)\n"
            "t.deinit()\n"
            "print('masked', masked, 'after', n[0] > 0)\n",
            timeout_s=10,
        )
        self.assertEqual(output, b"masked 0 after True\n")


class SignalTest(MachineTestCase):
    def test_inverted_signal_on_drives_the_pin_low_and_off_drives_it_high(self):
        started = start(
            "import machine, time\n"
            "from machine import Pin, Signal\n"
            "Signal(Pin(4, Pin.OUT), invert=True).on()\n"
            "Signal(5, Pin.OUT, invert=True).off()\n"  # Signal makes the Pin, as on ESP32/RP2
            "print('set')\n"
            "time.sleep(3600)\n",
            "signal",
        )
        wait_for_output(started.program_id, b"set")
        for pin, level in ((4, 0), (5, 1)):
            state = pin_state(pin)
            self.assertEqual((state.mode, state.value, state.lab_driven), (pb.PIN_MODE_OUT, level, False))


class TimePulseTest(MachineTestCase):
    # How long the lab holds its pulse. The board polls the pin about every
    # 10 us but its thread may wake late on a busy host, so the width is
    # only checked to be this pulse's (half of it at least, and no more than
    # the lab's own span of the two SetPin calls plus a second).
    PULSE_S = 0.4

    def test_time_pulse_us_measures_the_pulse_the_lab_drives(self):
        started = start(
            "import machine\n"
            "p = machine.Pin(5, machine.Pin.IN, machine.Pin.PULL_DOWN)\n"
            "print('waiting')\n"
            "print('width', machine.time_pulse_us(p, 1, 20000000))\n",
            "pulse",
        )
        wait_for_output(started.program_id, b"waiting")
        began = time.monotonic()
        set_pin(5, 1)
        time.sleep(self.PULSE_S)
        set_pin(5, 0)
        span_us = (time.monotonic() - began) * 1e6
        found = poll(
            "the measured width",
            5,
            lambda: re.search(rb"width (-?\d+)\n", board.output(started.program_id)),
        )
        width_us = int(found.group(1))
        self.assertGreaterEqual(width_us, self.PULSE_S / 2 * 1e6)
        self.assertLess(width_us, span_us + 1e6)

    def test_pulses_that_never_begin_or_never_end_give_minus_2_and_minus_1(self):
        set_pin(4, 1)  # held high for the whole program
        program, output = board.run_to_end(
            "import machine\n"
            "low = machine.Pin(5, machine.Pin.IN, machine.Pin.PULL_DOWN)\n"
            "high = machine.Pin(4, machine.Pin.IN)\n"
            "print(machine.time_pulse_us(low, 1, 2000), machine.time_pulse_us(high, 1, 2000))\n"
        )
        self.assertEqual(output, b"-2 -1\n")

    def test_something_not_a_pin_is_type_error_naming_its_type(self):
        program, output = board.run_to_end(
            "import io, machine\n"
            "for call in (lambda: machine.time_pulse_us(io.BytesIO(), 1), lambda: machine.Signal(io.BytesIO()).on()):\n"
            "    try:\n"
            "        call()\n"
            "    except TypeError as e:\n"
            "        print(e)\n"
        )
        self.assertEqual(output, b"expecting a Pin, Signal or PinBase, not BytesIO\n" * 2)

    def test_a_long_wait_for_a_pulse_ends_when_the_program_is_killed(self):
        started = start(
            "import machine\n"
            "p = machine.Pin(5, machine.Pin.IN, machine.Pin.PULL_DOWN)\n"
            "print('waiting')\n"
            "machine.time_pulse_us(p, 1, 3600000000)\n",
            "forever",
        )
        wait_for_output(started.program_id, b"waiting")
        killed = board.stub().KillProgram(
            pb.KillProgramRequest(program_id=started.program_id), timeout=CONTROL_DEADLINE_S
        )
        self.assertEqual(list(killed.unkillable_thread_ids), [])
        self.assertEqual(killed.program.state, pb.PROGRAM_STATE_KILLED)


if __name__ == "__main__":
    try:
        unittest.main()
    finally:
        board.close()
