// The sidecar's native media send: SRTP protection and batched UDP send of one viewer's packets per scheduler tick.
// Written by hand because no npm package and no Node API does either: Node has no sendmmsg or UDP GSO (nodejs/node
// #4374, libuv #5116), and SRTP in JS costs 2.6-4 us per packet against ~1 us (AES-CM + HMAC-SHA1) or ~0.4 us
// (AES-GCM) here. Crypto goes through the OpenSSL that Node itself links (built against the headers the `node` npm
// package ships, no -lcrypto), so keys, ciphers and FIPS state are Node's. Single-threaded: called on the main
// thread only, which is what lets the send arrays below be static.
//
// The JS side (sidecar/src/native/native-srtp.ts) stages plain RTP packets in one arena and calls flush() once per
// viewer per tick; ROC bookkeeping mirrors werift's Context.updateRolloverCount (and the JS SrtpProtector) exactly,
// so the three produce byte-identical packets.
#define _GNU_SOURCE // sendmmsg
#define NAPI_VERSION 8
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

enum { PROFILE_AES_CM_80 = 1, PROFILE_AEAD_GCM_128 = 2 };

#define CM_TAG 10
#define GCM_TAG 16
#define MAX_ROC_DISORDER 100
#define MAX_SEQUENCE_NUMBER 65535

// One flush at most: the JS arena never stages more (checked there and here).
#define MAX_PACKETS 1024
// Linux refuses GSO sends of more segments (UDP_MAX_SEGMENTS) or more than a datagram's 64 KB.
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

typedef struct {
  uint32_t ssrc;
  uint32_t roc;
  uint16_t last_seq;
  uint8_t seen;
} roc_state;

typedef struct {
  int profile;
  EVP_CIPHER_CTX *cipher;
  // HMAC-SHA1 with the key's inner and outer pad blocks hashed once: a packet costs two SHA1 finishes.
  SHA_CTX inner;
  SHA_CTX outer;
  uint8_t salt[14];
  roc_state *ssrcs;
  int nssrc;
  int cap;
  // 1 until the kernel refuses a GSO send on this context's socket (EINVAL/EIO: no UDP_SEGMENT support).
  int gso;
} srtp_ctx;

// [syscalls, messages, packets, eagain, dropped (send errors), gso messages, gso disabled]
static double counters[7];

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static void ctx_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  srtp_ctx *c = data;
  EVP_CIPHER_CTX_free(c->cipher);
  free(c->ssrcs);
  free(c);
}

static int buffer_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
    napi_is_typedarray(env, v, &is);
    if (!is) return 0;
    napi_typedarray_type t;
    size_t n;
    void *d;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, v, &t, &n, &d, &ab, &off) != napi_ok || t != napi_uint8_array) return 0;
    *data = d;
    *len = n;
    return 1;
  }
  void *d;
  if (napi_get_buffer_info(env, v, &d, len) != napi_ok) return 0;
  *data = d;
  return 1;
}

