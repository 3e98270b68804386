// TLS 1.2 server for the control channel on mbedTLS 2.28; see tls.h.
//
// One rpc_tls_config holds everything shared: the parsed certificates, the
// mbedtls_ssl_config and the random generator. mbedTLS is built with
// MBEDTLS_THREADING_C (checked below), so the ctr_drbg locks itself and a
// const ssl_config may serve handshakes on many threads at once. Each
// rpc_tls_conn owns one mbedtls_ssl_context and is used by one thread at a
// time (mbedTLS contexts are not safe for concurrent read and write).
//
// Time limits are per connection and per call, so they cannot live in the
// shared config (mbedtls_ssl_conf_read_timeout would race across threads):
// each connection keeps a deadline that its BIO callbacks, send and recv
// alike, turn into the lower transport's timeout_ms. So no call waits longer
// than it was given, even when mbedTLS writes while reading (alerts) or
// flushes a record the peer does not take.
#include "firmware/rpc/transport/tls.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbedtls/config.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/error.h"
#include "mbedtls/net_sockets.h"
#include "mbedtls/oid.h"
#include "mbedtls/pk.h"
#include "mbedtls/ssl.h"
#include "mbedtls/x509_crt.h"

#if !defined(MBEDTLS_THREADING_C) || !defined(MBEDTLS_SSL_ALPN) || !defined(MBEDTLS_SSL_PROTO_TLS1_2)
#error "the control channel needs mbedTLS with MBEDTLS_THREADING_C, MBEDTLS_SSL_ALPN and TLS 1.2"
#endif

#define RPC_TLS_CN_MAX 64  // ub-common-name (RFC 5280)
#define RPC_TLS_NO_DEADLINE INT64_MAX

struct rpc_tls_config {
  mbedtls_ssl_config ssl;
  mbedtls_x509_crt own_cert;  // the board's certificate (and any chain after it)
  mbedtls_pk_context own_key;
  mbedtls_x509_crt ca;  // clients must chain to this
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;  // seeded once; locks itself per call
};

struct rpc_tls_conn {
  mbedtls_ssl_context ssl;
  rpc_transport_t lower;   // not owned: the caller closes it
  int64_t deadline_ms;     // the current call's limit, both directions (monotonic ms)
  int lower_error;         // the RPC_IO_* error the lower transport last reported, or 0
  int dead;                // 0, or the RPC_IO_* every later call returns
  uint8_t first_bytes[4];  // what the peer sent first, to name non-TLS peers
  size_t first_len;
  size_t received;  // bytes the peer sent in all, for a handshake's timeout message
  char peer_cn[RPC_TLS_CN_MAX + 1];
  // Set only while rpc_tls_accept runs the handshake: asked between waits.
  rpc_tls_cancelled_fn cancelled;
  void *cancel_ctx;
};

// HTTP/2 over TLS 1.2 needs ephemeral key exchange and AEAD (RFC 7540
// 9.2.2); gRPC clients offer these.
static const int kCiphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
#if defined(MBEDTLS_CHACHAPOLY_C)
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
#if defined(MBEDTLS_CHACHAPOLY_C)
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
#endif
    0,
};
static const char *kAlpn[] = {"h2", NULL};

static atomic_int live_sessions;  // handshaken and not yet closed

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(int timeout_ms) {
  return timeout_ms < 0 ? RPC_TLS_NO_DEADLINE : now_ms() + timeout_ms;
}

// Writes "<step>: <mbedTLS text> (-0xNNNN)" to err; returns ret.
static int set_err(char *err, size_t err_len, const char *step, int ret) {
  char text[128];
  mbedtls_strerror(ret, text, sizeof text);
  snprintf(err, err_len, "%s: %s (-0x%04x)", step, text, (unsigned)-ret);
  return ret;
}

// ---- BIO callbacks: mbedTLS -> the lower rpc_transport_t.
// Both buffers belong to mbedTLS (its record buffers) and are only lent for
// the duration of the call; the lower transport copies what it keeps.

// The lower transport's timeout_ms for what is left until c->deadline_ms;
// while a handshake can be cancelled, at most RPC_TLS_CANCEL_POLL_MS, so that
// run_handshake gets to ask in time.
static int wait_left_ms(const rpc_tls_conn_t *c) {
  int most = c->cancelled != NULL ? RPC_TLS_CANCEL_POLL_MS : INT_MAX;
  if (c->deadline_ms == RPC_TLS_NO_DEADLINE) return c->cancelled != NULL ? most : -1;
  int64_t left = c->deadline_ms - now_ms();
  return left <= 0 ? 0 : (left > most ? most : (int)left);
}

