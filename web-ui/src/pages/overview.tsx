// Placeholder until the page lands (issue 13).
export function OverviewPage() {
  return <p>OverviewPage</p>;
}
