/*
 * soundsock_tls.c — the server side of TLS for tls-server, on OpenSSL's libssl, called from
 * Deno over FFI (lib/tls/native/).
 *
 * Why: node:tls in Deno costs ~20 us and ~39 KiB per idle connection (bench/tls_write_cost.ts),
 * twice what icecast2 pays for the same radio fan-out; Deno.listenTls cannot close a socket
 * whose handshake has not finished (a slowloris hazard). Here Deno keeps the TCP socket
 * (Deno.listen / TcpConn: accept, reads, close), and this file only does the TLS work:
 *
 *   - ciphertext read by Deno is fed in (sst_feed) through a memory BIO; the handshake and
 *     decryption run in that call and the plaintext comes back in the caller's buffer;
 *   - ciphertext to send goes through our own write BIO straight to the socket with a
 *     non-blocking send(2) (MSG_DONTWAIT | MSG_NOSIGNAL). What the kernel does not take is
 *     kept in a per-connection queue that the caller drains (sst_take) and writes with Deno's
 *     own awaited TcpConn.write, so a slow peer gets ordinary backpressure; while it does, no
 *     byte is sent directly (order is kept);
 *   - SSL_MODE_RELEASE_BUFFERS frees OpenSSL's record buffers between writes, so an idle
 *     connection holds a few KiB;
 *   - on TLS 1.3 the records we send are sealed here (seal_record), not by SSL_write: OpenSSL's
 *     write path costs ~3 us per ~1 KB radio write, most of it bookkeeping around a 0.3 us
 *     AEAD. It is what kernel TLS does with the same keys (see "Our own TX record layer").
 *
 * Everything runs on the caller's (JavaScript) thread; nothing here blocks. The descriptor is
 * the caller's: it must call sst_conn_free before it closes the socket, after which this file
 * never touches the descriptor again.
 */

/* The SHA256_* functions below (sst_sha256_chain) are deprecated, not removed, in OpenSSL 3. */
#define OPENSSL_SUPPRESS_DEPRECATED
/* O_DIRECT (sst_open_direct). */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Flags returned through sst_feed's `flags` argument. */
#define SST_HANDSHAKE_DONE 1 /* the handshake completed in this call */
#define SST_PEER_CLOSED 2    /* the peer sent close_notify: no more plaintext will come */
#define SST_ERROR 4          /* a fatal TLS error (message: sst_conn_error) */
#define SST_MORE 8           /* more plaintext is ready: call again with no input */

typedef struct {
  SSL *ssl;
  BIO *rbio;
  int fd;
  /* 1 while the caller writes taken bytes through Deno: nothing may be sent directly. */
  int hold;
  int handshake_done;
  int fatal;
  /* The max_send_fragment set last (see sst_write). */
  int fragment;
  /* Ciphertext the kernel did not take yet: bytes [head, len) of buf. */
  unsigned char *buf;
  size_t head, len, cap;
  char error[200];
  /*
   * Our own TX record layer (TLS 1.3 only): once `own_tx` is set OpenSSL never sends another
   * byte (socket_write drops anything it tries, see there); `seq` is the next record's number.
   */
  int own_tx;
  int sent_close;
  const EVP_CIPHER *tx_cipher;
  unsigned char tx_key[32];
  unsigned char tx_iv[12];
  uint64_t tx_seq;
  /* The current server application traffic secret (first from the key log callback). */
  unsigned char tx_secret[48];
  int tx_secret_len;
  const EVP_MD *tx_md;
  /* The client sent a KeyUpdate asking for ours (seen by on_message). */
  int update_requested;
  /* OpenSSL is about to send its own answer to it (dropped by socket_write). */
  int openssl_key_update;
} sst_conn;

static BIO_METHOD *socket_method;

static void set_error(sst_conn *c, const char *what) {
  unsigned long e = ERR_get_error();
  if (e != 0) {
    char reason[160];
    ERR_error_string_n(e, reason, sizeof reason);
    snprintf(c->error, sizeof c->error, "%s: %s", what, reason);
  } else {
    snprintf(c->error, sizeof c->error, "%s", what);
  }
  ERR_clear_error();
  c->fatal = 1;
}

