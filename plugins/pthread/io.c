/*
 * IO readiness waits (plugin ABI 2): fd_wait and fd_forget.
 *
 * A task waiting on an fd makes an eventfd of its own and polls both in one ppoll(),
 * inside a blocking region:
 *
 *     struct pollfd fds[2] = {{fd, POLLIN or POLLOUT}, {wake, POLLIN}};
 *     ppoll(fds, 2, time left until the deadline, NULL);
 *
 * The kernel wakes it when the fd is ready (level-triggered: ready now means at once),
 * and two things write to `wake` to wake it earlier:
 *
 *  - cancel(): the task records `wake` in its waiter (wait_set_io_wake) before it asks
 *    host->cancel_pending(), and waiter_wake() writes to it under the waiter's lock,
 *    after the runtime has set the cancelled flag: either the task sees the flag or the
 *    write wakes its poll. The task clears the record, under the same lock, before it
 *    closes `wake`: cancel() never writes to a number that was reused meanwhile.
 *  - fd_forget(): every waiting call is listed, by fd, in its runtime's registry (the
 *    plugin's per-runtime state). Forget marks each of the fd's waiters forgotten and
 *    writes to its `wake`, under the registry lock, which a waiter also takes to join
 *    and leave the list: a waiter listed before the forget is woken (ECLOSED), one
 *    that starts afterwards is not affected.
 *
 * A wake-up that finds neither flag (a stale write) only makes the loop poll again.
 * An fd closed under a waiter without fd_forget shows as POLLNVAL on Linux only if
 * poll starts after the close; that is why the host must forget before closing.
 * This file keeps one eventfd per wait for clarity; the native plugin keeps one per
 * thread and saves two system calls a wait.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* One fd_wait call that waits, on its own stack, linked in its runtime's registry. */
struct io_waiter {
  int fd;
  int wake;      /* its eventfd */
  int forgotten; /* set by fd_forget; under the registry lock */
  io_waiter_t *next;
};

static io_waiter_t **bucket(io_registry_t *r, int fd) { return &r->buckets[(unsigned)fd % IO_BUCKETS]; }

int io_registry_init(io_registry_t *r) {
  for (int i = 0; i < IO_BUCKETS; i++) r->buckets[i] = NULL;
  return pthread_mutex_init(&r->lock, NULL);
}

void io_registry_destroy(io_registry_t *r) { pthread_mutex_destroy(&r->lock); }

static void registry_add(io_registry_t *r, io_waiter_t *w) {
  pthread_mutex_lock(&r->lock);
  io_waiter_t **head = bucket(r, w->fd);
  w->next = *head;
  *head = w;
  pthread_mutex_unlock(&r->lock);
}

static void registry_remove(io_registry_t *r, io_waiter_t *w) {
  pthread_mutex_lock(&r->lock);
  for (io_waiter_t **at = bucket(r, w->fd); *at != NULL; at = &(*at)->next) {
    if (*at == w) {
      *at = w->next;
      break;
    }
  }
  pthread_mutex_unlock(&r->lock);
}

static int registry_forgotten(io_registry_t *r, io_waiter_t *w) {
  pthread_mutex_lock(&r->lock);
  int forgotten = w->forgotten;
  pthread_mutex_unlock(&r->lock);
  return forgotten;
}

static void wake_signal(int wake) {
  uint64_t one = 1;
  /* Fails only when the counter is about to overflow: then it is readable already. */
  if (write(wake, &one, sizeof one) < 0) return;
}

static void wake_drain(int wake) {
  uint64_t count;
  if (read(wake, &count, sizeof count) < 0) return; /* EAGAIN: nothing to drain */
}

static short poll_events(uint32_t events) {
  short bits = 0;
  if (events & WEFT_IO_READ) bits |= POLLIN;
  if (events & WEFT_IO_WRITE) bits |= POLLOUT;
  return bits;
}

/* The weft ready events for what poll() reported on the fd. POLLHUP and POLLERR are
 * reported whatever was asked for; end of file (POLLHUP) counts as readable. */
