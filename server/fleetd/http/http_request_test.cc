// The request head parser of fleetd's HTTP listener: bytes in, a head, a
// request for more, or a refusal with the status a client gets.
#include "server/fleetd/http/http_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace threadfleet::fleetd {
namespace {

using ::testing::HasSubstr;

constexpr HttpHeadLimits kLimits{.max_header_bytes = 256, .max_body_bytes = 1024};

struct Parsed {
  HttpParse result;
  HttpRequestHead head;
  HttpRefusal refusal;
};

Parsed Parse(const std::string& in, HttpHeadLimits limits = kLimits) {
  Parsed p;
  p.result = ParseHttpRequestHead(in, limits, p.head, p.refusal);
  return p;
}

TEST(HttpRequestHeadTest, ReadsMethodPathWithoutQueryAndKeepAlive) {
  const Parsed p = Parse("GET /metrics?name=x HTTP/1.1\r\nHost: fleetd\r\n\r\nnext request");
  ASSERT_EQ(p.result, HttpParse::kHead);
  EXPECT_EQ(p.head.method, "GET");
  EXPECT_EQ(p.head.path, "/metrics");
  EXPECT_FALSE(p.head.close);
  EXPECT_EQ(p.head.head_bytes, std::string("GET /metrics?name=x HTTP/1.1\r\nHost: fleetd\r\n\r\n").size());
  EXPECT_EQ(p.head.body_bytes, 0u);
}

TEST(HttpRequestHeadTest, ReturnsTheQueryAndEveryHeaderWithLowercaseNamesAndTrimmedValues) {
  const Parsed p = Parse(
      "POST /threadfleet.fleet.v1.Fleet/ListBoards?encoding=json&x HTTP/1.1\r\n"
      "Host: fleetd:7480\r\nContent-Type:  application/json \r\nAUTHORIZATION: Bearer tf_x\r\n"
      "X-Empty:\r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_EQ(p.result, HttpParse::kHead);
  EXPECT_EQ(p.head.path, "/threadfleet.fleet.v1.Fleet/ListBoards");
  EXPECT_EQ(p.head.query, "encoding=json&x");
  EXPECT_THAT(p.head.headers,
              ::testing::ElementsAre(::testing::Pair("host", "fleetd:7480"),
                                     ::testing::Pair("content-type", "application/json"),
                                     ::testing::Pair("authorization", "Bearer tf_x"),
                                     ::testing::Pair("x-empty", ""), ::testing::Pair("content-length", "2")));
  EXPECT_EQ(p.head.body_bytes, 2u);
  EXPECT_EQ(Parse("GET /x HTTP/1.1\r\n\r\n").head.query, "");
}

TEST(HttpRequestHeadTest, ABodyUpToTheDefaultLimitFitsADashboardPush) {
  // A 1 MiB pushed file (limits.request.max_push_bytes) as Connect JSON is
  // base64: 4/3 of it, plus the rest of the message.
  const Parsed p = Parse("POST /x HTTP/1.1\r\nContent-Length: 1400000\r\n\r\n", HttpHeadLimits{});
  ASSERT_EQ(p.result, HttpParse::kHead);
  EXPECT_EQ(p.head.body_bytes, 1400000u);
}

TEST(HttpRequestHeadTest, ConnectionCloseAndHttp10CloseAfterTheResponse) {
  EXPECT_TRUE(Parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").head.close);
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\n\r\n").head.close);
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n").head.close);
}

TEST(HttpRequestHeadTest, ContentLengthWithinTheLimitIsTheBodySize) {
  const Parsed p = Parse("POST /x HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");
  ASSERT_EQ(p.result, HttpParse::kHead);
  EXPECT_EQ(p.head.body_bytes, 1024u);
}

TEST(HttpRequestHeadTest, AnIncompleteHeadWithinTheLimitAsksForMore) {
  EXPECT_EQ(Parse("GET /healthz HTTP/1.1\r\nHost: x\r\n").result, HttpParse::kNeedMore);
  EXPECT_EQ(Parse("").result, HttpParse::kNeedMore);
}

TEST(HttpRequestHeadTest, AHeadOverTheLimitIsRefused431EvenBeforeItEnds) {
  const Parsed endless = Parse("GET / HTTP/1.1\r\nX: " + std::string(300, 'a'));
  ASSERT_EQ(endless.result, HttpParse::kRefused);
  EXPECT_EQ(endless.refusal.status, 431);
  EXPECT_THAT(endless.refusal.message, HasSubstr("limits.http.max_header_bytes"));

  const Parsed complete = Parse("GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n");
  ASSERT_EQ(complete.result, HttpParse::kRefused);
  EXPECT_EQ(complete.refusal.status, 431);
}

TEST(HttpRequestHeadTest, ABodyAnnouncedOverTheLimitIsRefused413) {
  const Parsed p = Parse("POST / HTTP/1.1\r\nContent-Length: 314572800\r\n\r\n");
  ASSERT_EQ(p.result, HttpParse::kRefused);
  EXPECT_EQ(p.refusal.status, 413);
  EXPECT_THAT(p.refusal.message, HasSubstr("the body is 314572800 bytes; the limit is 1024"));
}

TEST(HttpRequestHeadTest, ChunkedBodiesAreRefused411) {
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").refusal.status, 411);
}

TEST(HttpRequestHeadTest, MalformedHeadsAreRefused400) {
  for (const std::string bad : {
           "GET /\r\n\r\n",                                                       // no version
           "GET / HTTP/2.0\r\n\r\n",                                              // not HTTP/1.x
           "GET metrics HTTP/1.1\r\n\r\n",                                        // target without '/'
           "G\x01T / HTTP/1.1\r\n\r\n",                                           // method not a token
           "GET  / HTTP/1.1\r\n\r\n",                                             // two spaces
           "GET / HTTP/1.1\r\nno colon here\r\n\r\n",                             // header without ':'
           "GET / HTTP/1.1\r\n: empty name\r\n\r\n",                              // empty field name
           "GET / HTTP/1.1\r\nHost : x\r\n\r\n",                                  // space in a name
           "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",                       // not a number
           "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",                      // two numbers
           "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",  // overflow
           "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",   // two lengths
       }) {
    const Parsed p = Parse(bad);
    ASSERT_EQ(p.result, HttpParse::kRefused) << bad;
    EXPECT_EQ(p.refusal.status, 400) << bad;
  }
}

}  // namespace
}  // namespace threadfleet::fleetd
