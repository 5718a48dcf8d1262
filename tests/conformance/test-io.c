/* IO readiness waits: weft_fd_wait and weft_fd_forget on pipes and loopback sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* A deadline for waits that must end on their own in a correct platform. */
#define IO_PATIENCE(rt) test_after_ms(rt, TEST_PATIENCE_MS)

static void make_pipe(int fds[2]) { ASSERT(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0); }

static void write_byte(int fd, char c) { ASSERT_EQ(write(fd, &c, 1), 1); }

static char read_byte(int fd) {
  char c = 0;
  ASSERT_EQ(read(fd, &c, 1), 1);
  return c;
}

/* Fills a non-blocking pipe or socket until a write would block; returns the bytes
 * written. */
static size_t fill(int fd) {
  static char junk[65536];
  size_t total = 0;
  for (;;) {
    ssize_t n = write(fd, junk, sizeof junk);
    if (n < 0) {
      ASSERT(errno == EAGAIN || errno == EWOULDBLOCK);
      return total;
    }
    total += (size_t)n;
  }
}

/* Reads everything a non-blocking fd has now. */
static void drain(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

/* What one waiting task is told to do and what it got. */
typedef struct {
  weft_runtime_t *rt;
  int fd;
  uint32_t events;
  int64_t deadline;
  weft_status_t status;
  uint32_t revents;
  atomic_int *returned; /* counted when the wait returned, if not NULL */
} io_wait_t;

static int32_t wait_task(void *arg, void **result) {
  (void)result;
  io_wait_t *w = arg;
  w->revents = 0;
  w->status = weft_fd_wait(w->rt, w->fd, w->events, w->deadline, &w->revents);
  if (w->returned != NULL) atomic_fetch_add(w->returned, 1);
  return 0;
}

static weft_task_t *spawn_counted(io_wait_t *w, weft_runtime_t *rt, int fd, uint32_t events, int64_t deadline,
                                  atomic_int *returned) {
  w->returned = returned;
  w->rt = rt;
  w->fd = fd;
  w->events = events;
  w->deadline = deadline;
  w->status = -1;
  w->revents = 0;
  return test_spawn(rt, wait_task, w);
}

static weft_task_t *spawn_wait(io_wait_t *w, weft_runtime_t *rt, int fd, uint32_t events, int64_t deadline) {
  return spawn_counted(w, rt, fd, events, deadline, NULL);
}


/* --- readiness ---------------------------------------------------------------------- */

/* A readable fd returns at once, as often as it is asked (level-triggered); a waiting
 * task wakes when a byte arrives. */
TEST_IMPL(io_read_ready) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  write_byte(p[1], 'x');
  for (int i = 0; i < 3; i++) {
    uint32_t revents = 0;
    ASSERT_OK(weft_fd_wait(rt, p[0], WEFT_IO_READ, WEFT_FOREVER, &revents));
    ASSERT_EQ(revents, WEFT_IO_READ);
  }
  ASSERT_EQ(read_byte(p[0]), 'x');

  io_wait_t w;
  weft_task_t *t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, WEFT_FOREVER);
  test_wait_blocked(rt, t);
  write_byte(p[1], 'y');
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(w.status);
  ASSERT_EQ(w.revents, WEFT_IO_READ);
  ASSERT_EQ(read_byte(p[0]), 'y');

  /* Asking for both reports only what is ready; revents may be NULL. */
  uint32_t revents = 0;
  ASSERT_OK(weft_fd_wait(rt, p[1], WEFT_IO_READ | WEFT_IO_WRITE, WEFT_FOREVER, &revents));
  ASSERT_EQ(revents, WEFT_IO_WRITE);
  ASSERT_OK(weft_fd_wait(rt, p[1], WEFT_IO_WRITE, WEFT_FOREVER, NULL));
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A full pipe is not writable; a task waiting to write wakes when a reader drains it. */
TEST_IMPL(io_write_ready) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  ASSERT(fill(p[1]) > 0);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_fd_wait(rt, p[1], WEFT_IO_WRITE, test_after_ms(rt, 20), NULL));
  io_wait_t w;
  weft_task_t *t = spawn_wait(&w, rt, p[1], WEFT_IO_WRITE, IO_PATIENCE(rt));
  test_wait_blocked(rt, t);
  drain(p[0]);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(w.status);
  ASSERT_EQ(w.revents, WEFT_IO_WRITE);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A regular file is always ready, as poll() says (epoll refuses regular files: a
 * platform built on it must still answer), from a thread and from a task. */
TEST_IMPL(io_regular_file_always_ready) {
  weft_runtime_t *rt = test_open_runtime();
  FILE *file = tmpfile();
  ASSERT(file != NULL);
  int fd = fileno(file);
  uint32_t revents = 0;
  ASSERT_OK(weft_fd_wait(rt, fd, WEFT_IO_READ | WEFT_IO_WRITE, WEFT_FOREVER, &revents));
  ASSERT_EQ(revents, WEFT_IO_READ | WEFT_IO_WRITE);
  io_wait_t w;
  ASSERT_EQ(test_join(spawn_wait(&w, rt, fd, WEFT_IO_READ | WEFT_IO_WRITE, WEFT_FOREVER)), 0);
  ASSERT_OK(w.status);
  ASSERT_EQ(w.revents, WEFT_IO_READ | WEFT_IO_WRITE);
  ASSERT_OK(weft_fd_forget(rt, fd));
  fclose(file);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- deadlines --------------------------------------------------------------------- */

/* A deadline at or before now polls once: ready is WEFT_OK, not ready WEFT_ETIMEDOUT
 * at once; a future deadline is never reported early. */
TEST_IMPL(io_deadlines) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  int64_t past[] = {weft_now(rt), weft_now(rt) - 1, 0, -1, INT64_MIN};
  for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
    ASSERT_STATUS(WEFT_ETIMEDOUT, weft_fd_wait(rt, p[0], WEFT_IO_READ, past[i], NULL));
    uint32_t revents = 0;
    ASSERT_OK(weft_fd_wait(rt, p[1], WEFT_IO_WRITE, past[i], &revents));
    ASSERT_EQ(revents, WEFT_IO_WRITE);
  }
  ASSERT_ERROR_MENTIONS("weft_fd_wait");
  int64_t deadline = test_after_ms(rt, 30);
  uint32_t untouched = 12345;
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_fd_wait(rt, p[0], WEFT_IO_READ, deadline, &untouched));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_EQ(untouched, 12345); /* outputs are written only on success */
  char text[64];
  snprintf(text, sizeof text, "fd %d", p[0]);
  ASSERT_ERROR_MENTIONS(text);

  /* From a task too (a task waits in a blocking region). */
  io_wait_t w;
  weft_task_t *t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, test_after_ms(rt, 30));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_STATUS(WEFT_ETIMEDOUT, w.status);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- cancellation ------------------------------------------------------------------ */

