# A board's "hello world" for the machine simulation: the LED on pin 2
# follows the button on pin 4, through the button's IRQ handler (run by the
# scheduler, as on a real port). The lab presses the button with
# `fleetctl pin BOARD 4 1`.
import machine
import time

led = machine.Pin(2, machine.Pin.OUT)
led.value(0)
button = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_DOWN)


def on_edge(pin):
    led.value(pin.value())


button.irq(on_edge, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)
print("button-led ready")
while True:
    time.sleep_ms(20)