// Waits for the lower transport until the connection's deadline. Returns
// bytes written (> 0), MBEDTLS_ERR_SSL_WANT_WRITE when it took nothing by the
// deadline (mbedTLS keeps the record and calls again), MBEDTLS_ERR_NET_CONN_RESET
// when the peer is gone, or MBEDTLS_ERR_NET_SEND_FAILED when the stream is
// broken (c->lower_error keeps which).
static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  rpc_tls_conn_t *c = ctx;
  int n = c->lower.send(c->lower.ctx, buf, len, wait_left_ms(c));
  if (n > 0) return n;
  if (n == RPC_IO_WOULD_BLOCK) return MBEDTLS_ERR_SSL_WANT_WRITE;
  c->lower_error = n;
  return n == RPC_IO_CLOSED ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_SEND_FAILED;
}

// Waits for the lower transport until the connection's deadline. Returns
// bytes read (> 0); 0 on EOF (mbedTLS: "closed without close_notify");
// MBEDTLS_ERR_SSL_WANT_READ when nothing came by the deadline (the caller
// decides whether that is a timeout; unlike MBEDTLS_ERR_SSL_TIMEOUT it keeps
// the context usable); MBEDTLS_ERR_NET_RECV_FAILED when the stream is broken
// (c->lower_error keeps how).
static int bio_recv(void *ctx, unsigned char *buf, size_t len) {
  rpc_tls_conn_t *c = ctx;
  int n = c->lower.recv(c->lower.ctx, buf, len, wait_left_ms(c));
  if (n > 0) {
    for (int i = 0; i < n && c->first_len < sizeof c->first_bytes; i++)
      c->first_bytes[c->first_len++] = buf[i];
    c->received += (size_t)n;
    return n;
  }
  if (n == RPC_IO_WOULD_BLOCK) return MBEDTLS_ERR_SSL_WANT_READ;
  if (n == RPC_IO_CLOSED) return 0;
  c->lower_error = n;
  return MBEDTLS_ERR_NET_RECV_FAILED;
}

// ---- Config.

static int load_failed(char *err, size_t err_len, const char *what, const char *path, int ret) {
  char step[320];
  snprintf(step, sizeof step, "%s %s", what, path);
  return set_err(err, err_len, step, ret);
}

static int load_files(rpc_tls_config_t *c, const char *cert_path, const char *key_path, const char *ca_path,
                      char *err, size_t err_len) {
  int ret = mbedtls_x509_crt_parse_file(&c->own_cert, cert_path);
  if (ret != 0) return load_failed(err, err_len, "certificate", cert_path, ret);
  ret = mbedtls_pk_parse_keyfile(&c->own_key, key_path, NULL);
  if (ret != 0) return load_failed(err, err_len, "private key", key_path, ret);
  ret = mbedtls_pk_check_pair(&c->own_cert.pk, &c->own_key);
  if (ret != 0) return load_failed(err, err_len, "private key does not match certificate", cert_path, ret);
  ret = mbedtls_x509_crt_parse_file(&c->ca, ca_path);
  if (ret != 0) return load_failed(err, err_len, "CA certificate", ca_path, ret);
  // Every client would refuse an expired board certificate with a message
  // about the board; say it here, where it can be fixed.
  if (mbedtls_x509_time_is_past(&c->own_cert.valid_to)) {
    const mbedtls_x509_time *t = &c->own_cert.valid_to;
    snprintf(err, err_len,
             "certificate %s expired on %04d-%02d-%02d; reissue it with deploy/pki issue DIR NAME --server "
             "--force",
             cert_path, t->year, t->mon, t->day);
    return -1;
  }
  return 0;
}

static int configure(rpc_tls_config_t *c, char *err, size_t err_len) {
  static const char kPersonalization[] = "threadfleet rpc tls";
  int ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                  (const unsigned char *)kPersonalization, sizeof kPersonalization - 1);
  if (ret != 0) return set_err(err, err_len, "seeding the random generator", ret);
  ret = mbedtls_ssl_config_defaults(&c->ssl, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0) return set_err(err, err_len, "ssl config defaults", ret);
  mbedtls_ssl_conf_min_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(&c->ssl, kCiphersuites);
  mbedtls_ssl_conf_rng(&c->ssl, mbedtls_ctr_drbg_random, &c->drbg);
  mbedtls_ssl_conf_authmode(&c->ssl, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&c->ssl, &c->ca, NULL);
  // A client offering ALPN without "h2" gets a no_application_protocol
  // alert; a client offering no ALPN at all is served (as HTTP/2).
  ret = mbedtls_ssl_conf_alpn_protocols(&c->ssl, kAlpn);
  if (ret != 0) return set_err(err, err_len, "ssl config ALPN", ret);
  ret = mbedtls_ssl_conf_own_cert(&c->ssl, &c->own_cert, &c->own_key);
  if (ret != 0) return set_err(err, err_len, "ssl config own certificate", ret);
  return 0;
}

