// Who is signed in: the bearer token (sessionStorage, so it dies with the
// tab and never rides in a cookie or URL), and who fleetd says it is
// (WhoAmI), from which the pages decide which actions to offer.
import { computed, signal } from "@preact/signals";
import { Role, type WhoAmIResponse } from "./gen/threadfleet/fleet/v1/fleet_pb";
import { path } from "./router";

export const TOKEN_KEY = "threadfleet.token";

function storedToken(): string | null {
  try {
    return window.sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the user signs in again per page load
  }
}

export const token = signal<string | null>(typeof window === "undefined" ? null : storedToken());
// Set once WhoAmI answered for the current token.
export const caller = signal<WhoAmIResponse | null>(null);
// Why the user is on the sign-in page against their will (token revoked...),
// shown there once.
export const signInNotice = signal<string | null>(null);

export const canOperate = computed(() => (caller.value?.role ?? Role.UNSPECIFIED) >= Role.OPERATOR);

export function setToken(value: string | null): void {
  token.value = value;
  caller.value = null;
  try {
    if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
    else window.sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lives in memory only
  }
}

// Forgets the token and goes to sign-in, which comes back to the page the
// user was on; `notice` says why when the user did not ask for it.
export function signOut(notice: string | null = null): void {
  const here = window.location.pathname + window.location.search;
  setToken(null);
  signInNotice.value = notice;
  if (window.location.pathname !== "/signin") goToSignIn(notice ? here : null, false);
}

// Shows /signin (the address bar says just that), remembering in the history
// entry's state the page to open after signing in.
export function goToSignIn(next: string | null, replace: boolean): void {
  const state = next && next !== "/" ? { afterSignIn: next } : null;
  if (replace) window.history.replaceState(state, "", "/signin");
  else window.history.pushState(state, "", "/signin");
  path.value = "/signin";
}

// Where to go after signing in: the page remembered in the history state
// when it is a path of this dashboard (never another origin: "//host" or
// "/\host"), else the lab.
export function afterSignIn(state: unknown): string {
  const next = (state as { afterSignIn?: unknown } | null)?.afterSignIn;
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next === "/signin" || next.startsWith("/signin?")) return "/";
  return next;
}

// Takes a `#token=...` fragment as the session's token and removes it from
// the address bar (and so from history), before anything renders. True when
// there was one.
export function takeTokenFromFragment(): boolean {
  const hash = window.location.hash;
  if (!hash.startsWith("#token=")) return false;
  let value: string;
  try {
    value = decodeURIComponent(hash.slice("#token=".length));
  } catch {
    value = "";
  }
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  if (value) setToken(value);
  return value !== "";
}
