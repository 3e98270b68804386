// The one Fleet client of the page, authenticated with the session's token.
// A call fleetd answers UNAUTHENTICATED (the token was revoked) ends the
// session and takes the user back to sign-in with a message.
import { createFleetClient } from "./client";
import { signOut, token } from "../session";

export const fleet = createFleetClient(
  () => token.value,
  window.location.origin,
  () => {
    if (token.value) signOut("fleetd does not know this token (revoked or mistyped?). Sign in again.");
  },
);
