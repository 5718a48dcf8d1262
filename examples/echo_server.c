/*
 * echo_server: a TCP echo server on 127.0.0.1 with one weft task per connection, and a
 * client that opens N connections and reports throughput and latency percentiles.
 * Each task reads and writes a non-blocking socket and parks in weft_fd_wait whenever
 * it would block: on the native platform that parks its thread in poll(), on an M:N
 * platform only the task. The same code runs unchanged on every platform.
 *
 *     ./echo_server serve [port]
 *         serve until SIGINT or SIGTERM (default port 7007; 0 picks one and prints it)
 *     ./echo_server client port [connections [requests [size]]]
 *         connections (default 100) each send `requests` (default 1000) messages of
 *         `size` bytes (default 64) one at a time, wait for each echo and check every
 *         byte; prints requests/s and round-trip percentiles
 *     ./echo_server selftest [connections [requests [size]]]
 *         both in one process, on a port the kernel picks; exits 0 only if every byte
 *         came back
 *
 * The platform is $WEFT_PLATFORM (native by default), e.g. WEFT_PLATFORM=pthread.
 * Everything stays on the loopback interface.
 */
#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft.h"

/* Every weft call returns a status; on failure weft_last_error() says what and why. */
#define CHECK(call)                                                                 \
  do {                                                                              \
    weft_status_t status_ = (call);                                                 \
    if (status_ != WEFT_OK) {                                                       \
      fprintf(stderr, "%s failed: %s\n  %s\n", #call, weft_strerror(status_),       \
              weft_last_error());                                                   \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)

/* Small stacks: a connection task needs little, and there may be thousands. */
#define TASK_STACK (128 * 1024)

static weft_runtime_t *rt;

/* --- the two IO helpers every task uses ------------------------------------------- */

/* Reads up to `len` bytes, waiting for the socket to be readable as often as needed.
 * Returns the bytes read, 0 at end of file, or -1 (errno set; ECANCELED if the task
 * was cancelled, ESHUTDOWN if the fd was forgotten). */
static ssize_t task_read(int fd, void *buf, size_t len) {
  for (;;) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0 || errno != EAGAIN) return n;
    /* The read said EAGAIN: the wait may sleep until new data comes (WEFT_IO_DRAINED; on
     * green it then costs no system call). */
    weft_status_t st = weft_fd_wait(rt, fd, WEFT_IO_READ | WEFT_IO_DRAINED, WEFT_FOREVER, NULL);
    if (st != WEFT_OK) {
      errno = st == WEFT_ECANCELED ? ECANCELED : st == WEFT_ECLOSED ? ESHUTDOWN : EIO;
      return -1;
    }
  }
}

/* Writes all `len` bytes, waiting for room as often as needed. 0 or -1 (errno set). */
static int task_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL); /* a vanished peer is an error, not SIGPIPE */
    if (n > 0) {
      p += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      weft_status_t st = weft_fd_wait(rt, fd, WEFT_IO_WRITE | WEFT_IO_DRAINED, WEFT_FOREVER, NULL);
      if (st != WEFT_OK) {
        errno = st == WEFT_ECANCELED ? ECANCELED : EIO;
        return -1;
      }
    } else {
      return -1;
    }
  }
  return 0;
}

/* The fd is the host's: tell weft before closing it, so no wait is left on it. */
static void task_close(int fd) {
  CHECK(weft_fd_forget(rt, fd));
  close(fd);
}

/* --- the server --------------------------------------------------------------------- */

static int32_t serve_connection(void *arg, void **result) {
  (void)result;
  int fd = (int)(intptr_t)arg;
  char buf[16384];
  ssize_t n;
  while ((n = task_read(fd, buf, sizeof buf)) > 0)
    if (task_write_all(fd, buf, (size_t)n) != 0) break;
  task_close(fd);
  return 0;
}

typedef struct {
  int listener;
  uint64_t accepted;
} server_t;

