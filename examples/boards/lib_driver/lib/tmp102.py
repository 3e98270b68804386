# Driver for TI's TMP102 I2C temperature sensor, installed in /lib as
# libraries are on a board (mpremote cp / mip). `i2c` is anything with the
# machine.I2C memory API: readfrom_mem(addr, reg, n) and
# writeto_mem(addr, reg, buf).
#
#   from machine import I2C, Pin
#   sensor = tmp102.TMP102(I2C(0, scl=Pin(22), sda=Pin(21)))
#   print(sensor.temperature())

REG_TEMPERATURE = 0x00
REG_CONFIG = 0x01
REG_T_LOW = 0x02
REG_T_HIGH = 0x03

# Configuration register bits (16 bits, most significant byte first).
CONFIG_ONE_SHOT = 0x8000
CONFIG_SHUTDOWN = 0x0100
CONFIG_EXTENDED = 0x0010  # 13-bit readings up to 150 C
CONFIG_ALERT = 0x0020  # read-only: low while over T_HIGH (polarity 0)

LSB_C = 0.0625
DEFAULT_ADDRESS = 0x48  # ADD0 to ground


class TMP102:
    def __init__(self, i2c, address=DEFAULT_ADDRESS):
        self.i2c = i2c
        self.address = address

    def _read(self, reg):
        data = self.i2c.readfrom_mem(self.address, reg, 2)
        return (data[0] << 8) | data[1]

    def _write(self, reg, value):
        self.i2c.writeto_mem(self.address, reg, bytes(((value >> 8) & 0xFF, value & 0xFF)))

    def _bits(self):
        return 13 if self._read(REG_CONFIG) & CONFIG_EXTENDED else 12

    def _to_celsius(self, raw, bits):
        # Left-aligned two's complement, 12 bits or 13 in extended mode.
        value = raw >> (16 - bits)
        if value & (1 << (bits - 1)):
            value -= 1 << bits
        return value * LSB_C

    def _from_celsius(self, celsius):
        bits = self._bits()
        value = int(round(celsius / LSB_C))
        limit = 1 << (bits - 1)
        if not -limit <= value < limit:
            raise ValueError("temperature out of range")
        return (value & ((1 << bits) - 1)) << (16 - bits)

    def temperature(self):
        """The last conversion, in degrees Celsius."""
        raw = self._read(REG_TEMPERATURE)
        # Bit 0 of a reading says which format the chip wrote it in.
        return self._to_celsius(raw, 13 if raw & 1 else 12)

    def set_extended(self, on):
        config = self._read(REG_CONFIG)
        self._write(REG_CONFIG, (config | CONFIG_EXTENDED) if on else (config & ~CONFIG_EXTENDED))

    def shutdown(self, on=True):
        config = self._read(REG_CONFIG)
        self._write(REG_CONFIG, (config | CONFIG_SHUTDOWN) if on else (config & ~CONFIG_SHUTDOWN))

    def one_shot(self):
        """Starts one conversion while shut down (to save power)."""
        self._write(REG_CONFIG, self._read(REG_CONFIG) | CONFIG_ONE_SHOT)

    def set_limits(self, low, high):
        """The thermostat: ALERT goes active above `high`, clears below `low`."""
        if low >= high:
            raise ValueError("low limit must be below high limit")
        self._write(REG_T_LOW, self._from_celsius(low))
        self._write(REG_T_HIGH, self._from_celsius(high))

    def limits(self):
        bits = self._bits()
        return self._to_celsius(self._read(REG_T_LOW), bits), self._to_celsius(self._read(REG_T_HIGH), bits)

    def alert(self):
        """True while the temperature is over the high limit."""
        return not self._read(REG_CONFIG) & CONFIG_ALERT
