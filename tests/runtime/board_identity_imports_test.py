#!/usr/bin/python3
"""`fleetboard run` as a real board's program meets it (issue 14): the board
says which board it simulates (--profile), and imports as real boards do:
'/lib' on sys.path, .py and .mpy libraries from flash (package directories
too), frozen asyncio (also inside a _thread), @micropython.native and
@micropython.viper, `-X emit=native`, and the script's directory first on
sys.path like the unix port.

usage: board_identity_imports_test.py  (FLEETBOARD, MPY_CROSS and
MICROPYTHON_DIR come from the environment; ctest sets them)
"""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

FLEETBOARD = os.environ["FLEETBOARD"]
MPY_CROSS = os.environ["MPY_CROSS"]
MICROPYTHON_DIR = Path(os.environ["MICROPYTHON_DIR"])
RUN_TIMEOUT_S = 30  # bounds every run; none of these programs sleeps long


class Board:
    """A `fleetboard run` board whose flash lives in a temporary file, so a
    first program can install libraries that a second one imports."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.flash = self.workdir / "board.lfs"

    def run(self, source, *args, name="app.py"):
        script = self.workdir / name
        script.write_text(source)
        return subprocess.run(
            [FLEETBOARD, "run", "--flash", str(self.flash), *args, str(script)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            cwd=self.workdir,
        )

    def install(self, files):
        """Writes {board path: bytes} to the board's flash from a program on
        the board, as mpremote or mip would."""
        lines = ["import os"]
        for path, data in files.items():
            parent = ""
            for part in path.strip("/").split("/")[:-1]:
                parent += "/" + part
                lines.append(f"try:\n    os.mkdir({parent!r})\nexcept OSError:\n    pass")
            lines.append(f"with open({path!r}, 'wb') as f:\n    f.write({data!r})")
        done = self.run("\n".join(lines) + "\n", name="install.py")
        assert done.returncode == 0, done.stderr


def compile_mpy(source):
    with tempfile.TemporaryDirectory() as tmp:
        py = Path(tmp) / "module.py"
        py.write_text(source)
        subprocess.run([MPY_CROSS, "-o", str(py.with_suffix(".mpy")), str(py)], check=True, timeout=RUN_TIMEOUT_S)
        return py.with_suffix(".mpy").read_bytes()


class BoardTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.board = Board(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def run_ok(self, source, *args):
        done = self.board.run(source, *args)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, "")
        return done.stdout


class ProfileTest(BoardTestCase):
    IDENTITY = "import sys, os\nprint(sys.platform, sys.implementation._machine, os.uname().sysname, os.uname().machine, sep='|')\n"

    def test_each_profile_says_the_platform_and_machine_of_its_real_port(self):
        expected = {
            "esp32": "esp32|Generic ESP32 module with ESP32|esp32|Generic ESP32 module with ESP32",
            "rp2": "rp2|Raspberry Pi Pico with RP2040|rp2|Raspberry Pi Pico with RP2040",
            "generic": "threadfleet|threadfleet simulated board with host|threadfleet|threadfleet simulated board with host",
        }
        for profile, identity in expected.items():
            with self.subTest(profile=profile):
                self.assertEqual(self.run_ok(self.IDENTITY, "--profile", profile), identity + "\n")

    def test_without_a_profile_the_board_is_generic(self):
        self.assertTrue(self.run_ok(self.IDENTITY).startswith("threadfleet|"))

    def test_an_unknown_profile_is_a_usage_error_naming_the_choices(self):
        done = self.board.run("print('ran')\n", "--profile", "esp8266")
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, "")
        self.assertIn("--profile must be one of esp32|rp2|generic (got esp8266)", done.stderr)

    def test_the_profile_sets_the_heap_and_thread_limit_and_a_flag_still_wins(self):
        heap = "import gc\ngc.collect()\nprint(gc.mem_alloc() + gc.mem_free())\n"
        esp32 = int(self.run_ok(heap, "--profile", "esp32"))
        rp2 = int(self.run_ok(heap, "--profile", "rp2"))
        flagged = int(self.run_ok(heap, "--heap", "64k", "--profile", "esp32"))
        self.assertLess(esp32, rp2, "an ESP32 without PSRAM has less heap than an RP2040")
        self.assertLessEqual(flagged, 64 * 1024)
        self.assertLess(flagged, esp32)

        threads = (
            "import _thread, time\n"
            "started = 0\n"
            "try:\n"
            "    for _ in range(8):\n"
            "        _thread.start_new_thread(time.sleep, (0.5,))\n"
            "        started += 1\n"
            "except OSError:\n"
            "    pass\n"
            "print(started)\n"
        )
        # An RP2040 runs one thread beside the main one (its second core).
        self.assertEqual(self.run_ok(threads, "--profile", "rp2"), "1\n")
        self.assertEqual(self.run_ok(threads, "--profile", "rp2", "--max-threads", "4"), "3\n")

    def test_run_tests_target_info_reports_the_profile_platform(self):
        target_info = (MICROPYTHON_DIR / "tests" / "feature_check" / "target_info.py").read_text()
        self.assertEqual(self.run_ok(target_info, "--profile", "rp2"), "rp2 x64\n")


class SysPathTest(BoardTestCase):
    def test_run_puts_the_script_directory_before_the_boards_own_entries(self):
        script_dir = os.path.realpath(self.tmp.name)
        self.assertEqual(self.run_ok("import sys\nprint(sys.path)\n"), f"{[script_dir, '', '.frozen', '/lib']}\n")

    def test_a_board_program_rebinding_sys_path_changes_what_imports_search(self):
        self.board.install({"/mods/found.py": b"WHERE = 'mods'\n"})
        out = self.run_ok("import sys\nsys.path = ['/mods']\nimport found\nprint(sys.path, found.WHERE)\n")
        self.assertEqual(out, "['/mods'] mods\n")


class LibImportTest(BoardTestCase):
    def test_py_and_mpy_libraries_and_packages_in_lib_import(self):
        self.board.install(
            {
                "/lib/sensor.py": b"def read():\n    return 21\n",
                "/lib/driver.mpy": compile_mpy("def name():\n    return 'bme280'\n"),
                "/lib/pkg/__init__.py": b"from .part import VALUE\n",
                "/lib/pkg/part.mpy": compile_mpy("VALUE = 42\n"),
            }
        )
        out = self.run_ok("import sensor, driver, pkg\nprint(sensor.read(), driver.name(), pkg.VALUE, driver.__file__)\n")
        self.assertEqual(out, "21 bme280 42 /lib/driver.mpy\n")

    def test_an_mpy_from_the_flash_root_imports(self):
        self.board.install({"/blink.mpy": compile_mpy("PERIOD_MS = 500\n")})
        self.assertEqual(self.run_ok("import blink\nprint(blink.PERIOD_MS)\n"), "500\n")


class NativeCodeTest(BoardTestCase):
    SUM = (
        "import micropython\n"
        "@micropython.native\n"
        "def native_sum(n):\n"
        "    s = 0\n"
        "    for i in range(n):\n"
        "        s += i\n"
        "    return s\n"
        "@micropython.viper\n"
        "def viper_sum(n: int) -> int:\n"
        "    s = 0\n"
        "    for i in range(n):\n"
        "        s += i\n"
        "    return s\n"
        "print(native_sum(1000), viper_sum(1000))\n"
    )

    def test_native_and_viper_functions_compile_and_run(self):
        self.assertEqual(self.run_ok(self.SUM), "499500 499500\n")

    def test_native_and_viper_run_in_threads(self):
        threaded = self.SUM.replace(
            "print(native_sum(1000), viper_sum(1000))\n",
            "import _thread, time\n"
            "results = []\n"
            "lock = _thread.allocate_lock()\n"
            "def work(f):\n"
            "    r = f(2000)\n"
            "    with lock:\n"
            "        results.append(r)\n"
            "_thread.start_new_thread(work, (native_sum,))\n"
            "_thread.start_new_thread(work, (viper_sum,))\n"
            "for _ in range(200):\n"
            "    if len(results) == 2:\n"
            "        break\n"
            "    time.sleep_ms(10)\n"
            "print(results)\n",
        )
        self.assertEqual(self.run_ok(threaded), "[1999000, 1999000]\n")

    def test_emit_native_compiles_the_whole_program_to_machine_code(self):
        # Machine code keeps no line numbers: a traceback through native
        # functions has no "File ..., line N" entries.
        program = (
            "import sys\n"
            "def fail():\n"
            "    raise ValueError('from fail')\n"
            "try:\n"
            "    fail()\n"
            "except ValueError as e:\n"
            "    sys.print_exception(e)\n"
        )
        bytecode = self.run_ok(program, "-X", "emit=bytecode")
        native = self.run_ok(program, "-X", "emit=native")
        self.assertIn('app.py", line 3, in fail', bytecode)
        self.assertNotIn("line 3", native)
        self.assertTrue(native.endswith("ValueError: from fail\n"), native)

    def test_an_unknown_emitter_is_a_usage_error_naming_the_choices(self):
        done = self.board.run("print('ran')\n", "-X", "emit=thumb")
        self.assertEqual(done.returncode, 2)
        self.assertIn("-X emit= must be bytecode or native (got thumb)", done.stderr)


class AsyncioTest(BoardTestCase):
    SENSOR = (
        "import asyncio\n"
        "async def sensor(name, n, out):\n"
        "    for i in range(n):\n"
        "        await asyncio.sleep_ms(1)\n"
        "        out.append((name, i))\n"
        "async def main():\n"
        "    out = []\n"
        "    await asyncio.gather(sensor('a', 3, out), sensor('b', 3, out))\n"
        "    return sorted(out)\n"
    )

    def test_frozen_asyncio_runs_in_the_main_thread(self):
        # Nothing on the flash: asyncio comes from the firmware itself.
        out = self.run_ok(self.SENSOR + "import os\nprint(asyncio.run(main()), os.listdir('/'))\n")
        self.assertEqual(out, "[('a', 0), ('a', 1), ('a', 2), ('b', 0), ('b', 1), ('b', 2)] []\n")

    def test_asyncio_runs_inside_a_thread(self):
        program = self.SENSOR + (
            "import _thread, time\n"
            "done = []\n"
            "def worker():\n"
            "    done.append(asyncio.run(main()))\n"
            "_thread.start_new_thread(worker, ())\n"
            "for _ in range(300):\n"
            "    if done:\n"
            "        break\n"
            "    time.sleep_ms(10)\n"
            "print(done)\n"
        )
        self.assertEqual(self.run_ok(program), "[[('a', 0), ('a', 1), ('a', 2), ('b', 0), ('b', 1), ('b', 2)]]\n")


class MicropythonModuleTest(BoardTestCase):
    def test_alloc_emergency_exception_buf_exists_as_on_board_programs_first_line(self):
        self.assertEqual(self.run_ok("import micropython\nmicropython.alloc_emergency_exception_buf(100)\nprint('ok')\n"), "ok\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
