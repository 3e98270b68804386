#include "server/fleetd/links/health_streams.h"

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
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "server/common/host_port.h"
#include "server/fleetd/links/grpc_response.h"
#include "threadfleet/board/v1/board.grpc.pb.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using Clock = std::chrono::steady_clock;

// Health messages are a few KB; anything near this is not one.
constexpr size_t kMaxMessageBytes = 1 << 20;
// The stream and connection windows fleetd announces: the board may send
// this much before fleetd's WINDOW_UPDATE, which nghttp2 sends once half of
// it is consumed.
constexpr int32_t kWindowBytes = 1 << 20;
constexpr size_t kReadBytes = 16 * 1024;
// A snapshot of a board with 16 threads parses into ~6 KB of arena.
constexpr size_t kArenaBlockBytes = 8 * 1024;
constexpr int kMaxEvents = 256;
// When messages come closer than this, the loop waits out the rest of it
// before it looks again, so that one wake-up reads the messages of many
// boards (a wake-up costs more than reading a message, most of all on a
// virtual machine). Health is not hurried: it comes every period (≥ 100 ms)
// and a board is offline after seconds. Messages farther apart are read at
// once, so a small lab pays nothing for this.
constexpr auto kPace = std::chrono::milliseconds(20);
// epoll data of the wake-up eventfd; calls use their id (never 0).
constexpr uint64_t kWakeTag = 0;

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

// The client context of every health connection: fleetd's certificate and
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

google::protobuf::ArenaOptions MessageArena(char (&block)[kArenaBlockBytes]) {
  google::protobuf::ArenaOptions options;
  options.initial_block = block;
  options.initial_block_size = kArenaBlockBytes;
  return options;
}

