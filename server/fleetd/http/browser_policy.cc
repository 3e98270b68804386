#include "server/fleetd/http/browser_policy.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace threadfleet::fleetd {

HttpHeaders SecurityHeaders(bool tls) {
  HttpHeaders headers = {
      {"content-security-policy", std::string(kContentSecurityPolicy)},
      {"x-content-type-options", "nosniff"},
      {"referrer-policy", "no-referrer"},
      {"x-frame-options", "DENY"},
      {"cross-origin-opener-policy", "same-origin"},
      {"cross-origin-resource-policy", "same-origin"},
  };
  // Only over TLS: a browser ignores HSTS on plain HTTP anyway, and a
  // loopback dashboard must stay reachable as http://.
  if (tls) headers.emplace_back("strict-transport-security", "max-age=31536000");
  return headers;
}

void AddDefaultCacheControl(HttpHeaders& headers) {
  const bool set = std::any_of(headers.begin(), headers.end(), [](const auto& h) {
    return absl::EqualsIgnoreCase(h.first, "cache-control");
  });
  if (!set) headers.emplace_back("cache-control", "no-store");
}

OriginDecision DecideOrigin(const HttpRequest& request, const std::vector<std::string>& cors_origins) {
  const std::optional<absl::string_view> origin = request.Header("origin");
  if (!origin.has_value()) return {};
  OriginDecision decision{.origin = std::string(*origin)};
  const std::optional<absl::string_view> host = request.Header("host");
  if (host.has_value() && !host->empty() &&
      absl::EqualsIgnoreCase(*origin, absl::StrCat(request.tls ? "https://" : "http://", *host))) {
    decision.verdict = OriginVerdict::kSameOrigin;
    return decision;
  }
  if (std::find(cors_origins.begin(), cors_origins.end(), *origin) != cors_origins.end()) {
    decision.verdict = OriginVerdict::kListed;
    return decision;
  }
  decision.verdict = OriginVerdict::kRefused;
  decision.message = absl::StrCat(
      "origin ", *origin, " may not call fleetd; list it in fleetd.yaml's http.cors_origins to allow it\n");
  return decision;
}

bool IsPreflight(const HttpRequest& request) {
  return request.method == "OPTIONS" && request.Header("access-control-request-method").has_value();
}

void AddCorsHeaders(const OriginDecision& origin, HttpHeaders& headers) {
  if (origin.verdict != OriginVerdict::kListed) return;
  headers.emplace_back("access-control-allow-origin", origin.origin);
  headers.emplace_back("vary", "Origin");
}

void AddPreflightHeaders(const OriginDecision& origin, HttpHeaders& headers) {
  if (origin.verdict != OriginVerdict::kListed) return;
  AddCorsHeaders(origin, headers);
  headers.emplace_back("access-control-allow-methods", "POST, GET");
  headers.emplace_back("access-control-allow-headers",
                       "authorization, content-type, connect-protocol-version, connect-timeout-ms");
  headers.emplace_back("access-control-max-age", "7200");
}

}  // namespace threadfleet::fleetd
