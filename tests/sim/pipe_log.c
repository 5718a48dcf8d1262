/* Determinism with IO waits: three writer tasks write their letter into one
 * non-blocking pipe, each waiting for it to be writable first; a reader task waits for
 * it to be readable and logs what each read returned ('|' between reads). The log is
 * the schedule together with the pipe's readiness: one seed, one log.
 *
 * `pipe_log stuck`: the main task waits for ever on a pipe nobody writes; on sim that
 * ends in the deadlock report, naming the fd, once WEFT_SIM_IO_IDLE_MS has passed.
 *
 * `pipe_log outside`: the byte comes from outside the program's tasks (a thread the
 * host made, which makes no weft call) after 100 ms, while a timer signal with a
 * handler interrupts the process every 5 ms: the wait must see the byte, neither a
 * deadlock nor an early report because a signal cut the scheduler's poll short. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define WRITERS 3
#define PER 6

static weft_runtime_t *rt;
static int pipe_fds[2];
static char log_buf[4 * WRITERS * PER];
static int log_len;

static int32_t writer(void *arg, void **result) {
  (void)result;
  char letter = (char)('A' + (long)arg);
  for (int i = 0; i < PER; i++) {
    check(weft_fd_wait(rt, pipe_fds[1], WEFT_IO_WRITE, WEFT_FOREVER, NULL), "weft_fd_wait (write)");
    if (write(pipe_fds[1], &letter, 1) != 1) {
      printf("write: %s\n", strerror(errno));
      exit(1);
    }
  }
  return 0;
}

static int32_t reader(void *arg, void **result) {
  (void)arg;
  (void)result;
  int got = 0;
  while (got < WRITERS * PER) {
    char buf[4];
    ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    if (n > 0) {
      memcpy(log_buf + log_len, buf, (size_t)n);
      log_len += (int)n;
      log_buf[log_len++] = '|';
      got += (int)n;
    } else if (n < 0 && errno == EAGAIN) {
      check(weft_fd_wait(rt, pipe_fds[0], WEFT_IO_READ, WEFT_FOREVER, NULL), "weft_fd_wait (read)");
    } else {
      printf("read: %zd (%s)\n", n, strerror(errno));
      exit(1);
    }
  }
  return 0;
}

static void on_alarm(int sig) { (void)sig; }

static void *write_later(void *arg) {
  (void)arg;
  struct timespec nap = {0, 100 * 1000000};
  nanosleep(&nap, NULL);
  char c = 'o';
  if (write(pipe_fds[1], &c, 1) != 1) exit(3);
  return NULL;
}

/* The main task waits for a byte a host thread writes; signals keep arriving. */
static int wait_for_outside(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: poll returns EINTR */
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every = {{0, 5000}, {0, 5000}};
  setitimer(ITIMER_REAL, &every, NULL);
  pthread_t writer;
  if (pthread_create(&writer, NULL, write_later, NULL) != 0) return 1;
  uint32_t ready = 0;
  check(weft_fd_wait(rt, pipe_fds[0], WEFT_IO_READ, WEFT_FOREVER, &ready), "weft_fd_wait (outside)");
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  pthread_join(writer, NULL);
  printf("the byte from outside arrived: ready 0x%x\n", (unsigned)ready);
  return ready == WEFT_IO_READ ? 0 : 1;
}

int main(int argc, char **argv) {
  rt = open_runtime();
  if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) return 1;
  if (argc > 1 && strcmp(argv[1], "stuck") == 0) {
    check(weft_fd_wait(rt, pipe_fds[0], WEFT_IO_READ, WEFT_FOREVER, NULL), "weft_fd_wait (stuck)");
    printf("a byte nobody wrote arrived\n");
    return 1;
  }
  if (argc > 1 && strcmp(argv[1], "outside") == 0) return wait_for_outside();
  weft_task_t *r = spawn(rt, reader, NULL);
  weft_task_t *w[WRITERS];
  for (long i = 0; i < WRITERS; i++) w[i] = spawn(rt, writer, (void *)i);
  for (int i = 0; i < WRITERS; i++) join(w[i]);
  join(r);
  printf("%.*s\n", log_len, log_buf);
  check(weft_fd_forget(rt, pipe_fds[0]), "weft_fd_forget");
  check(weft_fd_forget(rt, pipe_fds[1]), "weft_fd_forget");
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  check(weft_runtime_close(rt), "weft_runtime_close");
  return 0;
}
