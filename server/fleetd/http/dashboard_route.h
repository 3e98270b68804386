// The HttpRoute fleetd serves the dashboard with (ui-contract.md): the Fleet
// API's Connect paths go to the Connect gateway, everything else to the
// static site.
//
//   POST /threadfleet.fleet.v1.Fleet/<Method>  `connect` (the gateway,
//        connect/); while fleetd has none, 404 with Connect's error JSON
//        {"code":"unimplemented","message":"..."}
//   anything else                              StaticSite::Serve
//
// Example (fleetd_main.cc):
//
//   handlers.route = DashboardRoute(*site, /*connect=*/nullptr);
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_DASHBOARD_ROUTE_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_DASHBOARD_ROUTE_H_

#include <memory>

#include "absl/strings/string_view.h"
#include "server/fleetd/http/http_exchange.h"
#include "server/fleetd/http/static_site.h"

namespace threadfleet::fleetd {

// The path prefix of the Fleet API's methods, as Connect (and gRPC) name them.
inline constexpr absl::string_view kFleetConnectPrefix = "/threadfleet.fleet.v1.Fleet/";

// REQUIRES: site not null. `connect` may be empty (no gateway yet).
[[nodiscard]] HttpRoute DashboardRoute(std::shared_ptr<const StaticSite> site, HttpRoute connect);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_DASHBOARD_ROUTE_H_
