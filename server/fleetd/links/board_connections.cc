#include "server/fleetd/links/board_connections.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/common/host_port.h"
#include "server/fleetd/links/grpc_response.h"
#include "threadfleet/board/v1/board.grpc.pb.h"

namespace threadfleet::fleetd {
namespace {

using Clock = std::chrono::steady_clock;

// The stream and connection windows fleetd announces: the board may send
// this much before fleetd's WINDOW_UPDATE, which nghttp2 sends once half of
// it is consumed.
constexpr int32_t kWindowBytes = 1 << 20;
constexpr size_t kReadBytes = 16 * 1024;
constexpr int kMaxEvents = 256;
// When messages come closer than this, the loop waits out the rest of it
// before it looks again, so that one wake-up reads the messages of many
// boards (a wake-up costs more than reading a message, most of all on a
// virtual machine). Health is not hurried: it comes every period (≥ 100 ms)
// and a board is offline after seconds. Calls are: a new one, or the answer
// to one, ends the wait (the urgent set). Messages farther apart are read
// at once, so a small lab pays nothing for this.
constexpr auto kPace = std::chrono::milliseconds(20);
// epoll data of the wake-up eventfd; connections use their id (never 0).
constexpr uint64_t kWakeTag = 0;
// How many ended connections' reasons the loop keeps (a few bytes each) for
// calls that come after the end: enough for every board of a big lab.
constexpr size_t kEndedKept = 4096;
// grpc-timeout takes at most 8 digits.
constexpr int64_t kMaxTimeoutDigits = 99'999'999;

std::string ErrnoText(int error) { return std::strerror(error); }

// OpenSSL's queued errors, reasons only ("certificate verify failed"),
// oldest first; clears the queue.
std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    absl::StrAppend(&out, out.empty() ? "" : "; ", reason != nullptr ? reason : "unknown TLS error");
  }
  return out.empty() ? std::string("unknown TLS error") : out;
}

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioFree> PemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate of `pem`, in order.
std::vector<std::unique_ptr<X509, X509Free>> ReadCertificates(const std::string& pem) {
  std::vector<std::unique_ptr<X509, X509Free>> certs;
  std::unique_ptr<BIO, BioFree> bio = PemBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(cert);
  ERR_clear_error();  // the end of the text reads as an error
  return certs;
}

// The client context of every board connection: fleetd's certificate and
// key, the lab CA, peer verification, ALPN h2.
absl::StatusOr<std::shared_ptr<SSL_CTX>> MakeTlsContext(const LinkCredentials& credentials) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("TLS context: ", OpenSslErrors()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);

  std::vector<std::unique_ptr<X509, X509Free>> cas = ReadCertificates(credentials.ca_pem);
  if (cas.empty()) return absl::InvalidArgumentError("the lab CA file holds no PEM certificate");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& ca : cas) X509_STORE_add_cert(store, ca.get());

  std::vector<std::unique_ptr<X509, X509Free>> chain = ReadCertificates(credentials.cert_pem);
  if (chain.empty())
    return absl::InvalidArgumentError("fleetd's board-link certificate file holds no PEM certificate");
  if (SSL_CTX_use_certificate(ctx.get(), chain[0].get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("fleetd's board-link certificate: ", OpenSslErrors()));
  }
  for (size_t i = 1; i < chain.size(); ++i) SSL_CTX_add1_chain_cert(ctx.get(), chain[i].get());

  std::unique_ptr<BIO, BioFree> key_bio = PemBio(credentials.key_pem);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("fleetd's board-link key: ", OpenSslErrors()));
  }

  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  static constexpr unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);
  // Partial writes keep unsent bytes ours; read-ahead takes a whole burst
  // with one recv; idle connections give their buffers back.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  // A killed board closes without close_notify: that is "the board closed
  // the connection", not a TLS error.
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  return ctx;
}

// "host:port" or "[v6]:port" split; an IP literal host is its socket
// address at once, a name is looked up by the NameResolver.
struct Endpoint {
  std::string host;
  std::string port;
  bool host_is_ip = false;
  SocketAddress socket;
};

absl::Status ParseAddress(const std::string& address, Endpoint* out) {
  absl::StatusOr<common::HostPort> parsed = common::ParseHostPort(address);
  if (!parsed.ok()) return parsed.status();
  out->host = parsed->host;
  out->port = std::to_string(parsed->port);
  const uint16_t port = htons(static_cast<uint16_t>(parsed->port));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->socket.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->socket.address);
  if (inet_pton(AF_INET, out->host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = port;
    out->socket.size = sizeof *v4;
    out->host_is_ip = true;
  } else if (inet_pton(AF_INET6, out->host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = port;
    out->socket.size = sizeof *v6;
    out->host_is_ip = true;
  }
  return absl::OkStatus();
}

nghttp2_nv Header(absl::string_view name, absl::string_view value) {
  // nghttp2 copies names and values: NO_COPY is not set.
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// When fleetd gives up on each call: (time, call id).
using GiveUps = std::multimap<Clock::time_point, uint64_t>;

Clock::time_point ToSteady(absl::Time t) {
  if (t == absl::InfiniteFuture()) return Clock::time_point::max();
  const absl::Duration left = t - absl::Now();
  if (left <= absl::ZeroDuration()) return Clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(left));
}

}  // namespace