static int queue_append(sst_conn *c, const char *data, size_t n) {
  if (c->head > 0 && c->head == c->len) c->head = c->len = 0;
  if (c->len + n > c->cap) {
    /* Move the unsent bytes to the front before growing. */
    if (c->head > 0) {
      memmove(c->buf, c->buf + c->head, c->len - c->head);
      c->len -= c->head;
      c->head = 0;
    }
    if (c->len + n > c->cap) {
      size_t cap = c->cap ? c->cap : 4096;
      while (cap < c->len + n) cap *= 2;
      unsigned char *grown = realloc(c->buf, cap);
      if (!grown) return 0;
      c->buf = grown;
      c->cap = cap;
    }
  }
  memcpy(c->buf + c->len, data, n);
  c->len += n;
  return 1;
}

/*
 * Sends `n` bytes of ciphertext now, as far as the kernel takes them, and queues the rest for
 * the caller. 0 when the queue cannot grow (out of memory).
 */
static int conn_send(sst_conn *c, const unsigned char *data, size_t n) {
  size_t sent = 0;
  if (c->fd >= 0 && !c->hold && c->head == c->len) {
    while (sent < n) {
      ssize_t k = send(c->fd, data + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (k > 0) {
        sent += (size_t)k;
      } else if (k < 0 && errno == EINTR) {
        continue;
      } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        /* The peer is gone (EPIPE, ECONNRESET): drop the bytes; the reader sees the end. */
        return 1;
      }
    }
  }
  return sent == n || queue_append(c, (const char *)data + sent, n - sent);
}

static void set_message(sst_conn *c, const char *message) {
  snprintf(c->error, sizeof c->error, "%s", message);
  c->fatal = 1;
}

/* The write BIO: every byte is accepted (sent now, or queued for the caller). */
static int socket_write(BIO *b, const char *data, int n) {
  sst_conn *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (c->own_tx) {
    /*
     * OpenSSL's write state still has sequence number 0 for the key we now seal with: what it
     * sends would reuse a nonce. Never send it. Its answer to a KeyUpdate request (written
     * within SSL_read) is replaced by ours (own_key_update); anything else (an alert) ends the
     * connection (after our close_notify nothing more is expected, so no error then).
     */
    if (c->openssl_key_update) {
      c->openssl_key_update = 0;
    } else if (!c->sent_close && !c->fatal) {
      set_message(c, "TLS: OpenSSL tried to send after the record layer was handed over; closed");
    }
    return n;
  }
  return conn_send(c, (const unsigned char *)data, (size_t)n) ? n : -1;
}

static long socket_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int socket_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

/*
 * A memory BIO keeps its largest allocation (the client hello's few KiB) for good; once it is
 * empty it is replaced by a fresh one, so an idle listener holds no read buffer.
 */
static void release_read_bio(sst_conn *c) {
  BUF_MEM *mem = NULL;
  BIO_get_mem_ptr(c->rbio, &mem);
  if (!mem || mem->max == 0) return;
  BIO *fresh = BIO_new(BIO_s_mem());
  if (!fresh) return;
  BIO_set_mem_eof_return(fresh, -1);
  SSL_set0_rbio(c->ssl, fresh); /* frees the old one */
  c->rbio = fresh;
}

/*
 * Our own TX record layer (TLS 1.3, RFC 8446 §5.2-5.3, §7.3).
 *
 * After the handshake the server's records are sealed here with the server application
 * traffic key, the way kernel TLS does it: key and IV are derived from SERVER_TRAFFIC_SECRET_0
 * (which OpenSSL hands to the key log callback), each record is
 *   0x17 0x03 0x03 len16 | AEAD(key, iv XOR seq, aad = those 5 bytes, content || type)
 * and `seq` counts from 0 (this server sends no session tickets, so nothing was sent under the
 * key before). OpenSSL keeps reading and decrypting; it must never write again, which
 * socket_write enforces. A client's KeyUpdate that asks for ours (§4.6.3) is answered here
 * too (own_key_update): OpenSSL would only answer it in its next SSL_write. One cipher
 * context per AEAD, re-keyed per record, serves every connection (everything runs on one
 * thread), so a connection holds ~100 bytes of secret, key and IV.
 * TLS 1.2, and a TLS 1.3 suite other than the three below, keep SSL_write.
 */

