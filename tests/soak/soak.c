/*
 * The soak: weft under sustained load for a given time, with exact counts.
 *
 *   soak --seconds S [--tasks N] [--no-overload] [--no-stw] [--capacity C]
 *        N: channel tasks per round (default 64); the switches leave out the overload
 *        rounds or the collector, or give every channel capacity C (0: rendezvous,
 *        -1: unbounded), to tell which costs what
 *
 * The platform is $WEFT_PLATFORM. The run is a sequence of rounds until S seconds have
 * passed. Each round spawns N tasks on fresh channels ("pipes" of 4 producers and 4
 * consumers; rendezvous, bounded or unbounded) that move heap-allocated elements
 * (pointers, with an elem_drop that frees what is never received). A pipe ends one of
 * three ways: the last producer closes it; a closer task closes it early (producers get
 * WEFT_ECLOSED and keep their element); or its consumers stop after a quota and the last
 * of them closes it (what they leave is dropped when the channel is released). Every other round is an
 * overload round: 4 busy tasks per CPU that poll safepoints, and 4 pairs per CPU that
 * pass a token through a weft mutex and condition, so that many more threads are
 * runnable than there are CPUs. All along, a collector (an attached host thread; on sim,
 * a task) stops the world every 1-5 ms and checks that no managed work runs while it
 * holds it.
 *
 * Checked exactly, every round: each element was sent once, and is received or dropped
 * exactly once, or its send failed and its producer kept it; per producer, each
 * consumer sees its elements in order; the token pairs count every pass; no managed
 * work during a stop; weft_tasks_foreach sees at most one mutator running then. A
 * watchdog fails the run when nothing progresses for 60 s. Printed: every 10 s and at
 * the end, messages per second, rounds, stops, the longest wait for a stop, RSS now and
 * peak, and the CPU time used against the wall time. No figure is asserted.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define PRODUCERS 4
#define CONSUMERS 4
#define MAX_PIPES 64
#define PER_PRODUCER 1500
#define MAX_PAIRS 64

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "\nSOAK FAILURE: ");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n  weft_last_error() on this thread: %s\n", weft_last_error());
  fflush(stderr);
  _exit(1);
}

#define CHECK(cond, ...)            \
  do {                              \
    if (!(cond)) die(__VA_ARGS__);  \
  } while (0)

static void ok(const char *call, weft_status_t st) {
  CHECK(st == WEFT_OK, "%s returned %d (%s)", call, st, weft_strerror(st));
}

static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------------------- */

static weft_runtime_t *rt;
static const void *flag;
static atomic_long epoch;     /* managed work */
static atomic_int in_stop;    /* set while the collector holds the world */
static atomic_long progress;
static atomic_long total_msgs, total_dropped, total_refused, total_passes, total_stops, total_busy;
static atomic_long max_stop_ns;
static atomic_int collector_quit;

static void managed_work(void) {
  CHECK(!atomic_load_explicit(&in_stop, memory_order_relaxed), "managed work ran while the world was stopped");
  atomic_fetch_add_explicit(&epoch, 1, memory_order_relaxed);
}

static void poll(void) { WEFT_SAFEPOINT_POLL(rt, flag); }

typedef struct {
  uint32_t pipe, producer, seq;
} msg_t;

enum { END_LAST_PRODUCER, END_EARLY_CLOSE, END_QUOTA };

typedef struct {
  int index;
  int end;
  size_t cap;
  weft_chan_t *ch;
  atomic_int producers_left, consumers_left;
  long quota;
  atomic_long taken;                /* received so far (quota pipes) */
  atomic_long sent_ok, refused, received, dropped;
  atomic_uchar seen[PRODUCERS][PER_PRODUCER];
  int64_t close_after_ns;
} pipe_t;

typedef struct {
  pipe_t *pipe;
  int id;
} role_t;