std::string GrpcTimeoutValue(absl::Duration timeout) {
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1)));
  if (ms <= kMaxTimeoutDigits) return absl::StrCat(std::max<int64_t>(ms, 1), "m");
  const int64_t s = absl::ToInt64Seconds(absl::Ceil(timeout, absl::Seconds(1)));
  return absl::StrCat(std::min(s, kMaxTimeoutDigits), "S");
}

// One call: its HTTP/2 stream, the request body it sends and the response
// it reads. Lives on the loop thread only, owned by its connection.
class BoardConnections::Stream {
 public:
  Stream(uint64_t id, CallSpec spec, MessageFn on_message, DoneFn on_done)
      : id_(id),
        spec_(std::move(spec)),
        on_message_(std::move(on_message)),
        on_done_(std::move(on_done)),
        response_(spec_.max_message_bytes) {}

  uint64_t id() const { return id_; }
  // Its connection's id; 0 until a connection took it.
  uint64_t connection() const { return connection_; }
  const CallSpec& spec() const { return spec_; }
  CallKind kind() const { return spec_.kind; }
  bool started() const { return stream_id_ >= 0; }
  bool ended() const { return ended_; }
  // Counts against its connection's limits: admitted and not ended.
  bool running() const { return started() && !ended_; }
  // Its on_done ran and nghttp2 no longer refers to it.
  bool disposable() const { return delivered_ && (stream_id_ < 0 || stream_closed_); }

