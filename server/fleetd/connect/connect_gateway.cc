#include "server/fleetd/connect/connect_gateway.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"
#include "server/common/quoted_input.h"
#include "server/fleetd/connect/connect_codec.h"
#include "server/fleetd/connect/connect_protocol.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

namespace internal {

struct ConnectGatewayState {
  ConnectGatewayState(std::shared_ptr<grpc::Channel> channel, ConnectGatewayLimits limits)
      : stub(std::move(channel)), limits(limits) {}

  grpc::GenericStub stub;
  const ConnectGatewayLimits limits;
  std::atomic<int> open_streams{0};
};

}  // namespace internal

namespace {

constexpr absl::string_view kServicePrefix = "/threadfleet.fleet.v1.Fleet/";
// An authorization value gRPC metadata can carry (printable ASCII), and no
// longer than a bearer token needs many times over.
constexpr size_t kMaxAuthorizationBytes = 1024;

const google::protobuf::ServiceDescriptor& FleetDescriptor() {
  // Reached through a generated type so its file is linked in and registered.
  static const google::protobuf::ServiceDescriptor* const service =
      threadfleet::fleet::v1::ListBoardsRequest::descriptor()->file()->FindServiceByName("Fleet");
  return *service;
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void ReplyError(HttpResponder& responder, int http_status, const absl::Status& error,
                HttpHeaders headers = {}) {
  headers.emplace_back("content-type", "application/json");
  responder.Reply(http_status, std::move(headers), ConnectErrorJson(error));
}

void ReplyError(HttpResponder& responder, const absl::Status& error) {
  ReplyError(responder, HttpStatusOf(error.code()), error);
}

// Ends a streamed answer that never started its call with `error`.
void EndStreamWithError(HttpResponder& responder, ConnectContentType type, const absl::Status& error) {
  responder.StartStream(200, {{"content-type", std::string(ConnectContentTypeName(type))}});
  (void)responder.Write(EncodeEnvelope(kEnvelopeEndStream, EndStreamJson(error)));
  responder.Finish();
}

// Cancels a call from the HTTP server's thread, safely against the call
// ending (and its context going away) on a gRPC thread.
class CallCancel {
 public:
  explicit CallCancel(grpc::ClientContext* context) : context_(context) {}

  void Cancel() {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  // The context is about to go away; Cancel does nothing after this.
  void Ended() {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_);
};

// What every call is given: the caller's token and time.
absl::Status PrepareContext(const HttpRequest& request, std::optional<absl::Duration> timeout,
                            grpc::ClientContext& context) {
  if (std::optional<absl::string_view> authorization = request.Header("authorization")) {
    const bool printable = std::all_of(authorization->begin(), authorization->end(),
                                       [](char c) { return c >= 0x20 && c <= 0x7E; });
    if (!printable || authorization->size() > kMaxAuthorizationBytes) {
      return absl::UnauthenticatedError(
          absl::StrCat("authorization header: expected \"Bearer tf_...\" of at most ", kMaxAuthorizationBytes,
                       " printable ASCII bytes"));
    }
    context.AddMetadata("authorization", std::string(*authorization));
  }
  if (timeout.has_value()) context.set_deadline(absl::ToChronoTime(absl::Now() + *timeout));
  return absl::OkStatus();
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// The answer message in `codec`, within the size limit.
absl::StatusOr<std::string> Transcode(const grpc::ByteBuffer& buffer,
                                      const google::protobuf::Descriptor& type, ConnectCodec codec,
                                      size_t max_bytes) {
  if (buffer.Length() > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the answer (", type.full_name(), ") is ",
                                                     buffer.Length(), " bytes, over the gateway's limit of ",
                                                     max_bytes));
  }
  grpc::Slice whole;
  if (!buffer.DumpToSingleSlice(&whole).ok()) return absl::InternalError("cannot read the answer");
  const absl::string_view bytes(reinterpret_cast<const char*>(whole.begin()), whole.size());
  if (codec == ConnectCodec::kProto) return std::string(bytes);
  std::unique_ptr<google::protobuf::Message> message = NewMessage(type);
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InternalError(absl::StrCat("the answer is not a ", type.full_name()));
  }
  return EncodeMessage(codec, *message);
}

// One unary call: lives until gRPC's completion callback has run.
struct UnaryCall {
  std::shared_ptr<internal::ConnectGatewayState> state;
  std::shared_ptr<HttpResponder> responder;
  const google::protobuf::Descriptor* output_type = nullptr;
  ConnectContentType type;
  grpc::ClientContext context;
  std::shared_ptr<CallCancel> cancel = std::make_shared<CallCancel>(&context);
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;