nghttp2_nv Header(absl::string_view name, absl::string_view value) {
  // nghttp2 copies names and values: NO_COPY is not set.
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

// One WatchHealth call and its connection; lives on the stream thread only.
class HealthStreams::Call {
 public:
  Call(uint64_t id, std::string address, std::string request_body, absl::Duration connect_timeout,
       MessageFn on_message, DoneFn on_done)
      : id_(id),
        address_(std::move(address)),
        request_body_(std::move(request_body)),
        connect_timeout_(connect_timeout),
        on_message_(std::move(on_message)),
        on_done_(std::move(on_done)),
        response_(kMaxMessageBytes) {}

  ~Call() { Close(); }

  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  uint64_t id() const { return id_; }
  bool ended() const { return ended_; }
  bool connecting() const { return !ended_ && phase_ != Phase::kOpen; }
  // Its host is a name that Begin() left for the NameResolver.
  bool resolving() const { return !ended_ && phase_ == Phase::kResolving; }
  const Endpoint& endpoint() const { return endpoint_; }
  Clock::time_point deadline() const { return deadline_; }

  // Parses the address; an IP literal is connected to at once, a name waits
  // for Resolved().
  void Begin(SSL_CTX* tls, int epoll_fd) {
    tls_ = tls;
    epoll_fd_ = epoll_fd;
    deadline_ = Clock::now() + absl::ToChronoNanoseconds(connect_timeout_);
    if (absl::Status s = ParseAddress(address_, &endpoint_); !s.ok()) return End(std::move(s));
    if (endpoint_.host_is_ip) return Connect();
    phase_ = Phase::kResolving;
  }

  // The NameResolver's answer for this call's host.
  void Resolved(absl::StatusOr<SocketAddress> address) {
    if (!resolving()) return;  // it ended (timed out, cancelled) meanwhile
    if (!address.ok()) return End(address.status());
    endpoint_.socket = *address;
    Connect();
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
        if (!ended_) Flush();
        if (!ended_ && nghttp2_session_want_read(h2_) == 0 && nghttp2_session_want_write(h2_) == 0) {
          End(absl::UnavailableError("the board closed the HTTP/2 session"));
        }
        return;
    }
  }

  // The connect deadline passed (only while connecting()).
  void TimedOut() {
    const std::string what = phase_ == Phase::kResolving    ? "looking up the host of "
                             : phase_ == Phase::kConnecting ? "TCP connect to "
                                                            : "TLS handshake with ";
    End(absl::DeadlineExceededError(
        absl::StrCat(what, address_, " timed out after ", absl::FormatDuration(connect_timeout_))));
  }

  // Ends the call with `status` unless it has ended; the loop then calls Done().
  void End(absl::Status status) {
    if (ended_) return;
    ended_ = true;
    status_ = std::move(status);
  }

  // Closes the connection, then reports the end. Once, after End().
  void Done() {
    Close();
    if (on_done_) on_done_(status_);
  }

  static const nghttp2_session_callbacks* Callbacks();

 private:
  enum class Phase { kResolving, kConnecting, kHandshaking, kOpen };

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
  // it out of the epoll set). Idempotent.
  void Close() {
    if (h2_ != nullptr) nghttp2_session_del(std::exchange(h2_, nullptr));
    if (ssl_ != nullptr) SSL_free(std::exchange(ssl_, nullptr));
    if (fd_ >= 0) close(std::exchange(fd_, -1));
  }

  void ConnectFailed(int error) {
    End(absl::UnavailableError(absl::StrCat("TCP connect to ", address_, " failed: ", ErrnoText(error))));
  }

  // Sets the epoll interest of the socket (adds it the first time).
  void Watch(uint32_t events) {
    if (registered_ && events == events_) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id_;
    if (epoll_ctl(epoll_fd_, registered_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd_, &ev) != 0) {
      return End(absl::InternalError(absl::StrCat("epoll_ctl: ", ErrnoText(errno))));
    }
    registered_ = true;
    events_ = events;
  }

  void StartTls() {
    phase_ = Phase::kHandshaking;
    ssl_ = SSL_new(tls_);
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
    if (rc == 1) return StartCall();
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

  // TLS is up: starts the HTTP/2 session and sends the request.
  void StartCall() {
    phase_ = Phase::kOpen;
    if (nghttp2_session_client_new(&h2_, Callbacks(), this) != 0) {
      return End(absl::InternalError("HTTP/2 session: out of memory"));
    }
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kWindowBytes}};
    nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0, kWindowBytes);

    static const std::string kPath = absl::StrCat("/", pb::BoardControl::service_full_name(), "/WatchHealth");
    const nghttp2_nv headers[] = {Header(":method", "POST"),
                                  Header(":scheme", "https"),
                                  Header(":path", kPath),
                                  Header(":authority", address_),
                                  Header("content-type", "application/grpc"),
                                  Header("te", "trailers"),
                                  Header("user-agent", "threadfleet-fleetd")};
    nghttp2_data_provider body{};
    body.read_callback = &Call::ReadRequestBody;
    stream_id_ =
        nghttp2_submit_request(h2_, nullptr, headers, sizeof headers / sizeof headers[0], &body, this);
    if (stream_id_ < 0) {
      return End(absl::InternalError(absl::StrCat("HTTP/2 request: ", nghttp2_strerror(stream_id_))));
    }
    Flush();
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

  // One complete message of the response. It is parsed into the call's
  // arena, whose first block is the call's own: a snapshot's dozens of
  // small objects cost no malloc and free.
  absl::Status Deliver(absl::string_view bytes) {
    auto* message = google::protobuf::Arena::CreateMessage<pb::WatchHealthResponse>(&arena_);
    const bool parsed = message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    if (parsed && on_message_) on_message_(*message);
    arena_.Reset();
    if (!parsed) return absl::InternalError("the board sent a WatchHealthResponse that does not parse");
    return absl::OkStatus();
  }

  // ---- nghttp2 callbacks: user_data is the Call. Each returns 0 (problems
  // end the call through End(), never the session's error path, so the
  // call's own message survives).
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t name_size,
                      const uint8_t* value, size_t value_size, uint8_t /*flags*/, void* user_data) {
    auto* call = static_cast<Call*>(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != call->stream_id_) return 0;
    call->response_.OnHeader(absl::string_view(reinterpret_cast<const char*>(name), name_size),
                             absl::string_view(reinterpret_cast<const char*>(value), value_size));
    return 0;
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto* call = static_cast<Call*>(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != call->stream_id_) return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      if (absl::Status s = call->response_.OnHeadersDone(); !s.ok()) call->End(std::move(s));
    }
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t /*flags*/, int32_t stream_id, const uint8_t* data, size_t size,
                    void* user_data) {
    auto* call = static_cast<Call*>(user_data);
    if (stream_id != call->stream_id_ || call->ended_) return 0;
    absl::Status s = call->response_.OnData(absl::string_view(reinterpret_cast<const char*>(data), size),
                                            [call](absl::string_view m) { return call->Deliver(m); });
    if (!s.ok()) call->End(std::move(s));
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user_data) {
    auto* call = static_cast<Call*>(user_data);
    if (stream_id != call->stream_id_) return 0;
    if (error_code != NGHTTP2_NO_ERROR) {
      call->End(absl::UnavailableError(absl::StrCat("the board reset the health stream (HTTP/2 ",
                                                    nghttp2_http2_strerror(error_code), ")")));
    } else {
      call->End(call->response_.Finish());
    }
    return 0;
  }

  // The request body: the one framed WatchHealthRequest, then END_STREAM.
  static ssize_t ReadRequestBody(nghttp2_session*, int32_t, uint8_t* buffer, size_t size, uint32_t* flags,
                                 nghttp2_data_source*, void* user_data) {
    auto* call = static_cast<Call*>(user_data);
    const size_t n = std::min(size, call->request_body_.size() - call->request_sent_);
    std::memcpy(buffer, call->request_body_.data() + call->request_sent_, n);
    call->request_sent_ += n;
    if (call->request_sent_ == call->request_body_.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  const uint64_t id_;
  const std::string address_;
  const std::string request_body_;
  const absl::Duration connect_timeout_;
  const MessageFn on_message_;
  const DoneFn on_done_;

  SSL_CTX* tls_ = nullptr;
  int epoll_fd_ = -1;
  Endpoint endpoint_;
  Phase phase_ = Phase::kConnecting;
  Clock::time_point deadline_;
  int fd_ = -1;
  bool registered_ = false;
  uint32_t events_ = 0;
  SSL* ssl_ = nullptr;
  nghttp2_session* h2_ = nullptr;
  int32_t stream_id_ = -1;
  size_t request_sent_ = 0;
  // Bytes nghttp2 produced that SSL_write has not taken yet.
  std::string unsent_;
  GrpcResponseReader response_;
  alignas(8) char arena_block_[kArenaBlockBytes];
  google::protobuf::Arena arena_{MessageArena(arena_block_)};
  bool ended_ = false;
  absl::Status status_;
};

const nghttp2_session_callbacks* HealthStreams::Call::Callbacks() {
  static const nghttp2_session_callbacks* const callbacks = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_header_callback(c, &Call::OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, &Call::OnFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &Call::OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, &Call::OnStreamClose);
    return c;
  }();
  return callbacks;
}