/* The largest record payload (RFC 8446 §5.1); a sealed record's overhead (header, type, tag). */
#define RECORD_MAX 16384
#define RECORD_OVERHEAD (5 + 1 + 16)
/* Records per key: well under AES-GCM's 2^24.5 (RFC 8446 §5.5); ~19 days of radio writes. */
#define RECORD_LIMIT (1ULL << 24)

static int conn_index = -1;
static EVP_CIPHER_CTX *seal_ctx[3];
static unsigned char seal_buf[4 * (RECORD_MAX + RECORD_OVERHEAD)];

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Keeps SERVER_TRAFFIC_SECRET_0 ("LABEL <client random> <secret>", hex) for own_tx_start. */
static void keylog(const SSL *ssl, const char *line) {
  static const char label[] = "SERVER_TRAFFIC_SECRET_0 ";
  sst_conn *c = SSL_get_ex_data(ssl, conn_index);
  if (!c || strncmp(line, label, sizeof label - 1) != 0) return;
  const char *secret = strchr(line + sizeof label - 1, ' ');
  if (!secret) return;
  secret++;
  size_t hex = strlen(secret);
  if (hex % 2 != 0 || hex / 2 > sizeof c->tx_secret) return;
  for (size_t i = 0; i < hex / 2; i++) {
    int hi = hex_value(secret[2 * i]), lo = hex_value(secret[2 * i + 1]);
    if (hi < 0 || lo < 0) return;
    c->tx_secret[i] = (unsigned char)(hi << 4 | lo);
  }
  c->tx_secret_len = (int)(hex / 2);
}

/* HKDF-Expand-Label(secret, label, "", len) for len <= the hash's size (RFC 8446 §7.1). */
static int expand_label(const EVP_MD *md, const unsigned char *secret, int secret_len,
                        const char *label, unsigned char *out, size_t len) {
  unsigned char info[2 + 1 + 6 + 16 + 1 + 1];
  size_t label_len = strlen(label), at = 0;
  if (len > (size_t)EVP_MD_get_size(md) || label_len > 16) return 0;
  info[at++] = (unsigned char)(len >> 8);
  info[at++] = (unsigned char)len;
  info[at++] = (unsigned char)(6 + label_len);
  memcpy(info + at, "tls13 ", 6);
  at += 6;
  memcpy(info + at, label, label_len);
  at += label_len;
  info[at++] = 0; /* empty context */
  info[at++] = 1; /* HKDF-Expand's first block counter: T(1) is enough */
  unsigned char block[EVP_MAX_MD_SIZE];
  unsigned int block_len = 0;
  if (!HMAC(md, secret, secret_len, info, at, block, &block_len)) return 0;
  memcpy(out, block, len);
  OPENSSL_cleanse(block, sizeof block);
  return 1;
}

/*
 * Notes a received KeyUpdate with update_requested (RFC 8446 §4.6.3: type 24, request 1), and
 * OpenSSL's own KeyUpdate about to be written in answer.
 */
static void on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg) {
  (void)version;
  (void)arg;
  const unsigned char *m = buf;
  if (content_type != SSL3_RT_HANDSHAKE || len < 5 || m[0] != SSL3_MT_KEY_UPDATE) return;
  sst_conn *c = SSL_get_ex_data(ssl, conn_index);
  if (!c || !c->own_tx) return;
  if (write_p) {
    c->openssl_key_update = 1;
  } else if (m[4] == SSL_KEY_UPDATE_REQUESTED) {
    c->update_requested = 1;
  }
}

/* Key and IV for the current secret; the sequence starts again. */
static int own_tx_keys(sst_conn *c) {
  c->tx_seq = 0;
  return expand_label(c->tx_md, c->tx_secret, c->tx_secret_len, "key", c->tx_key,
                      (size_t)EVP_CIPHER_get_key_length(c->tx_cipher)) &&
         expand_label(c->tx_md, c->tx_secret, c->tx_secret_len, "iv", c->tx_iv, 12);
}

