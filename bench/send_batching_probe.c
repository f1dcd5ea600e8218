/*
 * send_batching_probe.c — would batching a radio round's sends in one io_uring_enter(2) save
 * CPU against one send(2) per listener? The measurement behind bench/RESULTS-tls-fanout.md's
 * "io_uring (batched sends)". Not part of the build or the tests; Linux ≥ 5.6, kernel headers
 * only (no liburing).
 *
 *   cc -O2 -o /tmp/send_probe bench/send_batching_probe.c
 *   ulimit -n 8192
 *   for m in send uring send uring; do /tmp/send_probe 1000 $m 200; done
 *
 * N loopback TCP connections (TCP_NODELAY, like tls-server's); a child process holds the other
 * ends and reads everything with epoll. Every 20 ms the parent sends 1050 bytes (a radio
 * frame's size at 80 kbit/s) to each connection, either with one non-blocking send(2) each or
 * with one IORING_OP_SEND (MSG_DONTWAIT) per connection submitted and reaped in one
 * io_uring_enter(2) per 1024 of them. It prints the parent's CPU (user + system) per send.
 *
 * Result (bench/RESULTS-tls-fanout.md, 2026-12-03): here io_uring saved ~0.8 us of ~6.6 per
 * send, but built into tls-server's radio round it saved nothing measurable, so the server
 * still uses send(2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FRAME 1050

static struct {
  int fd;
  unsigned entries;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
} ring;

static void ring_init(unsigned entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  ring.fd = (int)syscall(__NR_io_uring_setup, entries, &p);
  if (ring.fd < 0) {
    perror("io_uring_setup");
    exit(1);
  }
  ring.entries = p.sq_entries;
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  char *sq = mmap(0, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd,
                  IORING_OFF_SQ_RING);
  char *cq = mmap(0, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd,
                  IORING_OFF_CQ_RING);
  ring.sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || ring.sqes == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
  ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  ring.sq_array = (unsigned *)(sq + p.sq_off.array);
  ring.cq_head = (unsigned *)(cq + p.cq_off.head);
  ring.cq_tail = (unsigned *)(cq + p.cq_off.tail);
  ring.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  ring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

/* Sends `len` bytes of `buf` to each of `fds[0..n)` through the ring; returns the failures. */
static long ring_send_all(const int *fds, int n, const char *buf, int len) {
  long failures = 0;
  for (int base = 0; base < n; base += (int)ring.entries) {
    int m = n - base < (int)ring.entries ? n - base : (int)ring.entries;
    unsigned tail = *ring.sq_tail;
    for (int j = 0; j < m; j++) {
      unsigned idx = (tail + (unsigned)j) & *ring.sq_mask;
      struct io_uring_sqe *s = &ring.sqes[idx];
      memset(s, 0, sizeof *s);
      s->opcode = IORING_OP_SEND;
      s->fd = fds[base + j];
      s->addr = (unsigned long)buf;
      s->len = (unsigned)len;
      s->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
      s->user_data = (unsigned long)(base + j);
      ring.sq_array[idx] = idx;
    }
    atomic_store_explicit((_Atomic unsigned *)ring.sq_tail, tail + (unsigned)m,
                          memory_order_release);
    if (syscall(__NR_io_uring_enter, ring.fd, m, m, IORING_ENTER_GETEVENTS, NULL, 0) != m) {
      perror("io_uring_enter");
      exit(1);
    }
    unsigned head = *ring.cq_head;
    unsigned end = atomic_load_explicit((_Atomic unsigned *)ring.cq_tail, memory_order_acquire);
    for (; head != end; head++) {
      if (ring.cqes[head & *ring.cq_mask].res != len) failures++;
    }
    atomic_store_explicit((_Atomic unsigned *)ring.cq_head, head, memory_order_release);
  }
  return failures;
}

static double cpu_seconds(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec +
         r.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[2], "send") != 0 && strcmp(argv[2], "uring") != 0)) {
    fprintf(stderr, "usage: %s CONNECTIONS send|uring ROUNDS\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[1]), rounds = atoi(argv[3]);
  int use_ring = strcmp(argv[2], "uring") == 0;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t addr_len = sizeof addr;
  if (bind(listener, (void *)&addr, sizeof addr) != 0 || listen(listener, 4096) != 0 ||
      getsockname(listener, (void *)&addr, &addr_len) != 0) {
    perror("listen");
    return 1;
  }
  int *client = malloc((size_t)n * sizeof(int)), *server = malloc((size_t)n * sizeof(int));
  for (int i = 0; i < n; i++) {
    client[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (client[i] < 0 || connect(client[i], (void *)&addr, sizeof addr) != 0 ||
        (server[i] = accept(listener, 0, 0)) < 0) {
      perror("connect/accept (raise ulimit -n)");
      return 1;
    }
    int one = 1;
    setsockopt(server[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  long want = (long)n * rounds * FRAME;
  pid_t reader = fork();
  if (reader == 0) {
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
      struct epoll_event e = {.events = EPOLLIN, .data.fd = client[i]};
      epoll_ctl(ep, EPOLL_CTL_ADD, client[i], &e);
    }
    static char sink[65536];
    struct epoll_event ready[256];
    long got = 0;
    while (got < want) {
      int k = epoll_wait(ep, ready, 256, 5000);
      if (k <= 0) break;
      for (int j = 0; j < k; j++) {
        ssize_t r = read(ready[j].data.fd, sink, sizeof sink);
        if (r > 0) got += r;
      }
    }
    if (got != want) fprintf(stderr, "reader: %ld of %ld bytes\n", got, want);
    _exit(got == want ? 0 : 1);
  }
  for (int i = 0; i < n; i++) close(client[i]);
  static char frame[FRAME];
  memset(frame, 7, sizeof frame);
  if (use_ring) ring_init(1024);
  struct timespec interval = {0, 20 * 1000 * 1000};
  long failures = 0;
  double started = cpu_seconds();
  for (int r = 0; r < rounds; r++) {
    if (use_ring) {
      failures += ring_send_all(server, n, frame, FRAME);
    } else {
      for (int i = 0; i < n; i++) {
        if (send(server[i], frame, FRAME, MSG_DONTWAIT | MSG_NOSIGNAL) != FRAME) failures++;
      }
    }
    nanosleep(&interval, 0);
  }
  double used = cpu_seconds() - started;
  printf("%s: %d connections, %d rounds: %.3f us CPU per send, %ld short sends\n", argv[2], n,
         rounds, used * 1e6 / ((double)n * rounds), failures);
  for (int i = 0; i < n; i++) close(server[i]);
  int status = 0;
  waitpid(reader, &status, 0);
  return failures == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
