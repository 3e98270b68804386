# Reads a TMP102 through the driver installed in /lib (lib/tmp102.py, or the
# tmp102.mpy that mpy-cross compiled from it). On a board with the chip on
# I2C bus 0 it reads the chip; otherwise it reads a bench stand-in that
# answers on the bus as the chip does, stepping through known temperatures.
import sys

import machine
import tmp102

CONFIG_READ_ONLY = 0x6000 | tmp102.CONFIG_ALERT  # R1/R0 (12-bit resolution) and AL


class BenchTMP102:
    """The TMP102's registers behind the machine.I2C memory API: 12-bit
    readings (13-bit in extended mode), shutdown with one-shot
    conversions, and the comparator-mode ALERT with T_LOW/T_HIGH."""

    def __init__(self, address=tmp102.DEFAULT_ADDRESS):
        self.address = address
        self.celsius = 0.0
        self.regs = {0: 0, 1: 0x60A0, 2: 0x4B00, 3: 0x5000}  # power-on values

    def _bits(self):
        return 13 if self.regs[1] & tmp102.CONFIG_EXTENDED else 12

    def _limit(self, reg):
        bits = self._bits()
        value = self.regs[reg] >> (16 - bits)
        if value & (1 << (bits - 1)):
            value -= 1 << bits
        return value * tmp102.LSB_C

    def _convert(self):
        bits = self._bits()
        raw = (int(self.celsius / tmp102.LSB_C) & ((1 << bits) - 1)) << (16 - bits)
        self.regs[0] = raw | (1 if bits == 13 else 0)
        if self.celsius >= self._limit(3):
            self.regs[1] &= ~tmp102.CONFIG_ALERT
        elif self.celsius < self._limit(2):
            self.regs[1] |= tmp102.CONFIG_ALERT

    def set_temperature(self, celsius):
        self.celsius = celsius
        if not self.regs[1] & tmp102.CONFIG_SHUTDOWN:
            self._convert()

    def readfrom_mem(self, address, reg, n):
        self._check(address, reg)
        value = self.regs[reg]
        return bytes((value >> 8, value & 0xFF))[:n]

    def writeto_mem(self, address, reg, buf):
        self._check(address, reg)
        if reg == 0:
            raise OSError(5)  # the temperature register is read-only: EIO
        value = (buf[0] << 8) | buf[1]
        if reg == 1:
            # The resolution bits and AL are read-only; OS starts one
            # conversion and is not kept.
            self.regs[1] = (value & ~(CONFIG_READ_ONLY | tmp102.CONFIG_ONE_SHOT)) | (self.regs[1] & CONFIG_READ_ONLY)
            if value & tmp102.CONFIG_ONE_SHOT:
                self._convert()
            return
        self.regs[reg] = value

    def _check(self, address, reg):
        if address != self.address or reg not in self.regs:
            raise OSError(19)  # no device answered: ENODEV, as machine.I2C says


def open_sensor():
    try:
        i2c = machine.I2C(0)
        if tmp102.DEFAULT_ADDRESS in i2c.scan():
            return tmp102.TMP102(i2c), None
    except (AttributeError, ValueError, OSError):
        pass  # no I2C on this board, or no chip on the bus
    bench = BenchTMP102()
    return tmp102.TMP102(bench), bench


def main():
    sensor, bench = open_sensor()
    print("tmp102 driver from", tmp102.__file__, "on", sys.platform)
    if bench is None:
        print("temperature", sensor.temperature())
        return
    print("bench stand-in at 0x%02x" % bench.address)

    sensor.set_limits(30.0, 40.0)
    print("limits", sensor.limits())
    for celsius in (25.0, -0.25, -25.0, 41.5, 35.0, 29.0, 127.9375):
        bench.set_temperature(celsius)
        print("temperature %.4f alert %s" % (sensor.temperature(), sensor.alert()))

    sensor.set_extended(True)
    bench.set_temperature(150.0)
    print("extended temperature %.4f" % sensor.temperature())
    sensor.set_extended(False)
    bench.set_temperature(22.0)
    print("temperature %.4f" % sensor.temperature())

    sensor.shutdown()
    bench.set_temperature(20.5)
    print("shut down, still reads %.4f" % sensor.temperature())
    sensor.one_shot()
    print("after one-shot %.4f" % sensor.temperature())

    try:
        sensor.set_limits(50.0, 10.0)
    except ValueError as e:
        print("refused:", e)


main()