HealthStreams::HealthStreams(const LinkCredentials& credentials, ResolveFn resolve) {
  absl::StatusOr<std::shared_ptr<SSL_CTX>> tls = MakeTlsContext(credentials);
  if (tls.ok()) {
    tls_ = std::static_pointer_cast<void>(*std::move(tls));
  } else {
    setup_status_ = tls.status();
  }
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_fd_ < 0 || wake_fd_ < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    // Without them no call can run; each ends at once with this.
    setup_status_ = absl::InternalError(absl::StrCat("health streams: epoll/eventfd: ", ErrnoText(errno)));
  }
  resolver_ = std::make_unique<NameResolver>(
      std::move(resolve), [this](uint64_t id, absl::StatusOr<SocketAddress> address) {
        {
          absl::MutexLock lock(&mu_);
          commands_.push_back(Command{id, nullptr, std::move(address)});
        }
        Wake();
      });
  thread_ = std::thread([this] { Run(); });
}

HealthStreams::~HealthStreams() {
  resolver_.reset();  // a lookup still under way answers no one
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint64_t HealthStreams::Watch(const std::string& address, const pb::WatchHealthRequest& request,
                              absl::Duration connect_timeout, MessageFn on_message, DoneFn on_done) {
  std::string body = FrameGrpcMessage(request.SerializeAsString());
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    commands_.push_back(Command{id,
                                std::make_unique<Call>(id, address, std::move(body), connect_timeout,
                                                       std::move(on_message), std::move(on_done)),
                                std::nullopt});
  }
  Wake();
  return id;
}