/* A task parked in weft_fd_wait (forever, or with a deadline) returns WEFT_ECANCELED
 * when it is cancelled; nothing was read. */
TEST_IMPL(io_cancel_parked_wait) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  int64_t deadlines[] = {WEFT_FOREVER, IO_PATIENCE(rt)};
  for (int i = 0; i < 2; i++) {
    io_wait_t w;
    weft_task_t *t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, deadlines[i]);
    test_wait_blocked(rt, t);
    ASSERT_OK(weft_cancel(t));
    ASSERT_EQ(test_join(t), 0);
    ASSERT_STATUS(WEFT_ECANCELED, w.status);
  }
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  int fd;
} fd_arg_t;

/* A task cancelled before it waits gets WEFT_ECANCELED, even on a ready fd, and keeps
 * getting it (cancellation is sticky). */
static int32_t wait_after_self_cancel(void *arg, void **result) {
  (void)result;
  fd_arg_t *a = arg;
  if (weft_cancel(weft_task_self()) != WEFT_OK) return 1;
  if (weft_fd_wait(a->rt, a->fd, WEFT_IO_WRITE, WEFT_FOREVER, NULL) != WEFT_ECANCELED) return 2;
  if (weft_fd_wait(a->rt, a->fd, WEFT_IO_READ, WEFT_FOREVER, NULL) != WEFT_ECANCELED) return 3;
  if (strstr(weft_last_error(), "cancelled") == NULL) return 4;
  return 0;
}

TEST_IMPL(io_cancel_before_wait) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  fd_arg_t a = {rt, p[1]};
  ASSERT_EQ(test_join(test_spawn(rt, wait_after_self_cancel, &a)), 0);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- forget ----------------------------------------------------------------------- */

/* weft_fd_forget wakes every waiter of that fd with WEFT_ECLOSED and no other; waits
 * that start afterwards work as before. */
TEST_IMPL(io_forget_wakes_waiters) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2], q[2];
  make_pipe(p);
  make_pipe(q);
  enum { N = 4 };
  io_wait_t w[N], other;
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) t[i] = spawn_wait(&w[i], rt, p[0], WEFT_IO_READ, WEFT_FOREVER);
  weft_task_t *o = spawn_wait(&other, rt, q[0], WEFT_IO_READ, WEFT_FOREVER);
  for (int i = 0; i < N; i++) test_wait_blocked(rt, t[i]);
  test_wait_blocked(rt, o);
  ASSERT_OK(weft_fd_forget(rt, p[0]));
  for (int i = 0; i < N; i++) {
    ASSERT_EQ(test_join(t[i]), 0);
    ASSERT_STATUS(WEFT_ECLOSED, w[i].status);
  }
  /* The other fd's waiter was not woken by it: it reports its own byte. */
  write_byte(q[1], 'q');
  ASSERT_EQ(test_join(o), 0);
  ASSERT_OK(other.status);
  ASSERT_EQ(other.revents, WEFT_IO_READ);

  /* A wait after the forget is a fresh wait. */
  weft_task_t *again = spawn_wait(&w[0], rt, p[0], WEFT_IO_READ, WEFT_FOREVER);
  test_wait_blocked(rt, again);
  write_byte(p[1], 'p');
  ASSERT_EQ(test_join(again), 0);
  ASSERT_OK(w[0].status);
  ASSERT_EQ(w[0].revents, WEFT_IO_READ);

  /* Forgetting an fd nobody waits on, or never waited on, is fine. */
  ASSERT_OK(weft_fd_forget(rt, p[0]));
  ASSERT_OK(weft_fd_forget(rt, q[1]));
  close(p[0]);
  close(p[1]);
  close(q[0]);
  close(q[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* An fd waited on in two runtimes: a forget in one wakes only that runtime's waiter. */
TEST_IMPL(io_forget_is_per_runtime) {
  weft_runtime_t *rt = test_open_runtime();
  weft_runtime_t *rt2 = test_open_runtime();
  int p[2];
  make_pipe(p);
  io_wait_t a, b;
  weft_task_t *ta = spawn_wait(&a, rt, p[0], WEFT_IO_READ, WEFT_FOREVER);
  weft_task_t *tb = spawn_wait(&b, rt2, p[0], WEFT_IO_READ, WEFT_FOREVER);
  test_wait_blocked(rt, ta);
  test_wait_blocked(rt2, tb);
  ASSERT_OK(weft_fd_forget(rt, p[0]));
  ASSERT_EQ(test_join(ta), 0);
  ASSERT_STATUS(WEFT_ECLOSED, a.status);
  write_byte(p[1], 'b');
  ASSERT_EQ(test_join(tb), 0);
  ASSERT_OK(b.status);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt2);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- hang-up ----------------------------------------------------------------------- */

/* The peer closing its end wakes a reader (end of file is readable) and a writer (an
 * error condition), on a pipe and on a socket pair. */
TEST_IMPL(io_hangup) {
  weft_runtime_t *rt = test_open_runtime();
  for (int kind = 0; kind < 2; kind++) {
    int p[2];
    if (kind == 0) make_pipe(p);
    else ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) == 0);
    io_wait_t w;
    weft_task_t *t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, IO_PATIENCE(rt));
    test_wait_blocked(rt, t);
    close(p[1]);
    ASSERT_EQ(test_join(t), 0);
    ASSERT_OK(w.status);
    ASSERT(w.revents & WEFT_IO_READ);
    char c;
    ASSERT_EQ(read(p[0], &c, 1), 0); /* end of file */
    close(p[0]);
  }
  /* A writer blocked on a full pipe whose reader goes away. */
  int p[2];
  make_pipe(p);
  fill(p[1]);
  io_wait_t w;
  weft_task_t *t = spawn_wait(&w, rt, p[1], WEFT_IO_WRITE, IO_PATIENCE(rt));
  test_wait_blocked(rt, t);
  close(p[0]);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(w.status);
  ASSERT(w.revents & WEFT_IO_ERROR);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- many waiters ------------------------------------------------------------------ */

/* Many tasks wait on one fd, some to read and some to write: a byte wakes every reader
 * (level-triggered: nobody consumed it), room wakes every writer. */