rpc_tls_config_t *rpc_tls_config_new(const char *cert_pem_path, const char *key_pem_path,
                                     const char *ca_pem_path, char *err, size_t err_len) {
  rpc_tls_config_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_len, "out of memory for the TLS config");
    return NULL;
  }
  mbedtls_ssl_config_init(&c->ssl);
  mbedtls_x509_crt_init(&c->own_cert);
  mbedtls_pk_init(&c->own_key);
  mbedtls_x509_crt_init(&c->ca);
  mbedtls_entropy_init(&c->entropy);
  mbedtls_ctr_drbg_init(&c->drbg);
  if (load_files(c, cert_pem_path, key_pem_path, ca_pem_path, err, err_len) != 0 ||
      configure(c, err, err_len) != 0) {
    rpc_tls_config_free(c);
    return NULL;
  }
  return c;
}

void rpc_tls_config_free(rpc_tls_config_t *config) {
  if (config == NULL) return;
  mbedtls_ssl_config_free(&config->ssl);
  mbedtls_x509_crt_free(&config->own_cert);
  mbedtls_pk_free(&config->own_key);
  mbedtls_x509_crt_free(&config->ca);
  mbedtls_ctr_drbg_free(&config->drbg);
  mbedtls_entropy_free(&config->entropy);
  free(config);
}

// ---- Handshake.

// Copies the subject CN of the client certificate into c->peer_cn,
// non-printable bytes replaced by '?'. Returns 0, or -1 when there is none.
static int take_peer_cn(rpc_tls_conn_t *c) {
  const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
  for (const mbedtls_x509_name *n = crt ? &crt->subject : NULL; n != NULL; n = n->next) {
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0) continue;
    size_t len = n->val.len < RPC_TLS_CN_MAX ? n->val.len : RPC_TLS_CN_MAX;
    for (size_t i = 0; i < len; i++) {
      unsigned char ch = n->val.p[i];
      c->peer_cn[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    c->peer_cn[len] = '\0';
    return len > 0 ? 0 : -1;
  }
  return -1;
}

// Explains a failed handshake, the likely cause first (callers' buffers may
// be short): the certificate problem or the plaintext protocol the peer
// spoke when known, then mbedTLS's text.
static void handshake_failed(rpc_tls_conn_t *c, int ret, char *err, size_t err_len) {
  char text[128];
  mbedtls_strerror(ret, text, sizeof text);
  char why[128] = "failed";
  uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
  bool cert_rejected =
      ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE;
  if (cert_rejected && flags != 0 && flags != (uint32_t)-1) {
    char info[96];
    mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
    info[strcspn(info, "\n")] = '\0';  // the first reason is enough for one log line
    snprintf(why, sizeof why, "client certificate refused: %s", info);
  } else if (ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) {
    snprintf(why, sizeof why,
             "the client sent no certificate (issue one: deploy/pki issue DIR NAME --client)");
  } else if (c->first_len == 4 && memcmp(c->first_bytes, "PRI ", 4) == 0) {
    snprintf(why, sizeof why, "the peer sent a plaintext HTTP/2 preface; it must use TLS");
  } else if (c->first_len > 0 && c->first_bytes[0] != 0x16) {  // 0x16: TLS handshake record
    snprintf(why, sizeof why, "the peer does not speak TLS");
  } else if (ret == MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO) {
    snprintf(why, sizeof why, "client offered ALPN without h2, TLS < 1.2 or no common cipher suite");
  }
  snprintf(err, err_len, "TLS handshake: %s (%s, -0x%04x)", why, text, (unsigned)-ret);
}

// What a handshake that ran out of time was waiting for, from the state of
// mbedTLS 2.28 (public fields there): a client that never sent its hello is
// not a TLS client, or one that never got to run; one that had the server's
// reply and sent nothing more is slow (a gRPC client driven by its backup
// poller, see server.h) or stuck.
static const char *handshake_wait(const rpc_tls_conn_t *c) {
  if (c->ssl.out_left > 0) return "for the client to take the server's reply";
  if (c->ssl.state <= MBEDTLS_SSL_CLIENT_HELLO) return "for the ClientHello";
  if (c->ssl.state >= MBEDTLS_SSL_CLIENT_CERTIFICATE && c->ssl.state <= MBEDTLS_SSL_CLIENT_FINISHED)
    return "for the client's certificate and Finished, after the server's reply";
  return "to finish";
}

// Runs mbedtls_ssl_handshake until done (returns true), or failed, cancelled
// or past c->deadline_ms (false, with the reason in err).
static bool run_handshake(rpc_tls_conn_t *c, int timeout_ms, char *err, size_t err_len) {
  for (;;) {
    int ret = mbedtls_ssl_handshake(&c->ssl);
    if (ret == 0) return true;
    if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
      handshake_failed(c, ret, err, err_len);
      return false;
    }
    if (c->cancelled != NULL && c->cancelled(c->cancel_ctx)) {
      snprintf(err, err_len, "TLS handshake: cancelled");
      return false;
    }
    if (now_ms() >= c->deadline_ms) {
      snprintf(err, err_len, "TLS handshake: timed out after %d ms waiting %s (%zu bytes received)",
               timeout_ms, handshake_wait(c), c->received);
      return false;
    }
  }
}

