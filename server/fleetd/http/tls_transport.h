// The HTTP listener's TLS (OpenSSL): a server context loaded from PEM files
// and non-blocking reads and writes over a socket, with or without TLS, for
// the server's poll() loop. HTTPS only speaks TLS 1.2 and later.
//
// Example (http_server.cc):
//
//   absl::StatusOr<std::unique_ptr<TlsContext>> tls = TlsContext::FromFiles(cert, key);
//   SocketTransport t(fd, tls.ok() ? (*tls)->NewSession(fd) : nullptr);
//   switch (t.Handshake()) { case IoStatus::kWantRead: poll POLLIN ...}
//   IoResult r = t.Read(buffer, size);     // r.status kDone: r.bytes > 0
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_TLS_TRANSPORT_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_TLS_TRANSPORT_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace threadfleet::fleetd {

class TlsContext {
 public:
  // INVALID_ARGUMENT naming the file that cannot be read or used (not PEM,
  // key not matching the certificate).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TlsContext>> FromFiles(const std::string& cert_file,
                                                                             const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A server session on `fd` (owned by the caller); nullptr if OpenSSL
  // cannot make one.
  SSL* NewSession(int fd) const;

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

enum class IoStatus {
  kDone,       // progress: bytes moved, or the handshake finished
  kWantRead,   // try again when the socket is readable
  kWantWrite,  // try again when the socket is writable
  kClosed,     // the peer closed or the connection failed: close it
};

struct IoResult {
  IoStatus status;
  size_t bytes = 0;
};

// One connection's socket, plain or TLS. Owns the SSL session (not the fd).
class SocketTransport {
 public:
  // `ssl` nullptr: plain TCP.
  SocketTransport(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~SocketTransport();
  SocketTransport(SocketTransport&& other) noexcept;
  SocketTransport& operator=(SocketTransport&& other) noexcept;

  bool tls() const { return ssl_ != nullptr; }
  // Advances the TLS handshake; kDone at once for plain TCP.
  IoStatus Handshake();
  IoResult Read(char* buffer, size_t size);
  IoResult Write(const char* bytes, size_t size);

 private:
  IoResult Result(int n);
  int fd_;
  SSL* ssl_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_TLS_TRANSPORT_H_