  // Ends the call with `status` unless it has ended; resets the board's
  // stream when it is open (`code`: NGHTTP2_CANCEL, or NO_ERROR after the
  // board's answer while the request was still being sent).
  void End(absl::Status status, nghttp2_session* h2, uint32_t code = NGHTTP2_CANCEL) {
    if (ended_) return;
    ended_ = true;
    status_ = std::move(status);
    if (h2 != nullptr && stream_id_ >= 0 && !stream_closed_ && (code != NGHTTP2_NO_ERROR || !request_done_)) {
      nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id_, code);
    }
  }

  // Runs on_done once the call ended. True if it ran now.
  bool Deliver() {
    if (!ended_ || delivered_) return false;
    delivered_ = true;
    if (on_done_) on_done_(status_);
    return true;
  }

  // The session is gone (the connection ended): nghttp2 holds no pointer.
  void Detach() { stream_closed_ = true; }

  // Taken by `connection`, which gives up on it at `give_up` (an entry of
  // the loop's GiveUps, removed with Forget()).
  void Attach(uint64_t connection, std::optional<GiveUps::iterator> give_up) {
    connection_ = connection;
    give_up_ = give_up;
  }
  // The loop no longer needs to find the call: removes its give-up entry.
  void Forget(GiveUps& give_ups) {
    if (give_up_.has_value()) give_ups.erase(*std::exchange(give_up_, std::nullopt));
  }

  // Sends the request on `h2` (headers now, the body as flow control
  // allows). False when the call ended instead (its time ran out, or
  // nghttp2 refused the stream).
  bool Start(nghttp2_session* h2, const std::string& authority) {
    std::string timeout;
    if (spec_.deadline != absl::InfiniteFuture()) {
      const absl::Duration left = spec_.deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        End(absl::DeadlineExceededError(""), nullptr);
        return false;
      }
      timeout = GrpcTimeoutValue(left);
    }
    const std::string path =
        absl::StrCat("/", threadfleet::board::v1::BoardControl::service_full_name(), "/", spec_.method);
    std::vector<nghttp2_nv> headers = {Header(":method", "POST"),
                                       Header(":scheme", "https"),
                                       Header(":path", path),
                                       Header(":authority", authority),
                                       Header("content-type", "application/grpc"),
                                       Header("te", "trailers"),
                                       Header("user-agent", "threadfleet-fleetd")};
    if (!timeout.empty()) headers.push_back(Header("grpc-timeout", timeout));
    nghttp2_data_provider body{};
    body.source.ptr = this;
    body.read_callback = &Stream::ReadRequestBody;
    const int32_t id = nghttp2_submit_request(h2, nullptr, headers.data(), headers.size(), &body, this);
    if (id < 0) {
      End(absl::InternalError(absl::StrCat("HTTP/2 request: ", nghttp2_strerror(id))), nullptr);
      return false;
    }
    stream_id_ = id;
    return true;
  }

  // ---- From the session's callbacks.

  void OnHeader(absl::string_view name, absl::string_view value) { response_.OnHeader(name, value); }

  void OnHeadersDone(nghttp2_session* h2) {
    if (absl::Status s = response_.OnHeadersDone(); !s.ok()) End(std::move(s), h2);
  }

  void OnData(absl::string_view bytes, nghttp2_session* h2) {
    if (ended_) return;
    absl::Status s = response_.OnData(
        bytes, [this](absl::string_view m) { return on_message_ ? on_message_(m) : absl::OkStatus(); });
    if (!s.ok()) End(std::move(s), h2);
  }

  // The board ended its side (END_STREAM): the response is complete.
  void OnBoardDone(nghttp2_session* h2) { End(response_.Finish(), h2, NGHTTP2_NO_ERROR); }

  void OnClosed(uint32_t error_code) {
    stream_closed_ = true;
    if (ended_) return;
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      End(absl::UnavailableError("the board refused the stream (it serves a limited number at once)"),
          nullptr);
    } else if (error_code != NGHTTP2_NO_ERROR) {
      End(absl::UnavailableError(
              absl::StrCat("the board reset the stream (HTTP/2 ", nghttp2_http2_strerror(error_code), ")")),
          nullptr);
    } else {
      End(response_.Finish(), nullptr);
    }
  }

 private:
  // Copies the next bytes of the request into `out` (`size` bytes at
  // most): the body, then each chunk of `chunked` behind its message head.
  // Returns how many; request_done_ once all are out.
  size_t CopyRequest(uint8_t* out, size_t size) {
    size_t n = 0;
    while (n < size) {
      if (body_sent_ < spec_.body.size()) {
        const size_t k = std::min(size - n, spec_.body.size() - body_sent_);
        std::memcpy(out + n, spec_.body.data() + body_sent_, k);
        body_sent_ += k;
        n += k;
        continue;
      }
      if (spec_.chunked == nullptr || chunk_offset_ >= spec_.chunked->size()) break;
      const size_t length = std::min(spec_.chunk_bytes, spec_.chunked->size() - chunk_offset_);
      if (chunk_head_.empty()) chunk_head_ = GrpcBytesMessageHead(spec_.chunk_field, length);
      if (chunk_head_sent_ < chunk_head_.size()) {
        const size_t k = std::min(size - n, chunk_head_.size() - chunk_head_sent_);
        std::memcpy(out + n, chunk_head_.data() + chunk_head_sent_, k);
        chunk_head_sent_ += k;
        n += k;
        continue;
      }
      const size_t k = std::min(size - n, length - chunk_sent_);
      std::memcpy(out + n, spec_.chunked->data() + chunk_offset_ + chunk_sent_, k);
      chunk_sent_ += k;
      n += k;
      if (chunk_sent_ == length) {
        chunk_offset_ += length;
        chunk_sent_ = 0;
        chunk_head_.clear();
        chunk_head_sent_ = 0;
      }
    }
    request_done_ = body_sent_ == spec_.body.size() &&
                    (spec_.chunked == nullptr || chunk_offset_ >= spec_.chunked->size());
    return n;
  }

  // The request for nghttp2 (data provider callback): fills `buffer`, which
  // nghttp2 owns, with up to `size` bytes; returns how many, and sets EOF
  // at the end.
  static ssize_t ReadRequestBody(nghttp2_session*, int32_t, uint8_t* buffer, size_t size, uint32_t* flags,
                                 nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    const size_t n = s->CopyRequest(buffer, size);
    if (s->request_done_) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  const uint64_t id_;
  const CallSpec spec_;
  const MessageFn on_message_;
  const DoneFn on_done_;
  GrpcResponseReader response_;
  uint64_t connection_ = 0;
  std::optional<GiveUps::iterator> give_up_;
  int32_t stream_id_ = -1;
  size_t body_sent_ = 0;
  // Where sending `chunked` stands: the chunk's start, its head (made when
  // the chunk begins) and how much of each went out.
  size_t chunk_offset_ = 0;
  std::string chunk_head_;
  size_t chunk_head_sent_ = 0;
  size_t chunk_sent_ = 0;
  bool request_done_ = false;
  bool stream_closed_ = false;
  bool ended_ = false;
  bool delivered_ = false;
  absl::Status status_;
};

// One board connection and the calls it carries; lives on the loop thread
// only.
class BoardConnections::Connection {
 public:
  // What a connection shares with the loop.
  struct Loop {
    SSL_CTX* tls = nullptr;
    int epoll_fd = -1;
    int urgent_fd = -1;
    // Calls not yet delivered, by id (Cancel, deadlines).
    absl::flat_hash_map<uint64_t, Stream*> calls;
    GiveUps give_ups;
    // Why recently ended connections ended, for calls that arrive after the
    // end (the caller had not seen it yet): the newest kEndedKept.
    absl::flat_hash_map<uint64_t, absl::Status> ended;
    std::deque<uint64_t> ended_order;
  };

  Connection(uint64_t id, ConnectionSpec spec, ClosedFn on_closed)
      : id_(id), spec_(std::move(spec)), on_closed_(std::move(on_closed)) {}