static void mark(pipe_t *p, const msg_t *m, const char *how) {
  CHECK(m->pipe == (uint32_t)p->index && m->producer < PRODUCERS && m->seq < PER_PRODUCER,
        "pipe %d: a foreign element %s (pipe %u, producer %u, seq %u)", p->index, how, m->pipe, m->producer, m->seq);
  CHECK(atomic_exchange(&p->seen[m->producer][m->seq], 1) == 0, "pipe %d: element %u/%u %s twice", p->index,
        m->producer, m->seq, how);
}

static void drop_msg(void *elem, void *ud) {
  pipe_t *p = ud;
  msg_t *m = *(msg_t **)elem;
  mark(p, m, "dropped");
  atomic_fetch_add(&p->dropped, 1);
  free(m);
}

static int32_t producer(void *arg, void **result) {
  role_t *r = arg;
  pipe_t *p = r->pipe;
  (void)result;
  for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
    poll();
    msg_t *m = malloc(sizeof *m);
    CHECK(m != NULL, "out of memory");
    m->pipe = (uint32_t)p->index;
    m->producer = (uint32_t)r->id;
    m->seq = seq;
    managed_work();
    weft_status_t st = weft_chan_send(p->ch, &m, WEFT_FOREVER);
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    if (st == WEFT_OK) {
      atomic_fetch_add(&p->sent_ok, 1);
      continue;
    }
    CHECK(st == WEFT_ECLOSED, "weft_chan_send returned %d (%s)", st, weft_strerror(st));
    free(m); /* not taken: still ours */
    atomic_fetch_add(&p->refused, PER_PRODUCER - seq);
    break;
  }
  /* The last producer closes (but not where a closer task does it early): consumers
   * waiting for more get WEFT_ECLOSED once the channel is drained. */
  if (atomic_fetch_sub(&p->producers_left, 1) == 1 && p->end != END_EARLY_CLOSE)
    ok("weft_chan_close", weft_chan_close(p->ch));
  return 0;
}

static int32_t consumer(void *arg, void **result) {
  role_t *r = arg;
  pipe_t *p = r->pipe;
  int32_t last[PRODUCERS];
  (void)result;
  for (int i = 0; i < PRODUCERS; i++) last[i] = -1;
  for (;;) {
    if (p->end == END_QUOTA && atomic_load(&p->taken) >= p->quota) break;
    msg_t *m = NULL;
    weft_status_t st = weft_chan_recv(p->ch, &m, WEFT_FOREVER);
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    poll();
    if (st == WEFT_ECLOSED) break;
    CHECK(st == WEFT_OK, "weft_chan_recv returned %d (%s)", st, weft_strerror(st));
    managed_work();
    mark(p, m, "received");
    CHECK((int32_t)m->seq > last[m->producer], "pipe %d: producer %u's #%u after #%d (FIFO)", p->index, m->producer,
          m->seq, last[m->producer]);
    last[m->producer] = (int32_t)m->seq;
    atomic_fetch_add(&p->received, 1);
    atomic_fetch_add(&p->taken, 1);
    free(m);
  }
  /* The last consumer of a quota pipe closes it: producers waiting get WEFT_ECLOSED. */
  if (atomic_fetch_sub(&p->consumers_left, 1) == 1 && p->end == END_QUOTA) ok("weft_chan_close", weft_chan_close(p->ch));
  return 0;
}