void HealthStreams::Cancel(uint64_t id) {
  {
    absl::MutexLock lock(&mu_);
    commands_.push_back(Command{id, nullptr, std::nullopt});
  }
  Wake();
}

void HealthStreams::Wake() {
  const uint64_t one = 1;
  // A full counter still wakes the loop; nothing to do on failure.
  [[maybe_unused]] const ssize_t n = write(wake_fd_, &one, sizeof one);
}

void HealthStreams::Run() {
  // OpenSSL writes with write(2): a board that closed its end would raise
  // SIGPIPE and end fleetd. Blocked on this thread, the write fails with
  // EPIPE instead and the call ends as "closed the connection".
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  // Named so that top -H and bench/fleet_scale can tell its CPU apart.
  pthread_setname_np(pthread_self(), "health-streams");

  absl::flat_hash_map<uint64_t, std::unique_ptr<Call>> calls;
  // Calls that may still be connecting: their deadlines bound epoll_wait.
  std::vector<Call*> connecting;
  SSL_CTX* const tls = static_cast<SSL_CTX*>(tls_.get());
  const auto finish = [&](uint64_t id) {
    auto it = calls.find(id);
    if (it == calls.end() || !it->second->ended()) return;
    std::unique_ptr<Call> call = std::move(it->second);
    calls.erase(it);
    connecting.erase(std::remove(connecting.begin(), connecting.end(), call.get()), connecting.end());
    call->Done();
  };

  epoll_event events[kMaxEvents];
  bool stopping = false;
  Clock::time_point last_wake;
  bool busy = false;  // the last two wake-ups were less than kPace apart
  while (!stopping || !calls.empty()) {
    if (busy && !stopping) std::this_thread::sleep_until(last_wake + kPace);
    int timeout_ms = -1;
    const Clock::time_point now = Clock::now();
    for (Call* call : connecting) {
      if (!call->connecting()) continue;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(call->deadline() - now).count();
      const int ms = static_cast<int>(std::max<int64_t>(0, left));
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
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
      auto it = calls.find(id);
      if (it == calls.end()) continue;  // ended earlier in this batch
      it->second->OnEvents(events[i].events);
      finish(id);
    }

    std::vector<Command> commands;
    {
      absl::MutexLock lock(&mu_);
      commands.swap(commands_);
      stopping = stopping_;
    }
    for (Command& command : commands) {
      if (command.start != nullptr) {
        Call* call = command.start.get();
        calls.emplace(command.id, std::move(command.start));
        if (!setup_status_.ok()) {
          call->End(setup_status_);
        } else {
          call->Begin(tls, epoll_fd_);
          if (call->connecting()) connecting.push_back(call);
          if (call->resolving()) resolver_->Resolve(command.id, call->endpoint().host, call->endpoint().port);
        }
      } else if (command.resolved.has_value()) {
        if (auto it = calls.find(command.id); it != calls.end())
          it->second->Resolved(*std::move(command.resolved));
      } else if (auto it = calls.find(command.id); it != calls.end()) {
        it->second->End(absl::CancelledError("health stream cancelled"));
      }
      finish(command.id);
    }

    const Clock::time_point after = Clock::now();
    std::vector<uint64_t> expired;
    for (Call* call : connecting) {
      if (call->connecting() && call->deadline() <= after) expired.push_back(call->id());
    }
    for (uint64_t id : expired) {
      calls[id]->TimedOut();
      finish(id);
    }
    connecting.erase(
        std::remove_if(connecting.begin(), connecting.end(), [](Call* c) { return !c->connecting(); }),
        connecting.end());

    if (stopping) {
      std::vector<uint64_t> ids;
      for (const auto& [id, call] : calls) ids.push_back(id);
      for (uint64_t id : ids) {
        calls[id]->End(absl::CancelledError("health streams stopped"));
        finish(id);
      }
    }
  }
}

}  // namespace threadfleet::fleetd