  void Done(const grpc::Status& status) {
    cancel->Ended();
    if (!status.ok()) return ReplyError(*responder, FromGrpc(status));
    absl::StatusOr<std::string> answer =
        Transcode(response, *output_type, type.codec, state->limits.max_response_message_bytes);
    if (!answer.ok()) return ReplyError(*responder, answer.status());
    responder->Reply(200, {{"content-type", std::string(ConnectContentTypeName(type))}}, *std::move(answer));
  }
};

// One server-streaming call; deletes itself when gRPC is done with it.
class StreamCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(std::shared_ptr<internal::ConnectGatewayState> state, std::shared_ptr<HttpResponder> responder,
             const google::protobuf::Descriptor& output_type, ConnectContentType type)
      : state_(std::move(state)), responder_(std::move(responder)), output_type_(output_type), type_(type) {}

  grpc::ClientContext& context() { return context_; }

  // REQUIRES: the context prepared; counted in open_streams.
  void Start(const std::string& method_path, const std::string& request) {
    request_ = ToByteBuffer(request);
    responder_->OnCancel([cancel = cancel_] { cancel->Cancel(); });
    responder_->StartStream(200, {{"content-type", std::string(ConnectContentTypeName(type_))}});
    state_->stub.PrepareBidiStreamingCall(&context_, method_path, grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&answer_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the call ended: OnDone follows
    absl::StatusOr<std::string> payload =
        Transcode(answer_, output_type_, type_.codec, state_->limits.max_response_message_bytes);
    if (!payload.ok()) {
      gateway_error_ = payload.status();
      context_.TryCancel();
      return;
    }
    if (!responder_->Write(EncodeEnvelope(0, *payload))) {
      // The client is gone or not reading: nobody will see the rest.
      context_.TryCancel();
      return;
    }
    StartRead(&answer_);
  }

  void OnDone(const grpc::Status& status) override {
    cancel_->Ended();
    const absl::Status end = gateway_error_.ok() ? FromGrpc(status) : gateway_error_;
    (void)responder_->Write(EncodeEnvelope(kEnvelopeEndStream, EndStreamJson(end)));
    responder_->Finish();
    state_->open_streams.fetch_sub(1);
    delete this;
  }

 private:
  const std::shared_ptr<internal::ConnectGatewayState> state_;
  const std::shared_ptr<HttpResponder> responder_;
  const google::protobuf::Descriptor& output_type_;
  const ConnectContentType type_;
  grpc::ClientContext context_;
  const std::shared_ptr<CallCancel> cancel_ = std::make_shared<CallCancel>(&context_);
  grpc::ByteBuffer request_;
  grpc::ByteBuffer answer_;
  // Set (before the cancel it causes) when the gateway, not the service,
  // ends the call.
  absl::Status gateway_error_;
};

// The request's encoding, in the form `method` needs.
absl::StatusOr<ConnectContentType> RequestType(const HttpRequest& request,
                                               const google::protobuf::MethodDescriptor& method) {
  std::optional<absl::string_view> value = request.Header("content-type");
  if (!value.has_value()) return absl::UnimplementedError("content-type is missing");
  absl::StatusOr<ConnectContentType> type = ParseConnectContentType(*value);
  if (!type.ok()) return type.status();
  if (type->streaming != method.server_streaming()) {
    return absl::UnimplementedError(absl::StrCat(
        method.name(), " is ", method.server_streaming() ? "server-streaming" : "unary", ": send ",
        method.server_streaming() ? "application/connect+json or application/connect+proto"
                                  : "application/json or application/proto",
        ", not ", common::QuoteInput(*value)));
  }
  return type;
}

// What the protocol asks of the request beyond its content type.
absl::StatusOr<std::optional<absl::Duration>> CheckProtocolHeaders(const HttpRequest& request,
                                                                   ConnectContentType type) {
  if (absl::Status version = CheckConnectProtocolVersion(request.Header("connect-protocol-version"));
      !version.ok()) {
    return version;
  }
  const absl::string_view encoding_header = type.streaming ? "connect-content-encoding" : "content-encoding";
  if (std::optional<absl::string_view> encoding = request.Header(encoding_header);
      encoding.has_value() && *encoding != "identity") {
    return absl::UnimplementedError(absl::StrCat(encoding_header, " ", common::QuoteInput(*encoding),
                                                 ": fleetd takes uncompressed requests only (identity)"));
  }
  return ParseConnectTimeout(request.Header("connect-timeout-ms"));
}

}  // namespace