  ~Connection() { CloseTransport(); }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return id_; }
  bool ended() const { return ended_; }
  bool connecting() const { return !ended_ && phase_ != Phase::kOpen; }
  // Its host is a name that Begin() left for the NameResolver.
  bool resolving() const { return !ended_ && phase_ == Phase::kResolving; }
  const Endpoint& endpoint() const { return endpoint_; }
  Clock::time_point connect_deadline() const { return connect_deadline_; }

  // Ends the connection before it starts (fleetd's TLS set-up failed).
  void Refuse(Loop* loop, absl::Status why) {
    loop_ = loop;
    End(std::move(why));
  }

  // Parses the address; an IP literal is connected to at once, a name waits
  // for Resolved().
  void Begin(Loop* loop) {
    loop_ = loop;
    connect_deadline_ = Clock::now() + absl::ToChronoNanoseconds(spec_.connect_timeout);
    if (absl::Status s = ParseAddress(spec_.address, &endpoint_); !s.ok()) return End(std::move(s));
    if (endpoint_.host_is_ip) return Connect();
    phase_ = Phase::kResolving;
  }

  // The NameResolver's answer for this connection's host.
  void Resolved(absl::StatusOr<SocketAddress> address) {
    if (!resolving()) return;  // it ended (timed out, closed) meanwhile
    if (!address.ok()) return End(address.status());
    endpoint_.socket = *address;
    Connect();
  }

  // Admits a new call: starts it, queues it, or ends it at once over a
  // limit. Settle() delivers an end.
  void Add(std::unique_ptr<Stream> stream) {
    Stream* s = stream.get();
    streams_.push_back(std::move(stream));
    if (ended_) {
      s->End(CallsEndStatus(), nullptr);
      return;
    }
    if (absl::Status refused = Admit(*s); !refused.ok()) {
      s->End(std::move(refused), nullptr);
      return;
    }
    loop_->calls[s->id()] = s;
    std::optional<GiveUps::iterator> give_up;
    if (s->spec().give_up != absl::InfiniteFuture()) {
      give_up = loop_->give_ups.emplace(ToSteady(s->spec().give_up), s->id());
    }
    s->Attach(id_, give_up);
    waiting_.push_back(s);
  }

  // Ends call `stream` early (Cancel, its time ran out).
  void EndCall(Stream* stream, absl::Status status) {
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), stream), waiting_.end());
    stream->End(std::move(status), h2_);
  }

  // The socket is ready as `events` (epoll) says.
  void OnEvents(uint32_t events) {
    switch (phase_) {
      case Phase::kResolving:
        return;  // no socket yet
      case Phase::kConnecting: {
        int error = 0;
        socklen_t size = sizeof error;
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
        if (error != 0) return ConnectFailed(error);
        if ((events & (EPOLLERR | EPOLLHUP)) != 0) return ConnectFailed(ECONNRESET);
        return StartTls();
      }
      case Phase::kHandshaking:
        return Handshake();
      case Phase::kOpen:
        ReadTls();
        return;
    }
  }

  // The connect deadline passed (only while connecting()).
  void TimedOut() {
    const std::string what = phase_ == Phase::kResolving    ? "looking up the host of "
                             : phase_ == Phase::kConnecting ? "TCP connect to "
                                                            : "TLS handshake with ";
    End(absl::DeadlineExceededError(
        absl::StrCat(what, spec_.address, " timed out after ", absl::FormatDuration(spec_.connect_timeout))));
  }

  // Ends the connection with `status` unless it has ended: every call ends
  // with it, prefixed "connection lost: " when the connection was up and
  // `lost` (not for Close(), whose words are the caller's).
  void End(absl::Status status, bool lost = true) {
    if (ended_) return;
    ended_ = true;
    status_ = std::move(status);
    calls_lose_connection_ = lost && phase_ == Phase::kOpen;
  }

  // Brings the connection up to date after anything happened to it: starts
  // the calls that may start, sends what nghttp2 has queued, runs the
  // on_done of ended calls and frees them. Once the connection has ended,
  // it ends every call, frees the transport and runs on_closed; the loop
  // then drops it.
  void Settle() {
    if (!ended_ && phase_ == Phase::kOpen) {
      StartWaiting();
      Flush();
      if (!ended_ && nghttp2_session_want_read(h2_) == 0 && nghttp2_session_want_write(h2_) == 0) {
        End(absl::UnavailableError("the board closed the HTTP/2 session"));
      }
    }
    if (ended_) {
      waiting_.clear();
      const absl::Status calls_status = CallsEndStatus();
      for (auto& s : streams_) s->End(calls_status, nullptr);
      CloseTransport();
      for (auto& s : streams_) s->Detach();
    }
    for (auto& s : streams_) {
      if (!s->ended()) continue;
      loop_->calls.erase(s->id());
      s->Forget(loop_->give_ups);
      s->Deliver();
    }
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                  [](const std::unique_ptr<Stream>& s) { return s->disposable(); }),
                   streams_.end());
    UpdateUrgency();
    if (ended_ && !closed_delivered_) {
      closed_delivered_ = true;
      loop_->ended.emplace(id_, CallsEndStatus());
      loop_->ended_order.push_back(id_);
      if (loop_->ended_order.size() > kEndedKept) {
        loop_->ended.erase(loop_->ended_order.front());
        loop_->ended_order.pop_front();
      }
      if (on_closed_) on_closed_(status_);
    }
  }

  size_t live_calls() const {
    return static_cast<size_t>(
        std::count_if(streams_.begin(), streams_.end(), [](const auto& s) { return !s->ended(); }));
  }

  static const nghttp2_session_callbacks* Callbacks();

 private:
  enum class Phase { kResolving, kConnecting, kHandshaking, kOpen };

  absl::Status CallsEndStatus() const {
    if (!calls_lose_connection_) return status_;
    return absl::Status(status_.code(), absl::StrCat("connection lost: ", status_.message()));
  }

  // OK when `s` may run or wait; else why not (RESOURCE_EXHAUSTED).
  absl::Status Admit(const Stream& s) const {
    size_t running = 0;
    size_t waiting = 0;
    size_t streams = 0;
    for (const auto& other : streams_) {
      if (other.get() == &s || other->ended()) continue;
      if (other->kind() == CallKind::kCall) (other->started() ? running : waiting)++;
      if (other->kind() == CallKind::kStream) ++streams;
    }
    if (s.kind() == CallKind::kCall &&
        running + waiting >= spec_.max_calls_in_flight + spec_.max_queued_calls) {
      return absl::ResourceExhaustedError(
          absl::StrCat(running, " calls in flight and ", waiting,
                       " waiting on this board, the most fleetd allows (max_calls_in_flight ",
                       spec_.max_calls_in_flight, ", max_queued_calls ", spec_.max_queued_calls, ")"));
    }
    if (s.kind() == CallKind::kStream && streams >= spec_.max_open_streams) {
      return absl::ResourceExhaustedError(absl::StrCat(streams,
                                                       " output streams open on this board, the most fleetd "
                                                       "allows (max_open_streams ",
                                                       spec_.max_open_streams, ")"));
    }
    return absl::OkStatus();
  }

  // Starts the waiting calls the limits allow, in order.
  void StartWaiting() {
    size_t running = static_cast<size_t>(std::count_if(streams_.begin(), streams_.end(), [](const auto& s) {
      return s->kind() == CallKind::kCall && s->running();
    }));
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      Stream* s = *it;
      if (s->kind() == CallKind::kCall) {
        if (running >= spec_.max_calls_in_flight) {
          ++it;
          continue;
        }
        ++running;
      }
      it = waiting_.erase(it);
      if (!s->Start(h2_, spec_.address) && s->kind() == CallKind::kCall) --running;
    }
  }

  // Keeps the socket in the loop's urgent set while a call (not the link's
  // own health or info, not an output follow) waits for its answer, so the
  // loop reads that answer at once instead of at its next health batch.
  void UpdateUrgency() {
    const bool wanted = !ended_ && phase_ == Phase::kOpen && fd_ >= 0 &&
                        std::any_of(streams_.begin(), streams_.end(), [](const std::unique_ptr<Stream>& s) {
                          return s->kind() == CallKind::kCall && !s->ended();
                        });
    if (wanted == urgent_) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id_;
    // On failure the answer waits for the batch: slower, not lost.
    if (epoll_ctl(loop_->urgent_fd, wanted ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd_, &ev) == 0) urgent_ = wanted;
  }

  // Opens the socket and starts the TCP connect to endpoint_.socket.
  void Connect() {
    phase_ = Phase::kConnecting;
    const SocketAddress& peer = endpoint_.socket;
    fd_ = socket(peer.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return End(absl::UnavailableError(absl::StrCat("socket: ", ErrnoText(errno))));
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&peer.address), peer.size) == 0) return StartTls();
    if (errno != EINPROGRESS) return ConnectFailed(errno);
    Watch(EPOLLOUT);
  }

  // Frees the session, the TLS state and the socket (closing it also takes
  // it out of both epoll sets). Idempotent.
  void CloseTransport() {
    if (h2_ != nullptr) nghttp2_session_del(std::exchange(h2_, nullptr));
    if (ssl_ != nullptr) SSL_free(std::exchange(ssl_, nullptr));
    if (fd_ >= 0) close(std::exchange(fd_, -1));
    urgent_ = false;
  }

  void ConnectFailed(int error) {
    End(absl::UnavailableError(
        absl::StrCat("TCP connect to ", spec_.address, " failed: ", ErrnoText(error))));
  }

  // Sets the epoll interest of the socket (adds it the first time).
  void Watch(uint32_t events) {
    if (registered_ && events == events_) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id_;
    if (epoll_ctl(loop_->epoll_fd, registered_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd_, &ev) != 0) {
      return End(absl::InternalError(absl::StrCat("epoll_ctl: ", ErrnoText(errno))));
    }
    registered_ = true;
    events_ = events;
  }

  void StartTls() {
    phase_ = Phase::kHandshaking;
    ssl_ = SSL_new(loop_->tls);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
      return End(absl::InternalError(absl::StrCat("TLS: ", OpenSslErrors())));
    }
    SSL_set_connect_state(ssl_);
    // The board's certificate must name the address fleetd dialled, as
    // gRPC's own check does.
    X509_VERIFY_PARAM* verify = SSL_get0_param(ssl_);
    if (endpoint_.host_is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(verify, endpoint_.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(verify, endpoint_.host.c_str(), 0);
      SSL_set_tlsext_host_name(ssl_, endpoint_.host.c_str());
    }
    Handshake();
  }

  void Handshake() {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_);
    if (rc == 1) return StartSession();
    const int error = SSL_get_error(ssl_, rc);
    if (error == SSL_ERROR_WANT_READ) return Watch(EPOLLIN);
    if (error == SSL_ERROR_WANT_WRITE) return Watch(EPOLLOUT);
    const long verdict = SSL_get_verify_result(ssl_);
    if (verdict != X509_V_OK) {
      return End(
          absl::UnavailableError(absl::StrCat("TLS handshake failed: the board's certificate is refused: ",
                                              X509_verify_cert_error_string(verdict))));
    }
    if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      return End(absl::UnavailableError("TLS handshake failed: the board closed the connection"));
    }
    End(absl::UnavailableError(absl::StrCat("TLS handshake failed: ", OpenSslErrors())));
  }

  // TLS is up: starts the HTTP/2 session; Settle() starts the calls.
  void StartSession() {
    phase_ = Phase::kOpen;
    if (nghttp2_session_client_new(&h2_, Callbacks(), this) != 0) {
      return End(absl::InternalError("HTTP/2 session: out of memory"));
    }
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kWindowBytes}};
    nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0, kWindowBytes);
    Watch(EPOLLIN);
  }

  // Reads the TLS records that are there and hands them to nghttp2. With
  // read-ahead, one recv takes every record the socket holds; records left
  // in OpenSSL's buffer are read before returning, so the level-triggered
  // epoll only wakes the loop for bytes still in the socket.
  void ReadTls() {
    uint8_t buffer[kReadBytes];
    while (!ended_) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, buffer, sizeof buffer);
      if (n > 0) {
        const ssize_t used = nghttp2_session_mem_recv(h2_, buffer, static_cast<size_t>(n));
        if (used < 0) {
          return End(absl::InternalError(
              absl::StrCat("HTTP/2 from the board: ", nghttp2_strerror(static_cast<int>(used)))));
        }
        if (SSL_has_pending(ssl_) == 1) continue;
        return;
      }
      const int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_WANT_READ) return;
      if (error == SSL_ERROR_WANT_WRITE) return Watch(EPOLLIN | EPOLLOUT);
      if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        return End(absl::UnavailableError("the board closed the connection"));
      }
      return End(absl::UnavailableError(absl::StrCat("TLS: ", OpenSslErrors())));
    }
  }

  // Sends what nghttp2 has queued; waits for EPOLLOUT when the socket is full.
  void Flush() {
    while (!ended_) {
      if (unsent_.empty()) {
        const uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(h2_, &data);
        if (n < 0) {
          return End(absl::InternalError(absl::StrCat("HTTP/2: ", nghttp2_strerror(static_cast<int>(n)))));
        }
        if (n == 0) return Watch(EPOLLIN);
        unsent_.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      }
      ERR_clear_error();
      const int n = SSL_write(ssl_, unsent_.data(), static_cast<int>(unsent_.size()));
      if (n > 0) {
        unsent_.erase(0, static_cast<size_t>(n));
        continue;
      }
      const int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_WANT_WRITE) return Watch(EPOLLIN | EPOLLOUT);
      if (error == SSL_ERROR_WANT_READ) return Watch(EPOLLIN);
      return End(absl::UnavailableError("the board closed the connection"));
    }
  }

  static Stream* StreamOf(nghttp2_session* h2, int32_t stream_id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2, stream_id));
  }

  // ---- nghttp2 callbacks: user_data is the Connection. Each returns 0:
  // problems end the call (or the connection) through End(), never through
  // the session's error path, so their own message survives.
  static int OnHeader(nghttp2_session* h2, const nghttp2_frame* frame, const uint8_t* name, size_t name_size,
                      const uint8_t* value, size_t value_size, uint8_t /*flags*/, void* /*user_data*/) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (Stream* s = StreamOf(h2, frame->hd.stream_id)) {
      s->OnHeader(absl::string_view(reinterpret_cast<const char*>(name), name_size),
                  absl::string_view(reinterpret_cast<const char*>(value), value_size));
    }
    return 0;
  }

  static int OnFrame(nghttp2_session* h2, const nghttp2_frame* frame, void* /*user_data*/) {
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Stream* s = StreamOf(h2, frame->hd.stream_id);
    if (s == nullptr) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
      s->OnHeadersDone(h2);
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) s->OnBoardDone(h2);
    return 0;
  }

  static int OnData(nghttp2_session* h2, uint8_t /*flags*/, int32_t stream_id, const uint8_t* data,
                    size_t size, void* /*user_data*/) {
    if (Stream* s = StreamOf(h2, stream_id)) {
      s->OnData(absl::string_view(reinterpret_cast<const char*>(data), size), h2);
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session* h2, int32_t stream_id, uint32_t error_code, void* /*user_data*/) {
    if (Stream* s = StreamOf(h2, stream_id)) s->OnClosed(error_code);
    return 0;
  }

  const uint64_t id_;
  const ConnectionSpec spec_;
  const ClosedFn on_closed_;
  Loop* loop_ = nullptr;

  Endpoint endpoint_;
  Phase phase_ = Phase::kConnecting;
  Clock::time_point connect_deadline_;
  int fd_ = -1;
  bool registered_ = false;
  uint32_t events_ = 0;
  // The socket is in the loop's urgent set (UpdateUrgency).
  bool urgent_ = false;
  SSL* ssl_ = nullptr;
  nghttp2_session* h2_ = nullptr;
  // Bytes nghttp2 produced that SSL_write has not taken yet.
  std::string unsent_;
  // Every call not yet freed, in the order they came; waiting_ are those
  // not started yet, in order.
  std::vector<std::unique_ptr<Stream>> streams_;
  std::deque<Stream*> waiting_;
  bool ended_ = false;
  bool calls_lose_connection_ = false;
  bool closed_delivered_ = false;
  absl::Status status_;
};

