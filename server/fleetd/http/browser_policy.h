// What fleetd's HTTP listener tells browsers on every response, and which
// origins may call it: the "Browser security" rules of the dashboard
// (issue 13, /work/briefs/ui-contract.md). Plain functions over a request,
// no sockets; http_server.cc applies them to built-in answers, refusals and
// routes alike.
//
// Example (http_server.cc, for each request):
//
//   const OriginDecision origin = DecideOrigin(request, cors_origins);
//   if (origin.verdict == OriginVerdict::kRefused) return Refuse(403, origin.message);
//   HttpHeaders headers = SecurityHeaders(request.tls);
//   AppendCorsHeaders(origin, headers);
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_BROWSER_POLICY_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_BROWSER_POLICY_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/fleetd/http/http_exchange.h"

namespace threadfleet::fleetd {

// The dashboard's Content-Security-Policy (ui-contract.md): only fleetd's own
// scripts, styles and API; no inline script or style, no framing.
inline constexpr absl::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

// The headers every response carries: the CSP, nosniff, no referrer, no
// framing, same-origin opener and resource policies, and HSTS when `tls`.
// Cache-Control is not among them (AddDefaultCacheControl).
[[nodiscard]] HttpHeaders SecurityHeaders(bool tls);

// Appends "Cache-Control: no-store" unless `headers` has a Cache-Control:
// an API answer or error must not be kept, a route's own choice wins.
void AddDefaultCacheControl(HttpHeaders& headers);

enum class OriginVerdict {
  kNoOrigin,    // no Origin header: not a cross-origin browser request
  kSameOrigin,  // Origin is the listener's own (scheme + Host)
  kListed,      // Origin is in http.cors_origins
  kRefused,     // any other Origin (including "null")
};

struct OriginDecision {
  OriginVerdict verdict = OriginVerdict::kNoOrigin;
  // The Origin as sent (kListed: echoed in Access-Control-Allow-Origin).
  std::string origin = {};
  // kRefused: one line naming the origin and http.cors_origins.
  std::string message = {};
};

// Decides on `request`'s Origin. The listener's own origin is
// "http(s)://" + the Host header (scheme from request.tls); listed origins
// match exactly (scheme, host and port as written in fleetd.yaml).
[[nodiscard]] OriginDecision DecideOrigin(const HttpRequest& request,
                                          const std::vector<std::string>& cors_origins);

// A CORS preflight: OPTIONS with Access-Control-Request-Method.
[[nodiscard]] bool IsPreflight(const HttpRequest& request);

// For kListed: Access-Control-Allow-Origin (the origin, never "*") and
// Vary: Origin; nothing otherwise. Never Allow-Credentials: the dashboard
// sends a bearer token, not cookies.
void AddCorsHeaders(const OriginDecision& origin, HttpHeaders& headers);

// The answer to a preflight from a listed origin (204): AddCorsHeaders plus
// the methods (POST, GET), request headers (Connect's and authorization) and
// how long the browser may cache it.
void AddPreflightHeaders(const OriginDecision& origin, HttpHeaders& headers);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_BROWSER_POLICY_H_
