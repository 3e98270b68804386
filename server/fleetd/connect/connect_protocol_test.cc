#include "server/fleetd/connect/connect_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace threadfleet::fleetd {
namespace {

using ::testing::HasSubstr;

constexpr size_t kLimit = 1024;

TEST(ConnectProtocolTest, ContentTypesNameTheCodecAndWhetherMessagesAreEnveloped) {
  EXPECT_EQ(*ParseConnectContentType("application/json"), (ConnectContentType{ConnectCodec::kJson, false}));
  EXPECT_EQ(*ParseConnectContentType("Application/JSON; charset=UTF-8"),
            (ConnectContentType{ConnectCodec::kJson, false}));
  EXPECT_EQ(*ParseConnectContentType("application/json;charset=\"utf-8\""),
            (ConnectContentType{ConnectCodec::kJson, false}));
  EXPECT_EQ(*ParseConnectContentType("application/proto"), (ConnectContentType{ConnectCodec::kProto, false}));
  EXPECT_EQ(*ParseConnectContentType("application/connect+json"),
            (ConnectContentType{ConnectCodec::kJson, true}));
  EXPECT_EQ(*ParseConnectContentType("application/connect+proto"),
            (ConnectContentType{ConnectCodec::kProto, true}));
  EXPECT_EQ(ConnectContentTypeName({ConnectCodec::kProto, true}), "application/connect+proto");
  EXPECT_EQ(ConnectContentTypeName({ConnectCodec::kJson, false}), "application/json");
}

TEST(ConnectProtocolTest, OtherContentTypesAndCharsetsAreRefusedNamingThem) {
  absl::StatusOr<ConnectContentType> html = ParseConnectContentType("text/html");
  EXPECT_EQ(html.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(html.status().message(), HasSubstr("text/html"));
  EXPECT_EQ(ParseConnectContentType("application/json; charset=latin1").status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ParseConnectContentType("application/proto; charset=utf-8").status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ParseConnectContentType("application/grpc").status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ConnectProtocolTest, AnEnvelopeRoundTripsWithItsFlagsAndBigEndianLength) {
  const std::string payload(300, 'x');
  const std::string bytes = EncodeEnvelope(kEnvelopeEndStream, payload);
  ASSERT_EQ(bytes.size(), kEnvelopePrefixBytes + 300);
  EXPECT_EQ(bytes.substr(0, 5), std::string("\x02\x00\x00\x01\x2c", 5));
  const std::string followed = bytes + "next";
  absl::StatusOr<ConnectEnvelope> decoded = DecodeEnvelope(followed, kLimit);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->flags, kEnvelopeEndStream);
  EXPECT_EQ(decoded->payload, payload);
  EXPECT_EQ(decoded->size, bytes.size());
}

TEST(ConnectProtocolTest, ShortOrOversizedOrCompressedEnvelopesAreRefused) {
  EXPECT_EQ(DecodeEnvelope(std::string("\x00\x00\x00", 3), kLimit).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEnvelope(std::string("\x00\x00\x00\x00\x05"
                                       "abc",
                                       8),
                           kLimit)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status big = DecodeEnvelope(std::string("\x00\x7f\xff\xff\xff", 5), kLimit).status();
  EXPECT_EQ(big.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.message(), HasSubstr("1024"));
  EXPECT_EQ(DecodeEnvelope(EncodeEnvelope(kEnvelopeCompressed, "x"), kLimit).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(DecodeEnvelope(EncodeEnvelope(0x80, "x"), kLimit).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ConnectProtocolTest, AStreamingRequestIsExactlyOneMessageEnvelope) {
  EXPECT_EQ(*DecodeRequestEnvelope(EncodeEnvelope(0, "{}"), kLimit), "{}");
  EXPECT_EQ(DecodeRequestEnvelope(EncodeEnvelope(0, "{}") + "x", kLimit).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRequestEnvelope(EncodeEnvelope(kEnvelopeEndStream, "{}"), kLimit).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRequestEnvelope("", kLimit).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConnectProtocolTest, CodesHaveConnectsNamesAndHttpStatuses) {
  EXPECT_EQ(ConnectCodeName(absl::StatusCode::kCancelled), "canceled");
  EXPECT_EQ(ConnectCodeName(absl::StatusCode::kPermissionDenied), "permission_denied");
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kCancelled), 499);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kDataLoss), 500);
}

TEST(ConnectProtocolTest, ErrorsAreConnectErrorJsonAndEndStreamMessages) {
  EXPECT_EQ(ConnectErrorJson(absl::NotFoundError("board \"x\" is not in the inventory")),
            R"({"code":"not_found","message":"board \"x\" is not in the inventory"})");
  EXPECT_EQ(ConnectErrorJson(absl::CancelledError("")), R"({"code":"canceled"})");
  EXPECT_EQ(EndStreamJson(absl::OkStatus()), "{}");
  EXPECT_EQ(EndStreamJson(absl::UnauthenticatedError("no token")),
            R"({"error":{"code":"unauthenticated","message":"no token"}})");
}

TEST(ConnectProtocolTest, JsonTextNeverCarriesMarkupOrBrokenUtf8) {
  EXPECT_EQ(JsonQuote("<script>&</script>"), R"("\u003cscript\u003e\u0026\u003c/script\u003e")");
  EXPECT_EQ(JsonQuote("a\nb\t\x01"), R"("a\nb\t\u0001")");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonQuote("\xff\xc3"), R"("\ufffd\ufffd")");
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a surrogate
}

TEST(ConnectProtocolTest, TimeoutsAreOneToTenDigitsOfMilliseconds) {
  EXPECT_EQ(*ParseConnectTimeout(std::nullopt), std::nullopt);
  EXPECT_EQ(*ParseConnectTimeout("1500"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseConnectTimeout("9999999999"), absl::Milliseconds(9999999999));
  for (absl::string_view bad : {"", "12345678901", "-1", "1.5", " 1", "1s"}) {
    absl::Status refused = ParseConnectTimeout(bad).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.message(), HasSubstr("connect-timeout-ms")) << bad;
  }
}

TEST(ConnectProtocolTest, OnlyProtocolVersionOneOrNoneIsServed) {
  EXPECT_TRUE(CheckConnectProtocolVersion(std::nullopt).ok());
  EXPECT_TRUE(CheckConnectProtocolVersion("1").ok());
  absl::Status two = CheckConnectProtocolVersion("2");
  EXPECT_EQ(two.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(two.message(), HasSubstr("connect-protocol-version"));
}

}  // namespace
}  // namespace threadfleet::fleetd
