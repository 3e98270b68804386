// StaticSite over a real directory: what a browser gets for the dashboard's
// files, client routes and hostile paths.
#include "server/fleetd/http/static_site.h"

#include <stdlib.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace threadfleet::fleetd {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

HttpRequest Request(const std::string& method, const std::string& path, HttpHeaders headers = {}) {
  HttpRequest request;
  request.method = method;
  request.path = path;
  request.headers = std::move(headers);
  return request;
}

// A built web-ui, as Vite lays it out, in a temporary directory.
class WebRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/static_site_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    std::filesystem::create_directories(root_ + "/assets");
    Write("index.html", "<!doctype html><script type=module src=/assets/index-3f2a.js></script>");
    Write("assets/index-3f2a.js", script_);
    Write("assets/index-77aa.css", "body{margin:0}");
    Write("favicon.png", std::string("\x89PNG\r\n\x1a\n", 8));
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Write(const std::string& name, const std::string& text) {
    std::ofstream(root_ + "/" + name, std::ios::binary) << text;
  }

  std::shared_ptr<const StaticSite> Load() {
    absl::StatusOr<std::shared_ptr<const StaticSite>> site = StaticSite::Load(root_);
    EXPECT_TRUE(site.ok()) << site.status();
    return site.ok() ? *site : nullptr;
  }

  static HttpRequest Get(const std::string& path, HttpHeaders headers = {}) {
    return Request("GET", path, std::move(headers));
  }

  std::string root_;
  const std::string script_ = std::string(4096, ';') + "console.log('dashboard');";
};

TEST_F(WebRoot, FilesAreServedWithTheirTypesAndAssetsAreCachedForever) {
  std::shared_ptr<const StaticSite> site = Load();
  ASSERT_NE(site, nullptr);
  EXPECT_EQ(site->file_count(), 4u);

  StaticSite::Answer script = site->Serve(Get("/assets/index-3f2a.js"));
  EXPECT_EQ(script.status, 200);
  EXPECT_EQ(script.body, script_);
  EXPECT_THAT(script.headers, Contains(Pair("content-type", "text/javascript; charset=utf-8")));
  EXPECT_THAT(script.headers, Contains(Pair("cache-control", "public, max-age=31536000, immutable")));
  EXPECT_THAT(site->Serve(Get("/assets/index-77aa.css")).headers,
              Contains(Pair("content-type", "text/css; charset=utf-8")));
  EXPECT_THAT(site->Serve(Get("/favicon.png")).headers, Contains(Pair("content-type", "image/png")));

  StaticSite::Answer index = site->Serve(Get("/"));
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(index.body, HasSubstr("<!doctype html>"));
  EXPECT_THAT(index.headers, Contains(Pair("content-type", "text/html; charset=utf-8")));
  EXPECT_THAT(index.headers, Contains(Pair("cache-control", "no-cache")));
  EXPECT_EQ(site->Serve(Request("HEAD", "/")).status, 200);
}

TEST_F(WebRoot, ClientRoutesGetIndexHtmlAndMissingFilesAre404) {
  std::shared_ptr<const StaticSite> site = Load();
  ASSERT_NE(site, nullptr);
  for (const std::string path : {"/boards/b01", "/jobs", "/runs/42", "/signin"}) {
    StaticSite::Answer a = site->Serve(Get(path));
    EXPECT_EQ(a.status, 200) << path;
    EXPECT_THAT(a.body, HasSubstr("<!doctype html>")) << path;
  }
  EXPECT_EQ(site->Serve(Get("/missing.png")).status, 404);
  EXPECT_EQ(site->Serve(Get("/assets/index-0000.js")).status, 404);
  EXPECT_EQ(site->Serve(Request("POST", "/")).status, 405);
}