/* Takes over the TX records if the connection is TLS 1.3 with a suite we seal; else nothing. */
static void own_tx_start(sst_conn *c) {
  const SSL_CIPHER *suite = SSL_get_current_cipher(c->ssl);
  int slot = -1;
  const EVP_CIPHER *cipher = NULL;
  const EVP_MD *md = NULL;
  if (SSL_version(c->ssl) == TLS1_3_VERSION && suite && c->tx_secret_len > 0) {
    switch (SSL_CIPHER_get_protocol_id(suite)) {
    case 0x1301: /* TLS_AES_128_GCM_SHA256 */
      slot = 0, cipher = EVP_aes_128_gcm(), md = EVP_sha256();
      break;
    case 0x1302: /* TLS_AES_256_GCM_SHA384 */
      slot = 1, cipher = EVP_aes_256_gcm(), md = EVP_sha384();
      break;
    case 0x1303: /* TLS_CHACHA20_POLY1305_SHA256 */
      slot = 2, cipher = EVP_chacha20_poly1305(), md = EVP_sha256();
      break;
    }
  }
  if (slot >= 0 && c->tx_secret_len == EVP_MD_get_size(md) &&
      EVP_CIPHER_get_iv_length(cipher) == 12) {
    if (!seal_ctx[slot]) {
      EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
      if (ctx && EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL) == 1) {
        seal_ctx[slot] = ctx;
      } else {
        EVP_CIPHER_CTX_free(ctx);
      }
    }
    c->tx_cipher = cipher;
    c->tx_md = md;
    if (seal_ctx[slot] && own_tx_keys(c)) {
      c->own_tx = slot + 1;
      ERR_clear_error();
      return;
    }
  }
  OPENSSL_cleanse(c->tx_secret, sizeof c->tx_secret);
  c->tx_secret_len = 0;
  ERR_clear_error();
}

/*
 * Seals `n` <= RECORD_MAX bytes of content of `type` as one record at `out` (n +
 * RECORD_OVERHEAD bytes). 0 on failure (the connection is then fatal).
 */
static int seal_record(sst_conn *c, unsigned char type, const unsigned char *p, size_t n,
                       unsigned char *out) {
  if (c->tx_seq >= RECORD_LIMIT) {
    set_message(c, "this connection has sent as many TLS records as one key may seal; closed");
    return 0;
  }
  EVP_CIPHER_CTX *ctx = seal_ctx[c->own_tx - 1];
  size_t body = n + 1 + 16;
  out[0] = 0x17; /* application_data: the real type is inside */
  out[1] = 0x03;
  out[2] = 0x03;
  out[3] = (unsigned char)(body >> 8);
  out[4] = (unsigned char)body;
  unsigned char nonce[12];
  memcpy(nonce, c->tx_iv, 12);
  for (int i = 0; i < 8; i++) nonce[4 + i] ^= (unsigned char)(c->tx_seq >> (56 - 8 * i));
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, NULL, NULL, c->tx_key, nonce) != 1 ||
      EVP_EncryptUpdate(ctx, NULL, &len, out, 5) != 1 ||
      (n > 0 && EVP_EncryptUpdate(ctx, out + 5, &len, p, (int)n) != 1) ||
      EVP_EncryptUpdate(ctx, out + 5 + n, &len, &type, 1) != 1 ||
      EVP_EncryptFinal_ex(ctx, out + 5 + n + 1, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + n + 1) != 1) {
    set_error(c, "TLS record encryption failed");
    return 0;
  }
  c->tx_seq++;
  return 1;
}

/* sst_write on our own records: up to four records per send(2). */
static int own_write(sst_conn *c, unsigned char type, const uint8_t *p, int n) {
  int done = 0;
  do {
    size_t used = 0;
    while (used + RECORD_MAX + RECORD_OVERHEAD <= sizeof seal_buf && (done < n || used == 0)) {
      size_t chunk = (size_t)(n - done) > RECORD_MAX ? RECORD_MAX : (size_t)(n - done);
      if (!seal_record(c, type, p + done, chunk, seal_buf + used)) return -1;
      used += chunk + RECORD_OVERHEAD;
      done += (int)chunk;
    }
    if (!conn_send(c, seal_buf, used)) {
      set_message(c, "out of memory");
      return -1;
    }
  } while (done < n);
  return (int)(c->len - c->head);
}