static srtp_ctx *ctx_arg(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

// The call's arguments (exactly `want`, argv[0] the context): the context, or NULL with a TypeError thrown.
static srtp_ctx *ctx_call(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  srtp_ctx *c = argc == want ? ctx_arg(env, argv[0]) : NULL;
  if (!c) napi_throw_type_error(env, NULL, usage);
  return c;
}

static roc_state *state_of(srtp_ctx *c, uint32_t ssrc) {
  for (int i = 0; i < c->nssrc; i++)
    if (c->ssrcs[i].ssrc == ssrc) return &c->ssrcs[i];
  if (c->nssrc == c->cap) {
    int cap = c->cap ? c->cap * 2 : 4;
    roc_state *n = realloc(c->ssrcs, sizeof(roc_state) * cap);
    if (!n) return NULL;
    c->ssrcs = n;
    c->cap = cap;
  }
  roc_state *s = &c->ssrcs[c->nssrc++];
  s->ssrc = ssrc;
  s->roc = 0;
  s->last_seq = 0;
  s->seen = 0;
  return s;
}

// werift's Context.updateRolloverCount, quirks included (a first packet never moves the ROC).
static uint32_t advance_roc(roc_state *s, uint16_t seq) {
  if (!s->seen) {
    s->seen = 1;
  } else if (seq == 0) {
    if (s->last_seq > MAX_ROC_DISORDER) s->roc++;
  } else if (s->last_seq < MAX_ROC_DISORDER && seq > MAX_SEQUENCE_NUMBER - MAX_ROC_DISORDER) {
    if (s->roc > 0) s->roc--;
  } else if (seq < MAX_ROC_DISORDER && s->last_seq > MAX_SEQUENCE_NUMBER - MAX_ROC_DISORDER) {
    s->roc++;
  }
  s->last_seq = seq;
  return s->roc;
}

// Fixed header + CSRCs + extension (RFC 3550 5.1, 5.3.1); -1 for anything that is not a whole RTP v2 header.
static int rtp_header_length(const uint8_t *p, size_t len) {
  if (len < 12 || (p[0] >> 6) != 2) return -1;
  size_t n = 12 + (size_t)(p[0] & 0x0f) * 4;
  if (p[0] & 0x10) {
    if (n + 4 > len) return -1;
    n += 4 + (size_t)((p[n + 2] << 8) | p[n + 3]) * 4;
  }
  return n > len ? -1 : (int)n;
}

static int tag_length(const srtp_ctx *c) { return c->profile == PROFILE_AES_CM_80 ? CM_TAG : GCM_TAG; }

// Protects p[0..len) in place; p has room for the tag after it. Returns the protected length, or -1.
static int protect_one(srtp_ctx *c, uint8_t *p, int len) {
  int hl = rtp_header_length(p, (size_t)len);
  if (hl < 0) return -1;
  uint32_t ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
  uint16_t seq = (uint16_t)((p[2] << 8) | p[3]);
  roc_state *s = state_of(c, ssrc);
  if (!s) return -1;
  uint32_t roc = advance_roc(s, seq);
  int out = 0;
  if (c->profile == PROFILE_AES_CM_80) {
    // RFC 3711 4.1.1: IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16); OpenSSL's CTR increments the whole
    // block, which equals AES-CM's counter for the < 2^16 blocks of a packet.
    uint8_t iv[16];
    memcpy(iv, c->salt, 14);
    iv[14] = iv[15] = 0;
    iv[4] ^= ssrc >> 24, iv[5] ^= ssrc >> 16, iv[6] ^= ssrc >> 8, iv[7] ^= ssrc;
    iv[8] ^= roc >> 24, iv[9] ^= roc >> 16, iv[10] ^= roc >> 8, iv[11] ^= roc;
    iv[12] ^= seq >> 8, iv[13] ^= seq;
    if (len > hl) {
      if (EVP_EncryptInit_ex(c->cipher, NULL, NULL, NULL, iv) != 1) return -1;
      if (EVP_EncryptUpdate(c->cipher, p + hl, &out, p + hl, len - hl) != 1) return -1;
    }
    uint8_t r[4] = {roc >> 24, roc >> 16, roc >> 8, roc};
    uint8_t d[SHA_DIGEST_LENGTH];
    SHA_CTX h = c->inner;
    SHA1_Update(&h, p, (size_t)len);
    SHA1_Update(&h, r, 4);
    SHA1_Final(d, &h);
    h = c->outer;
    SHA1_Update(&h, d, SHA_DIGEST_LENGTH);
    SHA1_Final(d, &h);
    memcpy(p + len, d, CM_TAG);
    return len + CM_TAG;
  }
  // RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt; the header is the AAD.
  uint8_t iv[12] = {0, 0, ssrc >> 24, ssrc >> 16, ssrc >> 8, ssrc, roc >> 24, roc >> 16, roc >> 8, roc, seq >> 8, seq};
  for (int i = 0; i < 12; i++) iv[i] ^= c->salt[i];
  if (EVP_EncryptInit_ex(c->cipher, NULL, NULL, NULL, iv) != 1) return -1;
  if (EVP_EncryptUpdate(c->cipher, NULL, &out, p, hl) != 1) return -1;
  if (len > hl && EVP_EncryptUpdate(c->cipher, p + hl, &out, p + hl, len - hl) != 1) return -1;
  if (EVP_EncryptFinal_ex(c->cipher, p + len, &out) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(c->cipher, EVP_CTRL_GCM_GET_TAG, GCM_TAG, p + len) != 1) return -1;
  return len + GCM_TAG;
}

// createContext(profile, sessionKey[16], sessionSalt[14 | 12], authKey[20] | null) -> external
static napi_value create_context(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_error(env, "createContext(profile, sessionKey, sessionSalt, authKey)");
  int32_t profile;
  if (napi_get_value_int32(env, argv[0], &profile) != napi_ok || (profile != PROFILE_AES_CM_80 && profile != PROFILE_AEAD_GCM_128))
    return throw_error(env, "unknown SRTP profile");
  uint8_t *key, *salt, *auth = NULL;
  size_t key_len, salt_len, auth_len = 0;
  if (!buffer_arg(env, argv[1], &key, &key_len) || key_len != 16) return throw_error(env, "session key must be 16 bytes");
  if (!buffer_arg(env, argv[2], &salt, &salt_len) || salt_len < (profile == PROFILE_AES_CM_80 ? 14u : 12u))
    return throw_error(env, "session salt too short");
  if (profile == PROFILE_AES_CM_80 && (argc < 4 || !buffer_arg(env, argv[3], &auth, &auth_len) || auth_len != 20))
    return throw_error(env, "auth key must be 20 bytes");
  srtp_ctx *c = calloc(1, sizeof(srtp_ctx));
  if (!c) return throw_error(env, "out of memory");
  c->profile = profile;
  c->gso = 1;
  memcpy(c->salt, salt, profile == PROFILE_AES_CM_80 ? 14 : 12);
  c->cipher = EVP_CIPHER_CTX_new();
  int ok = c->cipher != NULL;
  if (ok && profile == PROFILE_AES_CM_80) {
    ok = EVP_EncryptInit_ex(c->cipher, EVP_aes_128_ctr(), NULL, key, NULL) == 1;
    uint8_t pad[64];
    memset(pad, 0x36, 64);
    for (int i = 0; i < 20; i++) pad[i] ^= auth[i];
    SHA1_Init(&c->inner);
    SHA1_Update(&c->inner, pad, 64);
    memset(pad, 0x5c, 64);
    for (int i = 0; i < 20; i++) pad[i] ^= auth[i];
    SHA1_Init(&c->outer);
    SHA1_Update(&c->outer, pad, 64);
  } else if (ok) {
    ok = EVP_EncryptInit_ex(c->cipher, EVP_aes_128_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c->cipher, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
         EVP_EncryptInit_ex(c->cipher, NULL, NULL, key, NULL) == 1;
  }
  if (!ok) {
    EVP_CIPHER_CTX_free(c->cipher);
    free(c);
    return throw_error(env, "OpenSSL refused the SRTP cipher");
  }
  napi_value ext;
  if (napi_create_external(env, c, ctx_finalize, NULL, &ext) != napi_ok) {
    ctx_finalize(env, c, NULL);
    return throw_error(env, "napi_create_external failed");
  }
  return ext;
}

// setRolloverState(ctx, ssrc, roc, lastSeq, seen)
static napi_value set_roc(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  srtp_ctx *c = ctx_call(env, info, 5, argv, "setRolloverState(ctx, ssrc, roc, lastSeq, seen)");
  if (!c) return NULL;
  uint32_t ssrc, roc, last;
  bool seen;
  napi_get_value_uint32(env, argv[1], &ssrc);
  napi_get_value_uint32(env, argv[2], &roc);
  napi_get_value_uint32(env, argv[3], &last);
  napi_get_value_bool(env, argv[4], &seen);
  roc_state *s = state_of(c, ssrc);
  if (!s) return throw_error(env, "out of memory");
  s->roc = roc;
  s->last_seq = (uint16_t)last;
  s->seen = seen ? 1 : 0;
  return NULL;
}

// rolloverCounter(ctx, ssrc) -> number | undefined
static napi_value get_roc(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  srtp_ctx *c = ctx_call(env, info, 2, argv, "rolloverCounter(ctx, ssrc)");
  if (!c) return NULL;
  uint32_t ssrc;
  napi_get_value_uint32(env, argv[1], &ssrc);
  for (int i = 0; i < c->nssrc; i++) {
    if (c->ssrcs[i].ssrc == ssrc) {
      napi_value v;
      napi_create_uint32(env, c->ssrcs[i].roc, &v);
      return v;
    }
  }
  return NULL;
}

// protect(ctx, buf, offset, length) -> protected length; in place, the tag written after the packet.
static napi_value protect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  srtp_ctx *c = argc == 4 ? ctx_arg(env, argv[0]) : NULL;
  uint8_t *buf;
  size_t buf_len;
  uint32_t off, len;
  if (!c || !buffer_arg(env, argv[1], &buf, &buf_len) || napi_get_value_uint32(env, argv[2], &off) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &len) != napi_ok)
    return throw_error(env, "protect(ctx, buffer, offset, length)");
  if ((size_t)off + len + (size_t)tag_length(c) > buf_len) return throw_error(env, "SRTP output buffer too small");
  int n = protect_one(c, buf + off, (int)len);
  if (n < 0) return throw_error(env, "not an RTP packet");
  napi_value v;
  napi_create_int32(env, n, &v);
  return v;
}

