// The Fleet API client every page uses: connect-web over fleetd's own origin,
// binary protobuf (smaller and faster to decode than JSON for live streams),
// the bearer token from the session in the Authorization header only.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Fleet } from "../gen/threadfleet/fleet/v1/fleet_pb";

export type FleetClient = Client<typeof Fleet>;

// `onUnauthenticated` is told when fleetd refuses the token (unknown or
// revoked) on any call, unary or streaming; the error still reaches the
// caller.
export function createFleetClient(
  token: () => string | null,
  baseUrl = window.location.origin,
  onUnauthenticated?: () => void,
): FleetClient {
  const auth: Interceptor = (next) => async (req) => {
    const t = token();
    if (t) req.header.set("Authorization", `Bearer ${t}`);
    const refused = (e: unknown) => {
      if (onUnauthenticated && ConnectError.from(e).code === Code.Unauthenticated) onUnauthenticated();
      return e;
    };
    let res;
    try {
      res = await next(req);
    } catch (e) {
      throw refused(e);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } catch (e) {
          throw refused(e);
        }
      })(),
    };
  };
  return createClient(Fleet, createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [auth] }));
}