/*
 * Answers a KeyUpdate request: our KeyUpdate(update_not_requested) under the current key, then
 * the next secret, HKDF-Expand-Label(secret, "traffic upd", "", Hash.length) (§7.2).
 */
static void own_key_update(sst_conn *c) {
  static const uint8_t key_update[5] = {SSL3_MT_KEY_UPDATE, 0, 0, 1, SSL_KEY_UPDATE_NOT_REQUESTED};
  if (own_write(c, 0x16, key_update, sizeof key_update) < 0) return;
  unsigned char next[48];
  if (!expand_label(c->tx_md, c->tx_secret, c->tx_secret_len, "traffic upd", next,
                    (size_t)c->tx_secret_len)) {
    set_error(c, "TLS key update failed");
    return;
  }
  memcpy(c->tx_secret, next, (size_t)c->tx_secret_len);
  OPENSSL_cleanse(next, sizeof next);
  if (!own_tx_keys(c)) set_error(c, "TLS key update failed");
}

/*
 * A server context from a PEM certificate chain and a PEM private key (NUL-terminated).
 * NULL on failure, with the reason in `err`.
 */
EXPORT void *sst_ctx_new(const char *cert_pem, const char *key_pem, char *err, int err_cap) {
  if (!socket_method) {
    socket_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "soundsock socket");
    if (!socket_method || !BIO_meth_set_write(socket_method, socket_write) ||
        !BIO_meth_set_ctrl(socket_method, socket_ctrl) ||
        !BIO_meth_set_create(socket_method, socket_create)) {
      snprintf(err, (size_t)err_cap, "cannot create the socket BIO");
      return NULL;
    }
  }
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  const char *failed = NULL;
  BIO *in = NULL;
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  if (!ctx) {
    failed = "cannot create a TLS context";
    goto fail;
  }
  /* TLS 1.0/1.1 are deprecated (RFC 8996). */
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Listeners do not resume sessions: no tickets, no cache (less work and memory). */
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  /* The server traffic secret for our own TX record layer (own_tx_start), nothing logged. */
  if (conn_index < 0) conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  SSL_CTX_set_keylog_callback(ctx, keylog);
  SSL_CTX_set_msg_callback(ctx, on_message);

  in = BIO_new_mem_buf(cert_pem, -1);
  cert = in ? PEM_read_bio_X509_AUX(in, NULL, NULL, NULL) : NULL;
  if (!cert || SSL_CTX_use_certificate(ctx, cert) != 1) {
    failed = "the certificate is not a PEM certificate";
    goto fail;
  }
  for (;;) {
    X509 *ca = PEM_read_bio_X509(in, NULL, NULL, NULL);
    if (!ca) break;
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      failed = "the certificate chain cannot be used";
      goto fail;
    }
  }
  ERR_clear_error(); /* the end of the PEM input */
  BIO_free(in);
  in = BIO_new_mem_buf(key_pem, -1);
  key = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
  if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    failed = "the key is not a PEM private key";
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    failed = "the key does not match the certificate";
    goto fail;
  }
  BIO_free(in);
  X509_free(cert);
  EVP_PKEY_free(key);
  return ctx;

fail: {
  unsigned long e = ERR_get_error();
  char reason[160] = "";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  snprintf(err, (size_t)err_cap, "%s%s%s", failed, e ? ": " : "", reason);
  ERR_clear_error();
  BIO_free(in);
  X509_free(cert);
  EVP_PKEY_free(key);
  SSL_CTX_free(ctx);
  return NULL;
}
}

EXPORT void sst_ctx_free(void *ctx) { SSL_CTX_free(ctx); }

