// Label selectors as fleetd parses them (server/fleetd/inventory: a
// comma-separated AND of `key=value` / `key!=value`, each side 1-63 of
// letters, digits, '.', '_', '-', '/'), checked in the browser so a typo is
// explained at once instead of after a round trip.

export interface SelectorTerm {
  key: string;
  value: string;
  equal: boolean;
}

export type SelectorParse = { ok: true; terms: SelectorTerm[] } | { ok: false; error: string };

const MAX_LABEL_CHARS = 63;
const LABEL_CHARS = /^[A-Za-z0-9._/-]+$/;

function checkPart(what: string, text: string): string | null {
  if (text.length > MAX_LABEL_CHARS) return `${what} "${text}" is longer than ${MAX_LABEL_CHARS} characters`;
  if (!LABEL_CHARS.test(text)) return `${what} "${text}" may only contain letters, digits, '.', '_', '-' and '/'`;
  return null;
}

// Parses a selector; an empty (or blank) one picks every board.
export function parseLabelSelector(text: string): SelectorParse {
  if (text.trim() === "") return { ok: true, terms: [] };
  const terms: SelectorTerm[] = [];
  const parts = text.split(",");
  for (let i = 0; i < parts.length; i++) {
    const term = parts[i].trim();
    const where = `term ${i + 1}`;
    if (term === "") return { ok: false, error: `${where} is empty; write key=value or key!=value, separated by commas` };
    let op = term.indexOf("!=");
    let opSize = 2;
    const equal = op < 0;
    if (equal) {
      op = term.indexOf("=");
      opSize = 1;
    }
    if (op < 0) return { ok: false, error: `${where} ("${term}") has no "=" or "!="; write key=value or key!=value` };
    const key = term.slice(0, op).trim();
    const value = term.slice(op + opSize).trim();
    if (key === "") return { ok: false, error: `${where} ("${term}") has an empty key` };
    if (value === "") return { ok: false, error: `${where} ("${term}") has an empty value` };
    const bad = checkPart("key", key) ?? checkPart("value", value);
    if (bad) return { ok: false, error: `${where}: ${bad}` };
    terms.push({ key, value, equal });
  }
  return { ok: true, terms };
}

// Whether a board's labels satisfy every term (a board without the key
// satisfies `key!=value`), as fleetd decides.
export function matchesSelector(terms: readonly SelectorTerm[], labels: Readonly<Record<string, string>>): boolean {
  return terms.every((t) => (Object.hasOwn(labels, t.key) && labels[t.key] === t.value) === t.equal);
}