rpc_tls_conn_t *rpc_tls_accept(rpc_tls_config_t *config, rpc_transport_t lower, int timeout_ms,
                               rpc_tls_cancelled_fn cancelled, void *cancel_ctx, char *err, size_t err_len) {
  rpc_tls_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, err_len, "out of memory for a TLS connection");
    return NULL;
  }
  c->lower = lower;
  c->deadline_ms = deadline_after(timeout_ms);
  c->cancelled = cancelled;
  c->cancel_ctx = cancel_ctx;
  mbedtls_ssl_init(&c->ssl);
  int ret = mbedtls_ssl_setup(&c->ssl, &config->ssl);
  if (ret != 0) {
    set_err(err, err_len, "TLS session setup", ret);
    goto fail;
  }
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  if (!run_handshake(c, timeout_ms, err, err_len)) goto fail;
  c->cancelled = NULL;  // the session's reads and sends wait as long as their callers say
  if (take_peer_cn(c) != 0) {
    snprintf(err, err_len, "TLS handshake: the client certificate has no subject CN");
    mbedtls_ssl_close_notify(&c->ssl);
    goto fail;
  }
  atomic_fetch_add(&live_sessions, 1);
  return c;

fail:
  mbedtls_ssl_free(&c->ssl);
  free(c);
  return NULL;
}

// ---- The decrypted stream.

// After any error other than "try again", mbedTLS requires the context to
// be left alone; every later call returns the same verdict.
static int stream_ended(rpc_tls_conn_t *c, int ret) {
  if (c->lower_error == RPC_IO_PEER_GONE) {
    c->dead = RPC_IO_PEER_GONE;
  } else if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF ||
             ret == MBEDTLS_ERR_NET_CONN_RESET) {
    c->dead = RPC_IO_CLOSED;
  } else {
    c->dead = RPC_IO_ERROR;
  }
  return c->dead;
}

// Returns bytes written, RPC_IO_WOULD_BLOCK when the lower transport took
// nothing within timeout_ms (call again with the same bytes: mbedTLS has
// already encrypted them), RPC_IO_CLOSED, RPC_IO_PEER_GONE or RPC_IO_ERROR.
static int tls_send(void *ctx, const uint8_t *data, size_t len, int timeout_ms) {
  rpc_tls_conn_t *c = ctx;
  if (c->dead) return c->dead;
  if (len == 0) return 0;  // mbedTLS would answer 0, which reads as EOF below
  c->deadline_ms = deadline_after(timeout_ms);
  int ret = mbedtls_ssl_write(&c->ssl, data, len);
  if (ret > 0) return ret;
  if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) return RPC_IO_WOULD_BLOCK;
  return stream_ended(c, ret);
}

// Returns bytes read, RPC_IO_WOULD_BLOCK when nothing arrived within
// timeout_ms, RPC_IO_CLOSED on close_notify (or EOF: HTTP/2 framing above
// notices a cut-off stream), RPC_IO_PEER_GONE, RPC_IO_ERROR otherwise.
static int tls_recv(void *ctx, uint8_t *buf, size_t cap, int timeout_ms) {
  rpc_tls_conn_t *c = ctx;
  if (c->dead) return c->dead;
  if (cap == 0) return 0;  // as in tls_send
  c->deadline_ms = deadline_after(timeout_ms);
  for (;;) {
    int ret = mbedtls_ssl_read(&c->ssl, buf, cap);
    if (ret > 0) return ret;
    if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) return stream_ended(c, ret);
    // A record may arrive in pieces; keep reading until the deadline.
    if (now_ms() >= c->deadline_ms) return RPC_IO_WOULD_BLOCK;
  }
}

rpc_transport_t rpc_tls_transport(rpc_tls_conn_t *conn) {
  rpc_transport_t t = {.ctx = conn, .send = tls_send, .recv = tls_recv};
  return t;
}

const char *rpc_tls_peer_cn(const rpc_tls_conn_t *conn) { return conn->peer_cn; }

void rpc_tls_close(rpc_tls_conn_t *conn) {
  if (conn == NULL) return;
  if (!conn->dead) {
    conn->deadline_ms = deadline_after(0);
    mbedtls_ssl_close_notify(&conn->ssl);  // best effort: the peer may be gone
  }
  mbedtls_ssl_free(&conn->ssl);
  free(conn);
  atomic_fetch_sub(&live_sessions, 1);
}

int rpc_tls_sessions(void) { return atomic_load(&live_sessions); }