/* A server connection over the connected socket `fd` (still owned by the caller). */
EXPORT sst_conn *sst_conn_new(void *ctx, int fd) {
  sst_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->ssl = SSL_new(ctx);
  c->rbio = BIO_new(BIO_s_mem());
  BIO *wbio = BIO_new(socket_method);
  if (!c->ssl || !c->rbio || !wbio) {
    SSL_free(c->ssl);
    BIO_free(c->rbio);
    BIO_free(wbio);
    free(c);
    return NULL;
  }
  /* An empty read BIO means "wait for more", not end of stream. */
  BIO_set_mem_eof_return(c->rbio, -1);
  BIO_set_data(wbio, c);
  SSL_set_bio(c->ssl, c->rbio, wbio);
  SSL_set_ex_data(c->ssl, conn_index, c);
  SSL_set_accept_state(c->ssl);
  return c;
}

/* Stops using the descriptor and frees the connection. */
EXPORT void sst_conn_free(sst_conn *c) {
  if (!c) return;
  c->fd = -1;
  SSL_free(c->ssl);
  free(c->buf);
  OPENSSL_cleanse(c, sizeof *c); /* the traffic key */
  free(c);
}

/*
 * Feeds `in_len` bytes of ciphertext (0: none), advances the handshake, and decrypts into
 * `out` (at most `out_cap` bytes). Returns the plaintext length, or -1 on a fatal error;
 * `flags` gets SST_* bits.
 */
EXPORT int sst_feed(sst_conn *c, const uint8_t *in, int in_len, uint8_t *out, int out_cap,
                    int32_t *flags) {
  *flags = 0;
  if (c->fatal) {
    *flags = SST_ERROR;
    return -1;
  }
  ERR_clear_error();
  if (in_len > 0 && BIO_write(c->rbio, in, in_len) != in_len) {
    set_error(c, "out of memory");
    *flags = SST_ERROR;
    return -1;
  }
  if (!c->handshake_done) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
      set_error(c, "TLS handshake failed");
      *flags = SST_ERROR;
      return -1;
    }
    c->handshake_done = 1;
    own_tx_start(c);
    *flags |= SST_HANDSHAKE_DONE;
  }
  int total = 0;
  while (total < out_cap) {
    int r = SSL_read(c->ssl, out + total, out_cap - total);
    if (r > 0) {
      total += r;
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      *flags |= SST_PEER_CLOSED;
      break;
    }
    set_error(c, "TLS error");
    *flags |= SST_ERROR;
    return total > 0 ? total : -1;
  }
  if (c->own_tx && c->update_requested && !c->sent_close && !c->fatal) {
    c->update_requested = 0;
    own_key_update(c);
  }
  if (c->fatal) { /* socket_write refused what OpenSSL wanted to send, or a key update failed */
    *flags |= SST_ERROR;
    return total > 0 ? total : -1;
  }
  if (total == out_cap && (SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(c->rbio) > 0)) {
    *flags |= SST_MORE;
  } else if (BIO_ctrl_pending(c->rbio) == 0) {
    release_read_bio(c);
  }
  return total;
}

/*
 * Encrypts all of `p` and sends what the kernel takes; returns the ciphertext bytes now
 * queued (the caller drains them with sst_take), or -1 on a fatal error.
 */
EXPORT int sst_write(sst_conn *c, const uint8_t *p, int n) {
  if (c->fatal || !c->handshake_done || c->sent_close) return -1;
  if (c->own_tx) return n > 0 ? own_write(c, 0x17, p, n) : (int)(c->len - c->head);
  /*
   * With SSL_MODE_RELEASE_BUFFERS every write allocates its record buffer and frees it after;
   * sized for this write (a radio frame is ~1 KiB) that is a small-bin malloc instead of
   * ~17 KiB (measured: ~4 % of tls-server's CPU at 1000 listeners). Large writes keep 16 KiB
   * records. (The error queue is cleared when an error is read, not before each write.)
   */
  int fragment = n <= 4096 ? 4096 : 16384;
  if (fragment != c->fragment) {
    SSL_set_max_send_fragment(c->ssl, (long)fragment);
    c->fragment = fragment;
  }
  int done = 0;
  while (done < n) {
    int r = SSL_write(c->ssl, p + done, n - done);
    if (r <= 0) {
      set_error(c, "TLS write failed");
      return -1;
    }
    done += r;
  }
  return (int)(c->len - c->head);
}

