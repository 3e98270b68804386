// Placeholder until the page lands (issue 13).
export function BoardPage({ name }: { name: string }) {
  return <h1>{name}</h1>;
}