const nghttp2_session_callbacks* BoardConnections::Connection::Callbacks() {
  static const nghttp2_session_callbacks* const callbacks = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_header_callback(c, &Connection::OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, &Connection::OnFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &Connection::OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, &Connection::OnStreamClose);
    return c;
  }();
  return callbacks;
}

struct BoardConnections::Command {
  enum class Kind { kConnect, kCall, kCancel, kClose, kResolved };
  Command(Kind k, uint64_t i) : kind(k), id(i) {}
  Kind kind;
  uint64_t id = 0;          // connection (kConnect, kClose, kResolved) or call
  uint64_t connection = 0;  // kCall
  std::unique_ptr<Connection> connect;
  std::unique_ptr<Stream> call;
  absl::Status why;
  std::optional<absl::StatusOr<SocketAddress>> resolved;
};

BoardConnections::BoardConnections(const LinkCredentials& credentials, ResolveFn resolve) {
  absl::StatusOr<std::shared_ptr<SSL_CTX>> tls = MakeTlsContext(credentials);
  if (tls.ok()) {
    tls_ = std::static_pointer_cast<void>(*std::move(tls));
  } else {
    setup_status_ = tls.status();
  }
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  urgent_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_fd_ < 0 || urgent_fd_ < 0 || wake_fd_ < 0 ||
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0 ||
      epoll_ctl(urgent_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    // Without them no connection can run; each ends at once with this.
    setup_status_ = absl::InternalError(absl::StrCat("board connections: epoll/eventfd: ", ErrnoText(errno)));
  }
  resolver_ = std::make_unique<NameResolver>(std::move(resolve),
                                             [this](uint64_t id, absl::StatusOr<SocketAddress> address) {
                                               Command c(Command::Kind::kResolved, id);
                                               c.resolved = std::move(address);
                                               Post(std::move(c));
                                             });
  thread_ = std::thread([this] { Run(); });
}