/* Queues TLS close_notify (sent like any write); returns the bytes queued. */
EXPORT int sst_shutdown(sst_conn *c) {
  if (c->own_tx) {
    if (!c->fatal && !c->sent_close) {
      static const uint8_t close_notify[2] = {1, 0}; /* warning, close_notify */
      own_write(c, 0x15, close_notify, 2);
      c->sent_close = 1;
      /* OpenSSL's side of the close, without it sending anything. */
      SSL_set_shutdown(c->ssl, SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
    }
  } else if (!c->fatal && c->handshake_done) {
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
  }
  return (int)(c->len - c->head);
}

/* Ciphertext queued and not yet taken. */
EXPORT int sst_queued(sst_conn *c) { return (int)(c->len - c->head); }

/*
 * Moves up to `cap` queued bytes into `out` for the caller to write. While it returns more
 * than 0 no byte is sent directly; it returns 0 (and direct sends resume) once the queue is
 * empty, i.e. when the caller has written everything it took.
 */
EXPORT int sst_take(sst_conn *c, uint8_t *out, int cap) {
  size_t n = c->len - c->head;
  if (n == 0) {
    c->hold = 0;
    c->head = c->len = 0;
    if (c->cap > 65536) { /* a download's burst is over: give the memory back */
      free(c->buf);
      c->buf = NULL;
      c->cap = 0;
    }
    return 0;
  }
  if (n > (size_t)cap) n = (size_t)cap;
  memcpy(out, c->buf + c->head, n);
  c->head += n;
  c->hold = 1;
  return (int)n;
}

/* 1 when this connection's records are sealed by our own TX record layer, else 0. */
EXPORT int sst_conn_own_records(sst_conn *c) { return c->own_tx != 0; }

/* The last fatal error, NUL-terminated. */
EXPORT const char *sst_conn_error(sst_conn *c) { return c->error; }

/* The negotiated protocol ("TLSv1.3"). */
EXPORT const char *sst_conn_protocol(sst_conn *c) { return SSL_get_version(c->ssl); }

/* OpenSSL's version text, for the log. */
EXPORT const char *sst_version(void) { return OpenSSL_version(OPENSSL_VERSION); }

/* Whether `fd` is a TCP socket from local port `local_port` to `peer_ip`:`peer_port`. */
static int socket_matches(int fd, int local_port, const char *peer_ip, int peer_port) {
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  char text[INET6_ADDRSTRLEN];
  if (getpeername(fd, (struct sockaddr *)&a, &len) != 0) return 0;
  if (a.ss_family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a;
    if (ntohs(v4->sin_port) != peer_port) return 0;
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
  } else if (a.ss_family == AF_INET6) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a;
    if (ntohs(v6->sin6_port) != peer_port) return 0;
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
  } else {
    return 0;
  }
  if (strcmp(text, peer_ip) != 0) return 0;
  len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) return 0;
  int port = a.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&a)->sin_port)
                                    : ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
  return port == local_port;
}

/*
 * The descriptor of the accepted TCP socket with these addresses (Deno does not expose it),
 * or -1. Linux hands out the lowest free descriptor, so the few after `hint` (the previous
 * answer) are tried first; then every open descriptor (/proc/self/fd).
 */
EXPORT int sst_find_socket(int local_port, const char *peer_ip, int peer_port, int hint) {
  for (int fd = hint > 2 ? hint - 8 : 3; fd < hint + 64; fd++) {
    if (fd > 2 && socket_matches(fd, local_port, peer_ip, peer_port)) return fd;
  }
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  int self = dirfd(dir);
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd > 2 && fd != self && socket_matches(fd, local_port, peer_ip, peer_port)) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

/*
 * sst_write for `n` connections and one buffer: a radio round in one call. `results[i]` is
 * what sst_write returned for `conns[i]`.
 */
EXPORT void sst_write_many(sst_conn *const *conns, int n, const uint8_t *p, int len,
                           int32_t *results) {
  for (int i = 0; i < n; i++) results[i] = sst_write(conns[i], p, len);
}

