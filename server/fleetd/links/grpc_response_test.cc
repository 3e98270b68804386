#include "server/fleetd/links/grpc_response.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A reader whose response headers were a normal 200 gRPC response.
GrpcResponseReader AcceptedReader(size_t max_message_bytes = 1024) {
  GrpcResponseReader reader(max_message_bytes);
  reader.OnHeader(":status", "200");
  reader.OnHeader("content-type", "application/grpc");
  EXPECT_TRUE(reader.OnHeadersDone().ok());
  return reader;
}

// Feeds `bytes` in pieces of `piece` bytes and collects the messages.
absl::Status Feed(GrpcResponseReader& reader, absl::string_view bytes, size_t piece,
                  std::vector<std::string>* messages) {
  while (!bytes.empty()) {
    const size_t n = std::min(piece, bytes.size());
    absl::Status s = reader.OnData(bytes.substr(0, n), [&](absl::string_view m) {
      messages->emplace_back(m);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    bytes.remove_prefix(n);
  }
  return absl::OkStatus();
}

TEST(GrpcResponseTest, FramedMessageHasTheFiveBytePrefix) {
  EXPECT_EQ(FrameGrpcMessage("abc"), std::string("\0\0\0\0\3abc", 8));
  EXPECT_EQ(FrameGrpcMessage(""), std::string(5, '\0'));
  EXPECT_EQ(FrameGrpcMessage(std::string(300, 'x')).substr(0, 5), std::string("\0\0\0\1\x2c", 5));
}

TEST(GrpcResponseTest, BytesMessageHeadPlusDataIsTheFramedMessageProtobufWouldMake) {
  for (const size_t size : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{4096}, size_t{70000}}) {
    const std::string data(size, 'd');
    threadfleet::board::v1::WriteFileRequest request;
    request.set_data(data);
    EXPECT_EQ(GrpcBytesMessageHead(threadfleet::board::v1::WriteFileRequest::kDataFieldNumber, size) + data,
              FrameGrpcMessage(request.SerializeAsString()))
        << size << " bytes";
  }
}

TEST(GrpcResponseTest, MessagesSplitAnywhereArriveWholeAndInOrder) {
  const std::string wire = FrameGrpcMessage("first") + FrameGrpcMessage("") + FrameGrpcMessage("third one");
  for (size_t piece = 1; piece <= wire.size(); ++piece) {
    GrpcResponseReader reader = AcceptedReader();
    std::vector<std::string> messages;
    ASSERT_TRUE(Feed(reader, wire, piece, &messages).ok()) << piece;
    EXPECT_THAT(messages, ElementsAre("first", "", "third one")) << "pieces of " << piece;
    reader.OnHeader("grpc-status", "0");
    EXPECT_TRUE(reader.Finish().ok());
  }
}

TEST(GrpcResponseTest, TrailersGiveTheBoardsStatusAndDecodedMessage) {
  GrpcResponseReader reader = AcceptedReader();
  reader.OnHeader("grpc-status", "5");
  reader.OnHeader("grpc-message", "no such thread: 7%0Aretry%2");
  const absl::Status status = reader.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "no such thread: 7\nretry%2");
}

TEST(GrpcResponseTest, TrailersOnlyResponseIsAcceptedAndCarriesTheStatus) {
  GrpcResponseReader reader(1024);
  reader.OnHeader(":status", "200");
  reader.OnHeader("grpc-status", "12");
  reader.OnHeader("grpc-message", "unknown method");
  ASSERT_TRUE(reader.OnHeadersDone().ok());
  EXPECT_EQ(reader.Finish().code(), absl::StatusCode::kUnimplemented);
}

TEST(GrpcResponseTest, HttpErrorsMapToGrpcCodes) {
  const std::pair<const char*, absl::StatusCode> cases[] = {
      {"401", absl::StatusCode::kUnauthenticated}, {"403", absl::StatusCode::kPermissionDenied},
      {"404", absl::StatusCode::kUnimplemented},   {"503", absl::StatusCode::kUnavailable},
      {"500", absl::StatusCode::kUnknown},         {"banana", absl::StatusCode::kUnknown}};
  for (const auto& [http, code] : cases) {
    GrpcResponseReader reader(1024);
    reader.OnHeader(":status", http);
    EXPECT_EQ(reader.OnHeadersDone().code(), code) << http;
  }
}

TEST(GrpcResponseTest, ResponseThatIsNotGrpcIsRefused) {
  GrpcResponseReader missing(1024);
  EXPECT_EQ(missing.OnHeadersDone().code(), absl::StatusCode::kInternal);  // no :status

  GrpcResponseReader html(1024);
  html.OnHeader(":status", "200");
  html.OnHeader("content-type", "application/grpcfoo");
  EXPECT_THAT(std::string(html.OnHeadersDone().message()), HasSubstr("not gRPC"));

  GrpcResponseReader early(1024);
  EXPECT_EQ(early.OnData("x", [](absl::string_view) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kInternal);
}

TEST(GrpcResponseTest, OversizedCompressedOrBadlyFlaggedMessagesFailTheCall) {
  std::vector<std::string> messages;
  GrpcResponseReader big = AcceptedReader(/*max_message_bytes=*/8);
  EXPECT_EQ(Feed(big, FrameGrpcMessage("123456789"), 1, &messages).code(),
            absl::StatusCode::kResourceExhausted);

  GrpcResponseReader compressed = AcceptedReader();
  std::string wire = FrameGrpcMessage("zz");
  wire[0] = 1;
  EXPECT_THAT(std::string(Feed(compressed, wire, 64, &messages).message()), HasSubstr("compressed"));

  GrpcResponseReader flagged = AcceptedReader();
  wire[0] = 7;
  EXPECT_EQ(Feed(flagged, wire, 2, &messages).code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(messages.empty());
}

TEST(GrpcResponseTest, StreamEndingInsideAMessageOrWithoutStatusIsInternal) {
  std::vector<std::string> messages;
  GrpcResponseReader cut = AcceptedReader();
  ASSERT_TRUE(Feed(cut, FrameGrpcMessage("hello").substr(0, 7), 64, &messages).ok());
  cut.OnHeader("grpc-status", "0");
  EXPECT_THAT(std::string(cut.Finish().message()), HasSubstr("inside a message"));

  GrpcResponseReader silent = AcceptedReader();
  EXPECT_THAT(std::string(silent.Finish().message()), HasSubstr("without a grpc-status"));

  GrpcResponseReader bad = AcceptedReader();
  bad.OnHeader("grpc-status", "17");
  EXPECT_EQ(bad.Finish().code(), absl::StatusCode::kInternal);
}

TEST(GrpcResponseTest, ErrorFromTheMessageHandlerStopsReading) {
  GrpcResponseReader reader = AcceptedReader();
  int seen = 0;
  const absl::Status s = reader.OnData(FrameGrpcMessage("a") + FrameGrpcMessage("b"), [&](absl::string_view) {
    ++seen;
    return absl::InternalError("does not parse");
  });
  EXPECT_EQ(s.message(), "does not parse");
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace threadfleet::fleetd
