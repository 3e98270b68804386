// The dashboard's shell: the header (navigation, who is signed in, the live
// badge) and the page for the current path. Signed-out visits go to /signin
// and come back afterwards; a signed-in page waits for WhoAmI so that it
// offers exactly the actions the token's role allows.
import { useEffect, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import { fleet } from "./api/fleet";
import { path, match } from "./router";
import { caller, goToSignIn, signOut, token } from "./session";
import { describeError } from "./view/errors";
import { SignInPage } from "./pages/signin";
import { OverviewPage } from "./pages/overview";
import { BoardPage } from "./pages/board";
import { EventsPage } from "./pages/events";
import { JobsPage, JobPage, RunPage } from "./pages/jobs";
import { Header } from "./header";

const WHOAMI_RETRY_MS = 3000;

export function App() {
  const at = path.value;
  if (at === "/signin") return <SignInPage />;
  if (!token.value) return <RedirectToSignIn />;
  if (!caller.value) return <WhoAmIGate />;
  let page;
  let params: Record<string, string> | null;
  if (at === "/") page = <OverviewPage />;
  else if ((params = match("/boards/:name", at))) page = <BoardPage name={params.name} />;
  else if (at === "/events") page = <EventsPage />;
  else if (at === "/jobs") page = <JobsPage />;
  else if ((params = match("/jobs/:name", at))) page = <JobPage name={params.name} />;
  else if ((params = match("/runs/:id", at))) page = <RunPage id={params.id} />;
  else
    page = (
      <p role="alert">
        No page at {at}. <a href="/">Back to the lab</a>
      </p>
    );
  return (
    <>
      <Header />
      <main id="content">{page}</main>
    </>
  );
}

function RedirectToSignIn() {
  useEffect(() => goToSignIn(window.location.pathname + window.location.search, true), []);
  return null;
}

// Asks fleetd who the token is before any page renders; retries while fleetd
// is unreachable (e.g. restarting), signs out when it does not know the token.
function WhoAmIGate() {
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const ask = async () => {
      try {
        const who = await fleet.whoAmI({}, { timeoutMs: 10_000 });
        if (!stopped) caller.value = who;
      } catch (e) {
        if (stopped) return;
        // The client already signed out with a message (api/fleet.ts).
        if (ConnectError.from(e).code === Code.Unauthenticated) return;
        setError(describeError(e));
        timer = setTimeout(ask, WHOAMI_RETRY_MS);
      }
    };
    void ask();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [token.value]);
  return (
    <main id="content" class="gate" aria-busy={error ? "false" : "true"}>
      {error ? (
        <p role="alert" class="alert">
          {error}; trying again every {WHOAMI_RETRY_MS / 1000} s.{" "}
          <button type="button" class="quiet" onClick={() => signOut()}>
            Sign out
          </button>
        </p>
      ) : (
        <p class="muted">Signing in…</p>
      )}
    </main>
  );
}