TEST_IMPL(io_many_waiters_one_fd) {
  weft_runtime_t *rt = test_open_runtime();
  int s[2];
  ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) == 0);
  fill(s[0]);
  enum { N = 24 };
  io_wait_t w[N];
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) t[i] = spawn_wait(&w[i], rt, s[0], i % 2 ? WEFT_IO_WRITE : WEFT_IO_READ, IO_PATIENCE(rt));
  for (int i = 0; i < N; i++) test_wait_blocked(rt, t[i]);
  write_byte(s[1], 'r'); /* wakes the readers only */
  for (int i = 0; i < N; i += 2) {
    ASSERT_EQ(test_join(t[i]), 0);
    ASSERT_OK(w[i].status);
    ASSERT_EQ(w[i].revents, WEFT_IO_READ);
  }
  drain(s[1]); /* room: wakes the writers */
  for (int i = 1; i < N; i += 2) {
    ASSERT_EQ(test_join(t[i]), 0);
    ASSERT_OK(w[i].status);
    ASSERT_EQ(w[i].revents, WEFT_IO_WRITE);
  }
  close(s[0]);
  close(s[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- bad input --------------------------------------------------------------------- */

TEST_IMPL(io_bad_fds) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  char text[64];
  uint32_t revents = 77;
  snprintf(text, sizeof text, "fd %d", p[0]);
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(NULL, p[0], WEFT_IO_READ, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("runtime is NULL");
  ASSERT_ERROR_MENTIONS(text);
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, -1, WEFT_IO_READ, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("fd -1");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, -7, WEFT_IO_READ, 0, &revents));
  ASSERT_ERROR_MENTIONS("fd -7 is negative");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, p[0], 0, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS(text);
  ASSERT_ERROR_MENTIONS("no events");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, p[0], WEFT_IO_ERROR, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("no events");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, p[0], WEFT_IO_READ | 16, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("unknown events 0x10");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, p[0], 0x80000000u, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS(text);
  /* Asking for WEFT_IO_ERROR too changes nothing. */
  ASSERT_OK(weft_fd_wait(rt, p[1], WEFT_IO_WRITE | WEFT_IO_ERROR, WEFT_FOREVER, &revents));
  ASSERT_EQ(revents, WEFT_IO_WRITE);
  revents = 77;

  /* Not open: closed, or never opened; nothing hangs, even forever. */
  int closed = dup(p[0]);
  ASSERT(closed >= 0);
  close(closed);
  snprintf(text, sizeof text, "fd %d is not open", closed);
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, closed, WEFT_IO_READ, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS(text);
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, 1 << 20, WEFT_IO_WRITE, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("is not open");
  ASSERT_EQ(revents, 77);

  ASSERT_STATUS(WEFT_EINVAL, weft_fd_forget(NULL, p[0]));
  snprintf(text, sizeof text, "fd %d: runtime is NULL", p[0]);
  ASSERT_ERROR_MENTIONS(text);
  snprintf(text, sizeof text, "fd %d is not open", closed);
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_forget(rt, -1));
  ASSERT_ERROR_MENTIONS("fd -1");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_forget(rt, closed));
  ASSERT_ERROR_MENTIONS(text);

  /* A closed runtime. */
  weft_runtime_t *gone = test_open_runtime();
  test_close_runtime(gone);
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(gone, p[0], WEFT_IO_READ, 0, &revents));
  ASSERT_ERROR_MENTIONS("closed");
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_forget(gone, p[0]));
  ASSERT_ERROR_MENTIONS("closed");
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* What a host does with WEFT_IO_DRAINED: read (or write) one byte, and wait only after
 * EAGAIN. A drained wait may return once for readiness that came before it (a
 * spurious wake-up: the next read says EAGAIN again); every wait must succeed. */
typedef struct {
  weft_runtime_t *rt;
  int fd;
  int write; /* 1: write a byte; 0: read one */
  char byte;
  weft_status_t status;
  uint32_t revents;
} drained_t;

static int32_t drained_task(void *arg, void **result) {
  (void)result;
  drained_t *d = arg;
  uint32_t dir = d->write ? WEFT_IO_WRITE : WEFT_IO_READ;
  for (;;) {
    ssize_t n = d->write ? write(d->fd, &d->byte, 1) : read(d->fd, &d->byte, 1);
    if (n == 1) return 0;
    if (n < 0 && errno != EAGAIN) return 1;
    if (n == 0) return 2; /* end of file */
    d->status = weft_fd_wait(d->rt, d->fd, dir | WEFT_IO_DRAINED, IO_PATIENCE(d->rt), &d->revents);
    if (d->status != WEFT_OK) return 3;
    if (!(d->revents & dir)) return 4;
  }
}

/* WEFT_IO_DRAINED: after reading (writing) until EAGAIN, a wait sleeps until the fd
 * becomes ready again, round after round, in both directions; readiness that came
 * before the wait (a write between the EAGAIN and the wait) ends it. Every platform
 * takes the flag (one that cannot use it waits level-triggered). */
