// The load tool's receiving end, in C because Node cannot be it: a bare Node UDP receiver costs 6.3 µs per packet
// here (75 % of a core at 800 viewers' 120k packets/s, before werift touches a packet), so the tool, not the server,
// set the limit. This reads the viewers' sockets with recvmmsg and counts RTP from the plain headers; ICE, DTLS and
// RTCP stay with werift in the Node process, which still owns the sockets.
//
// It takes each viewer's socket from the Node process with pidfd_getfd (Node stops reading it first), stamps every
// packet with the kernel's receive time (SO_TIMESTAMPNS: on loopback, the moment the server sent it, so this
// process's own delays never count as the server's lateness) and hands every datagram that is not RTP (STUN consent,
// DTLS, RTCP) back to Node on fd 3, to be fed to werift as if read there.
//
// stdin, one command a line:  add <id> <pid> <fd> <video payload types, comma separated>  |  del <id>  |  start  |  end
// (add again with the same id adds another socket of that viewer: werift has one per local address.)
// stdout: "ok" after add/del/start; after end, per viewer "v <id> <video> <audio> <videoExpected> <audioExpected>
//         <frames> <offset ms>..." and then "done <forwards dropped> <packets without a kernel stamp>". An error is a line "error <message>", and the sink goes on.
// fd 3:   frames [u32 id LE, the socket's index among the viewer's in the top byte][u32 IPv4 address, network order][u16 port BE][u16 length LE][datagram].
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define BATCH 64
#define DGRAM 2048

typedef struct {
  long count, first, ext, last;
} seq_counter;

#define MAX_FDS 8

typedef struct {
  int used, id, nfds;
  int fds[MAX_FDS];
  uint8_t video_pt[128];
  seq_counter video, audio;
  long ts_base_set;
  uint32_t ts_last;
  int64_t ts_ext;
  double *offsets;
  long frames, cap;
} viewer;

static viewer *viewers;
static int nviewers, capviewers;
static int counting;
static long forward_drops;
static long unstamped;

static void seq_reset(seq_counter *c) {
  c->count = 0;
  c->first = -1;
}

static void seq_add(seq_counter *c, int seq) {
  c->count++;
  if (c->first < 0) {
    c->first = c->ext = c->last = seq;
    return;
  }
  // Unwrap 16-bit sequence numbers; a late packet counts but never moves the front back.
  int delta = ((seq - (int)c->last + 0x8000) & 0xffff) - 0x8000;
  if (delta > 0) {
    c->ext += delta;
    c->last = seq;
  }
}

static long seq_expected(const seq_counter *c) { return c->first < 0 ? 0 : c->ext - c->first + 1; }

static void on_rtp(viewer *v, const uint8_t *d, double arrival_ms) {
  int b1 = d[1];
  int seq = (d[2] << 8) | d[3];
  if (!v->video_pt[b1 & 0x7f]) {
    seq_add(&v->audio, seq);
    return;
  }
  seq_add(&v->video, seq);
  if (!(b1 & 0x80)) return;
  uint32_t ts = ((uint32_t)d[4] << 24) | ((uint32_t)d[5] << 16) | ((uint32_t)d[6] << 8) | d[7];
  if (!v->ts_base_set) {
    v->ts_base_set = 1;
    v->ts_last = ts;
    v->ts_ext = 0;
  } else {
    v->ts_ext += (int32_t)(ts - v->ts_last);
    v->ts_last = ts;
  }
  if (v->frames == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 1024;
    v->offsets = realloc(v->offsets, v->cap * sizeof(double));
  }
  // Arrival minus media time (90 kHz); the smallest of a viewer's is its clock offset.
  v->offsets[v->frames++] = arrival_ms - (double)v->ts_ext / 90.0;
}

static void forward(int out, viewer *v, int fd, const uint8_t *d, int len, const struct sockaddr_in *from) {
  uint8_t frame[12 + DGRAM];
  // The viewer's id, with the index of the socket it came to (in add order) in the top byte.
  uint32_t id = (uint32_t)v->id & 0xffffff;
  for (int i = 0; i < v->nfds; i++)
    if (v->fds[i] == fd) id |= (uint32_t)i << 24;
  uint16_t l = (uint16_t)len;
  memcpy(frame, &id, 4);
  memcpy(frame + 4, &from->sin_addr.s_addr, 4);
  memcpy(frame + 8, &from->sin_port, 2);
  memcpy(frame + 10, &l, 2);
  memcpy(frame + 12, d, len);
  // Blocking, so a frame is never cut short on the stream socket Node gives as fd 3; a stall here delays reading but
  // not the kernel's receive stamps, and these are a few datagrams a second per viewer.
  if (write(out, frame, 12 + len) != 12 + len) forward_drops++;
}

