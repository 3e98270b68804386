// The dashboard's shell: the header (navigation, who is signed in, the live
// badge) and the page for the current path. Signed-out visits go to /signin.
import { path, match } from "./router";
import { token } from "./session";
import { SignInPage } from "./pages/signin";
import { OverviewPage } from "./pages/overview";
import { BoardPage } from "./pages/board";
import { EventsPage } from "./pages/events";
import { JobsPage, JobPage, RunPage } from "./pages/jobs";
import { Header } from "./header";

export function App() {
  const at = path.value;
  if (!token.value || at === "/signin") return <SignInPage />;
  let page;
  let params: Record<string, string> | null;
  if (at === "/") page = <OverviewPage />;
  else if ((params = match("/boards/:name", at))) page = <BoardPage name={params.name} />;
  else if (at === "/events") page = <EventsPage />;
  else if (at === "/jobs") page = <JobsPage />;
  else if ((params = match("/jobs/:name", at))) page = <JobPage name={params.name} />;
  else if ((params = match("/runs/:id", at))) page = <RunPage id={params.id} />;
  else page = <p role="alert">No page at {at}. <a href="/">Back to the lab</a></p>;
  return (
    <>
      <Header />
      <main>{page}</main>
    </>
  );
}