static int32_t closer(void *arg, void **result) {
  pipe_t *p = arg;
  (void)result;
  weft_status_t st = weft_sleep_until(rt, weft_deadline_after(rt, p->close_after_ns));
  CHECK(st == WEFT_OK, "weft_sleep_until returned %s", weft_strerror(st));
  ok("weft_chan_close", weft_chan_close(p->ch));
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Overload: busy tasks and token pairs                                               */
/* ---------------------------------------------------------------------------------- */

typedef struct {
  weft_mutex_t m;
  weft_cond_t c;
  int turn, stop;
  long passes[2];
  long count;
} pair_t;

typedef struct {
  pair_t *pair;
  int side;
} pair_role_t;

static atomic_int busy_quit;

static int32_t busy(void *arg, void **result) {
  (void)arg;
  (void)result;
  while (!atomic_load_explicit(&busy_quit, memory_order_relaxed)) {
    for (int i = 0; i < 1000; i++) {
      poll();
      managed_work();
    }
    atomic_fetch_add_explicit(&total_busy, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  }
  return 0;
}

static int32_t pass_token(void *arg, void **result) {
  pair_role_t *r = arg;
  pair_t *p = r->pair;
  (void)result;
  for (;;) {
    poll();
    ok("weft_mutex_lock", weft_mutex_lock(&p->m));
    while (p->turn != r->side && !p->stop) ok("weft_cond_wait", weft_cond_wait(&p->c, &p->m));
    if (p->stop) {
      ok("weft_mutex_unlock", weft_mutex_unlock(&p->m));
      return 0;
    }
    p->count++;
    p->passes[r->side]++;
    p->turn = 1 - r->side;
    ok("weft_cond_signal", weft_cond_signal(&p->c));
    ok("weft_mutex_unlock", weft_mutex_unlock(&p->m));
    managed_work();
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  }
}

/* ---------------------------------------------------------------------------------- */
/* The collector: stops the world every 1-5 ms                                         */
/* ---------------------------------------------------------------------------------- */

typedef struct {
  int running, total;
} census_t;

static bool census_visit(const weft_task_info_t *info, void *ud) {
  census_t *c = ud;
  c->total++;
  if (info->state == WEFT_TASK_RUNNING) c->running++;
  return false;
}

static void collect(void) {
  uint64_t s = 12345;
  while (!atomic_load(&collector_quit)) {
    ok("weft_sleep_until", weft_sleep_until(rt, weft_deadline_after(rt, 1000000 + (int64_t)(rnd(&s) % 4000000))));
    int64_t t0 = weft_now(rt);
    ok("weft_stw_begin", weft_stw_begin(rt, WEFT_FOREVER));
    int64_t waited = weft_now(rt) - t0;
    atomic_store(&in_stop, 1);
    long e0 = atomic_load(&epoch);
    census_t c = {0, 0};
    ok("weft_tasks_foreach", weft_tasks_foreach(rt, census_visit, &c));
    CHECK(c.running <= 1, "%d of %d mutators running while the world is stopped", c.running, c.total);
    CHECK(atomic_load(&epoch) == e0, "managed work ran while the world was stopped");
    atomic_store(&in_stop, 0);
    ok("weft_stw_end", weft_stw_end(rt));
    atomic_fetch_add(&total_stops, 1);
    long prev = atomic_load(&max_stop_ns);
    while (waited > prev && !atomic_compare_exchange_weak(&max_stop_ns, &prev, waited)) {
    }
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
  }
}

/* On a thread platform the collector is a host thread of its own, attached to weft. */
static void *collector_thread(void *arg) {
  (void)arg;
  ok("weft_thread_attach", weft_thread_attach(rt));
  collect();
  ok("weft_thread_detach", weft_thread_detach(rt));
  return NULL;
}

/* On a deterministic platform (sim), where only the runtime's own tasks may call weft,
 * it is a task. */
static int32_t collector_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  collect();
  return 0;
}

/* ---------------------------------------------------------------------------------- */

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long peak_rss_kib(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         (double)u.ru_stime.tv_usec / 1e6;
}

static void *watchdog(void *arg) {
  (void)arg;
  long last = -1;
  int still = 0;
  for (;;) {
    sleep(1);
    long now = atomic_load(&progress);
    if (now != last) {
      last = now;
      still = 0;
    } else if (++still >= 60) {
      fprintf(stderr, "\nSOAK FAILURE: no progress for 60 s (a hang); %ld messages so far\n", atomic_load(&total_msgs));
      fflush(stderr);
      _exit(1);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  double seconds = 60;
  int ntasks = 64, no_overload = 0, no_stw = 0;
  long capacity = -2; /* -2: random per pipe */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc) ntasks = atoi(argv[++i]);
    else if (strcmp(argv[i], "--no-overload") == 0) no_overload = 1;
    else if (strcmp(argv[i], "--no-stw") == 0) no_stw = 1;
    else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc) capacity = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: %s --seconds S [--tasks N] [--no-overload] [--no-stw] [--capacity C]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int npipes = ntasks / (PRODUCERS + CONSUMERS);
  if (npipes < 1) npipes = 1;
  if (npipes > MAX_PIPES) npipes = MAX_PIPES;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) cpus = 1;
  int nbusy = (int)(4 * cpus), npairs = (int)(4 * cpus);
  if (npairs > MAX_PAIRS) npairs = MAX_PAIRS;

  /* On sim, virtual time moves 1 us a step (docs/sim.md): otherwise it moves only when
   * every task blocks, which the busy tasks of an overload round never do, and the
   * collector's and the closers' sleeps would last until the round ends. And a soak is
   * a long program: no step limit (sim's default ends a run after 50 million steps).
   * Other platforms read neither. */
  setenv("WEFT_SIM_STEP_NS", "1000", 0);
  setenv("WEFT_SIM_MAX_STEPS", "18446744073709551615", 0);
  ok("weft_runtime_open", weft_runtime_open(NULL, &rt));
  flag = weft_safepoint_flag(rt);
  const weft_platform_info_t *info = weft_runtime_platform(rt);
  int one_thread = (info->caps & WEFT_CAP_DETERMINISTIC) != 0;
  printf("soak: %.0f s on %s, %d channel tasks per round (%d pipes), overload rounds add %d busy tasks and %d "
         "token pairs on %ld CPUs\n",
         seconds, info->name, npipes * (PRODUCERS + CONSUMERS), npipes, nbusy, npairs, cpus);
  /* The watchdog never calls weft: a host thread on every platform. */
  pthread_t wd, coll;
  weft_task_t *coll_task = NULL;
  CHECK(pthread_create(&wd, NULL, watchdog, NULL) == 0, "pthread_create");
  pthread_detach(wd);
  if (!no_stw && one_thread) ok("weft_spawn", weft_spawn(rt, collector_task, NULL, NULL, &coll_task));
  if (!no_stw && !one_thread) CHECK(pthread_create(&coll, NULL, collector_thread, NULL) == 0, "pthread_create");

  pipe_t *pipes = calloc((size_t)npipes, sizeof *pipes);
  role_t *roles = calloc((size_t)npipes * (PRODUCERS + CONSUMERS), sizeof *roles);
  weft_task_t **tasks = calloc((size_t)npipes * (PRODUCERS + CONSUMERS + 1) + (size_t)(nbusy + 2 * npairs), sizeof *tasks);
  pair_t *pairs = calloc((size_t)npairs, sizeof *pairs);
  pair_role_t *pair_roles = calloc((size_t)npairs * 2, sizeof *pair_roles);
  CHECK(pipes && roles && tasks && pairs && pair_roles, "out of memory");

  uint64_t s = 0x50a6;
  double start = now_s(), next_report = start + 10;
  long rounds = 0, overload_rounds = 0, rss_first = -1;
  double kind_secs[2] = {0, 0};
  long kind_msgs[2] = {0, 0};
  static const size_t caps[] = {0, 1, 16, 256, WEFT_CHAN_UNBOUNDED};
  while (now_s() - start < seconds) {
    int overload = !no_overload && rounds % 2 == 1;
    double round_start = now_s();
    long msgs_before = atomic_load(&total_msgs);
    int nt = 0;
    for (int i = 0; i < npipes; i++) {
      pipe_t *p = &pipes[i];
      memset(p, 0, sizeof *p);
      p->index = i;
      p->end = (int)(rnd(&s) % 3);
      p->cap = caps[rnd(&s) % 5];
      if (capacity >= 0) p->cap = (size_t)capacity;
      if (capacity == -1) p->cap = WEFT_CHAN_UNBOUNDED;
      p->quota = (long)(rnd(&s) % (PRODUCERS * PER_PRODUCER));
      p->close_after_ns = (int64_t)(rnd(&s) % 20000000);
      atomic_store(&p->producers_left, PRODUCERS);
      atomic_store(&p->consumers_left, CONSUMERS);
      weft_chan_opts_t o;
      weft_chan_opts_init(&o);
      o.elem_drop = drop_msg;
      o.drop_ud = p;
      ok("weft_chan_new", weft_chan_new(rt, sizeof(msg_t *), p->cap, &o, &p->ch));
    }
    if (overload) {
      atomic_store(&busy_quit, 0);
      for (int i = 0; i < nbusy; i++) ok("weft_spawn", weft_spawn(rt, busy, NULL, NULL, &tasks[nt++]));
      for (int i = 0; i < npairs; i++) {
        pair_t *p = &pairs[i];
        memset(p, 0, sizeof *p);
        ok("weft_mutex_init", weft_mutex_init(rt, &p->m, 0));
        ok("weft_cond_init", weft_cond_init(rt, &p->c));
        for (int side = 0; side < 2; side++) {
          pair_roles[2 * i + side].pair = p;
          pair_roles[2 * i + side].side = side;
          ok("weft_spawn", weft_spawn(rt, pass_token, &pair_roles[2 * i + side], NULL, &tasks[nt++]));
        }
      }
    }
    int first_pipe_task = nt;
    for (int i = 0; i < npipes; i++) {
      for (int k = 0; k < PRODUCERS + CONSUMERS; k++) {
        role_t *r = &roles[i * (PRODUCERS + CONSUMERS) + k];
        r->pipe = &pipes[i];
        r->id = k < PRODUCERS ? k : k - PRODUCERS;
        ok("weft_spawn", weft_spawn(rt, k < PRODUCERS ? producer : consumer, r, NULL, &tasks[nt++]));
      }
      if (pipes[i].end == END_EARLY_CLOSE) ok("weft_spawn", weft_spawn(rt, closer, &pipes[i], NULL, &tasks[nt++]));
    }
    for (int i = first_pipe_task; i < nt; i++) {
      int32_t code = -1;
      ok("weft_join", weft_join(tasks[i], WEFT_FOREVER, &code, NULL));
      CHECK(code == 0, "a task failed with %d", code);
    }
    if (overload) {
      atomic_store(&busy_quit, 1);
      for (int i = 0; i < npairs; i++) {
        ok("weft_mutex_lock", weft_mutex_lock(&pairs[i].m));
        pairs[i].stop = 1;
        ok("weft_cond_broadcast", weft_cond_broadcast(&pairs[i].c));
        ok("weft_mutex_unlock", weft_mutex_unlock(&pairs[i].m));
      }
      for (int i = 0; i < first_pipe_task; i++) ok("weft_join", weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
      for (int i = 0; i < npairs; i++) {
        pair_t *p = &pairs[i];
        CHECK(p->count == p->passes[0] + p->passes[1], "token pair %d: %ld passes counted, %ld + %ld made", i, p->count,
              p->passes[0], p->passes[1]);
        CHECK(p->passes[0] - p->passes[1] == 0 || p->passes[0] - p->passes[1] == 1,
              "token pair %d: sides passed %ld and %ld times (turns broken)", i, p->passes[0], p->passes[1]);
        atomic_fetch_add(&total_passes, p->count);
        ok("weft_cond_destroy", weft_cond_destroy(&p->c));
        ok("weft_mutex_destroy", weft_mutex_destroy(&p->m));
      }
      overload_rounds++;
    }
    for (int i = 0; i < npipes; i++) {
      pipe_t *p = &pipes[i];
      weft_chan_release(p->ch); /* drops what was never received */
      long sent = atomic_load(&p->sent_ok), got = atomic_load(&p->received), dropped = atomic_load(&p->dropped);
      CHECK(sent + atomic_load(&p->refused) == PRODUCERS * PER_PRODUCER,
            "pipe %d: %ld sent + %ld refused != %d attempted", i, sent, atomic_load(&p->refused),
            PRODUCERS * PER_PRODUCER);
      CHECK(sent == got + dropped, "pipe %d (end %d, capacity %zu): %ld sent, %ld received + %ld dropped", i, p->end,
            p->cap, sent, got, dropped);
      long seen = 0;
      for (int a = 0; a < PRODUCERS; a++)
        for (int b = 0; b < PER_PRODUCER; b++) seen += atomic_load(&p->seen[a][b]);
      CHECK(seen == sent, "pipe %d: %ld distinct elements came out, %ld went in", i, seen, sent);
      atomic_fetch_add(&total_msgs, got);
      atomic_fetch_add(&total_dropped, dropped);
      atomic_fetch_add(&total_refused, atomic_load(&p->refused));
    }
    kind_secs[overload] += now_s() - round_start;
    kind_msgs[overload] += atomic_load(&total_msgs) - msgs_before;
    rounds++;
    if (rss_first < 0) rss_first = rss_kib();
    double t = now_s();
    if (t >= next_report) {
      printf("  %5.0f s: %ld rounds, %.0f msgs/s, %ld stops, RSS %ld KiB\n", t - start, rounds,
             (double)atomic_load(&total_msgs) / (t - start), atomic_load(&total_stops), rss_kib());
      next_report += 10;
    }
  }
  atomic_store(&collector_quit, 1);
  if (coll_task != NULL) ok("weft_join", weft_join(coll_task, WEFT_FOREVER, NULL, NULL));
  else if (!no_stw) pthread_join(coll, NULL);
  ok("weft_runtime_drain", weft_runtime_drain(rt, WEFT_FOREVER));
  ok("weft_runtime_close", weft_runtime_close(rt));
  double wall = now_s() - start, cpu = cpu_s();
  printf("soak on %s: %.0f s, %ld rounds (%ld overloaded), %ld messages received (%.0f/s), %ld dropped, %ld sends "
         "refused after close, %ld token passes, %ld stops of the world (longest wait %.1f ms), RSS after round 1 %ld KiB, "
         "at the end %ld KiB, peak %ld KiB, CPU %.1f s for %.1f s wall (%.2f CPUs)\n",
         info->name, wall, rounds, overload_rounds, atomic_load(&total_msgs), (double)atomic_load(&total_msgs) / wall,
         atomic_load(&total_dropped), atomic_load(&total_refused), atomic_load(&total_passes),
         atomic_load(&total_stops), (double)atomic_load(&max_stop_ns) / 1e6, rss_first, rss_kib(), peak_rss_kib(), cpu,
         wall, cpu / wall);
  printf("  plain rounds: %.0f msgs/s over %.0f s; overload rounds: %.0f msgs/s over %.0f s, beside %.0f token "
         "passes/s and %.0f busy polls/s\n",
         kind_secs[0] > 0 ? (double)kind_msgs[0] / kind_secs[0] : 0, kind_secs[0],
         kind_secs[1] > 0 ? (double)kind_msgs[1] / kind_secs[1] : 0, kind_secs[1],
         kind_secs[1] > 0 ? (double)atomic_load(&total_passes) / kind_secs[1] : 0,
         kind_secs[1] > 0 ? (double)atomic_load(&total_busy) * 1000 / kind_secs[1] : 0);
  free(pipes);
  free(roles);
  free(tasks);
  free(pairs);
  free(pair_roles);
  return 0;
}
