/* The machine's state, not weft's: how long a cache line takes to go from one CPU to
 * another and back. benches/run.py times it before and after every case, because this
 * virtual machine switches between two modes as the host moves its virtual CPUs (about
 * 70 ns a round trip, or about 350 ns), and every figure that moves lines between CPUs
 * (contended locks, channels) moves with it (docs/performance.md, "What the slow mode
 * is"). Two threads, pinned to the first two CPUs the process may use, pass a counter
 * back and forth on one 128-byte slot. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

typedef struct {
  _Alignas(128) _Atomic long ball;
  int cpu[2];
  long n;
} court_t;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  CHECK(pthread_setaffinity_np(pthread_self(), sizeof set, &set));
}

/* The far side: answers each odd value with the next even one. */
static void *returner(void *arg) {
  court_t *c = arg;
  pin(c->cpu[1]);
  for (long i = 0; i < c->n; i++) {
    while (atomic_load_explicit(&c->ball, memory_order_acquire) != 2 * i + 1) {
    }
    atomic_store_explicit(&c->ball, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

typedef struct {
  court_t *court;
  double ns;
} server_t;

static void *server(void *arg) {
  server_t *s = arg;
  court_t *c = s->court;
  pin(c->cpu[0]);
  int64_t t0 = now_ns();
  for (long i = 0; i < c->n; i++) {
    atomic_store_explicit(&c->ball, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(&c->ball, memory_order_acquire) != 2 * i + 2) {
    }
  }
  s->ns = (double)(now_ns() - t0) / (double)c->n;
  return NULL;
}

/* ns per round trip; 0 where the process may use fewer than two CPUs. */
static sample_t round_trip(const params_t *p) {
  cpu_set_t allowed;
  CHECK(sched_getaffinity(0, sizeof allowed, &allowed));
  static court_t court;
  int found = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
    if (CPU_ISSET(cpu, &allowed)) court.cpu[found++] = cpu;
  if (found < 2) return (sample_t){0, 0};
  atomic_store(&court.ball, 0);
  court.n = p->n;
  server_t s = {&court, 0};
  pthread_t a, b;
  CHECK(pthread_create(&b, NULL, returner, &court));
  CHECK(pthread_create(&a, NULL, server, &s));
  CHECK(pthread_join(a, NULL));
  CHECK(pthread_join(b, NULL));
  return (sample_t){s.ns, 0};
}

void register_machine_kinds(void) {
  static const kind_t kind = {
      .kind = "cpu_round_trip",
      .default_n = 20000,
      .unit = "ns per round trip of a cache line between two CPUs (0: fewer than two CPUs)",
      .better = "lower",
      .variants = {{"line", round_trip}},
  };
  bench_register(&kind);
}
