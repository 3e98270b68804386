#include "server/fleetd/http/dashboard_route.h"

#include <utility>

#include "absl/strings/match.h"

namespace threadfleet::fleetd {

HttpRoute DashboardRoute(std::shared_ptr<const StaticSite> site, HttpRoute connect) {
  return [site = std::move(site), connect = std::move(connect)](HttpRequest request,
                                                                std::shared_ptr<HttpResponder> responder) {
    if (absl::StartsWith(request.path, kFleetConnectPrefix)) {
      if (connect) return connect(std::move(request), std::move(responder));
      return responder->Reply(
          404, {{"content-type", "application/json"}},
          R"({"code":"unimplemented","message":"this fleetd serves no Connect API yet"})");
    }
    StaticSite::Answer answer = site->Serve(request);
    responder->Reply(answer.status, std::move(answer.headers), std::move(answer.body));
  };
}

}  // namespace threadfleet::fleetd