/* Accepts until cancelled; each connection gets a detached task of its own. */
static int32_t accept_loop(void *arg, void **result) {
  (void)result;
  server_t *s = arg;
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = WEFT_SPAWN_DETACHED;
  opts.stack_size = TASK_STACK;
  for (;;) {
    int fd = accept4(s->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR) {
        weft_status_t st = weft_fd_wait(rt, s->listener, WEFT_IO_READ, WEFT_FOREVER, NULL);
        if (st == WEFT_ECANCELED) return 0;
        CHECK(st);
        continue;
      }
      perror("accept4"); /* EMFILE: raise `ulimit -n` */
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    CHECK(weft_spawn(rt, serve_connection, (void *)(intptr_t)fd, &opts, NULL));
    s->accepted++;
  }
}

static int listen_loopback(uint16_t port, uint16_t *bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4096) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    close(fd);
    return -1;
  }
  *bound = ntohs(addr.sin_port);
  return fd;
}

/* --- the client --------------------------------------------------------------------- */

typedef struct {
  uint16_t port;
  uint32_t id, requests;
  size_t size;
  int64_t *rtt; /* one round-trip time per request, in ns */
  int failed;
} client_t;

static unsigned char pattern(uint32_t id, uint32_t request, size_t i) {
  return (unsigned char)(id * 131u + request * 31u + (uint32_t)i * 7u);
}

static int32_t run_client(void *arg, void **result) {
  (void)result;
  client_t *c = arg;
  c->failed = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(c->port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    socklen_t len = sizeof err;
    if (err != EINPROGRESS || weft_fd_wait(rt, fd, WEFT_IO_WRITE, WEFT_FOREVER, NULL) != WEFT_OK ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      fprintf(stderr, "client %" PRIu32 ": connect: %s\n", c->id, strerror(err));
      task_close(fd);
      return 1;
    }
  }
  unsigned char *out = malloc(c->size), *in = malloc(c->size);
  int32_t rc = out == NULL || in == NULL;
  for (uint32_t r = 0; r < c->requests && rc == 0; r++) {
    for (size_t i = 0; i < c->size; i++) out[i] = pattern(c->id, r, i);
    int64_t start = weft_now(rt);
    if (task_write_all(fd, out, c->size) != 0) rc = 2;
    for (size_t got = 0; rc == 0 && got < c->size;) {
      ssize_t n = task_read(fd, in + got, c->size - got);
      if (n <= 0) rc = 3;
      else got += (size_t)n;
    }
    c->rtt[r] = weft_now(rt) - start;
    if (rc == 0 && memcmp(in, out, c->size) != 0) rc = 4;
  }
  if (rc != 0) fprintf(stderr, "client %" PRIu32 ": failed (%d): %s\n", c->id, rc, strerror(errno));
  free(out);
  free(in);
  task_close(fd);
  c->failed = rc != 0;
  return rc;
}