ConnectGateway::ConnectGateway(std::shared_ptr<grpc::Channel> in_process_channel, ConnectGatewayLimits limits)
    : state_(std::make_shared<internal::ConnectGatewayState>(std::move(in_process_channel), limits)) {}

ConnectGateway::~ConnectGateway() = default;

bool ConnectGateway::Handles(absl::string_view path) { return absl::StartsWith(path, kServicePrefix); }

int ConnectGateway::open_streams() const { return state_->open_streams.load(); }

void ConnectGateway::Serve(HttpRequest request, std::shared_ptr<HttpResponder> responder) {
  if (request.method != "POST") {
    return ReplyError(*responder, 405,
                      absl::UnimplementedError(absl::StrCat("method ", common::QuoteInput(request.method),
                                                            ": the Fleet API takes POST")),
                      {{"allow", "POST"}});
  }
  const absl::string_view method_name = absl::string_view(request.path).substr(kServicePrefix.size());
  const google::protobuf::MethodDescriptor* method =
      FleetDescriptor().FindMethodByName(std::string(method_name));
  if (method == nullptr) {
    return ReplyError(*responder, 404,
                      absl::UnimplementedError(absl::StrCat("no method ", common::QuoteInput(method_name),
                                                            " in threadfleet.fleet.v1.Fleet")));
  }
  if (method->client_streaming()) {
    return ReplyError(*responder, absl::UnimplementedError(absl::StrCat(
                                      method->name(), " streams requests: not served over HTTP/1.1")));
  }
  absl::StatusOr<ConnectContentType> type = RequestType(request, *method);
  if (!type.ok()) {
    return ReplyError(
        *responder, 415, type.status(),
        {{"accept-post", method->server_streaming() ? "application/connect+json, application/connect+proto"
                                                    : "application/json, application/proto"}});
  }
  // From here on a streaming method's errors end its stream (HTTP 200), a
  // unary one's take their code's HTTP status.
  const auto refuse = [&](const absl::Status& error) {
    if (type->streaming) return EndStreamWithError(*responder, *type, error);
    ReplyError(*responder, error);
  };
  absl::StatusOr<std::optional<absl::Duration>> timeout = CheckProtocolHeaders(request, *type);
  if (!timeout.ok()) return refuse(timeout.status());
  absl::string_view body = request.body;
  if (type->streaming) {
    absl::StatusOr<absl::string_view> message = DecodeRequestEnvelope(body, body.size());
    if (!message.ok()) return refuse(message.status());
    body = *message;
  }
  std::unique_ptr<google::protobuf::Message> decoded = NewMessage(*method->input_type());
  if (absl::Status read = DecodeMessage(type->codec, body, *decoded); !read.ok()) return refuse(read);
  const std::string path = absl::StrCat(kServicePrefix, method->name());

  if (!method->server_streaming()) {
    auto call = std::make_shared<UnaryCall>();
    call->state = state_;
    call->responder = responder;
    call->output_type = method->output_type();
    call->type = *type;
    if (absl::Status prepared = PrepareContext(request, *timeout, call->context); !prepared.ok()) {
      return refuse(prepared);
    }
    call->request = ToByteBuffer(decoded->SerializeAsString());
    responder->OnCancel([cancel = call->cancel] { cancel->Cancel(); });
    state_->stub.UnaryCall(&call->context, path, grpc::StubOptions(), &call->request, &call->response,
                           [call](grpc::Status status) { call->Done(status); });
    return;
  }

  if (state_->open_streams.fetch_add(1) >= state_->limits.max_open_streams) {
    state_->open_streams.fetch_sub(1);
    return refuse(
        absl::ResourceExhaustedError(absl::StrCat("fleetd serves at most ", state_->limits.max_open_streams,
                                                  " streaming calls over HTTP at once "
                                                  "(limits.http.max_connect_streams); retry later")));
  }
  auto* call = new StreamCall(state_, responder, *method->output_type(), *type);
  if (absl::Status prepared = PrepareContext(request, *timeout, call->context()); !prepared.ok()) {
    delete call;
    state_->open_streams.fetch_sub(1);
    return refuse(prepared);
  }
  call->Start(path, decoded->SerializeAsString());
}

}  // namespace threadfleet::fleetd