static struct iovec iovs[MAX_PACKETS];
static struct mmsghdr msgs[MAX_PACKETS];
// One UDP_SEGMENT control message per datagram that carries a GSO run.
static union {
  char buf[CMSG_SPACE(sizeof(uint16_t))];
  struct cmsghdr align;
} controls[MAX_PACKETS];
// msg_first[m]: the first packet of message m (msg_first[count] = packets).
static int msg_first[MAX_PACKETS + 1];

// Messages for packets[from..count): a run of equal-size packets (the last may be shorter) is one GSO datagram.
static int build_messages(srtp_ctx *c, uint8_t *arena, const uint32_t *offs, const uint16_t *lens, int from, int count) {
  int m = 0;
  int i = from;
  while (i < count) {
    int first = i;
    size_t size = lens[i];
    size_t total = size;
    iovs[i].iov_base = arena + offs[i];
    iovs[i].iov_len = size;
    i++;
    if (c->gso) {
      while (i < count && i - first < GSO_MAX_SEGMENTS && lens[i] <= size && total + lens[i] <= GSO_MAX_BYTES) {
        iovs[i].iov_base = arena + offs[i];
        iovs[i].iov_len = lens[i];
        total += lens[i];
        int shorter = lens[i] < size;
        i++;
        if (shorter) break; // only the last segment may be short
      }
    }
    struct msghdr *h = &msgs[m].msg_hdr;
    memset(h, 0, sizeof(*h));
    h->msg_iov = &iovs[first];
    h->msg_iovlen = (size_t)(i - first);
    if (i - first > 1) {
      h->msg_control = controls[m].buf;
      h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr *cm = CMSG_FIRSTHDR(h);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = (uint16_t)size;
      memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    }
    msg_first[m] = first;
    m++;
  }
  msg_first[m] = count;
  return m;
}

