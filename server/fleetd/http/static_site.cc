#include "server/fleetd/http/static_site.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace threadfleet::fleetd {
namespace {

constexpr absl::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr absl::string_view kNotBuiltPage =
    "threadfleet: the dashboard is not built, or fleetd.yaml names no http.web_root.\n"
    "Build it with `cd web-ui && npm ci && npm run build`, then set `http.web_root: web-ui/dist`\n"
    "in fleetd.yaml and restart fleetd. The Fleet API (fleetctl) works without it.\n";
// Smaller files gain too little from gzip to be worth a second copy.
constexpr size_t kMinGzipBytes = 256;

struct ContentType {
  absl::string_view extension;
  absl::string_view type;
  bool compressible;
};
constexpr ContentType kContentTypes[] = {
    {".html", "text/html; charset=utf-8", true},
    {".js", "text/javascript; charset=utf-8", true},
    {".mjs", "text/javascript; charset=utf-8", true},
    {".css", "text/css; charset=utf-8", true},
    {".json", "application/json", true},
    {".map", "application/json", true},
    {".webmanifest", "application/manifest+json", true},
    {".svg", "image/svg+xml", true},
    {".txt", "text/plain; charset=utf-8", true},
    {".xml", "application/xml", true},
    {".wasm", "application/wasm", true},
    {".png", "image/png", false},
    {".jpg", "image/jpeg", false},
    {".jpeg", "image/jpeg", false},
    {".gif", "image/gif", false},
    {".webp", "image/webp", false},
    {".avif", "image/avif", false},
    {".ico", "image/x-icon", false},
    {".woff", "font/woff", false},
    {".woff2", "font/woff2", false},
    {".ttf", "font/ttf", false},
};

const ContentType* TypeOf(absl::string_view name) {
  for (const ContentType& t : kContentTypes) {
    if (absl::EndsWithIgnoreCase(name, t.extension)) return &t;
  }
  return nullptr;
}

// gzip (RFC 1952) of `in`; empty on failure.
std::string Gzip(const std::string& in) {
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return "";
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return result == Z_STREAM_END ? out : "";
}

// The client takes gzip: "gzip" in Accept-Encoding without q=0.
bool AcceptsGzip(const HttpRequest& request) {
  const std::optional<absl::string_view> accept = request.Header("accept-encoding");
  if (!accept.has_value()) return false;
  for (absl::string_view coding : absl::StrSplit(*accept, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(coding, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]), "gzip")) continue;
    for (size_t i = 1; i < parts.size(); ++i) {
      const absl::string_view param = absl::StripAsciiWhitespace(parts[i]);
      if (absl::StartsWith(param, "q=0") && param.find_first_of("123456789") == absl::string_view::npos) {
        return false;
      }
    }
    return true;
  }
  return false;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The path %-decoded, relative to the root ("/assets/a.js" -> "assets/a.js");
// nullopt when it could step outside the root or name no file sanely: a bad
// escape, NUL, backslash, or a "." or ".." segment (also when %-encoded).
std::optional<std::string> RelativePath(absl::string_view path) {
  std::string decoded;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      decoded.push_back(path[i]);
      continue;
    }
    if (i + 2 >= path.size()) return std::nullopt;
    const int high = HexValue(path[i + 1]), low = HexValue(path[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    decoded.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  if (decoded.find('\0') != std::string::npos || decoded.find('\\') != std::string::npos) return std::nullopt;
  for (absl::string_view segment : absl::StrSplit(decoded, '/')) {
    if (segment == "." || segment == "..") return std::nullopt;
  }
  return decoded.substr(decoded.find_first_not_of('/') == std::string::npos ? decoded.size()
                                                                            : decoded.find_first_not_of('/'));
}

StaticSite::Answer TextAnswer(int status, std::string text) {
  return {.status = status,
          .headers = {{"content-type", std::string(kTextContentType)}},
          .body = std::move(text)};
}

}  // namespace

absl::StatusOr<std::shared_ptr<const StaticSite>> StaticSite::Load(const std::string& web_root,
                                                                   size_t max_bytes) {
  auto site = std::make_shared<StaticSite>();
  if (web_root.empty()) return site;
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(web_root, error)) {
    return absl::InvalidArgumentError(absl::StrCat("http.web_root: ", web_root, " is not a directory"));
  }
  size_t total = 0;
  fs::recursive_directory_iterator it(web_root, error);
  for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    total += it->file_size(error);
    if (total > max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("http.web_root: ", web_root, " holds more than ",
                                                     max_bytes >> 20,
                                                     " MiB of files; point it at the built "
                                                     "web-ui (web-ui/dist)"));
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      return absl::InvalidArgumentError(absl::StrCat("http.web_root: cannot read ", it->path().string()));
    }
    const std::string name = fs::relative(it->path(), web_root, error).generic_string();
    const ContentType* type = TypeOf(name);
    File file{.content_type = type != nullptr ? std::string(type->type) : "application/octet-stream",
              .body = std::move(body)};
    if (type != nullptr && type->compressible && file.body.size() >= kMinGzipBytes) {
      std::string gzipped = Gzip(file.body);
      if (!gzipped.empty() && gzipped.size() < file.body.size()) file.gzipped = std::move(gzipped);
    }
    site->files_.emplace(name, std::move(file));
  }
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("http.web_root: cannot read ", web_root, ": ", error.message()));
  }
  if (!site->files_.contains("index.html")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http.web_root: ", web_root, " has no index.html; point it at the built web-ui (web-ui/dist)"));
  }
  return site;
}

StaticSite::Answer StaticSite::FileAnswer(const std::string& name, const File& file,
                                          bool gzip_accepted) const {
  Answer answer{.headers = {{"content-type", file.content_type}}};
  // Vite names what it puts under assets/ by content hash: it never changes.
  answer.headers.emplace_back("cache-control", absl::StartsWith(name, "assets/")
                                                   ? "public, max-age=31536000, immutable"
                                                   : "no-cache");
  if (!file.gzipped.empty()) {
    answer.headers.emplace_back("vary", "Accept-Encoding");
    if (gzip_accepted) {
      answer.headers.emplace_back("content-encoding", "gzip");
      answer.body = file.gzipped;
      return answer;
    }
  }
  answer.body = file.body;
  return answer;
}

StaticSite::Answer StaticSite::Serve(const HttpRequest& request) const {
  if (request.method != "GET" && request.method != "HEAD") {
    Answer answer = TextAnswer(405, "the dashboard's files answer GET and HEAD only\n");
    answer.headers.emplace_back("allow", "GET, HEAD");
    return answer;
  }
  const std::optional<std::string> relative = RelativePath(request.path);
  if (!relative.has_value()) return TextAnswer(400, "bad path\n");
  const std::string last_segment = relative->substr(relative->rfind('/') + 1);
  const bool client_route = last_segment.find('.') == std::string::npos;
  if (files_.empty())
    return relative->empty() ? TextAnswer(200, std::string(kNotBuiltPage)) : TextAnswer(404, "not found\n");
  std::string name = *relative;
  if (name.empty() || name.back() == '/') name += "index.html";
  const bool gzip = AcceptsGzip(request);
  if (auto file = files_.find(name); file != files_.end()) return FileAnswer(name, file->second, gzip);
  // A client route (/boards/b01): the app finds its page itself.
  if (client_route) return FileAnswer("index.html", files_.at("index.html"), gzip);
  return TextAnswer(404, "not found\n");
}

}  // namespace threadfleet::fleetd