TEST_F(WebRoot, PathsThatCouldLeaveTheRootAreRefused) {
  Write("../static_site_test_secret.txt", "secret");
  std::shared_ptr<const StaticSite> site = Load();
  ASSERT_NE(site, nullptr);
  for (const std::string path :
       {"/../static_site_test_secret.txt", "/assets/../../etc/passwd", "/%2e%2e/etc/passwd",
        "/%2E%2E%2fetc%2fpasswd", "/index.html%00.png", "/./index.html", "/a%2", "/a%zz", "/..%5cetc"}) {
    StaticSite::Answer a = site->Serve(Get(path));
    EXPECT_EQ(a.status, 400) << path;
    EXPECT_THAT(a.body, Not(HasSubstr("secret"))) << path;
  }
  std::filesystem::remove(std::filesystem::path(root_).parent_path() / "static_site_test_secret.txt");
}

TEST_F(WebRoot, TextIsGzippedForClientsThatAcceptItOnly) {
  std::shared_ptr<const StaticSite> site = Load();
  ASSERT_NE(site, nullptr);
  StaticSite::Answer gzipped =
      site->Serve(Get("/assets/index-3f2a.js", {{"accept-encoding", "br, gzip, deflate"}}));
  EXPECT_THAT(gzipped.headers, Contains(Pair("content-encoding", "gzip")));
  EXPECT_THAT(gzipped.headers, Contains(Pair("vary", "Accept-Encoding")));
  EXPECT_LT(gzipped.body.size(), script_.size());
  // It inflates back to the file.
  std::string inflated(script_.size() + 1, '\0');
  z_stream z{};
  ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(gzipped.body.data());
  z.avail_in = static_cast<uInt>(gzipped.body.size());
  z.next_out = reinterpret_cast<Bytef*>(inflated.data());
  z.avail_out = static_cast<uInt>(inflated.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  inflated.resize(z.total_out);
  inflateEnd(&z);
  EXPECT_EQ(inflated, script_);

  for (const std::string refuses : {"", "identity", "gzip;q=0", "br"}) {
    StaticSite::Answer plain = site->Serve(Get("/assets/index-3f2a.js", {{"accept-encoding", refuses}}));
    EXPECT_EQ(plain.body, script_) << refuses;
    EXPECT_THAT(plain.headers, Not(Contains(Pair("content-encoding", "gzip")))) << refuses;
  }
  // Too small to gain: never gzipped.
  EXPECT_THAT(site->Serve(Get("/assets/index-77aa.css", {{"accept-encoding", "gzip"}})).headers,
              Not(Contains(Pair("content-encoding", "gzip"))));
}

TEST_F(WebRoot, ARootThatIsTooBigOrHasNoIndexOrIsNoDirectoryIsRefusedNamingTheKey) {
  absl::StatusOr<std::shared_ptr<const StaticSite>> big = StaticSite::Load(root_, /*max_bytes=*/1024);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), HasSubstr("http.web_root"));
  EXPECT_THAT(big.status().message(), HasSubstr("holds more than"));

  std::filesystem::remove(root_ + "/index.html");
  absl::StatusOr<std::shared_ptr<const StaticSite>> no_index = StaticSite::Load(root_);
  EXPECT_THAT(no_index.status().message(), HasSubstr("has no index.html"));

  absl::StatusOr<std::shared_ptr<const StaticSite>> missing = StaticSite::Load(root_ + "/nowhere");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("http.web_root: " + root_ + "/nowhere is not a directory"));
}

TEST(StaticSiteWithoutRoot, SaysHowToBuildTheDashboard) {
  absl::StatusOr<std::shared_ptr<const StaticSite>> site = StaticSite::Load("");
  ASSERT_TRUE(site.ok()) << site.status();
  StaticSite::Answer page = (*site)->Serve(Request("GET", "/"));
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("npm run build"));
  EXPECT_THAT(page.body, HasSubstr("http.web_root"));
  EXPECT_EQ((*site)->Serve(Request("GET", "/favicon.ico")).status, 404);
  EXPECT_EQ((*site)->Serve(Request("GET", "/boards/b01")).status, 404);
}

}  // namespace
}  // namespace threadfleet::fleetd
