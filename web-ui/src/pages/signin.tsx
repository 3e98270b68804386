// Placeholder until the page lands (issue 13).
export function SignInPage() {
  return <p>SignInPage</p>;
}