BoardConnections::~BoardConnections() {
  resolver_.reset();  // a lookup still under way answers no one
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
  if (urgent_fd_ >= 0) close(urgent_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint64_t BoardConnections::Connect(ConnectionSpec spec, ClosedFn on_closed) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
  }
  Command c(Command::Kind::kConnect, id);
  c.connect = std::make_unique<Connection>(id, std::move(spec), std::move(on_closed));
  Post(std::move(c));
  return id;
}

uint64_t BoardConnections::Call(uint64_t connection, CallSpec spec, MessageFn on_message, DoneFn on_done) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
  }
  Command c(Command::Kind::kCall, id);
  c.connection = connection;
  c.call = std::make_unique<Stream>(id, std::move(spec), std::move(on_message), std::move(on_done));
  Post(std::move(c));
  return id;
}

void BoardConnections::Cancel(uint64_t id) { Post(Command(Command::Kind::kCancel, id)); }

void BoardConnections::Close(uint64_t connection, absl::Status why) {
  Command c(Command::Kind::kClose, connection);
  c.why = std::move(why);
  Post(std::move(c));
}

size_t BoardConnections::connections() const {
  absl::MutexLock lock(&mu_);
  return open_connections_;
}

size_t BoardConnections::calls() const {
  absl::MutexLock lock(&mu_);
  return open_calls_;
}