static void drain(viewer *v, int fd, int out) {
  static struct mmsghdr msgs[BATCH];
  static struct iovec iovs[BATCH];
  static uint8_t bufs[BATCH][DGRAM];
  static struct sockaddr_in addrs[BATCH];
  static char ctrl[BATCH][64];
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      iovs[i].iov_base = bufs[i];
      iovs[i].iov_len = DGRAM;
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      msgs[i].msg_hdr.msg_control = ctrl[i];
      msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
      msgs[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    for (int i = 0; i < n; i++) {
      const uint8_t *d = bufs[i];
      int len = (int)msgs[i].msg_len;
      int b0 = d[0], pt = len > 1 ? d[1] & 0x7f : 0;
      // RTP (version 2) but not RTCP (payload types 64-95 once the marker bit is masked off).
      if (len >= 12 && b0 >= 128 && b0 < 192 && (pt < 64 || pt > 95)) {
        if (!counting) continue;
        double arrival = 0;
        struct msghdr *h = &msgs[i].msg_hdr;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            arrival = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
          }
        }
        if (arrival == 0) {
          unstamped++;
          struct timespec ts;
          clock_gettime(CLOCK_REALTIME, &ts);
          arrival = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
        }
        on_rtp(v, d, arrival);
      } else if (len > 0) {
        forward(out, v, fd, d, len, &addrs[i]);
      }
    }
    if (n < BATCH) return;
  }
}

static viewer *find(int id) {
  for (int i = 0; i < nviewers; i++)
    if (viewers[i].used && viewers[i].id == id) return &viewers[i];
  return NULL;
}

static void reset_window(viewer *v) {
  seq_reset(&v->video);
  seq_reset(&v->audio);
  v->frames = 0;
  v->ts_base_set = 0;
}

static void command(char *line, int epfd) {
  char verb[16];
  if (sscanf(line, "%15s", verb) != 1) return;
  if (!strcmp(verb, "add")) {
    int id, pid, fd;
    char pts[256] = "";
    if (sscanf(line, "add %d %d %d %255s", &id, &pid, &fd, pts) < 3) {
      printf("error bad add\n");
      return;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int own = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (pidfd >= 0) close(pidfd);
    if (own < 0) {
      printf("error pidfd_getfd %d/%d: %s\n", pid, fd, strerror(errno));
      return;
    }
    int on = 1;
    setsockopt(own, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    viewer *known = find(id);
    if (known) {
      if (known->nfds == MAX_FDS) {
        close(own);
        printf("error too many sockets for viewer %d\n", id);
        return;
      }
      known->fds[known->nfds++] = own;
      struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)own << 32) | (uint32_t)(known - viewers)};
      epoll_ctl(epfd, EPOLL_CTL_ADD, own, &ev);
      printf("ok\n");
      return;
    }
    if (nviewers == capviewers) {
      capviewers = capviewers ? capviewers * 2 : 256;
      viewers = realloc(viewers, capviewers * sizeof(viewer));
    }
    viewer *v = &viewers[nviewers];
    memset(v, 0, sizeof *v);
    v->used = 1;
    v->fds[v->nfds++] = own;
    v->id = id;
    for (char *p = strtok(pts, ","); p; p = strtok(NULL, ",")) v->video_pt[atoi(p) & 0x7f] = 1;
    reset_window(v);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)own << 32) | (uint32_t)nviewers};
    epoll_ctl(epfd, EPOLL_CTL_ADD, own, &ev);
    nviewers++;
    printf("ok\n");
  } else if (!strcmp(verb, "del")) {
    int id;
    viewer *v = sscanf(line, "del %d", &id) == 1 ? find(id) : NULL;
    if (v) {
      for (int i = 0; i < v->nfds; i++) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, v->fds[i], NULL);
        close(v->fds[i]);
      }
      v->nfds = 0;
      free(v->offsets);
      v->offsets = NULL;
      v->used = 0;
    }
    printf("ok\n");
  } else if (!strcmp(verb, "start")) {
    for (int i = 0; i < nviewers; i++) reset_window(&viewers[i]);
    counting = 1;
    printf("ok\n");
  } else if (!strcmp(verb, "end")) {
    counting = 0;
    for (int i = 0; i < nviewers; i++) {
      viewer *v = &viewers[i];
      if (!v->used) continue;
      printf("v %d %ld %ld %ld %ld %ld", v->id, v->video.count, v->audio.count, seq_expected(&v->video), seq_expected(&v->audio), v->frames);
      for (long f = 0; f < v->frames; f++) printf(" %.3f", v->offsets[f]);
      printf("\n");
    }
    printf("done %ld %ld\n", forward_drops, unstamped);
  } else {
    printf("error unknown command %s\n", verb);
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOFBF, 1 << 20);
  int out = 3;
  int epfd = epoll_create1(0);
  struct epoll_event in = {.events = EPOLLIN, .data.u64 = UINT32_MAX};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in);
  static char line[4096];
  size_t have = 0;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, 1000);
    for (int i = 0; i < n; i++) {
      uint32_t k = (uint32_t)evs[i].data.u64;
      if (k != UINT32_MAX) {
        if (k < (uint32_t)nviewers && viewers[k].used) drain(&viewers[k], (int)(evs[i].data.u64 >> 32), out);
        continue;
      }
      ssize_t r = read(0, line + have, sizeof line - 1 - have);
      if (r <= 0) return 0; // Node went away
      have += (size_t)r;
      char *start = line, *nl;
      while ((nl = memchr(start, '\n', have - (size_t)(start - line)))) {
        *nl = 0;
        command(start, epfd);
        start = nl + 1;
      }
      have -= (size_t)(start - line);
      memmove(line, start, have);
      fflush(stdout);
    }
  }
}
