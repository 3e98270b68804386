// The dashboard's files (fleetd.yaml's http.web_root, the built web-ui),
// loaded into memory when fleetd starts and served from there: no disk read
// and no path ever reaches the file system after Load.
//
//   GET/HEAD /assets/index-3f2a.js  the file; Cache-Control "public,
//                                    max-age=31536000, immutable" (Vite names
//                                    assets by their hash)
//   GET /  or /boards/b01           index.html (client routes: a path with no
//                                    extension that is not a file), no-cache
//   GET /missing.png                404
//   a path with "..", "." segments, a NUL or a bad %-escape: 400
//   other methods                   405
// Text files are gzipped once at load and sent so to clients that accept it
// (Vary: Accept-Encoding). Without a web root, / answers a short page saying
// how to build the dashboard, and every other path 404.
//
// Example (fleetd_main.cc):
//
//   absl::StatusOr<std::shared_ptr<const StaticSite>> site = StaticSite::Load(config.http_web_root);
//   if (!site.ok()) return Fail(site.status());  // "http.web_root: ..."
//   StaticSite::Answer a = (*site)->Serve(request);
//   responder->Reply(a.status, std::move(a.headers), std::move(a.body));
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_STATIC_SITE_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_STATIC_SITE_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/fleetd/http/http_exchange.h"

namespace threadfleet::fleetd {

class StaticSite {
 public:
  // The most a web root may hold (the built web-ui is ~1 MiB).
  static constexpr size_t kDefaultMaxBytes = size_t{32} << 20;

  struct Answer {
    int status = 200;
    HttpHeaders headers = {};
    std::string body = {};
  };

  // Reads every regular file under `web_root` (empty: no dashboard).
  // INVALID_ARGUMENT naming http.web_root when it is not a readable
  // directory, has no index.html, or holds more than `max_bytes`.
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<const StaticSite>> Load(
      const std::string& web_root, size_t max_bytes = kDefaultMaxBytes);

  // The answer to `request` (method, path, Accept-Encoding).
  [[nodiscard]] Answer Serve(const HttpRequest& request) const;

  // Files loaded (0 without a web root).
  size_t file_count() const { return files_.size(); }

 private:
  struct File {
    std::string content_type = {};
    std::string body = {};
    // Empty when gzip would not make it smaller (or is not worth it).
    std::string gzipped = {};
  };

  Answer FileAnswer(const std::string& name, const File& file, bool gzip_accepted) const;

  // By path relative to the root, '/'-separated ("assets/index-3f2a.js").
  std::map<std::string, File> files_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_STATIC_SITE_H_
