// Sign-in: the user pastes a token; fleetd checks it (WhoAmI) before the
// session keeps it, so a typo is caught here and not on the first page.
import { useRef, useState } from "preact/hooks";
import { createFleetClient } from "../api/client";
import { navigate } from "../router";
import { afterSignIn, caller, setToken, signInNotice } from "../session";
import { describeError } from "../view/errors";
import "./signin.css";

const CHECK_TIMEOUT_MS = 10_000;

export function SignInPage() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  document.title = "Sign in · threadfleet";

  async function submit(e: Event) {
    e.preventDefault();
    const candidate = input.current?.value.trim() ?? "";
    if (candidate === "") {
      setError("Enter a token: fleetctl token create prints one (tf_...)");
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const who = await createFleetClient(() => candidate).whoAmI({}, { timeoutMs: CHECK_TIMEOUT_MS });
      setToken(candidate);
      caller.value = who;
      signInNotice.value = null;
      navigate(afterSignIn(window.history.state), true);
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
      input.current?.select();
    }
  }

  return (
    <main class="signin" aria-busy={busy ? "true" : "false"}>
      <form class="signin-card" onSubmit={submit} noValidate>
        <h1>threadfleet</h1>
        <p class="muted">Sign in with a fleetd token to see and steer the lab.</p>
        {signInNotice.value && !error && (
          <p role="alert" class="alert">
            {signInNotice.value}
          </p>
        )}
        <label for="token">Token</label>
        <input
          id="token"
          ref={input}
          type="password"
          name="token"
          autoComplete="off"
          spellcheck={false}
          placeholder="tf_..."
          aria-invalid={error ? "true" : undefined}
          aria-describedby={error ? "token-error" : undefined}
          autoFocus
        />
        {error && (
          <p role="alert" id="token-error" class="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
