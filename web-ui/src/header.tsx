// The header on every signed-in page: where you are (Lab / Events / Jobs),
// whether the live streams are connected, who you are, and Sign out.
import { Role } from "./gen/threadfleet/fleet/v1/fleet_pb";
import { connection } from "./live";
import { path } from "./router";
import { caller, signOut } from "./session";
import "./header.css";

type Section = "lab" | "events" | "jobs" | null;

// Which nav entry a path belongs to: a board page is part of the lab, a run
// part of jobs.
export function sectionOf(at: string): Section {
  if (at === "/" || at.startsWith("/boards/")) return "lab";
  if (at === "/events") return "events";
  if (at === "/jobs" || at.startsWith("/jobs/") || at.startsWith("/runs/")) return "jobs";
  return null;
}

export function Header() {
  const section = sectionOf(path.value);
  const who = caller.value;
  const state = connection.value;
  const current = (s: Section) => (section === s ? "page" : undefined);
  return (
    <header class="top">
      <a class="skip" href="#content">
        Skip to content
      </a>
      <a class="brand" href="/">
        threadfleet
      </a>
      <nav aria-label="Sections">
        <a href="/" aria-current={current("lab")}>
          Lab
        </a>
        <a href="/events" aria-current={current("events")}>
          Events
        </a>
        <a href="/jobs" aria-current={current("jobs")}>
          Jobs
        </a>
      </nav>
      <span class="top-spacer" />
      <span
        class={`conn conn-${state}`}
        data-testid="connection"
        data-state={state}
        role="status"
        title={state === "live" ? "Live updates are flowing" : "Lost fleetd; reconnecting by itself"}
      >
        {state === "live" ? "live" : "reconnecting…"}
      </span>
      {who && (
        <span class="whoami" data-testid="whoami" title="The token you signed in with, and its role">
          {who.tokenName} ({(Role[who.role] ?? "unknown").toLowerCase()})
        </span>
      )}
      <button type="button" class="quiet" onClick={() => signOut()}>
        Sign out
      </button>
    </header>
  );
}