void BoardConnections::Post(Command command) {
  {
    absl::MutexLock lock(&mu_);
    commands_.push_back(std::move(command));
  }
  Wake();
}

void BoardConnections::Wake() {
  const uint64_t one = 1;
  // A full counter still wakes the loop; nothing to do on failure.
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof one);
}

void BoardConnections::Run() {
  // OpenSSL writes with write(2): a board that closed its end would raise
  // SIGPIPE and end fleetd. Blocked on this thread, the write fails with
  // EPIPE instead and the connection ends as "closed the connection".
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  // Named so that top -H and bench/fleet_scale can tell its CPU apart.
  pthread_setname_np(pthread_self(), "board-links");

  Connection::Loop loop;
  loop.tls = static_cast<SSL_CTX*>(tls_.get());
  loop.epoll_fd = epoll_fd_;
  loop.urgent_fd = urgent_fd_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections;
  // Connections that may still be connecting: their deadlines bound epoll_wait.
  std::vector<Connection*> connecting;
  const auto settle = [&](uint64_t id) {
    auto it = connections.find(id);
    if (it == connections.end()) return;
    Connection* c = it->second.get();
    c->Settle();
    if (!c->ended()) return;
    connecting.erase(std::remove(connecting.begin(), connecting.end(), c), connecting.end());
    connections.erase(it);
  };
  // A live call and its connection; nulls when it has ended.
  const auto connection_of = [&](uint64_t call) -> std::pair<Connection*, Stream*> {
    auto it = loop.calls.find(call);
    if (it == loop.calls.end()) return {nullptr, nullptr};
    auto c = connections.find(it->second->connection());
    if (c == connections.end()) return {nullptr, nullptr};
    return {c->second.get(), it->second};
  };

  epoll_event events[kMaxEvents];
  bool stopping = false;
  Clock::time_point last_wake;
  bool busy = false;  // the last two wake-ups were less than kPace apart
  while (!stopping || !connections.empty()) {
    if (busy && !stopping) {
      // Health waits out the batch; a new call, or the answer to one, ends
      // the wait early (then the main wait below finds it ready).
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(last_wake + kPace - Clock::now()).count();
      if (left > 0 && urgent_fd_ >= 0) epoll_wait(urgent_fd_, events, kMaxEvents, static_cast<int>(left));
    }
    Clock::time_point wake_at = Clock::time_point::max();
    for (Connection* c : connecting) {
      if (c->connecting()) wake_at = std::min(wake_at, c->connect_deadline());
    }
    if (!loop.give_ups.empty()) wake_at = std::min(wake_at, loop.give_ups.begin()->first);
    int timeout_ms = -1;
    if (wake_at != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake_at - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
    }
    const int n = epoll_fd_ >= 0 ? epoll_wait(epoll_fd_, events, kMaxEvents, stopping ? 0 : timeout_ms) : 0;
    if (n > 0) {
      const Clock::time_point woke = Clock::now();
      busy = woke - last_wake < kPace;
      last_wake = woke;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kWakeTag) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = read(wake_fd_, &count, sizeof count);
        continue;
      }
      auto it = connections.find(id);
      if (it == connections.end()) continue;  // ended earlier in this batch
      it->second->OnEvents(events[i].events);
      settle(id);
    }

    std::vector<Command> commands;
    {
      absl::MutexLock lock(&mu_);
      commands.swap(commands_);
      stopping = stopping_;
    }
    for (Command& command : commands) {
      switch (command.kind) {
        case Command::Kind::kConnect: {
          Connection* c = command.connect.get();
          connections.emplace(command.id, std::move(command.connect));
          if (!setup_status_.ok()) {
            c->Refuse(&loop, setup_status_);
          } else {
            c->Begin(&loop);
            if (c->connecting()) connecting.push_back(c);
            if (c->resolving()) resolver_->Resolve(command.id, c->endpoint().host, c->endpoint().port);
          }
          settle(command.id);
          break;
        }
        case Command::Kind::kCall: {
          auto it = connections.find(command.connection);
          if (it == connections.end()) {
            // Already gone (or never opened): nothing to wait for.
            auto ended = loop.ended.find(command.connection);
            Stream* s = command.call.get();
            s->End(ended != loop.ended.end()
                       ? ended->second
                       : absl::UnavailableError("connection lost before the call started"),
                   nullptr);
            s->Deliver();
            break;
          }
          it->second->Add(std::move(command.call));
          settle(command.connection);
          break;
        }
        case Command::Kind::kCancel: {
          auto [c, s] = connection_of(command.id);
          if (c == nullptr) break;
          c->EndCall(s, absl::CancelledError("the call was cancelled"));
          settle(c->id());
          break;
        }
        case Command::Kind::kClose: {
          auto it = connections.find(command.id);
          if (it == connections.end()) break;
          it->second->End(std::move(command.why), /*lost=*/false);
          settle(command.id);
          break;
        }
        case Command::Kind::kResolved: {
          auto it = connections.find(command.id);
          if (it == connections.end()) break;
          it->second->Resolved(*std::move(command.resolved));
          settle(command.id);
          break;
        }
      }
    }

    const Clock::time_point now = Clock::now();
    std::vector<uint64_t> expired;
    for (Connection* c : connecting) {
      if (c->connecting() && c->connect_deadline() <= now) expired.push_back(c->id());
    }
    for (uint64_t id : expired) {
      connections[id]->TimedOut();
      settle(id);
    }
    connecting.erase(
        std::remove_if(connecting.begin(), connecting.end(), [](Connection* c) { return !c->connecting(); }),
        connecting.end());
    while (!loop.give_ups.empty() && loop.give_ups.begin()->first <= now) {
      const uint64_t call = loop.give_ups.begin()->second;
      auto [c, s] = connection_of(call);
      if (s != nullptr) {
        s->Forget(loop.give_ups);
      } else {
        loop.give_ups.erase(loop.give_ups.begin());
      }
      if (c == nullptr) continue;
      c->EndCall(s, absl::DeadlineExceededError(""));
      settle(c->id());
    }

    if (stopping) {
      std::vector<uint64_t> ids;
      for (const auto& [id, c] : connections) ids.push_back(id);
      for (uint64_t id : ids) {
        connections[id]->End(absl::CancelledError("board connections stopped"), /*lost=*/false);
        settle(id);
      }
    }
    size_t calls = 0;
    for (const auto& [id, c] : connections) calls += c->live_calls();
    absl::MutexLock lock(&mu_);
    open_connections_ = connections.size();
    open_calls_ = calls;
  }
}

}  // namespace threadfleet::fleetd
