// Client-side routes on History API paths; fleetd answers index.html for any
// extension-less path, so a reload or a shared link lands on the same page.
import { signal } from "@preact/signals";

export const path = signal(typeof window === "undefined" ? "/" : window.location.pathname);

export function navigate(to: string, replace = false): void {
  if (to === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  path.value = window.location.pathname;
}

// A route pattern like "/boards/:name" matched against a path: its params, or
// null. Params are URI-decoded.
export function match(pattern: string, at: string): Record<string, string> | null {
  const want = pattern.split("/");
  const got = at.split("/");
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) {
      if (got[i] === "") return null;
      try {
        params[want[i].slice(1)] = decodeURIComponent(got[i]);
      } catch {
        return null;
      }
    } else if (want[i] !== got[i]) {
      return null;
    }
  }
  return params;
}

// Follows plain left clicks on same-origin <a href> without a reload.
export function installLinkHandler(): void {
  window.addEventListener("popstate", () => (path.value = window.location.pathname));
  document.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, window.location.href);
    if (url.origin !== window.location.origin) return;
    // An in-page anchor (e.g. "Skip to content") is the browser's to follow.
    if (url.hash && url.pathname === window.location.pathname && url.search === window.location.search) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
}
