// Jobs and runs (docs/jobs.md): the job definitions with their latest run,
// recent runs, one job's spec and runs, and a run's per-board per-step
// results with evidence, live while it runs. Operators get "Run now" and
// "Cancel", each confirmed.
import { useEffect, useState } from "preact/hooks";
import { useSignal } from "@preact/signals";
import { fleet } from "../api/fleet";
import { ConfirmDialog } from "../confirm";
import {
  RunState,
  type BoardResult,
  type Job,
  type Run,
  type StepResult,
} from "../gen/threadfleet/fleet/v1/fleet_pb";
import { live } from "../live";
import { navigate } from "../router";
import { canOperate } from "../session";
import { describeError } from "../view/errors";
import { eventKindName } from "../view/events";
import { formatBytes, formatDuration, formatTime, toMs } from "../view/format";
import { countsText, isActive, parseRunId, progress, runDurationMs, runStateName } from "../view/jobs";
import "./jobs.css";

// Jobs and runs change without a stream of their own: the lists are asked
// for again this often while shown.
const REFRESH_MS = 5000;
// Runs listed at first, and per "Show older runs".
const RUNS_PAGE = 20;

function StateBadge({ state }: { state: RunState }) {
  const name = runStateName(state);
  return (
    <span class={`badge state-${name}`} data-state={name}>
      {name}
    </span>
  );
}

function RunLink({ run }: { run: Run }) {
  return <a href={`/runs/${run.id}`}>#{String(run.id)}</a>;
}

// Loads `load()` now and every REFRESH_MS, keeping the last answer while a
// refresh fails.
function usePolled<T>(load: () => Promise<T>, deps: unknown[]) {
  const data = useSignal<T | null>(null);
  const error = useSignal<string | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const value = await load();
        if (stopped) return;
        data.value = value;
        error.value = null;
      } catch (e) {
        if (!stopped) error.value = describeError(e);
      }
      if (!stopped) timer = setTimeout(tick, REFRESH_MS);
    };
    data.value = null;
    error.value = null;
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, deps);
  return { data, error };
}

