// bench_tls_connect_floor: the least a fleetctl command must do before it can
// send its first request, and nothing more: start, set up OpenSSL with the
// lab CA, TCP connect to fleetd's API, TLS handshake (ALPN h2, fleetd's
// certificate verified against the dialled address), exit. fleet_scale runs
// it beside `fleetctl kill` so the kill table shows which part of a CLI round
// trip is the process and its TLS, and which part is threadfleet.
//
// usage: bench_tls_connect_floor CA_PEM HOST:PORT      (IPv4 literal host)
// Exit 0 when the handshake succeeded, 1 with a message otherwise.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int Fail(const char* what) {
  std::fprintf(stderr, "bench_tls_connect_floor: %s", what);
  if (const unsigned long error = ERR_get_error(); error != 0) {
    char text[256];
    ERR_error_string_n(error, text, sizeof text);
    std::fprintf(stderr, ": %s", text);
  }
  std::fprintf(stderr, "\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return Fail("usage: bench_tls_connect_floor CA_PEM HOST:PORT");
  const std::string address = argv[2];
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return Fail("the address has no port");
  const std::string host = address.substr(0, colon);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  if (inet_pton(AF_INET, host.c_str(), &peer.sin_addr) != 1) return Fail("the host is not an IPv4 address");

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Fail("SSL_CTX_new");
  if (SSL_CTX_load_verify_locations(ctx, argv[1], nullptr) != 1) return Fail("cannot load the CA");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  static constexpr unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);

  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0) {
    return Fail("TCP connect failed");
  }
  SSL* ssl = SSL_new(ctx);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) return Fail("TLS handshake failed");
  // Like fleetctl: exit without tearing OpenSSL down.
  std::fflush(stdout);
  std::_Exit(0);
}
