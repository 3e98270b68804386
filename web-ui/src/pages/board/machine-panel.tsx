// The Machine panel of the board page: the pins a program uses (level, who
// drives them, IRQ count), its timers, the watchdog and why the VM last
// started, from the latest health snapshot. Operators get a toggle on input
// pins (drive the other level from the lab, or release), confirmed and
// reported like every other action.
import type { BoardModel } from "./model";
import { fleet } from "../../api/fleet";
import { useActions } from "./actions";
import { pinResultLine, pinRows, resetCauseText, timerRows, toggleLevel, toggleQuestion, watchdogText, type PinRow } from "./machine";

export function MachinePanel({ model, operator }: { model: BoardModel; operator: boolean }) {
  const snapshot = model.snapshot.value;
  if (!snapshot) {
    return (
      <p aria-busy="true" class="muted">
        Waiting for the board's first health snapshot…
      </p>
    );
  }
  const machine = snapshot.machine;
  const pins = pinRows(machine);
  const timers = timerRows(machine);
  return (
    <div class="machine" data-testid="machine">
      <dl class="board-facts">
        <div>
          <dt>Reset cause</dt>
          <dd data-testid="reset-cause">{resetCauseText(machine?.resetCause)}</dd>
        </div>
        <div>
          <dt>Watchdog</dt>
          <dd data-testid="watchdog">{watchdogText(machine?.watchdog)}</dd>
        </div>
      </dl>
      {pins.length === 0 ? (
        <p class="empty">No pins in use.</p>
      ) : (
        <div class="table-scroll">
          <table class="data pins" data-testid="pins">
            <thead>
              <tr>
                <th scope="col">Pin</th>
                <th scope="col">Mode</th>
                <th scope="col">Pull</th>
                <th scope="col">Level</th>
                <th scope="col">Driven by</th>
                <th scope="col" class="num">
                  IRQ
                </th>
                {operator && (
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {pins.map((row) => (
                <tr key={row.pin} data-pin={row.pin} data-driver={row.driver}>
                  <td>{row.pin}</td>
                  <td>{row.mode}</td>
                  <td>{row.pull}</td>
                  <td class={`level level-${row.level}`}>{row.level}</td>
                  <td>{row.driver}</td>
                  <td class="num">{row.irq}</td>
                  {operator && <td>{row.drivable && <PinToggle row={row} />}</td>}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {timers.length > 0 && (
        <table class="data timers" data-testid="timers">
          <thead>
            <tr>
              <th scope="col">Timer</th>
              <th scope="col">Mode</th>
              <th scope="col">Period</th>
              <th scope="col">Running</th>
              <th scope="col" class="num">
                Fired
              </th>
            </tr>
          </thead>
          <tbody>
            {timers.map((t) => (
              <tr key={t.id}>
                <td>{t.id}</td>
                <td>{t.mode}</td>
                <td>{t.period}</td>
                <td>{t.running ? "yes" : "no"}</td>
                <td class="num">{t.fired}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function PinToggle({ row }: { row: PinRow }) {
  const { board, request } = useActions();
  const level = toggleLevel(row);
  return (
    <span class="pin-actions">
      <button
        type="button"
        class="small"
        aria-label={`Drive pin ${row.pin} to ${level}`}
        onClick={() =>
          request({
            question: toggleQuestion(board, row),
            run: async () => {
              const { pin } = await fleet.setPin({ board, pin: row.pin, value: level });
              return [pinResultLine(pin, level)];
            },
          })
        }
      >
        Set {level}
      </button>
      {row.labDriven && (
        <button
          type="button"
          class="small"
          aria-label={`Release pin ${row.pin}`}
          onClick={() =>
            request({
              question: `Stop driving pin ${row.pin} of ${board} (it reads its pull again)?`,
              run: async () => {
                const { pin } = await fleet.setPin({ board, pin: row.pin, release: true });
                return [pinResultLine(pin, "release")];
              },
            })
          }
        >
          Release
        </button>
      )}
    </span>
  );
}