// "Run now" with its confirmation; on success opens the run's page.
function RunNow({ job }: { job: string }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!canOperate.value) return null;
  const run = async () => {
    setAsking(false);
    setBusy(true);
    setError(null);
    try {
      const r = await fleet.runJob({ name: job });
      if (r.run) navigate(`/runs/${r.run.id}`);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" onClick={() => setAsking(true)} disabled={busy} title={`Run ${job} now`}>
        {busy ? "Starting…" : "Run now"}
      </button>
      {error && (
        <span role="alert" class="alert inline">
          {error}
        </span>
      )}
      {asking && (
        <ConfirmDialog title={`Run ${job} now?`} onConfirm={run} onCancel={() => setAsking(false)}>
          <p>The job reserves its boards and runs its steps on each; other runs of these boards wait.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

function Loading({ what }: { what: string }) {
  return <p class="muted loading-text">Loading {what}</p>;
}

function RunsTable({ runs, showJob }: { runs: Run[]; showJob: boolean }) {
  const now = Date.now();
  return (
    <div class="table-scroll">
      <table class="data runs" data-testid="runs">
        <thead>
          <tr>
            <th scope="col">Run</th>
            {showJob && <th scope="col">Job</th>}
            <th scope="col">State</th>
            <th scope="col">Boards</th>
            <th scope="col">Trigger</th>
            <th scope="col">Started</th>
            <th scope="col" class="num">
              Took
            </th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => {
            const took = runDurationMs(toMs(r.startTime), toMs(r.endTime), now);
            return (
              <tr key={String(r.id)} data-run-id={String(r.id)} data-state={runStateName(r.state)}>
                <td>
                  <RunLink run={r} />
                </td>
                {showJob && (
                  <td>
                    <a href={`/jobs/${encodeURIComponent(r.jobName)}`}>{r.jobName}</a>
                  </td>
                )}
                <td>
                  <StateBadge state={r.state} />
                </td>
                <td>
                  {countsText(r.counts)}
                  {r.message && <div class="muted small">{r.message}</div>}
                </td>
                <td class="nowrap">{r.trigger}</td>
                <td class="nowrap num">{formatTime(toMs(r.startTime))}</td>
                <td class="num nowrap">{took === null ? "–" : formatDuration(took)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

// Pages of runs older than the (refreshed) newest page, on demand.
function OlderRuns({ jobName, newest, showJob }: { jobName: string; newest: Run[]; showJob: boolean }) {
  const [older, setOlder] = useState<Run[]>([]);
  const [done, setDone] = useState(newest.length < RUNS_PAGE);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    const last = older.at(-1) ?? newest.at(-1);
    if (!last) return;
    setBusy(true);
    setError(null);
    try {
      const r = await fleet.listRuns({ jobName, limit: RUNS_PAGE, beforeId: last.id });
      setOlder([...older, ...r.runs]);
      if (r.nextBeforeId === 0n || r.runs.length < RUNS_PAGE) setDone(true);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      {older.length > 0 && <RunsTable runs={older} showJob={showJob} />}
      {error && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
      {!done && (
        <p>
          <button type="button" onClick={load} disabled={busy}>
            {busy ? "Loading…" : "Show older runs"}
          </button>
        </p>
      )}
    </>
  );
}

export function JobsPage() {
  document.title = "Jobs · threadfleet";
  const jobs = usePolled(async () => (await fleet.listJobs({})).jobs, []);
  const runs = usePolled(async () => (await fleet.listRuns({ limit: RUNS_PAGE })).runs, []);
  const loading = (jobs.data.value === null && !jobs.error.value) || (runs.data.value === null && !runs.error.value);
  return (
    <section class="jobs-page" aria-busy={loading ? "true" : "false"}>
      <h1>Jobs</h1>
      {jobs.error.value && (
        <p role="alert" class="alert">
          Cannot list jobs: {jobs.error.value}
        </p>
      )}
      {jobs.data.value === null ? (
        !jobs.error.value && <Loading what="jobs" />
      ) : jobs.data.value.length === 0 ? (
        <p class="empty">
          No jobs yet: apply one with <code>fleetctl job apply jobs/smoke.yaml</code> (see docs/jobs.md).
        </p>
      ) : (
        <JobsTable jobs={jobs.data.value} />
      )}
      <h2>Recent runs</h2>
      {runs.error.value && (
        <p role="alert" class="alert">
          Cannot list runs: {runs.error.value}
        </p>
      )}
      {runs.data.value === null ? (
        !runs.error.value && <Loading what="runs" />
      ) : runs.data.value.length === 0 ? (
        <p class="empty">No runs yet: "Run now" starts one, or a job's schedule will.</p>
      ) : (
        <>
          <RunsTable runs={runs.data.value} showJob />
          <OlderRuns key="all" jobName="" newest={runs.data.value} showJob />
        </>
      )}
    </section>
  );
}

function JobsTable({ jobs }: { jobs: Job[] }) {
  return (
    <div class="table-scroll">
      <table class="data jobs" data-testid="jobs">
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Schedule</th>
            <th scope="col" class="num">
              Version
            </th>
            <th scope="col">Last run</th>
            {canOperate.value && (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <tr key={j.name} data-job={j.name}>
              <td>
                <a href={`/jobs/${encodeURIComponent(j.name)}`}>{j.name}</a>
              </td>
              <td class="nowrap">
                {j.schedule ? (
                  <>
                    <code>{j.schedule}</code> {j.timeZone}
                    {j.nextFireTime && <div class="muted small">next {formatTime(toMs(j.nextFireTime))}</div>}
                  </>
                ) : (
                  <span class="muted">on demand</span>
                )}
              </td>
              <td class="num">{String(j.version)}</td>
              <td>
                {j.lastRun ? (
                  <span class="last-run">
                    <RunLink run={j.lastRun} /> <StateBadge state={j.lastRun.state} />{" "}
                    <span class="muted small">{formatTime(toMs(j.lastRun.startTime))}</span>
                  </span>
                ) : (
                  <span class="muted">never ran</span>
                )}
              </td>
              {canOperate.value && (
                <td class="nowrap">
                  <RunNow job={j.name} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function JobPage({ name }: { name: string }) {
  document.title = `${name} · Jobs · threadfleet`;
  const job = usePolled(async () => (await fleet.listJobs({})).jobs.find((j) => j.name === name) ?? null, [name]);
  const runs = usePolled(async () => (await fleet.listRuns({ jobName: name, limit: RUNS_PAGE })).runs, [name]);
  const j = job.data.value;
  const loading = j === null && !job.error.value;
  return (
    <section class="jobs-page" aria-busy={loading ? "true" : "false"}>
      <p class="crumbs">
        <a href="/jobs">Jobs</a> /
      </p>
      <div class="toolbar">
        <h1>{name}</h1>
        {j && <RunNow job={name} />}
      </div>
      {job.error.value && (
        <p role="alert" class="alert">
          {job.error.value}
        </p>
      )}
      {loading ? (
        <Loading what="the job" />
      ) : j === null ? (
        !job.error.value && (
          <p role="alert" class="alert">
            No job named {name}. <a href="/jobs">All jobs</a>
          </p>
        )
      ) : (
        <>
          <dl class="facts">
            <dt>Version</dt>
            <dd>
              {String(j.version)} (updated {formatTime(toMs(j.updateTime))})
            </dd>
            <dt>Schedule</dt>
            <dd>
              {j.schedule ? (
                <>
                  <code>{j.schedule}</code> {j.timeZone}
                  {j.nextFireTime && `, next ${formatTime(toMs(j.nextFireTime))}`}
                </>
              ) : (
                "on demand"
              )}
            </dd>
            <dt>Files</dt>
            <dd>
              {j.files.length === 0
                ? "none"
                : j.files.map((f) => (
                    <div key={f.path}>
                      <code>{f.path}</code> <span class="muted">{formatBytes(f.sizeBytes)}</span>{" "}
                      <code class="muted small" title={f.sha256Hex}>
                        {f.sha256Hex.slice(0, 12)}
                      </code>
                    </div>
                  ))}
            </dd>
          </dl>
          <details>
            <summary>Spec</summary>
            <pre>{j.specYaml}</pre>
          </details>
        </>
      )}
      <h2>Runs</h2>
      {runs.error.value && (
        <p role="alert" class="alert">
          {runs.error.value}
        </p>
      )}
      {runs.data.value === null ? (
        !runs.error.value && <Loading what="runs" />
      ) : runs.data.value.length === 0 ? (
        <p class="empty">This job has not run yet.</p>
      ) : (
        <>
          <RunsTable runs={runs.data.value} showJob={false} />
          <OlderRuns key={name} jobName={name} newest={runs.data.value} showJob={false} />
        </>
      )}
    </section>
  );
}

export function RunPage({ id }: { id: string }) {
  const runId = parseRunId(id);
  document.title = `Run ${id} · threadfleet`;
  if (runId === null) {
    return (
      <p role="alert" class="alert">
        "{id}" is not a run id (a positive number). <a href="/jobs">Jobs</a>
      </p>
    );
  }
  return <RunView key={id} id={runId} />;
}

function RunView({ id }: { id: bigint }) {
  const run = useSignal<Run | null>(null);
  const error = useSignal<string | null>(null);
  const [asking, setAsking] = useState(false);
  const [cancelling, setCancelling] = useState(false);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const stop = live(
      (options) => fleet.watchRun({ id }, options),
      (m) => {
        if (!m.run) return;
        run.value = m.run;
        error.value = null;
        // The stream ends with the run; do not open it again.
        if (!isActive(m.run.state)) stop();
      },
      { onFatal: (e) => (error.value = describeError(e)) },
    );
    return stop;
  }, [id]);

  const r = run.value;
  const active = r !== null && isActive(r.state);
  // The elapsed time of a running run ticks once a second.
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [active]);

  const cancel = async () => {
    setAsking(false);
    setCancelling(true);
    try {
      const res = await fleet.cancelRun({ id });
      if (res.run) run.value = res.run;
    } catch (e) {
      error.value = describeError(e);
    } finally {
      setCancelling(false);
    }
  };

  if (r === null) {
    return (
      <section aria-busy={error.value ? "false" : "true"}>
        <h1>Run #{String(id)}</h1>
        {error.value ? (
          <p role="alert" class="alert">
            {error.value}. <a href="/jobs">Jobs</a>
          </p>
        ) : (
          <Loading what="the run" />
        )}
      </section>
    );
  }
  const p = progress(r);
  const took = runDurationMs(toMs(r.startTime), toMs(r.endTime), now);
  return (
    <section class="run-page" aria-busy="false" data-run-id={String(r.id)} data-state={runStateName(r.state)}>
      <p class="crumbs">
        <a href="/jobs">Jobs</a> / <a href={`/jobs/${encodeURIComponent(r.jobName)}`}>{r.jobName}</a> /
      </p>
      <div class="toolbar">
        <h1>
          Run #{String(r.id)} <StateBadge state={r.state} />
        </h1>
        {active && canOperate.value && (
          <button type="button" class="danger" onClick={() => setAsking(true)} disabled={cancelling}>
            {cancelling ? "Cancelling…" : "Cancel"}
          </button>
        )}
      </div>
      {asking && (
        <ConfirmDialog title={`Cancel run #${r.id}?`} destructive onConfirm={cancel} onCancel={() => setAsking(false)}>
          <p>No further step starts, every program the run started is killed and its boards are freed.</p>
        </ConfirmDialog>
      )}
      {error.value && (
        <p role="alert" class="alert">
          {error.value}
        </p>
      )}
      <dl class="facts">
        <dt>Job</dt>
        <dd>
          {r.jobName} v{String(r.jobVersion)}
        </dd>
        <dt>Trigger</dt>
        <dd>{r.trigger}</dd>
        <dt>Started</dt>
        <dd>{formatTime(toMs(r.startTime))}</dd>
        <dt>{active ? "Running for" : "Took"}</dt>
        <dd>{took === null ? "–" : formatDuration(took)}</dd>
        <dt>Boards</dt>
        <dd>
          {countsText(r.counts)}
          {active && p.total > 0 && (
            <>
              {" "}
              <progress max={p.total} value={p.ended} aria-label="Boards ended" /> {p.ended} of {p.total} ended
            </>
          )}
        </dd>
      </dl>
      {r.message && <p class={r.state === RunState.PASSED ? "notice" : "alert-soft"}>{r.message}</p>}
      <h2>Boards</h2>
      {r.results.length === 0 ? (
        <p class="empty">{active ? "Waiting for the run's boards…" : "The run took no boards."}</p>
      ) : (
        <div class="results" data-testid="run-results">
          {r.results.map((b) => (
            <BoardResultView key={b.board} run={r} result={b} />
          ))}
        </div>
      )}
    </section>
  );
}

function BoardResultView({ run, result: b }: { run: Run; result: BoardResult }) {
  const failed = b.state === RunState.FAILED || b.state === RunState.ERROR;
  return (
    <article class={`board-result result-${runStateName(b.state)}`} data-board={b.board} data-state={runStateName(b.state)}>
      <header>
        <a href={`/boards/${encodeURIComponent(b.board)}`} class="board-name">
          {b.board}
        </a>{" "}
        <StateBadge state={b.state} />
        {b.flaky && <span class="badge state-warning">flaky</span>}
        {b.attempts > 1 && <span class="muted small"> {b.attempts} attempts</span>}
        {b.message && <span class={failed ? "result-message failed" : "result-message"}>{b.message}</span>}
      </header>
      {b.retriedBecause && <p class="muted small">Retried because: {b.retriedBecause}</p>}
      <ol class="steps">
        {b.steps.map((s) => (
          <StepView key={s.index} step={s} />
        ))}
      </ol>
      <RunOutput run={run} board={b.board} />
    </article>
  );
}

function StepView({ step: s }: { step: StepResult }) {
  const ev = s.evidence;
  const took = runDurationMs(toMs(s.startTime), toMs(s.endTime), Date.now());
  return (
    <li class="step" data-step={s.index} data-kind={s.kind} data-state={runStateName(s.state)}>
      <div class="step-line">
        <span class="step-kind">
          {s.index + 1}. {s.kind}
        </span>
        <StateBadge state={s.state} />
        {s.message && <span class="step-message">{s.message}</span>}
        {took !== null && s.endTime && <span class="muted small">{formatDuration(took)}</span>}
      </div>
      {ev && (
        <div class="evidence" data-testid="evidence">
          {ev.failedThreads.length > 0 && (
            <div>
              <h4>Failed threads</h4>
              {ev.failedThreads.map((t) => (
                <div key={t.id} class="failed-thread" data-thread-id={t.id}>
                  <div>
                    Thread {t.id} ({t.name}): {t.exception ? `${t.exception.type}: ${t.exception.message}` : "failed"}
                  </div>
                  {t.exception?.traceback && <pre data-testid="traceback">{t.exception.traceback}</pre>}
                </div>
              ))}
            </div>
          )}
          {ev.anomalies.length > 0 && (
            <div>
              <h4>Anomalies</h4>
              <ul class="anomaly-list">
                {ev.anomalies.map((a) => (
                  <li key={String(a.id)} data-kind={eventKindName(a)}>
                    <span class="mono">{eventKindName(a)}</span> {a.message}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {ev.heap && (
            <p class="muted small">
              Heap at failure: {formatBytes(ev.heap.usedBytes)} used of {formatBytes(ev.heap.totalBytes)}, largest free block{" "}
              {formatBytes(ev.heap.largestFreeBytes)}
            </p>
          )}
          {ev.outputExcerpt && (
            <div>
              <h4>Output (tail)</h4>
              <pre class="output" data-testid="output-tail">
                {ev.outputExcerpt}
              </pre>
            </div>
          )}
        </div>
      )}
    </li>
  );
}

// A board's run-step output, fetched on demand (GetRun answers one board's
// output at a time).
function RunOutput({ run, board }: { run: Run; board: string }) {
  const [open, setOpen] = useState(false);
  const [steps, setSteps] = useState<StepResult[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const hasRunStep = run.results.find((r) => r.board === board)?.steps.some((s) => s.kind === "run") ?? false;
  if (!hasRunStep) return null;
  const load = async () => {
    setOpen(true);
    setError(null);
    try {
      const r = await fleet.getRun({ id: run.id, withOutput: true, board });
      setSteps(r.run?.results[0]?.steps.filter((s) => s.kind === "run") ?? []);
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <div class="run-output">
      <button type="button" class="quiet small" onClick={() => (open ? setOpen(false) : void load())} aria-expanded={open}>
        {open ? "Hide output" : "Show output"}
      </button>
      {open && error && (
        <p role="alert" class="alert">
          {error}
        </p>
      )}
      {open &&
        !error &&
        (steps === null ? (
          <Loading what="output" />
        ) : (
          steps.map((s) => (
            <div key={s.index}>
              <div class="muted small">
                Step {s.index + 1} (program {s.programId})
                {s.outputCutBytes > 0n && `: the first ${formatBytes(s.outputCutBytes)} were cut`}
              </div>
              <pre class="output">{s.output || "(no output)"}</pre>
            </div>
          ))
        ))}
    </div>
  );
}
