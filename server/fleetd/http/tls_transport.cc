#include "server/fleetd/http/tls_transport.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"

namespace threadfleet::fleetd {

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::FromFiles(const std::string& cert_file,
                                                                  const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("HTTP TLS: cannot create an OpenSSL context");
  std::unique_ptr<TlsContext> out(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Write() hands over whatever fits, from a buffer that may move between
  // calls (the connection's output string grows as chunks arrive).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("http.tls_cert: cannot load a PEM certificate chain from ", cert_file));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("http.tls_key: cannot load a PEM private key from ", key_file));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("http.tls_key: ", key_file, " is not the key of the certificate in ", cert_file));
  }
  return out;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

SSL* TlsContext::NewSession(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

SocketTransport::~SocketTransport() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

SocketTransport::SocketTransport(SocketTransport&& other) noexcept
    : fd_(other.fd_), ssl_(std::exchange(other.ssl_, nullptr)) {}

SocketTransport& SocketTransport::operator=(SocketTransport&& other) noexcept {
  if (this == &other) return *this;
  if (ssl_ != nullptr) SSL_free(ssl_);
  fd_ = other.fd_;
  ssl_ = std::exchange(other.ssl_, nullptr);
  return *this;
}

IoResult SocketTransport::Result(int n) {
  if (n > 0) return {.status = IoStatus::kDone, .bytes = static_cast<size_t>(n)};
  const int error = SSL_get_error(ssl_, n);
  // The thread's OpenSSL error queue must not carry this connection's
  // failure into the next connection's calls.
  ERR_clear_error();
  if (error == SSL_ERROR_WANT_READ) return {.status = IoStatus::kWantRead};
  if (error == SSL_ERROR_WANT_WRITE) return {.status = IoStatus::kWantWrite};
  return {.status = IoStatus::kClosed};
}

IoStatus SocketTransport::Handshake() {
  if (ssl_ == nullptr || SSL_is_init_finished(ssl_)) return IoStatus::kDone;
  const int n = SSL_do_handshake(ssl_);
  if (n == 1) return IoStatus::kDone;
  return Result(n).status;
}

IoResult SocketTransport::Read(char* buffer, size_t size) {
  if (ssl_ == nullptr) {
    const ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n > 0) return {.status = IoStatus::kDone, .bytes = static_cast<size_t>(n)};
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return {.status = IoStatus::kWantRead};
    return {.status = IoStatus::kClosed};
  }
  return Result(SSL_read(ssl_, buffer, static_cast<int>(size)));
}

IoResult SocketTransport::Write(const char* bytes, size_t size) {
  if (ssl_ == nullptr) {
    const ssize_t n = ::send(fd_, bytes, size, MSG_NOSIGNAL);
    if (n > 0) return {.status = IoStatus::kDone, .bytes = static_cast<size_t>(n)};
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return {.status = IoStatus::kWantWrite};
    return {.status = IoStatus::kClosed};
  }
  // SSL_write takes an int; a bounded slice per call keeps one connection
  // from holding the loop.
  constexpr size_t kMaxWrite = size_t{1} << 20;
  return Result(SSL_write(ssl_, bytes, static_cast<int>(size < kMaxWrite ? size : kMaxWrite)));
}

}  // namespace threadfleet::fleetd
