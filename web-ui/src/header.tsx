// Placeholder until the shell lands (issue 13).
export function Header() {
  return <header>threadfleet</header>;
}