// Sends packets[from..count) on fd (connected). Returns the first packet not handed to the kernel: count when all
// went (or were dropped on a send error, as dgram drops them), less when the socket's buffer is full (EAGAIN).
static int send_packets(srtp_ctx *c, int fd, uint8_t *arena, const uint32_t *offs, const uint16_t *lens, int from, int count) {
  int m = build_messages(c, arena, offs, lens, from, count);
  int at = 0;
  while (at < m) {
    counters[0]++;
    int r = sendmmsg(fd, &msgs[at], (unsigned)(m - at), MSG_DONTWAIT);
    if (r > 0) {
      for (int k = at; k < at + r; k++) {
        if (msgs[k].msg_hdr.msg_iovlen > 1) counters[5]++;
      }
      at += r;
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      counters[3]++;
      break;
    }
    if ((e == EINVAL || e == EIO) && msgs[at].msg_hdr.msg_iovlen > 1 && c->gso) {
      // The kernel or the device does not take UDP_SEGMENT: this socket sends one datagram per packet from now on.
      c->gso = 0;
      counters[6]++;
      return send_packets(c, fd, arena, offs, lens, msg_first[at], count);
    }
    // ECONNREFUSED (a pending ICMP error), EMSGSIZE...: that datagram is dropped, NACK may recover it.
    counters[4] += msg_first[at + 1] - msg_first[at];
    at++;
  }
  counters[1] += at;
  counters[2] += msg_first[at] - from;
  return msg_first[at];
}

