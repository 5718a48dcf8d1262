/* weftbench: the C side of weft's side-by-side benchmarks.
 *
 * One binary, many "kinds" of measurement. The driver (benches/run.py) asks for one kind
 * with its parameters; the binary runs every variant of it (weft and its peer, in this
 * process) alternately for the requested number of rounds and prints one JSON object
 * with every sample. The driver takes the medians and the ratios. */
#ifndef WEFTBENCH_H
#define WEFTBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "weft.h"

/* The parameters of one measurement, from the command line. */
typedef struct {
  long n;       /* iterations or messages */
  int threads;  /* threads (tasks) taking part, or mutators, or producers */
  int locks;    /* locks shared by the threads (contended mutex) */
  long cap;     /* channel capacity; -1 = unbounded */
  int chans;    /* channels in a select */
  int ms;       /* duration of a timed run, in milliseconds */
  int quick;    /* smoke-run sizes */
} params_t;

/* One sample of one variant: the figure, plus an optional secondary figure (fairness
 * spread for contended locks, stop+resume time for stop-the-world). */
typedef struct {
  double value;
  double extra;
} sample_t;

typedef sample_t (*variant_fn)(const params_t *p);

typedef struct {
  const char *name;  /* "weft", "pthread", "boehm", ... */
  variant_fn run;
} variant_t;

#define MAX_VARIANTS 6

typedef struct {
  const char *kind;
  const char *unit;        /* what the figure is, e.g. "ns per lock+unlock pair" */
  const char *better;      /* "lower" or "higher" */
  const char *extra_unit;  /* NULL when the kind has no secondary figure */
  long default_n;          /* --n when none is given (0: 1,000,000); a full run's size */
  variant_t variants[MAX_VARIANTS];
} kind_t;

/* Every source file registers its kinds with this. */
void bench_register(const kind_t *kind);
void register_mutex_kinds(void);
/* glibc's PTHREAD_MUTEX_ERRORCHECK mutex, lock+unlock p->n times: ns per pair (the
 * like-for-like peer of weft's always-checked mutex; mutex.c). */
sample_t uncontended_errorcheck(const params_t *p);
void register_cond_kinds(void);
void register_spawn_kinds(void);
void register_callpath_kinds(void);
void register_safepoint_kinds(void);
void register_chan_kinds(void); /* a no-op unless weft.h declares channels */
void register_parallel_kinds(void);
void register_parking_kinds(void);
void register_checks_kinds(void);
/* absl::Mutex, `nest` nested, its deadlock detection on or off (absl_lock.cc, C++). */
sample_t absl_nested(const params_t *p, int nest, int detect);
/* oneTBB (tbb_par.cc, C++): the parallel sum of bench_sum_term over [0, n), and the map
 * out[i] = in[i] * 1.5 + 1. */
uint64_t bench_sum_term(size_t i);
uint64_t tbb_sum(size_t n);
void tbb_map(const float *in, float *out, size_t n);
void register_green_kinds(void);
/* The machine's CPU-to-CPU round trip of a cache line (machine.c), for the driver. */
void register_machine_kinds(void);

/* The runtime every weft variant uses (native plugin unless $WEFT_PLATFORM says). */
extern weft_runtime_t *bench_rt;

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Fails the whole run: a benchmark that cannot do what it claims must not print a
 * figure. */
void die(const char *what, int code);

/* The median of v[0..n) (n >= 1); sorts v in place. */
double median_of(double *v, long n);
#define CHECK(call)                                  \
  do {                                               \
    int check_rc_ = (call);                          \
    if (check_rc_ != 0) die(#call, check_rc_);       \
  } while (0)

/* Two variants timed in one loop that alternates blocks of calls of each (A B, then
 * B A), for differences smaller than the machine's drift between two loops. Each
 * side's figure is the median ns per call of its blocks; one loop gives a round's
 * sample of both variants. */
typedef uint64_t (*block_fn)(long calls); /* runs `calls` calls; returns something
                                             computed from their results */
typedef struct {
  double median[2];
  int pending; /* medians not yet handed out */
} paired_t;

/* Side `s`'s sample: the pending median of the round's loop (p->n calls of each side
 * in blocks of `block`), or a new loop's. The driver runs both variants of a kind in
 * every round (and in the warm-up), so each loop serves exactly one round. */
sample_t paired_sample(paired_t *pr, const block_fn side[2], int s, const params_t *p, long block);

/* A spin-wait hint to the CPU. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* Spin until *flag becomes non-zero (start lines shared by the threads of a run). */
static inline void spin_until_set(const int *flag) {
  while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) cpu_relax();
}

/* Starts two pthreads, `a(arg_a)` and `b(arg_b)`, which wait at `*start` (see
 * spin_until_set); sets it, joins both, and returns the ns from the start to the last
 * join. */
int64_t time_two_threads(void *(*a)(void *), void *arg_a, void *(*b)(void *), void *arg_b, int *start);

/* A cheap per-thread random number generator (xorshift64). */
static inline uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Keeps a value alive so the compiler cannot drop the loop that computed it. */
static inline void keep(uint64_t v) { __asm__ volatile("" : : "r"(v) : "memory"); }

#endif
