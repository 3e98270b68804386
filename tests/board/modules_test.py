#!/usr/bin/python3
"""The MicroPython modules a board program expects are there and behave as on
a board (issue #14): uctypes, framebuf, deflate, the `vfs` module, os.urandom,
binascii.crc32, hashlib.sha1/md5, help(), sys.stdout.buffer, select.select,
time.localtime(time.time()), and what esp32/rp2 images also carry: cryptolib,
re's match groups and spans, micropython.mem_total, sys.exc_info.

Each test runs a program on a fresh board (`fleetboard run`, a real board
process with its own flash) and checks what the program printed.
FLEETBOARD names the binary (set by ctest).
"""

import hashlib
import os
import subprocess
import tempfile
import unittest
import zlib

FLEETBOARD = os.environ["FLEETBOARD"]
RUN_TIMEOUT_S = 30  # a hung board fails the test instead of the ctest timeout


def run(source):
    """Runs `source` on a fresh board; returns (exit code, stdout, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "app.py")
        with open(script, "w") as f:
            f.write(source)
        done = subprocess.run(
            [FLEETBOARD, "run", script, "--timeout", "20"],
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
        )
    return done.returncode, done.stdout, done.stderr.decode(errors="replace")


class ModulesTest(unittest.TestCase):
    def run_ok(self, source):
        rc, out, err = run(source)
        self.assertEqual(rc, 0, f"exit {rc}, stderr:\n{err}\nstdout:\n{out!r}")
        return out.decode()

    def test_localtime_of_time_is_now_as_a_board_gives_it(self):
        out = self.run_ok(
            "import time\n"
            "t = time.time()\n"
            "print(type(t).__name__, time.localtime(t)[0] >= 2024, time.gmtime(t) == time.gmtime(t))\n"
            "print(time.mktime(time.localtime(t)) == t)\n"
        )
        self.assertEqual(out, "int True True\nTrue\n")

    def test_urandom_gives_the_bytes_asked_for_and_refuses_a_negative_count(self):
        out = self.run_ok(
            "import os\n"
            "a, b = os.urandom(64), os.urandom(64)\n"
            "print(len(a), len(os.urandom(100000)), a != b, os.urandom(0))\n"
            "try:\n"
            "    os.urandom(-1)\n"
            "except ValueError as e:\n"
            "    print('ValueError', e)\n"
        )
        self.assertEqual(out, "64 100000 True b''\nValueError urandom: n must be >= 0\n")

    def test_crc32_sha1_and_md5_agree_with_cpython(self):
        data = b"threadfleet" * 100
        out = self.run_ok(
            "import binascii, hashlib\n"
            f"data = {data!r}\n"
            "print(binascii.crc32(data))\n"
            "print(binascii.hexlify(hashlib.sha1(data).digest()).decode())\n"
            "print(binascii.hexlify(hashlib.md5(data).digest()).decode())\n"
        )
        expected = f"{zlib.crc32(data)}\n{hashlib.sha1(data).hexdigest()}\n{hashlib.md5(data).hexdigest()}\n"
        self.assertEqual(out, expected)

    def test_deflate_round_trips_and_reads_what_cpython_compressed(self):
        text = b"sensor reading 42\n" * 50
        out = self.run_ok(
            "import deflate, io\n"
            f"text = {text!r}\n"
            "buf = io.BytesIO()\n"
            "with deflate.DeflateIO(buf, deflate.ZLIB) as d:\n"
            "    d.write(text)\n"
            "packed = buf.getvalue()\n"
            "print(len(packed) < len(text), deflate.DeflateIO(io.BytesIO(packed)).read() == text)\n"
            f"print(deflate.DeflateIO(io.BytesIO({zlib.compress(text)!r}), deflate.ZLIB).read() == text)\n"
        )
        self.assertEqual(out, "True True\nTrue\n")

    def test_uctypes_lays_a_struct_over_a_buffer(self):
        out = self.run_ok(
            "import uctypes\n"
            "desc = {'id': uctypes.UINT16 | 0, 'flags': uctypes.UINT8 | 2,\n"
            "        'temp': uctypes.INT16 | 4}\n"
            "buf = bytearray(b'\\x34\\x12\\x05\\x00\\xfe\\xff')\n"
            "s = uctypes.struct(uctypes.addressof(buf), desc, uctypes.LITTLE_ENDIAN)\n"
            "print(hex(s.id), s.flags, s.temp, uctypes.sizeof(desc))\n"
            "s.flags = 7\n"
            "print(buf[2])\n"
        )
        self.assertEqual(out, "0x1234 5 -2 6\n7\n")

    def test_framebuf_draws_into_a_display_buffer(self):
        out = self.run_ok(
            "import framebuf\n"
            "buf = bytearray(8 * 8 // 8)\n"
            "fb = framebuf.FrameBuffer(buf, 8, 8, framebuf.MONO_HLSB)\n"
            "fb.fill(0)\n"
            "fb.hline(0, 0, 8, 1)\n"
            "fb.pixel(7, 7, 1)\n"
            "print(list(buf), fb.pixel(7, 7), fb.pixel(6, 7))\n"
        )
        self.assertEqual(out, "[255, 0, 0, 0, 0, 0, 0, 1] 1 0\n")

    def test_vfs_mounts_a_fat_ram_disk_beside_the_flash(self):
        out = self.run_ok(
            "import os, vfs\n"
            "class RAMBlockDev:\n"
            "    def __init__(self, blocks):\n"
            "        self.data = bytearray(blocks * 512)\n"
            "    def readblocks(self, n, buf):\n"
            "        buf[:] = self.data[n * 512:n * 512 + len(buf)]\n"
            "    def writeblocks(self, n, buf):\n"
            "        self.data[n * 512:n * 512 + len(buf)] = buf\n"
            "    def ioctl(self, op, arg):\n"
            "        return {4: len(self.data) // 512, 5: 512}.get(op, 0)\n"
            "dev = RAMBlockDev(64)\n"
            "vfs.VfsFat.mkfs(dev)\n"
            "vfs.mount(vfs.VfsFat(dev), '/sd')\n"
            "with open('/sd/log.txt', 'w') as f:\n"
            "    f.write('reading 1')\n"
            "print(os.listdir('/sd'), open('/sd/log.txt').read())\n"
            "print(sorted(m[1] for m in vfs.mount()))\n"
            "vfs.umount('/sd')\n"
            "print('sd' in os.listdir('/'))\n"
        )
        self.assertEqual(out, "['log.txt'] reading 1\n['/', '/sd']\nFalse\n")

    def test_help_prints_its_welcome_and_a_modules_help(self):
        out = self.run_ok("help()\nprint('---')\nimport framebuf\nhelp(framebuf)\n")
        head, _, modules = out.partition("---\n")
        self.assertIn("Welcome to MicroPython!", head)
        self.assertIn("object <module 'framebuf'> is of type module", modules)
        self.assertIn("FrameBuffer --", modules)

    def test_stdout_buffer_writes_bytes_in_order_with_print(self):
        rc, out, err = run(
            "import sys\n"
            "print('text')\n"
            "n = sys.stdout.buffer.write(b'raw \\xff bytes\\n')\n"
            "print('written', n)\n"
        )
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"text\nraw \xff bytes\nwritten 12\n")

    def test_select_select_reports_a_ready_stream(self):
        out = self.run_ok(
            "import io, select\n"
            "class Ready(io.IOBase):\n"
            "    def ioctl(self, req, arg):\n"
            "        return arg & 1 if req == 3 else 0\n"
            "r = Ready()\n"
            "print(select.select([r], [], [], 0) == ([r], [], []))\n"
            "print(select.select([], [r], [], 0))\n"
        )
        self.assertEqual(out, "True\n([], [], [])\n")


    def test_cryptolib_encrypts_the_fips_197_example(self):
        out = self.run_ok(
            "import binascii, cryptolib\n"
            "key = binascii.unhexlify('000102030405060708090a0b0c0d0e0f')\n"
            "plain = binascii.unhexlify('00112233445566778899aabbccddeeff')\n"
            "print(binascii.hexlify(cryptolib.aes(key, 1).encrypt(plain)).decode())\n"
        )
        self.assertEqual(out, "69c4e0d86a7b0430d8cdb78070b4c55a\n")

    def test_re_match_gives_groups_and_spans(self):
        out = self.run_ok(
            "import re\n"
            "m = re.match(r'(\\w+)=(\\d+)', 'temp=42')\n"
            "print(m.groups(), m.span(2), m.start(1), m.end(2))\n"
        )
        self.assertEqual(out, "('temp', '42') (5, 7) 0 7\n")

    def test_mem_total_counts_what_a_program_allocates(self):
        out = self.run_ok(
            "import micropython\n"
            "before = micropython.mem_total()\n"
            "buf = bytearray(10000)\n"
            "print(micropython.mem_total() - before >= 10000, micropython.mem_peak() >= micropython.mem_current())\n"
        )
        self.assertEqual(out, "True True\n")

    def test_exc_info_names_the_exception_being_handled(self):
        out = self.run_ok(
            "import sys\n"
            "try:\n"
            "    raise ValueError('bad reading')\n"
            "except ValueError:\n"
            "    t, v, tb = sys.exc_info()\n"
            "    print(t.__name__, v)\n"
            "print(sys.exc_info())\n"
        )
        self.assertEqual(out, "ValueError bad reading\n(None, None, None)\n")

if __name__ == "__main__":
    unittest.main()
