"""Helpers for the job tests: write a spec and its scripts to a directory,
apply it, run it, read runs back — all through the real fleetctl, as a user
would (`fleetctl -o json job ...`).

    spec = write_job(tmp, "smoke", SPEC_TEXT, {"app.py": SCRIPTS / "fails.py"})
    LAB.ctl("job", "apply", str(spec))
    code, run = run_job(LAB, "smoke")          # fleetctl job run smoke --wait
    assert code == 1 and run["state"] == "RUN_STATE_FAILED"
"""

import pathlib
import shutil
import time

from fleet_lab import wait_for

# A job run with --wait must end within this; the runs here take seconds.
RUN_WAIT_S = 120
ENDED = {"RUN_STATE_PASSED", "RUN_STATE_FAILED", "RUN_STATE_ERROR", "RUN_STATE_CANCELLED"}


def write_job(directory, name, spec_text, files=None):
    """Writes DIR/NAME/job.yaml and the files it names (spec-relative path -> source path)."""
    job_dir = pathlib.Path(directory) / name
    job_dir.mkdir(parents=True, exist_ok=True)
    for rel, source in (files or {}).items():
        target = job_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    spec = job_dir / "job.yaml"
    spec.write_text(spec_text)
    return spec


def the_run(obj):
    """A Run from what `job run/show/cancel -o json` printed (the Run, or a response holding it)."""
    return obj.get("run", obj)


def run_job(lab, name, *extra, timeout=RUN_WAIT_S):
    """`fleetctl job run NAME --wait`: (exit code, the run as JSON or None, stderr)."""
    proc = lab.run_ctl("job", "run", name, "--wait", *extra, timeout=timeout)
    from fleet_lab import json_objects
    objects = json_objects(proc.stdout) if proc.stdout.strip() else []
    run = the_run(objects[-1]) if objects else None
    return proc.returncode, run, proc.stderr


def start_job(lab, name):
    """`fleetctl job run NAME` without --wait: the run id."""
    return str(the_run(lab.ctl("job", "run", name))["id"])


def get_run(lab, run_id):
    return the_run(lab.ctl("job", "show", str(run_id)))


def wait_run_state(lab, run_id, states, timeout):
    def reached():
        run = get_run(lab, run_id)
        return run if run["state"] in states else None

    return wait_for(f"run {run_id} in {sorted(states)}", reached, timeout, interval=0.25)


def board_results(run):
    return {r["board"]: r for r in run.get("results", [])}


def ts(value):
    """An RFC 3339 timestamp of the JSON mapping as seconds since the epoch (UTC)."""
    import datetime
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        frac, zone = rest[:rest.index("+")], rest[rest.index("+"):]
        text = f"{head}.{frac[:6]}{zone}"
    return datetime.datetime.fromisoformat(text).timestamp()


def live_threads_of(lab, program_ids):
    """{board: [live thread ids]} of the programs (board -> program id) still alive."""
    from fleet_lab import LIVE_THREAD_STATES
    live = {}
    for board, bt in lab.threads().items():
        pid = program_ids.get(board)
        if pid is None:
            continue
        ids = [t["id"] for t in bt.get("threads", [])
               if int(t.get("program_id", 0)) == int(pid) and t["state"] in LIVE_THREAD_STATES]
        if ids:
            live[board] = ids
    return live


def run_program_ids(run, step_index):
    """{board: program id} a run step started, from the run's results."""
    ids = {}
    for r in run.get("results", []):
        for s in r.get("steps", []):
            if s.get("index", 0) == step_index and s.get("program_id"):
                ids[r["board"]] = s["program_id"]
    return ids


def sleep_until_next_minute(margin=1.0):
    """Sleeps until `margin` seconds past the next whole minute (a cron fire time)."""
    now = time.time()
    time.sleep(60 - (now % 60) + margin)