/*
 * A SHA-256 whose running state can be saved and restored, for file-send's chained chunk hashes
 * (docs/PROTOCOL.md §10.5): chunk i's hash is the SHA-256 of the file's first i+1 chunks, so one
 * pass over the bytes gives every chunk's hash and the whole file's, and a resume continues
 * from the state saved after the last verified chunk without reading the chunks before it.
 *
 * The state is 40 bytes, the caller's: h0..h7 (big-endian 32-bit words), then the number of
 * bytes hashed (big-endian 64-bit). OpenSSL's SHA256_CTX is filled from it and written back,
 * so nothing is kept here between calls (the calls may run on any thread). The low-level
 * SHA256_* functions are deprecated in OpenSSL 3 but are the only ones that expose the state;
 * they run the same SHA-NI/AVX code as the EVP interface.
 */


static uint32_t load_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/*
 * Hashes `len` more bytes into `state` and writes the digest of everything hashed so far to
 * `digest` (32 bytes). The state must be at a multiple of 64 bytes on entry (as it always is
 * between whole chunks). Returns 1 when the new state was written back (the new total is a
 * multiple of 64 bytes), 0 when it was not (a file's last, shorter chunk: nothing continues
 * from it), -1 when the state given is not at a block boundary.
 */
EXPORT int sst_sha256_chain(uint8_t *state, const uint8_t *data, size_t len, uint8_t *digest) {
  uint64_t bytes = 0;
  for (int i = 0; i < 8; i++) bytes = (bytes << 8) | state[32 + i];
  if (bytes % 64 != 0) return -1;
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  for (int i = 0; i < 8; i++) ctx.h[i] = load_be32(state + 4 * i);
  uint64_t bits = bytes * 8;
  ctx.Nl = (SHA_LONG)bits;
  ctx.Nh = (SHA_LONG)(bits >> 32);
  SHA256_Update(&ctx, data, len);
  SHA256_CTX copy = ctx;
  SHA256_Final(digest, &copy);
  bytes += len;
  if (bytes % 64 != 0) return 0;
  for (int i = 0; i < 8; i++) store_be32(state + 4 * i, ctx.h[i]);
  for (int i = 0; i < 8; i++) state[32 + i] = (uint8_t)(bytes >> (56 - 8 * i));
  return 1;
}

/*
 * Writes that bypass the page cache, for file-send's receiver (lib/transfer/direct_write.ts).
 * Copying a received file into the page cache costs the kernel more than hashing it: 1.8 CPU-s
 * per GiB of fresh pages on the VMs measured (`dd` without and with oflag=direct: 1.73 and
 * 0.16 s of system time), and a big transfer evicts what the user's other programs cached.
 * With O_DIRECT the device reads the caller's (4096-aligned) buffer itself. pwrite runs on a
 * worker thread (a nonblocking FFI symbol); it touches nothing shared.
 */

/*
 * Opens `path` for writing with O_DIRECT, never following a link, and reports the file's device
 * and inode in `ids` (two u64) so the caller can check it is the file it already has open.
 * Returns the descriptor, or -errno (EINVAL: the file system does not do O_DIRECT).
 */
EXPORT int sst_open_direct(const char *path, uint64_t *ids) {
#ifndef O_DIRECT
  /* macOS has F_NOCACHE instead, not the same contract: buffered writes there. */
  (void)path;
  (void)ids;
  return -EINVAL;
#else
  int fd = open(path, O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  ids[0] = (uint64_t)st.st_dev;
  ids[1] = (uint64_t)st.st_ino;
  return fd;
#endif
}

/* Writes all `len` bytes at `offset` (retrying short writes and EINTR); len or -errno. */
EXPORT int64_t sst_pwrite_all(int fd, const uint8_t *data, size_t len, int64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, (off_t)(offset + (int64_t)done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -EIO;
    done += (size_t)n;
  }
  return (int64_t)len;
}

/* Closes a descriptor from sst_open_direct. */
EXPORT int sst_close_fd(int fd) {
  return close(fd) == 0 ? 0 : -errno;
}
