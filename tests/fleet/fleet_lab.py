"""A real demo lab for end-to-end tests, driven the way a user drives it.

    lab = FleetLab.start(boards=4)          # deploy/lab up in a temporary directory
    boards = lab.ctl("board", "ls")["boards"]  # fleetctl -o json, parsed
    lab.stop()                              # deploy/lab down, directory removed

Every test module shares one lab (setUpModule/tearDownModule). The binaries
come from the environment ctest sets (FLEETBOARD, FLEETD, FLEETCTL); deploy/lab
gets them through a temporary directory of symlinks (its --bin). JSON shapes
are the Fleet API's (proto/threadfleet/fleet/v1/fleet.proto) in the protobuf
JSON mapping: proto field names, enums by name, 64-bit integers as strings.
Standard library only; runs with Debian's /usr/bin/python3.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
LAB_SCRIPT = REPO / "deploy" / "lab"
SCRIPTS = pathlib.Path(__file__).resolve().parent / "scripts"
# Every fleetctl call ends within this (its own --timeout is a little shorter).
CTL_TIMEOUT_S = 40
LAB_UP_TIMEOUT_S = 120
# The guard that stops a lab whose test process died gives up after this.
GUARD_MAX_S = 3600

LIVE_THREAD_STATES = {"THREAD_STATE_RUNNING", "THREAD_STATE_SLEEPING", "THREAD_STATE_WAITING_LOCK"}


def seed_scripts_dir():
    return pathlib.Path(os.environ.get("SEED_SCRIPTS", REPO.parent / "shared" / "seed-scripts"))


def json_objects(text):
    """Every JSON value in `text`: one pretty-printed message or JSON Lines alike."""
    decoder = json.JSONDecoder()
    objects, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return objects
        obj, i = decoder.raw_decode(text, i)
        objects.append(obj)


class CtlError(Exception):
    """fleetctl exited non-zero; carries its exit code and stderr."""

    def __init__(self, args, returncode, stdout, stderr):
        super().__init__(f"fleetctl {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def wait_for(what, fn, timeout, interval=0.2):
    """Calls fn() until it returns a true value (returned) or `timeout` s pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


