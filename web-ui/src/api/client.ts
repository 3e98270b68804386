// The Fleet API client every page uses: connect-web over fleetd's own origin,
// binary protobuf (smaller and faster to decode than JSON for live streams),
// the bearer token from the session in the Authorization header only.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Fleet } from "../gen/threadfleet/fleet/v1/fleet_pb";

export type FleetClient = Client<typeof Fleet>;

export function createFleetClient(token: () => string | null, baseUrl = window.location.origin): FleetClient {
  const auth: Interceptor = (next) => (req) => {
    const t = token();
    if (t) req.header.set("Authorization", `Bearer ${t}`);
    return next(req);
  };
  return createClient(Fleet, createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [auth] }));
}