// flush(ctx, fd, arena, offs: Uint32Array, lens: Uint16Array, count) -> packets handed to the kernel (from the
// first). Protects packets[0..count) in place first (lens[i] becomes the protected length), so whatever is not sent
// is ready to be queued by the caller as it is.
static napi_value flush(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  srtp_ctx *c = argc == 6 ? ctx_arg(env, argv[0]) : NULL;
  int32_t fd, count;
  uint8_t *arena;
  size_t arena_len;
  napi_typedarray_type t;
  size_t n_offs, n_lens, off;
  void *offs_p, *lens_p;
  napi_value ab;
  if (!c || napi_get_value_int32(env, argv[1], &fd) != napi_ok || !buffer_arg(env, argv[2], &arena, &arena_len) ||
      napi_get_typedarray_info(env, argv[3], &t, &n_offs, &offs_p, &ab, &off) != napi_ok || t != napi_uint32_array ||
      napi_get_typedarray_info(env, argv[4], &t, &n_lens, &lens_p, &ab, &off) != napi_ok || t != napi_uint16_array ||
      napi_get_value_int32(env, argv[5], &count) != napi_ok)
    return throw_error(env, "flush(ctx, fd, arena, offsets, lengths, count)");
  const uint32_t *offs = offs_p;
  uint16_t *lens = lens_p;
  if (count < 0 || count > MAX_PACKETS || (size_t)count > n_offs || (size_t)count > n_lens) return throw_error(env, "bad packet count");
  int tag = tag_length(c);
  for (int i = 0; i < count; i++) {
    if ((size_t)offs[i] + lens[i] + (size_t)tag > arena_len) return throw_error(env, "packet outside the arena");
  }
  for (int i = 0; i < count; i++) {
    int n = protect_one(c, arena + offs[i], lens[i]);
    if (n < 0) return throw_error(env, "not an RTP packet");
    lens[i] = (uint16_t)n;
  }
  int sent = fd >= 0 ? send_packets(c, fd, arena, offs, lens, 0, count) : 0;
  napi_value v;
  napi_create_int32(env, sent, &v);
  return v;
}

// counters(Float64Array[7]): syscalls, datagrams, packets, EAGAINs, dropped, GSO datagrams, GSO turned off.
static napi_value read_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_typedarray_type t;
  size_t n, off;
  void *d;
  napi_value ab;
  if (argc != 1 || napi_get_typedarray_info(env, argv[0], &t, &n, &d, &ab, &off) != napi_ok || t != napi_float64_array || n < 7)
    return throw_error(env, "counters(Float64Array(7))");
  memcpy(d, counters, sizeof(counters));
  return NULL;
}

// usesGso(ctx) -> false once the kernel refused UDP_SEGMENT on this context's socket.
static napi_value uses_gso(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  srtp_ctx *c = ctx_call(env, info, 1, argv, "usesGso(ctx)");
  if (!c) return NULL;
  napi_value v;
  napi_get_boolean(env, c->gso != 0, &v);
  return v;
}

// disableGso(ctx): one datagram per packet (the bench compares; a socket whose device refuses it turns it off).
static napi_value disable_gso(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  srtp_ctx *c = ctx_call(env, info, 1, argv, "disableGso(ctx)");
  if (!c) return NULL;
  c->gso = 0;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"createContext", NULL, create_context, NULL, NULL, NULL, napi_default, NULL},
      {"setRolloverState", NULL, set_roc, NULL, NULL, NULL, napi_default, NULL},
      {"rolloverCounter", NULL, get_roc, NULL, NULL, NULL, napi_default, NULL},
      {"protect", NULL, protect, NULL, NULL, NULL, napi_default, NULL},
      {"flush", NULL, flush, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, read_counters, NULL, NULL, NULL, napi_default, NULL},
      {"usesGso", NULL, uses_gso, NULL, NULL, NULL, napi_default, NULL},
      {"disableGso", NULL, disable_gso, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value max;
  napi_create_int32(env, MAX_PACKETS, &max);
  napi_set_named_property(env, exports, "MAX_PACKETS", max);
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