class FleetLab:
    """A lab of real `fleetboard serve` processes and a real fleetd, from deploy/lab."""

    def __init__(self, directory, bin_dir, boards):
        self.dir = pathlib.Path(directory)
        self.bin_dir = pathlib.Path(bin_dir)
        self.boards = boards
        self.fleetctl = str(self.bin_dir / "fleetctl")
        self.config = self.dir / "fleetctl.yaml"
        self.home = self.dir.parent / "home"  # so no ~/.config/threadfleet of the user leaks in
        self.home.mkdir(exist_ok=True)

    @classmethod
    def start(cls, boards=4, extra=()):
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="threadfleet-fleet-"))
        try:
            bin_dir = tmp / "bin"
            bin_dir.mkdir()
            for name, env in (("fleetboard", "FLEETBOARD"), ("fleetd", "FLEETD"), ("fleetctl", "FLEETCTL")):
                path = os.environ.get(env)
                if not path or not os.access(path, os.X_OK):
                    raise RuntimeError(f"${env} must name the {name} binary (ctest sets it)")
                (bin_dir / name).symlink_to(path)
            lab = cls(tmp / "lab", bin_dir, [f"b{i:02d}" for i in range(1, boards + 1)])
            lab.up("--boards", str(boards), *extra)  # on failure it stops what it started
            lab._start_guard()
            return lab
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ---- deploy/lab

    def lab(self, *args, timeout=LAB_UP_TIMEOUT_S):
        proc = subprocess.run([str(LAB_SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise AssertionError(f"deploy/lab {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def up(self, *extra):
        return self.lab("up", "--dir", str(self.dir), "--bin", str(self.bin_dir), *extra)

    def _start_guard(self):
        """A detached watcher that takes the lab down if this test process dies without stop()
        (e.g. killed by ctest's timeout): the lab's processes run in their own sessions."""
        script = (
            "import os, subprocess, sys, time\n"
            "test_pid, lab, lab_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
            f"deadline = time.monotonic() + {GUARD_MAX_S}\n"
            "while time.monotonic() < deadline:\n"
            "    try:\n"
            "        os.kill(test_pid, 0)\n"
            "    except ProcessLookupError:\n"
            "        break\n"
            "    time.sleep(0.5)\n"
            "subprocess.run([lab, 'down', '--dir', lab_dir], stdin=subprocess.DEVNULL,\n"
            "               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)\n"
        )
        self._guard = subprocess.Popen(["/usr/bin/python3", "-c", script, str(os.getpid()), str(LAB_SCRIPT),
                                        str(self.dir)], start_new_session=True, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        guard = getattr(self, "_guard", None)
        if guard is not None:
            guard.kill()
            guard.wait()
        try:
            self.lab("down", "--dir", str(self.dir), timeout=60)
        finally:
            if os.environ.get("KEEP_LAB"):
                print(f"kept {self.dir.parent}")
            else:
                shutil.rmtree(self.dir.parent, ignore_errors=True)

    def pid(self, name):
        return int((self.dir / "run" / f"{name}.pid").read_text())

    def kill9(self, name):
        os.kill(self.pid(name), signal.SIGKILL)

    # ---- fleetctl

    def run_ctl(self, *args, config=None, token=None, env_extra=None, output="json", timeout=CTL_TIMEOUT_S):
        """Runs fleetctl; returns the CompletedProcess whatever its exit code. `timeout`: seconds
        this call may take (fleetctl's own --timeout is 10 s shorter)."""
        cmd = [self.fleetctl, "--config", str(config or self.config), "--timeout", str(timeout - 10)]
        if output:
            cmd += ["-o", output]
        if token is not None:
            cmd += ["--token", token]
        env = {k: v for k, v in os.environ.items() if k not in ("FLEETCTL_CONFIG", "FLEETCTL_TOKEN")}
        env["HOME"] = str(self.home)
        env.update(env_extra or {})
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)

    def ctl_all(self, *args, **kw):
        """fleetctl -o json ARGS; every JSON object it printed. CtlError unless it exited 0."""
        proc = self.run_ctl(*args, **kw)
        if proc.returncode != 0:
            raise CtlError(list(args), proc.returncode, proc.stdout, proc.stderr)
        return json_objects(proc.stdout)

    def ctl(self, *args, **kw):
        """fleetctl -o json ARGS for a unary command: its one response message."""
        objects = self.ctl_all(*args, **kw)
        if len(objects) != 1:
            raise AssertionError(f"fleetctl {' '.join(args)} printed {len(objects)} JSON values, expected 1")
        return objects[0]

    def text(self, *args, **kw):
        """fleetctl ARGS with the human output (e.g. `logs`: the raw program output)."""
        proc = self.run_ctl(*args, output=None, **kw)
        if proc.returncode != 0:
            raise CtlError(list(args), proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout

    # ---- what users look at

    def board_states(self):
        return {b["name"]: b["state"] for b in self.ctl("board", "ls")["boards"]}

    def threads(self, *selector, all_=False):
        """{board: BoardThreads} from `fleetctl threads`."""
        args = ["threads", *selector] + (["-a"] if all_ else [])
        return {b["board"]: b for b in self.ctl(*args)["boards"]}

    def run_program(self, selector_args, script, *prog_args):
        """`fleetctl run SELECTOR SCRIPT -- ARGS`; {board: program_id}; fails on any board error."""
        args = ["run", *selector_args, str(script)]
        if prog_args:
            args += ["--", *prog_args]
        responses = [o for o in self.ctl_all(*args) if "results" in o]
        if len(responses) != 1:
            raise AssertionError(f"fleetctl run printed {len(responses)} RunProgramResponse messages")
        started = {}
        for r in responses[0]["results"]:
            error = r.get("error") or {}
            if error.get("code"):
                raise AssertionError(f"run {script} on {r['board']}: {error}")
            started[r["board"]] = r["program_id"]
        return started

    def wait_online(self, timeout=30):
        """Waits until every board of the lab (not ones added at run time) is online."""
        return wait_for("every lab board online",
                        lambda: all(self.board_states().get(b) == "BOARD_STATE_ONLINE" for b in self.boards), timeout)

    def _pages(self, command, key, args, max_pages=50):
        """Every item of a paged list (events) from the oldest, following next_after_id."""
        items, after = [], "0"
        for _ in range(max_pages):
            page = self.ctl(command, "--after", after, "--limit", "500", *args)
            items += page.get(key, [])
            if not page.get(key) or str(page.get("next_after_id", after)) == after:
                return items
            after = str(page["next_after_id"])
        raise AssertionError(f"fleetctl {command}: more than {max_pages} pages")

    def events(self, *args):
        return self._pages("events", "events", args)

    def audit(self, max_pages=50):
        """Every audit entry, newest first, following next_before_id (fleetctl audit --before)."""
        items, args = [], []
        for _ in range(max_pages):
            page = self.ctl("audit", "--limit", "500", *args)
            items += page.get("entries", [])
            before = str(page.get("next_before_id", "0"))
            if before == "0":
                return items
            args = ["--before", before]
        raise AssertionError(f"fleetctl audit: more than {max_pages} pages")