static int compare_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Runs the client against 127.0.0.1:port; returns 0 if every byte came back. */
static int client(uint16_t port, uint32_t connections, uint32_t requests, size_t size) {
  client_t *clients = calloc(connections, sizeof *clients);
  weft_task_t **tasks = calloc(connections, sizeof *tasks);
  int64_t *rtt = calloc((size_t)connections * requests, sizeof *rtt);
  if (clients == NULL || tasks == NULL || rtt == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = TASK_STACK;
  int64_t start = weft_now(rt);
  for (uint32_t i = 0; i < connections; i++) {
    clients[i] = (client_t){port, i, requests, size, rtt + (size_t)i * requests, 1};
    CHECK(weft_spawn(rt, run_client, &clients[i], &opts, &tasks[i]));
  }
  int failed = 0;
  for (uint32_t i = 0; i < connections; i++) {
    CHECK(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
    failed += clients[i].failed;
  }
  double seconds = (double)(weft_now(rt) - start) / 1e9;
  size_t total = (size_t)connections * requests;
  qsort(rtt, total, sizeof *rtt, compare_i64);
#define PCT(p) ((double)rtt[(size_t)((double)(total - 1) * (p))] / 1e3)
  printf("echo: platform=%s connections=%" PRIu32 " requests=%zu size=%zu seconds=%.3f req_per_s=%.0f "
         "mib_per_s=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f\n",
         weft_runtime_platform(rt)->name, connections, total, size, seconds, (double)total / seconds,
         2.0 * (double)total * (double)size / seconds / (1024.0 * 1024.0), PCT(0.50), PCT(0.90), PCT(0.99), PCT(1.0));
#undef PCT
  printf("echo: %s (%d of %" PRIu32 " connections failed)\n", failed ? "FAILED" : "every byte checked: OK", failed,
         connections);
  free(clients);
  free(tasks);
  free(rtt);
  return failed != 0;
}

/* --- main --------------------------------------------------------------------------- */

/* Many connections need many descriptors: two per connection in a self-test (and, on
 * the thread platforms, one wake-up eventfd per waiting task). */
static void raise_fd_limit(void) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

static unsigned long arg(int argc, char **argv, int i, unsigned long dflt) {
  return argc > i ? strtoul(argv[i], NULL, 10) : dflt;
}

static int usage(void) {
  fprintf(stderr,
          "usage: echo_server serve [port]\n"
          "       echo_server client port [connections [requests [size]]]\n"
          "       echo_server selftest [connections [requests [size]]]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  raise_fd_limit();
  /* Signals arrive through a signalfd that the main thread waits on with weft_fd_wait;
   * blocked before any task starts, so that every task's thread inherits the mask. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  CHECK(weft_runtime_open(NULL, &rt));
  int rc = 0;
  if (strcmp(argv[1], "client") == 0 && argc >= 3) {
    rc = client((uint16_t)arg(argc, argv, 2, 0), (uint32_t)arg(argc, argv, 3, 100), (uint32_t)arg(argc, argv, 4, 1000),
                (size_t)arg(argc, argv, 5, 64));
  } else if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "selftest") == 0) {
    int selftest = argv[1][1] == 'e' && argv[1][2] == 'l';
    uint16_t port = 0;
    server_t server = {listen_loopback(selftest ? 0 : (uint16_t)arg(argc, argv, 2, 7007), &port), 0};
    if (server.listener < 0) {
      perror("listen on 127.0.0.1");
      return 1;
    }
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    opts.name = "accept";
    weft_task_t *acceptor;
    CHECK(weft_spawn(rt, accept_loop, &server, &opts, &acceptor));
    if (selftest) {
      rc = client(port, (uint32_t)arg(argc, argv, 2, 100), (uint32_t)arg(argc, argv, 3, 1000),
                  (size_t)arg(argc, argv, 4, 64));
    } else {
      printf("echo_server: %s platform, listening on 127.0.0.1:%u (SIGINT or SIGTERM stops it)\n",
             weft_runtime_platform(rt)->name, port);
      fflush(stdout);
      int sig = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
      if (sig < 0) {
        perror("signalfd");
        return 1;
      }
      CHECK(weft_fd_wait(rt, sig, WEFT_IO_READ, WEFT_FOREVER, NULL));
      CHECK(weft_fd_forget(rt, sig));
      close(sig);
    }
    /* Stop accepting: a cancellation is sticky, so the acceptor stops whether it waits
     * now or is about to. Then the listener can be forgotten and closed. */
    CHECK(weft_cancel(acceptor));
    int32_t code = 0;
    CHECK(weft_join(acceptor, WEFT_FOREVER, &code, NULL));
    CHECK(weft_fd_forget(rt, server.listener));
    close(server.listener);
    if (!selftest) printf("echo_server: accepted %" PRIu64 " connections\n", server.accepted);
    rc |= code;
  } else {
    return usage();
  }
  /* Connection tasks end when their clients hang up; the runtime closes after them. */
  weft_status_t st;
  int64_t give_up = weft_deadline_after(rt, 30 * 1000000000LL);
  while ((st = weft_runtime_close(rt)) == WEFT_EBUSY && weft_now(rt) < give_up)
    weft_sleep_until(rt, weft_deadline_after(rt, 1000000));
  CHECK(st);
  return rc;
}
