// The one Fleet client of the page, authenticated with the session's token.
import { createFleetClient } from "./client";
import { token } from "../session";

export const fleet = createFleetClient(() => token.value);
