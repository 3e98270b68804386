// Placeholder until the pages land (issue 13).
export function JobsPage() {
  return <p>jobs</p>;
}
export function JobPage({ name }: { name: string }) {
  return <p>{name}</p>;
}
export function RunPage({ id }: { id: string }) {
  return <p>{id}</p>;
}