TEST_IMPL(io_drained_waits) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  for (int round = 0; round < 30; round++) {
    drain(p[0]);
    drained_t d = {rt, p[0], 0, 0, -1, 0};
    weft_task_t *t = test_spawn(rt, drained_task, &d);
    test_wait_blocked(rt, t);
    write_byte(p[1], (char)('a' + round % 26));
    ASSERT_EQ(test_join(t), 0);
    ASSERT_EQ(d.byte, (char)('a' + round % 26));
    /* Ready before the wait: it returns without another write. */
    write_byte(p[1], 'z');
    uint32_t revents = 0;
    ASSERT_OK(weft_fd_wait(rt, p[0], WEFT_IO_READ | WEFT_IO_DRAINED, IO_PATIENCE(rt), &revents));
    ASSERT_EQ(revents, WEFT_IO_READ);
    ASSERT_EQ(read_byte(p[0]), 'z');
  }
  for (int round = 0; round < 10; round++) {
    size_t filled = fill(p[1]);
    ASSERT(filled > 0);
    drained_t d = {rt, p[1], 1, 'w', -1, 0};
    weft_task_t *t = test_spawn(rt, drained_task, &d);
    test_wait_blocked(rt, t);
    /* Exactly what fill wrote: the task's byte may come while this reads. */
    char buf[4096];
    for (size_t got = 0; got < filled;) {
      ssize_t n = read(p[0], buf, filled - got < sizeof buf ? filled - got : sizeof buf);
      ASSERT(n > 0);
      got += (size_t)n;
    }
    ASSERT_EQ(test_join(t), 0);
    ASSERT_EQ(read_byte(p[0]), 'w');
  }
  /* A hang-up ends a drained wait (end of file is readable), and stays reported. */
  drained_t d = {rt, p[0], 0, 0, -1, 0};
  weft_task_t *t = test_spawn(rt, drained_task, &d);
  test_wait_blocked(rt, t);
  ASSERT_OK(weft_fd_forget(rt, p[1]));
  close(p[1]);
  ASSERT_EQ(test_join(t), 2);
  ASSERT_OK(d.status);
  ASSERT(d.revents & WEFT_IO_READ);
  uint32_t revents = 0;
  ASSERT_OK(weft_fd_wait(rt, p[0], WEFT_IO_READ | WEFT_IO_DRAINED, IO_PATIENCE(rt), &revents));
  ASSERT(revents & WEFT_IO_READ);
  /* A deadline still ends it; the flag alone is no event to wait for. */
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, p[0], WEFT_IO_DRAINED, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("no events");
  int q[2];
  make_pipe(q);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_fd_wait(rt, q[0], WEFT_IO_READ | WEFT_IO_DRAINED, test_after_ms(rt, 20), NULL));
  ASSERT_OK(weft_fd_forget(rt, p[0]));
  ASSERT_OK(weft_fd_forget(rt, q[0]));
  close(p[0]);
  close(q[0]);
  close(q[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Two drained readers of one pipe, both parked, and one byte written that neither has
 * read: both are woken ("a byte nobody has read yet wakes every reader"). On green the
 * first took the report for both, and the second slept to its deadline. */
typedef struct {
  weft_runtime_t *rt;
  int fd;
  weft_status_t status;
  uint32_t revents;
} drained_reader_t;

static int32_t wait_drained_read(void *arg, void **result) {
  drained_reader_t *r = arg;
  (void)result;
  r->status = weft_fd_wait(r->rt, r->fd, WEFT_IO_READ | WEFT_IO_DRAINED, IO_PATIENCE(r->rt), &r->revents);
  return 0;
}

TEST_IMPL(io_drained_readers_of_one_byte) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 10; round++) {
    int p[2];
    make_pipe(p);
    drained_reader_t readers[2];
    weft_task_t *tasks[2];
    for (int i = 0; i < 2; i++) {
      readers[i] = (drained_reader_t){rt, p[0], -1, 0};
      tasks[i] = test_spawn(rt, wait_drained_read, &readers[i]);
    }
    for (int i = 0; i < 2; i++) test_wait_blocked(rt, tasks[i]);
    write_byte(p[1], 'x');
    for (int i = 0; i < 2; i++) {
      ASSERT_EQ(test_join(tasks[i]), 0);
      ASSERT_OK(readers[i].status);
      ASSERT(readers[i].revents & WEFT_IO_READ);
    }
    ASSERT_OK(weft_fd_forget(rt, p[0]));
    close(p[0]);
    close(p[1]);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* A FIFO's hang-up (its writer closed) ends when a writer opens it again: from then
 * on a drained wait on the empty FIFO waits (here, to its deadline). On green the
 * hang-up lasted for good, and every drained wait returned end of file at once: an
 * echo loop spun. */
static int32_t fifo_hangup_ends(void *arg, void **result) {
  weft_runtime_t *rt = arg;
  (void)result;
  char path[64];
  snprintf(path, sizeof path, "/tmp/weft-test-fifo.%d", (int)getpid());
  unlink(path);
  ASSERT_EQ(mkfifo(path, 0600), 0);
  int rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT(rd >= 0);
  int wr = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT(wr >= 0);
  uint32_t revents = 0;
  write_byte(wr, 'x');
  ASSERT_OK(weft_fd_wait(rt, rd, WEFT_IO_READ | WEFT_IO_DRAINED, IO_PATIENCE(rt), &revents));
  ASSERT_EQ(read_byte(rd), 'x');
  close(wr); /* the hang-up */
  ASSERT_OK(weft_fd_wait(rt, rd, WEFT_IO_READ | WEFT_IO_DRAINED, IO_PATIENCE(rt), &revents));
  ASSERT(revents & WEFT_IO_READ);
  char c;
  ASSERT_EQ(read(rd, &c, 1), 0); /* end of file */
  wr = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC); /* the hang-up is over */
  ASSERT(wr >= 0);
  ASSERT(read(rd, &c, 1) < 0 && errno == EAGAIN);
  int spurious = 0;
  for (int i = 0; i < 5; i++) {
    weft_status_t st = weft_fd_wait(rt, rd, WEFT_IO_READ | WEFT_IO_DRAINED, test_after_ms(rt, 20), &revents);
    if (st == WEFT_OK) {
      spurious++;
      ASSERT(read(rd, &c, 1) < 0 && errno == EAGAIN);
    } else {
      ASSERT_STATUS(WEFT_ETIMEDOUT, st);
    }
  }
  ASSERT(spurious <= 1); /* one stale report at most, from the hang-up's end */
  ASSERT_OK(weft_fd_forget(rt, rd));
  close(rd);
  close(wr);
  unlink(path);
  return 0;
}

/* Run by a task: a thread that is not one polls the fd itself and did not show it. */
TEST_IMPL(io_fifo_hangup_ends_with_a_new_writer) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_EQ(test_join(test_spawn(rt, fifo_hangup_ends, rt)), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A plain wait for reading and writing on a socket that is writable with nothing to
 * read reports writing only, even after data came and was read while nobody waited
 * for reading (green kept that old report and returned it with the new one). */
static int32_t wait_on_other_pipe(void *arg, void **result) {
  drained_reader_t *r = arg;
  (void)result;
  r->status = weft_fd_wait(r->rt, r->fd, WEFT_IO_READ, test_after_ms(r->rt, 300), NULL);
  return 0;
}

static int32_t plain_wait_reports_only_what_is_ready(void *arg, void **result) {
  weft_runtime_t *rt = arg;
  (void)result;
  int s[2], q[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
  make_pipe(q);
  uint32_t revents = 0;
  write_byte(s[1], 'a');
  ASSERT_OK(weft_fd_wait(rt, s[0], WEFT_IO_READ, IO_PATIENCE(rt), &revents)); /* registers s[0] */
  ASSERT_EQ(read_byte(s[0]), 'a');
  /* A wait on another fd keeps the set polled while an edge nobody waits for comes. */
  drained_reader_t other = {rt, q[0], -1, 0};
  weft_task_t *t = test_spawn(rt, wait_on_other_pipe, &other);
  test_sleep_ms(rt, 20);
  write_byte(s[1], 'b');
  test_sleep_ms(rt, 50);
  ASSERT_EQ(read_byte(s[0]), 'b');
  revents = 0;
  ASSERT_OK(weft_fd_wait(rt, s[0], WEFT_IO_READ | WEFT_IO_WRITE, IO_PATIENCE(rt), &revents));
  ASSERT_EQ(revents, WEFT_IO_WRITE);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(weft_fd_forget(rt, s[0]));
  ASSERT_OK(weft_fd_forget(rt, q[0]));
  close(s[0]);
  close(s[1]);
  close(q[0]);
  close(q[1]);
  return 0;
}

/* Run by a task, as above. */
TEST_IMPL(io_plain_wait_reports_only_what_is_ready) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_EQ(test_join(test_spawn(rt, plain_wait_reports_only_what_is_ready, rt)), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* An error that the host reads goes away (a connected UDP socket's ICMP "port
 * unreachable", cleared by the recv that returns ECONNREFUSED): a drained wait after
 * the host read it and then EAGAIN sleeps until its deadline, where it must not be told
 * of the old error again (it was, at once and for ever, on green: a drained read loop
 * spun). A hang-up, unlike it, stays reported (io_drained_waits). */
/* Receives on a connected datagram socket, waiting drained after each EAGAIN, until a
 * receive fails: 0 when that is ECONNREFUSED (the error read, and so cleared). */
static int32_t recv_until_refused(void *arg, void **result) {
  (void)result;
  drained_t *d = arg;
  for (;;) {
    char c;
    if (recv(d->fd, &c, 1, 0) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return errno == ECONNREFUSED ? 0 : 1;
    d->status = weft_fd_wait(d->rt, d->fd, WEFT_IO_READ | WEFT_IO_DRAINED, IO_PATIENCE(d->rt), &d->revents);
    if (d->status != WEFT_OK) return 2;
  }
}

TEST_IMPL(io_error_clears_once_read) {
  weft_runtime_t *rt = test_open_runtime();
  /* A loopback port nobody listens on: one bound, then closed. */
  int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT(probe >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT_EQ(bind(probe, (struct sockaddr *)&addr, sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(probe, (struct sockaddr *)&addr, &len), 0);
  close(probe);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT(s >= 0);
  ASSERT_EQ(connect(s, (struct sockaddr *)&addr, sizeof addr), 0);
  for (int round = 0; round < 3; round++) {
    /* A task waits, drained, as the error comes. */
    drained_t d = {rt, s, 0, 0, -1, 0};
    weft_task_t *t = test_spawn(rt, recv_until_refused, &d);
    test_wait_blocked(rt, t);
    ASSERT_EQ(send(s, "x", 1, 0), 1);
    ASSERT_EQ(test_join(t), 0); /* woken by the error, and read it */
    ASSERT_OK(d.status);
    ASSERT(d.revents & WEFT_IO_ERROR);
    char c;
    ASSERT_EQ(recv(s, &c, 1, 0), -1);
    ASSERT(errno == EAGAIN || errno == EWOULDBLOCK);
    /* Read and gone: the next drained wait waits. */
    uint32_t revents = 0;
    ASSERT_STATUS(WEFT_ETIMEDOUT,
                  weft_fd_wait(rt, s, WEFT_IO_READ | WEFT_IO_DRAINED, test_after_ms(rt, 30), &revents));
    io_wait_t w;
    weft_task_t *late = spawn_wait(&w, rt, s, WEFT_IO_READ | WEFT_IO_DRAINED, test_after_ms(rt, 30));
    ASSERT_EQ(test_join(late), 0);
    ASSERT_STATUS(WEFT_ETIMEDOUT, w.status);
  }
  ASSERT_OK(weft_fd_forget(rt, s));
  close(s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A host that closes an fd without weft_fd_forget breaks rule 2 of docs/io.md, but what
 * the platform kept for the old file must not hide the new one that reuses its number:
 * a task waiting on the new fd wakes when it becomes readable, round after round. */
TEST_IMPL(io_number_reused_without_forget) {
  weft_runtime_t *rt = test_open_runtime();
  int reused = 0;
  for (int round = 0; round < 20; round++) {
    int p[2];
    make_pipe(p);
    io_wait_t w;
    weft_task_t *t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, IO_PATIENCE(rt));
    test_wait_blocked(rt, t);
    write_byte(p[1], 'r');
    ASSERT_EQ(test_join(t), 0);
    ASSERT_OK(w.status);
    ASSERT_EQ(w.revents, WEFT_IO_READ);
    int old = p[0];
    close(p[0]); /* no weft_fd_forget: the next pipe takes the lowest free numbers */
    close(p[1]);
    make_pipe(p);
    reused += p[0] == old;
    t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, IO_PATIENCE(rt));
    test_wait_blocked(rt, t);
    write_byte(p[1], 'n');
    ASSERT_EQ(test_join(t), 0);
    ASSERT_OK(w.status);
    ASSERT_EQ(w.revents, WEFT_IO_READ);
    ASSERT_EQ(read_byte(p[0]), 'n');
    ASSERT_OK(weft_fd_forget(rt, p[0]));
    close(p[0]);
    close(p[1]);
  }
  ASSERT(reused > 0); /* the case this is about happened */
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- stop-the-world ---------------------------------------------------------------- */

/* A stop-the-world does not wait for tasks parked in weft_fd_wait; a task whose fd
 * becomes ready while the world is stopped does not run on until it resumes. */
TEST_IMPL(io_stw_while_waiting) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  make_pipe(p);
  enum { N = 8 };
  atomic_int returned = 0;
  io_wait_t w[N];
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) t[i] = spawn_counted(&w[i], rt, p[0], WEFT_IO_READ, WEFT_FOREVER, &returned);
  for (int i = 0; i < N; i++) test_wait_blocked(rt, t[i]);
  ASSERT_OK(weft_stw_begin(rt, IO_PATIENCE(rt)));
  write_byte(p[1], 's'); /* every waiter's poll returns, none may run on */
  struct timespec nap = {0, 50 * 1000000};
  nanosleep(&nap, NULL);
  ASSERT_EQ(atomic_load(&returned), 0);
  ASSERT_OK(weft_stw_end(rt));
  for (int i = 0; i < N; i++) {
    ASSERT_EQ(test_join(t[i]), 0);
    ASSERT_OK(w[i].status);
    ASSERT_EQ(w[i].revents, WEFT_IO_READ);
  }
  ASSERT_EQ(atomic_load(&returned), N);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- waking the workers around the netpoller (stress) ------------------------------ */

typedef struct {
  weft_runtime_t *rt;
  int in;  /* one letter per round; '.' ends the relay */
  int out; /* each byte goes back here */
} relay_t;

/* Sends back every byte it reads. Parked between rounds, it keeps an IO wait in
 * progress, so that on an M:N platform an idle worker sleeps in its netpoller. */
static int32_t relay_task(void *arg, void **result) {
  (void)result;
  relay_t *r = arg;
  for (;;) {
    char c;
    ssize_t n = read(r->in, &c, 1);
    if (n == 1) {
      if (c == '.') return 0;
      if (write(r->out, &c, 1) != 1) return 1;
      continue;
    }
    if (n == 0 || errno != EAGAIN) return 2;
    if (weft_fd_wait(r->rt, r->in, WEFT_IO_READ, WEFT_FOREVER, NULL) != WEFT_OK) return 3;
  }
}

typedef struct {
  weft_runtime_t *rt;
  int64_t ns;
} nap_t;

static int32_t nap_task(void *arg, void **result) {
  (void)result;
  nap_t *nap = arg;
  return weft_sleep_until(nap->rt, weft_deadline_after(nap->rt, nap->ns)) == WEFT_OK ? 0 : 1;
}

/* Rounds of: a byte through a task parked in weft_fd_wait and back to the host thread,
 * which waits for it in weft_fd_wait itself (a wait no worker makes); then a task
 * spawned from outside, which sleeps a little (a timer earlier than any sleeper's).
 * On the green platform the idle worker sleeps in epoll_wait meanwhile, and each
 * round must wake it (the eventfd) or be seen by it; a wake-up lost between "I am
 * going to sleep" and "work was queued" fails the round's deadline. */
TEST_IMPL(io_wakeups_around_the_poller) {
  /* Long runs on one worker and on the default count; then many short runtimes, each
   * closed right after its rounds (a close must reach a worker asleep in epoll_wait). */
  enum { LONG_RUNS = 2, LONG_ROUNDS = 2000, SHORT_RUNS = 200, SHORT_ROUNDS = 3 };
  for (int run = 0; run < LONG_RUNS + SHORT_RUNS; run++) {
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = run == 0 ? 1 : 0;
    int rounds = run < LONG_RUNS ? LONG_ROUNDS : SHORT_ROUNDS;
    weft_runtime_t *rt = NULL;
    ASSERT_OK(weft_runtime_open(&cfg, &rt));
    int to[2], from[2];
    make_pipe(to);
    make_pipe(from);
    relay_t r = {rt, to[0], from[1]};
    weft_task_t *relay = test_spawn(rt, relay_task, &r);
    for (int i = 0; i < rounds; i++) {
      write_byte(to[1], (char)('a' + i % 26));
      uint32_t revents = 0;
      ASSERT_OK(weft_fd_wait(rt, from[0], WEFT_IO_READ, IO_PATIENCE(rt), &revents));
      ASSERT_EQ(revents, WEFT_IO_READ);
      ASSERT_EQ(read_byte(from[0]), 'a' + i % 26);
      nap_t nap = {rt, (i % 3) * 50000};
      int32_t code = -1;
      ASSERT_OK(weft_join(test_spawn(rt, nap_task, &nap), IO_PATIENCE(rt), &code, NULL));
      ASSERT_EQ(code, 0);
    }
    write_byte(to[1], '.');
    ASSERT_EQ(test_join(relay), 0);
    close(to[0]);
    close(to[1]);
    close(from[0]);
    close(from[1]);
    test_close_runtime(rt);
  }
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  atomic_int *stop;
} spinner_t;

static int32_t spinner_task(void *arg, void **result) {
  (void)result;
  spinner_t *s = arg;
  while (!atomic_load(s->stop))
    if (weft_yield(s->rt) != WEFT_OK) return 1;
  return 0;
}

/* Tasks that only yield keep every worker busy (no worker ever runs out of work, so
 * none idles in a netpoller); a task waiting for a pipe must still wake when a byte
 * comes, round after round: a busy scheduler polls the network too. */
TEST_IMPL(io_ready_while_workers_busy) {
  weft_runtime_t *rt = test_open_runtime();
  enum { SPINNERS = 8, ROUNDS = 50 };
  atomic_int stop = 0;
  spinner_t s = {rt, &stop};
  weft_task_t *spinners[SPINNERS];
  for (int i = 0; i < SPINNERS; i++) spinners[i] = test_spawn(rt, spinner_task, &s);
  int p[2];
  make_pipe(p);
  for (int i = 0; i < ROUNDS; i++) {
    io_wait_t w;
    weft_task_t *t = spawn_wait(&w, rt, p[0], WEFT_IO_READ, IO_PATIENCE(rt));
    test_wait_blocked(rt, t);
    write_byte(p[1], 'b');
    int32_t code = -1;
    ASSERT_OK(weft_join(t, IO_PATIENCE(rt), &code, NULL));
    ASSERT_EQ(code, 0);
    ASSERT_OK(w.status);
    ASSERT_EQ(w.revents, WEFT_IO_READ);
    ASSERT_EQ(read_byte(p[0]), 'b');
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < SPINNERS; i++) ASSERT_EQ(test_join(spinners[i]), 0);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- a loopback TCP echo ----------------------------------------------------------- */

enum { ECHO_CLIENTS = 200, ECHO_ROUNDS = 8, ECHO_MAX = 24 * 1024 };

typedef struct {
  weft_runtime_t *rt;
  int fd;
  uint32_t drained; /* WEFT_IO_DRAINED for every other connection, 0 for the rest */
} conn_t;

static atomic_int echo_failures;

static void echo_fail(const char *what, int err) {
  fprintf(stderr, "echo: %s: %s (%s)\n", what, strerror(err), weft_last_error());
  atomic_fetch_add(&echo_failures, 1);
}

/* The server's side of one connection: echo until end of file. */
static int32_t echo_conn(void *arg, void **result) {
  (void)result;
  conn_t *c = arg;
  char buf[16384];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno != EAGAIN) {
        echo_fail("server read", errno);
        break;
      }
      weft_status_t st = weft_fd_wait(c->rt, c->fd, WEFT_IO_READ | c->drained, IO_PATIENCE(c->rt), NULL);
      if (st != WEFT_OK) {
        echo_fail("server wait to read", EIO);
        break;
      }
      continue;
    }
    for (ssize_t sent = 0; sent < n;) {
      ssize_t m = send(c->fd, buf + sent, (size_t)(n - sent), MSG_NOSIGNAL);
      if (m > 0) {
        sent += m;
      } else if (m < 0 && errno == EAGAIN) {
        if (weft_fd_wait(c->rt, c->fd, WEFT_IO_WRITE | c->drained, IO_PATIENCE(c->rt), NULL) != WEFT_OK) {
          echo_fail("server wait to write", EIO);
          goto done;
        }
      } else {
        echo_fail("server send", errno);
        goto done;
      }
    }
  }
done:
  ASSERT_OK(weft_fd_forget(c->rt, c->fd));
  close(c->fd);
  free(c);
  return 0;
}

typedef struct {
  weft_runtime_t *rt;
  int listener;
  int accepted;
} server_t;

/* Accepts connections, one detached task each, until the task is cancelled. (Not
 * until the listener is forgotten: a forget wakes the waits in progress only, and the
 * acceptor may be between an accept and its next wait; a cancellation is sticky.) */
static int32_t echo_accept(void *arg, void **result) {
  (void)result;
  server_t *s = arg;
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = WEFT_SPAWN_DETACHED;
  opts.stack_size = 128 * 1024;
  for (;;) {
    int fd = accept4(s->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != ECONNABORTED) echo_fail("accept", errno);
      weft_status_t st = weft_fd_wait(s->rt, s->listener, WEFT_IO_READ, WEFT_FOREVER, NULL);
      if (st == WEFT_ECANCELED) return 0;
      ASSERT_OK(st);
      continue;
    }
    conn_t *c = malloc(sizeof *c);
    ASSERT(c != NULL);
    c->rt = s->rt;
    c->fd = fd;
    c->drained = s->accepted % 2 ? WEFT_IO_DRAINED : 0;
    ASSERT_OK(weft_spawn(s->rt, echo_conn, c, &opts, NULL));
    s->accepted++;
  }
}

typedef struct {
  weft_runtime_t *rt;
  struct sockaddr_in addr;
  uint32_t id;
} client_t;

static unsigned char pattern(uint32_t id, uint32_t round, size_t i) {
  return (unsigned char)((id * 131u + round * 31u + (uint32_t)i * 7u + (uint32_t)(i >> 8)) & 0xff);
}

/* One client: connects, then per round sends a message and reads it back, writing and
 * reading as each becomes possible, and checks every byte. Returns 0 or a failure. */
static int32_t echo_client(void *arg, void **result) {
  (void)result;
  client_t *c = arg;
  weft_runtime_t *rt = c->rt;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0) {
    if (errno != EINPROGRESS) return 2;
    if (weft_fd_wait(rt, fd, WEFT_IO_WRITE, IO_PATIENCE(rt), NULL) != WEFT_OK) return 3;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return 4;
  }
  unsigned char *out = malloc(ECHO_MAX), *in = malloc(ECHO_MAX);
  if (out == NULL || in == NULL) return 10;
  int32_t rc = 0;
  for (uint32_t round = 0; round < ECHO_ROUNDS && rc == 0; round++) {
    size_t size = 1 + (c->id * 977u + round * 4099u) % ECHO_MAX;
    if (round == 0) size = 1;
    for (size_t i = 0; i < size; i++) out[i] = pattern(c->id, round, i);
    size_t sent = 0, got = 0;
    while (got < size) {
      int progress = 0;
      if (sent < size) {
        ssize_t n = send(fd, out + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0) {
          sent += (size_t)n;
          progress = 1;
        } else if (n < 0 && errno != EAGAIN) {
          rc = 5;
          break;
        }
      }
      ssize_t n = read(fd, in + got, size - got);
      if (n > 0) {
        got += (size_t)n;
        progress = 1;
      } else if (n == 0) {
        rc = 6; /* the server hung up early */
        break;
      } else if (errno != EAGAIN) {
        rc = 7;
        break;
      }
      if (!progress) {
        /* Both directions asked for just said EAGAIN: every other client says so. */
        uint32_t events = WEFT_IO_READ | (sent < size ? WEFT_IO_WRITE : 0) | (c->id % 2 ? WEFT_IO_DRAINED : 0);
        if (weft_fd_wait(rt, fd, events, IO_PATIENCE(rt), NULL) != WEFT_OK) {
          rc = 8;
          break;
        }
      }
    }
    if (rc == 0 && memcmp(in, out, size) != 0) rc = 9;
  }
  ASSERT_OK(weft_fd_forget(rt, fd));
  close(fd);
  free(out);
  free(in);
  return rc;
}

/* Hundreds of concurrent connections to an echo server on 127.0.0.1, one task per
 * connection on both sides, every byte checked; half the connections wait with
 * WEFT_IO_DRAINED on each side. */
TEST_IMPL(io_tcp_echo_many_connections) {
  weft_runtime_t *rt = test_open_runtime();
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT(listener >= 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0);
  ASSERT(listen(listener, 1024) == 0);
  socklen_t len = sizeof addr;
  ASSERT(getsockname(listener, (struct sockaddr *)&addr, &len) == 0);

  server_t server = {rt, listener, 0};
  weft_task_t *acceptor = test_spawn(rt, echo_accept, &server);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = 128 * 1024;
  static client_t clients[ECHO_CLIENTS];
  static weft_task_t *tasks[ECHO_CLIENTS];
  for (uint32_t i = 0; i < ECHO_CLIENTS; i++) {
    clients[i] = (client_t){rt, addr, i};
    ASSERT_OK(weft_spawn(rt, echo_client, &clients[i], &opts, &tasks[i]));
  }
  for (uint32_t i = 0; i < ECHO_CLIENTS; i++) {
    int32_t code = -1;
    ASSERT_OK(weft_join(tasks[i], WEFT_FOREVER, &code, NULL));
    if (code != 0) fprintf(stderr, "client %u failed with %d\n", i, code);
    ASSERT_EQ(code, 0);
  }
  ASSERT_OK(weft_cancel(acceptor));
  ASSERT_EQ(test_join(acceptor), 0);
  ASSERT_OK(weft_fd_forget(rt, listener));
  ASSERT_EQ(server.accepted, ECHO_CLIENTS);
  close(listener);
  test_close_runtime_when_idle(rt); /* the connection tasks end on end of file */
  ASSERT_EQ(atomic_load(&echo_failures), 0);
  return TEST_OK;
}

/* More tasks wait on one fd than the process may have fds open: each is woken when it
 * becomes ready. On sim the scheduler's poll took one entry per waiter, which poll()
 * refuses past RLIMIT_NOFILE, and the waits were never seen ready (a false deadlock
 * report). The limit is lowered to 64 here, with 100 waiters. */
typedef struct {
  weft_runtime_t *rt;
  int fd;
  atomic_int woken;
} crowd_t;

static int32_t wait_in_crowd(void *arg, void **result) {
  crowd_t *c = arg;
  (void)result;
  uint32_t ready = 0;
  if (weft_fd_wait(c->rt, c->fd, WEFT_IO_READ, WEFT_FOREVER, &ready) != WEFT_OK) return 1;
  if (!(ready & WEFT_IO_READ)) return 2;
  atomic_fetch_add(&c->woken, 1);
  return 0;
}

TEST_IMPL(io_more_waiters_than_fds_allowed) {
  enum { WAITERS = 100 };
  weft_runtime_t *probe = test_open_runtime();
  bool os_threads = weft_runtime_platform(probe)->caps & WEFT_CAP_OS_THREADS;
  test_close_runtime(probe);
  if (os_threads) {
    fprintf(stderr, "skip: each waiting thread holds an fd of its own (docs/io.md)\n");
    return TEST_SKIP;
  }
  struct rlimit old, low;
  ASSERT(getrlimit(RLIMIT_NOFILE, &old) == 0);
  low = old;
  low.rlim_cur = 64;
  ASSERT(setrlimit(RLIMIT_NOFILE, &low) == 0);
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  ASSERT(pipe(p) == 0);
  ASSERT(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
  static crowd_t c;
  c.rt = rt;
  c.fd = p[0];
  atomic_store(&c.woken, 0);
  weft_task_t *t[WAITERS];
  for (int i = 0; i < WAITERS; i++) t[i] = test_spawn(rt, wait_in_crowd, &c);
  test_sleep_ms(rt, 20); /* most wait by then; a later one finds the byte at once */
  ASSERT(write(p[1], "x", 1) == 1);
  for (int i = 0; i < WAITERS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&c.woken), WAITERS);
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  ASSERT(setrlimit(RLIMIT_NOFILE, &old) == 0);
  return TEST_OK;
}

/* A plain wait is level-triggered: a task's wait that returns WEFT_IO_READ finds data to
 * read. Its only reader drains a pipe a host thread keeps writing, for a second and a
 * half: no wait may report READ on the empty pipe. On green a task returned a report as
 * it came, and a stale one (the edge of data the task had read, collected by another
 * worker's epoll_wait and handed over after the task armed again) said READ on an empty
 * pipe about once in 10,000 waits. */
typedef struct {
  weft_runtime_t *rt;
  int fds[2];
  atomic_int stop;
  long waits, empty;
} stale_t;

static int32_t read_after_each_wait(void *arg, void **result) {
  stale_t *s = arg;
  (void)result;
  char buf[256];
  while (!atomic_load(&s->stop)) {
    uint32_t ready = 0;
    weft_status_t st = weft_fd_wait(s->rt, s->fds[0], WEFT_IO_READ, weft_deadline_after(s->rt, 100000000), &ready);
    if (st == WEFT_ETIMEDOUT) continue;
    if (st != WEFT_OK) return 1;
    s->waits++;
    if (read(s->fds[0], buf, sizeof buf) < 0 && errno == EAGAIN) s->empty++;
    while (read(s->fds[0], buf, sizeof buf) > 0) {
    }
  }
  return 0;
}

static void *write_bytes(void *arg) {
  stale_t *s = arg;
  while (!atomic_load(&s->stop)) {
    if (write(s->fds[1], "x", 1) != 1 && errno != EAGAIN) break;
    for (volatile int i = 0; i < 2000; i++) {
    }
  }
  return NULL;
}

TEST_IMPL(io_plain_wait_reports_no_stale_read) {
  weft_runtime_t *rt = test_open_runtime();
  if (weft_runtime_platform(rt)->caps & WEFT_CAP_DETERMINISTIC) {
    /* One task runs at a time, and the host thread's writes come between steps only. */
    test_close_runtime(rt);
    return TEST_SKIP;
  }
  static stale_t s;
  memset(&s, 0, sizeof s);
  s.rt = rt;
  ASSERT(pipe(s.fds) == 0);
  ASSERT(fcntl(s.fds[0], F_SETFL, O_NONBLOCK) == 0);
  ASSERT(fcntl(s.fds[1], F_SETFL, O_NONBLOCK) == 0);
  weft_task_t *reader = test_spawn(rt, read_after_each_wait, &s);
  pthread_t writer;
  ASSERT(pthread_create(&writer, NULL, write_bytes, &s) == 0);
  int64_t end = test_real_now_ns() + 1500 * 1000000LL;
  while (test_real_now_ns() < end) usleep(10000);
  atomic_store(&s.stop, 1);
  ASSERT(pthread_join(writer, NULL) == 0);
  ASSERT(write(s.fds[1], "x", 1) == 1); /* the reader's last wait ends */
  ASSERT_EQ(test_join(reader), 0);
  if (s.empty != 0) {
    fprintf(stderr, "%ld of %ld waits reported READ on an empty pipe\n", s.empty, s.waits);
    ASSERT(0);
  }
  ASSERT_OK(weft_fd_forget(rt, s.fds[0]));
  close(s.fds[0]);
  close(s.fds[1]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* With no fd left for the process, a wait whose platform needs one (a wake-up eventfd, the
 * netpoller's epoll set) fails with WEFT_ENOMEM, "resources ran out", on every plugin
 * (pthread said WEFT_EINTERNAL, a bug inside weft); one that needs none times out. */
TEST_IMPL(io_out_of_fds_is_enomem) {
  weft_runtime_t *rt = test_open_runtime();
  int p[2];
  ASSERT(pipe(p) == 0);
  ASSERT(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
  struct rlimit old, low;
  ASSERT(getrlimit(RLIMIT_NOFILE, &old) == 0);
  low = old;
  low.rlim_cur = 64;
  ASSERT(setrlimit(RLIMIT_NOFILE, &low) == 0);
  int dups[64], n = 0;
  while (n < 64 && (dups[n] = dup(0)) >= 0) n++;
  uint32_t ready = 0;
  weft_status_t st = weft_fd_wait(rt, p[0], WEFT_IO_READ, test_after_ms(rt, 10), &ready);
  for (int i = 0; i < n; i++) close(dups[i]);
  ASSERT(setrlimit(RLIMIT_NOFILE, &old) == 0);
  if (st != WEFT_ETIMEDOUT) {
    ASSERT_STATUS(WEFT_ENOMEM, st);
    ASSERT_ERROR_MENTIONS("open files");
  }
  close(p[0]);
  close(p[1]);
  test_close_runtime(rt);
  return TEST_OK;
}
