// Placeholder until the page lands (issue 13).
export function EventsPage() {
  return <p>EventsPage</p>;
}
