// Who is signed in: the bearer token (sessionStorage, so it dies with the
// tab and never rides in a cookie or URL), and who fleetd says it is
// (WhoAmI), from which the pages decide which actions to offer.
import { computed, signal } from "@preact/signals";
import { Role, type WhoAmIResponse } from "./gen/threadfleet/fleet/v1/fleet_pb";

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