static uint32_t ready_events(uint32_t events, short polled) {
  uint32_t ready = 0;
  if ((events & WEFT_IO_READ) && (polled & (POLLIN | POLLHUP))) ready |= WEFT_IO_READ;
  if ((events & WEFT_IO_WRITE) && (polled & POLLOUT)) ready |= WEFT_IO_WRITE;
  if (polled & (POLLHUP | POLLERR)) ready |= WEFT_IO_ERROR;
  return ready;
}

/* ppoll() until something is ready (> 0), the deadline passes (0) or it fails (-1,
 * errno). A deadline at or before now polls once. Interrupted calls are restarted. */
static int poll_until(struct pollfd *fds, nfds_t n, int64_t deadline) {
  for (;;) {
    struct timespec left, *timeout = NULL;
    if (deadline != WEFT_FOREVER) {
      int64_t now = pt_clock();
      int64_t ns = deadline <= now ? 0 : deadline - now; /* no overflow for a deadline far in the past */
      left.tv_sec = ns / 1000000000;
      left.tv_nsec = ns % 1000000000;
      timeout = &left;
    }
    int rc = ppoll(fds, n, timeout, NULL);
    if (rc >= 0 || errno != EINTR) return rc;
  }
}

/* The outcome of a poll that reported something on the fd. */
static weft_status_t finish(int fd, uint32_t events, short polled, uint32_t *revents) {
  if (polled & POLLNVAL) {
    char detail[160];
    snprintf(detail, sizeof detail,
             "fd %d is not open (closed, or never opened; call weft_fd_forget before close)", fd);
    host->set_error_detail(detail);
    return WEFT_EINVAL;
  }
  *revents = ready_events(events, polled);
  return WEFT_OK;
}

weft_status_t pt_fd_wait(weft_plat_rt_t *rt, int32_t fd, uint32_t events, int64_t deadline, uint32_t *revents) {
  if (host->cancel_pending()) return WEFT_ECANCELED;
  struct pollfd fds[2] = {{.fd = fd, .events = poll_events(events)}, {.fd = -1, .events = POLLIN}};
  /* Level-triggered: a ready fd, or a deadline already past, needs no waiter. */
  int rc = poll_until(fds, 1, INT64_MIN);
  if (rc < 0) return pt_fail("poll", errno);
  if (rc > 0) return finish(fd, events, fds[0].revents, revents);
  if (pt_expired(deadline)) return WEFT_ETIMEDOUT;

  io_waiter_t w = {.fd = fd, .wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .forgotten = 0, .next = NULL};
  if (w.wake < 0) return pt_fail("eventfd", errno); /* EMFILE, ENFILE, ENOMEM: WEFT_ENOMEM */
  fds[1].fd = w.wake;
  registry_add(&rt->io, &w);
  wait_set_io_wake(w.wake);
  weft_status_t st;
  host->blocking_enter();
  for (;;) {
    if (registry_forgotten(&rt->io, &w)) {
      st = WEFT_ECLOSED;
      break;
    }
    if (host->cancel_pending()) {
      st = WEFT_ECANCELED;
      break;
    }
    fds[0].revents = fds[1].revents = 0;
    rc = poll_until(fds, 2, deadline);
    if (rc < 0) {
      st = pt_fail("poll", errno);
      break;
    }
    if (rc == 0) {
      st = WEFT_ETIMEDOUT;
      break;
    }
    if (fds[1].revents != 0) { /* cancelled or forgotten (asked above), or stale */
      wake_drain(w.wake);
      continue;
    }
    st = finish(fd, events, fds[0].revents, revents);
    break;
  }
  host->blocking_leave();
  wait_set_io_wake(-1);
  registry_remove(&rt->io, &w);
  close(w.wake);
  return st;
}

weft_status_t pt_fd_forget(weft_plat_rt_t *rt, int32_t fd) {
  pthread_mutex_lock(&rt->io.lock);
  for (io_waiter_t *w = *bucket(&rt->io, fd); w != NULL; w = w->next) {
    if (w->fd == fd) {
      w->forgotten = 1;
      wake_signal(w->wake);
    }
  }
  pthread_mutex_unlock(&rt->io.lock);
  return WEFT_OK; /* nothing else is kept per fd: poll() registers nothing */
}
