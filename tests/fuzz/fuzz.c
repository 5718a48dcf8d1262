/*
 * The API fuzzer: random programs over include/weft.h, generated from a seed.
 *
 *   fuzz --seed S                 run seed S (the replay of a failure)
 *   fuzz --first S --seeds N      run seeds S, S+1, ..., S+N-1
 *   fuzz ... --verbose            one line per seed
 *   fuzz --seed S --selftest-hang worker 0 waits for ever: shows what the watchdog prints
 *
 * The platform is $WEFT_PLATFORM, as for any host. $WEFT_FUZZ_WATCHDOG (seconds,
 * default 30) is how long the run may go without any operation completing before the
 * watchdog declares a hang.
 *
 * A seed generates a program: 4-8 worker tasks and 0-2 attached host threads (none on a
 * platform that runs every task on the opening thread, WEFT_CAP_DETERMINISTIC: sim),
 * each with its own list of operations over 1-4 channels of random capacity
 * (rendezvous, bounded, unbounded) and element size, 2-3 mutexes (one maybe recursive)
 * with conditions, one rwlock: sends, receives, selects, closes, lock sections,
 * condition waits with timeouts and signals, sleeps, yields, managed work that polls
 * WEFT_SAFEPOINT_POLL, stop-the-world sections, cancels of other workers, child tasks
 * (joined with deadlines, cancelled, detached), retains and releases. 1-2 drainer tasks
 * receive (select, forever) from every channel until it is closed, so that a send may
 * wait forever; a channel is closed by whoever finishes the last operation that may
 * send on it (or earlier, by a random close). In half the seeds 2-3 actors meet at a
 * barrier, close one channel at once and each sends on it right after its close
 * returned: every such send must fail (a losing close must not return before the
 * channel is closed). Only the schedule is left to the OS: the program of a seed is
 * always the same. On a deterministic platform the schedule is the platform's, seeded
 * with the fuzzer's seed (weft_config_t.seed) unless $WEFT_SEED names one: there a seed
 * replays exactly.
 *
 * What is checked, on every call and at the end of every seed:
 *   - every status is one the header allows for that call in that situation
 *     (WEFT_ECANCELED only in a task that was cancelled, WEFT_ETIMEDOUT only with a
 *     finite deadline, no successful send and no timeout on a channel whose close had
 *     returned before the call began);
 *   - outputs are written only on success (receive buffers, select's *chosen and the
 *     buffers of the receive cases not chosen);
 *   - every element whose send succeeded is received or dropped (elem_drop) exactly
 *     once, an element whose send failed never is, elements arrive intact and, for each
 *     receiver, in the order their producer sent them on that channel;
 *   - mutexes, recursive mutexes and rwlocks exclude (unprotected read-modify-writes
 *     with a yield in the middle lose no update);
 *   - while a stop-the-world is held no mutator does managed work and at most one
 *     mutator (the holder) is seen running by weft_tasks_foreach;
 *   - no hang: the watchdog prints every task's state (weft_tasks_foreach) and each
 *     actor's last operations, then fails with the seed and its replay command.
 * The first failure ends the process with exit code 1 after printing the seed.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

/* ---------------------------------------------------------------------------------- */
/* Limits and the program's shape                                                     */
/* ---------------------------------------------------------------------------------- */

#define MAX_CHANS 4
#define MAX_MUTEXES 3
#define MAX_ACTORS 64  /* workers, threads, drainers and children */
#define MAX_CASES 4
#define RING 12        /* last operations remembered per actor */
#define ELEM_MAGIC 0x5745u

enum actor_kind { A_WORKER, A_THREAD, A_DRAINER, A_CHILD };

enum op_kind {
  OP_SEND, OP_RECV, OP_SELECT, OP_CLOSE, OP_LEN, OP_RETAIN,
  OP_MUTEX, OP_MUTEX_TRY, OP_MUTEX_UNTIL, OP_RWREAD, OP_RWWRITE, OP_RWTRY,
  OP_COND_WAIT, OP_COND_SIGNAL, OP_COND_BROADCAST,
  OP_SLEEP, OP_YIELD, OP_COMPUTE, OP_STW, OP_CANCEL,
  OP_SPAWN, OP_JOIN_CHILD, OP_CANCEL_CHILD, OP_DETACH_CHILD,
  OP_CLOSE_RACE, /* placed by gen_plan, never drawn: a barrier, a close, a send */
  OP_COUNT
};

static const uint16_t op_weights[OP_COUNT] = {
  /* send */ 220, /* recv */ 120, /* select */ 130, /* close */ 0, /* len */ 15, /* retain */ 15,
  /* mutex */ 50, /* try */ 20, /* until */ 20, /* rwread */ 20, /* rwwrite */ 20, /* rwtry */ 10,
  /* cond_wait */ 30, /* signal */ 20, /* broadcast */ 10,
  /* sleep */ 25, /* yield */ 20, /* compute */ 70, /* stw */ 35, /* cancel */ 0,
  /* spawn */ 30, /* join */ 20, /* cancel child */ 5, /* detach */ 5, /* close race */ 0,
};

static const char *const op_names[OP_COUNT] = {
  "send", "recv", "select", "close", "len", "retain/release",
  "mutex_lock", "mutex_try_lock", "mutex_lock_until", "rwlock_read", "rwlock_write",
  "rwlock_try", "cond_wait_until", "cond_signal", "cond_broadcast",
  "sleep_until", "yield", "compute", "stw", "cancel",
  "spawn", "join_child", "cancel_child", "detach_child", "close_race",
};

/* Deadline classes: already past, 20-320 us, 1-4 ms, forever. */
enum { DL_PAST, DL_SHORT, DL_MED, DL_FOREVER };
static const char *const dl_names[] = {"past", "short", "med", "forever"};

typedef struct {
  uint8_t chan;
  uint8_t op;       /* WEFT_SELECT_SEND or WEFT_SELECT_RECV */
  uint32_t ledger;  /* send cases: the element's ledger index */
  uint32_t seq;     /* send cases: the element's sequence number */
} case_t;

typedef struct {
  uint8_t kind;
  uint8_t dl;
  uint8_t chan;     /* channel, mutex, or worker index */
  uint8_t flag;     /* select: WEFT_SELECT_ORDERED; spawn: detached; sections: inner yield */
  uint8_t ncases;
  uint32_t n;       /* compute: iterations; spawn/join/cancel/detach: child actor */
  uint32_t ledger;  /* send: the element's ledger index */
  uint32_t seq;     /* send: the element's sequence number on (chan, producer) */
  case_t cases[MAX_CASES];
} op_t;

typedef struct {
  int kind;
  int parent;            /* children: the actor that spawns them */
  int nops;
  op_t *ops;
  uint64_t rng;          /* the actor's own run-time choices (drainer pauses) */
  uint8_t drains[MAX_CHANS]; /* drainers: which channels, and abandon-on-close */
  uint8_t abandon;
} program_t;

typedef struct {
  uint64_t seed;
  int nchans, nmutex, nworkers, nthreads, ndrainers, nactors;
  size_t cap[MAX_CHANS];
  size_t esize[MAX_CHANS];
  int recursive0;
  uint32_t close_pm, cancel_pm; /* per mille of operations that close, that cancel */
  int racers;                   /* actors in the close race (0: none this seed) */
  long sends_planned[MAX_CHANS]; /* operations that may send on each channel */
  uint32_t nledger;
  program_t actors[MAX_ACTORS];
} plan_t;

/* ---------------------------------------------------------------------------------- */
/* PRNG (splitmix64)                                                                  */
/* ---------------------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint32_t rnd_below(uint64_t *s, uint32_t n) { return (uint32_t)(rnd(s) % n); }
static int chance(uint64_t *s, int percent) { return (int)rnd_below(s, 100) < percent; }

static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t s = a * 0x9e3779b97f4a7c15ull ^ b;
  return rnd(&s);
}

/* ---------------------------------------------------------------------------------- */
/* Run-time state                                                                     */
/* ---------------------------------------------------------------------------------- */

enum { L_SENT = 1, L_UNSENT = 2, L_RECV = 4, L_DROP = 8 };

typedef struct {
  _Atomic uint32_t opno;   /* which operation of the program (or 0xffffffff: none) */
  _Atomic uint32_t kind;
  _Atomic uint32_t arg;
  _Atomic int32_t status;  /* -1 while in progress */
} ring_entry_t;

typedef struct run run_t;

typedef struct {
  run_t *run;
  int index;
  weft_task_t *handle;         /* workers: main's handle; children: the parent's */
  pthread_t thread;            /* attached host threads */
  atomic_int cancel_requested; /* set before weft_cancel is called on it */
  atomic_int state;            /* 0 not started, 1 running, 2 finished, 3 never spawned */
  atomic_int child_state[MAX_ACTORS]; /* parent side: 0 none, 1 joinable, 2 gone */
  _Atomic uint32_t ring_head;
  ring_entry_t ring[RING];
} actor_t;

typedef struct {
  run_t *run;
  int index;
  weft_chan_t *ch;
  atomic_int closed;        /* a weft_chan_close on it has returned */
  atomic_long remaining;    /* operations that may still send on it */
} chan_state_t;

struct run {
  const plan_t *plan;
  weft_runtime_t *rt;
  const void *flag;
  chan_state_t chans[MAX_CHANS];
  weft_mutex_t mutex[MAX_MUTEXES];
  weft_cond_t cond[MAX_MUTEXES];
  long counter[MAX_MUTEXES];      /* guarded by mutex[k] */
  atomic_long sections[MAX_MUTEXES];
  long cond_gen[MAX_MUTEXES];     /* guarded by mutex[k] */
  weft_rwlock_t rw;
  long rw_counter;                /* guarded by rw */
  atomic_long rw_writes;
  atomic_long epoch;              /* managed work */
  atomic_int go;
  atomic_int workers_done;
  atomic_int race_arrived;        /* the close race's barrier */
  atomic_uchar *ledger;
  atomic_long received, dropped, sent;
  actor_t actors[MAX_ACTORS];
};

/* The process-wide state the watchdog reads. */
static atomic_long progress;
static _Atomic(run_t *) current_run;
static _Atomic uint64_t current_seed;
static const char *argv0 = "fuzz";
static int selftest_hang; /* --selftest-hang: worker 0 waits for ever, to show the watchdog */
/* The platform runs every task on the thread that opened the runtime
 * (WEFT_CAP_DETERMINISTIC): no attached host threads, and its schedule's seed is ours. */
static int one_thread;
static int watchdog_seconds = 30;

/* ---------------------------------------------------------------------------------- */
/* Failure reporting                                                                  */
/* ---------------------------------------------------------------------------------- */

static const char *platform_name(void) {
  const char *p = getenv("WEFT_PLATFORM");
  return p ? p : "native";
}

/* On a deterministic platform the schedule also depends on these settings: the replay
 * line names those that are set. */
static const char *const schedule_env[] = {"WEFT_SEED", "WEFT_SIM_STRATEGY", "WEFT_SIM_PCT_DEPTH",
                                           "WEFT_SIM_PCT_STEPS", "WEFT_SIM_STEP_NS"};

static void print_replay(void) {
  fprintf(stderr, "replay: ");
  for (size_t i = 0; one_thread && i < sizeof schedule_env / sizeof schedule_env[0]; i++) {
    const char *value = getenv(schedule_env[i]);
    if (value != NULL) fprintf(stderr, "%s=%s ", schedule_env[i], value);
  }
  fprintf(stderr, "WEFT_PLATFORM=%s %s --seed %" PRIu64 "\n", platform_name(), argv0, current_seed);
}

static void dump_actors(run_t *run) {
  if (run == NULL) return;
  const plan_t *plan = run->plan;
  static const char *const kinds[] = {"worker", "thread", "drainer", "child"};
  static const char *const states[] = {"not started", "running", "finished", "never spawned"};
  fprintf(stderr, "actors (last operations, oldest first; status -1: in progress):\n");
  for (int i = 0; i < plan->nactors; i++) {
    actor_t *a = &run->actors[i];
    int st = atomic_load(&a->state);
    fprintf(stderr, "  %c%d %s, %s%s, %d ops\n", "wtdc"[plan->actors[i].kind], i, kinds[plan->actors[i].kind],
            states[st & 3], atomic_load(&a->cancel_requested) ? ", cancelled" : "", plan->actors[i].nops);
    if (st == 0 || st == 3) continue;
    uint32_t head = atomic_load(&a->ring_head);
    uint32_t from = head > RING ? head - RING : 0;
    for (uint32_t k = from; k < head; k++) {
      ring_entry_t *e = &a->ring[k % RING];
      uint32_t kind = atomic_load(&e->kind);
      int32_t status = atomic_load(&e->status);
      uint32_t arg = atomic_load(&e->arg);
      fprintf(stderr, "      #%u %s(%u, %s) -> %d %s\n", atomic_load(&e->opno),
              kind < OP_COUNT ? op_names[kind] : "drain select", arg & 0xff, dl_names[(arg >> 8) & 3], status,
              status >= 0 ? weft_strerror(status) : "(in progress)");
    }
  }
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
  static atomic_int failing;
  if (atomic_exchange(&failing, 1)) {
    for (;;) pause(); /* one report only; the first failing thread exits */
  }
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "\nFUZZ FAILURE seed %" PRIu64 " on %s: ", current_seed, platform_name());
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n  weft_last_error() on this thread: %s\n", weft_last_error());
  dump_actors(atomic_load(&current_run));
  print_replay();
  fflush(stderr);
  _exit(1);
}

#define CHECK(cond, ...)       \
  do {                         \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

static void tick(void) { atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed); }

/* ---------------------------------------------------------------------------------- */
/* Generation                                                                         */
/* ---------------------------------------------------------------------------------- */

static uint8_t pick_dl(uint64_t *s, int forever_ok) {
  uint32_t r = rnd_below(s, 100);
  if (forever_ok && r < 30) return DL_FOREVER;
  if (r < 50) return DL_PAST;
  if (r < 85) return DL_SHORT;
  return DL_MED;
}

typedef struct {
  uint32_t seq[MAX_CHANS][MAX_ACTORS];
} seqs_t;

static void new_elem(plan_t *p, seqs_t *sq, int actor, int chan, uint32_t *ledger, uint32_t *seq) {
  *ledger = p->nledger++;
  *seq = sq->seq[chan][actor]++;
}

static void count_sends(plan_t *p, const op_t *op) {
  if (op->kind == OP_SEND) p->sends_planned[op->chan]++;
  if (op->kind == OP_SELECT) {
    int seen[MAX_CHANS] = {0};
    for (int k = 0; k < op->ncases; k++)
      if (op->cases[k].op == WEFT_SELECT_SEND && !seen[op->cases[k].chan]) {
        seen[op->cases[k].chan] = 1;
        p->sends_planned[op->cases[k].chan]++;
      }
  }
}

static int gen_child(plan_t *p, seqs_t *sq, uint64_t *s, int parent);

/* One operation for actor `self`; `kind_pool` limits children to simple ones. */
static void gen_op(plan_t *p, seqs_t *sq, uint64_t *s, int self, int is_child, op_t *op) {
  memset(op, 0, sizeof *op);
  const program_t *me = &p->actors[self];
  for (;;) {
    /* Weights per mille; closes and cancels at a rate chosen per seed (often none),
     * so that most seeds carry traffic to the end. */
    uint32_t r = rnd_below(s, 1000);
    int k = -1;
    uint32_t acc = 0;
    for (int i = 0; i < OP_COUNT; i++) {
      acc += i == OP_CLOSE ? p->close_pm : i == OP_CANCEL ? p->cancel_pm : op_weights[i];
      if (r < acc) {
        k = i;
        break;
      }
    }
    if (k < 0) continue;
    if (is_child && !(k == OP_SEND || k == OP_SELECT || k == OP_RECV || k == OP_COMPUTE || k == OP_SLEEP ||
                      k == OP_YIELD || k == OP_MUTEX || k == OP_LEN))
      continue;
    if (k == OP_CANCEL && p->nworkers < 2) continue;
    if ((k == OP_COND_WAIT || k == OP_COND_SIGNAL || k == OP_COND_BROADCAST) && p->nmutex < 2 && p->recursive0)
      continue;
    if (k == OP_SPAWN && p->nactors >= MAX_ACTORS) continue;
    op->kind = (uint8_t)k;
    break;
  }
  op->chan = (uint8_t)rnd_below(s, (uint32_t)p->nchans);
  switch (op->kind) {
    case OP_SEND:
      op->dl = pick_dl(s, 1);
      new_elem(p, sq, self, op->chan, &op->ledger, &op->seq);
      break;
    case OP_RECV:
      op->dl = pick_dl(s, 0);
      break;
    case OP_SELECT: {
      op->ncases = (uint8_t)(chance(s, 5) ? 0 : 1 + rnd_below(s, MAX_CASES));
      op->flag = chance(s, 50) ? WEFT_SELECT_ORDERED : 0;
      int any_send = 0;
      for (int c = 0; c < op->ncases; c++) {
        case_t *cs = &op->cases[c];
        cs->chan = (uint8_t)rnd_below(s, (uint32_t)p->nchans);
        cs->op = chance(s, 50) ? WEFT_SELECT_SEND : WEFT_SELECT_RECV;
        if (cs->op == WEFT_SELECT_SEND) {
          any_send = 1;
          new_elem(p, sq, self, cs->chan, &cs->ledger, &cs->seq);
        }
      }
      /* Forever only when a send case guarantees completion (the drainers receive). */
      op->dl = op->ncases == 0 ? DL_SHORT : pick_dl(s, any_send);
      break;
    }
    case OP_MUTEX:
    case OP_MUTEX_TRY:
    case OP_MUTEX_UNTIL:
      op->chan = (uint8_t)rnd_below(s, (uint32_t)p->nmutex);
      op->flag = (uint8_t)chance(s, 50);
      op->dl = pick_dl(s, 0);
      break;
    case OP_COND_WAIT:
    case OP_COND_SIGNAL:
    case OP_COND_BROADCAST: {
      int lo = p->recursive0 ? 1 : 0;
      op->chan = (uint8_t)(lo + (int)rnd_below(s, (uint32_t)(p->nmutex - lo)));
      op->dl = chance(s, 50) ? DL_SHORT : DL_MED;
      op->flag = (uint8_t)chance(s, 70); /* signal: with the mutex held */
      break;
    }
    case OP_RWREAD:
    case OP_RWWRITE:
    case OP_RWTRY:
      op->flag = (uint8_t)chance(s, 50);
      break;
    case OP_SLEEP:
      op->dl = chance(s, 70) ? DL_SHORT : DL_PAST;
      break;
    case OP_COMPUTE:
      op->n = 50 + rnd_below(s, 3000);
      break;
    case OP_STW:
      op->dl = chance(s, 50) ? DL_FOREVER : DL_MED;
      break;
    case OP_CANCEL: {
      uint32_t t;
      if (me->kind == A_WORKER) {
        t = rnd_below(s, (uint32_t)p->nworkers - 1);
        if ((int)t >= self) t++;
      } else {
        t = rnd_below(s, (uint32_t)p->nworkers);
      }
      op->chan = (uint8_t)t;
      break;
    }
    case OP_SPAWN:
      op->flag = (uint8_t)chance(s, 25); /* detached from the start */
      op->n = (uint32_t)gen_child(p, sq, s, self);
      break;
    default:
      break;
  }
  count_sends(p, op);
}

static int gen_child(plan_t *p, seqs_t *sq, uint64_t *s, int parent) {
  int idx = p->nactors++;
  program_t *c = &p->actors[idx];
  c->kind = A_CHILD;
  c->parent = parent;
  c->nops = 1 + (int)rnd_below(s, 5);
  c->ops = calloc((size_t)c->nops, sizeof *c->ops);
  if (c->ops == NULL) fail("out of memory");
  for (int i = 0; i < c->nops; i++) gen_op(p, sq, s, idx, 1, &c->ops[i]);
  return idx;
}

static void gen_plan(plan_t *p, uint64_t seed) {
  memset(p, 0, sizeof *p);
  p->seed = seed;
  uint64_t s = mix(seed, 0x77656674);
  static const size_t caps[] = {0, 0, 1, 2, 3, 8, 64, WEFT_CHAN_UNBOUNDED, WEFT_CHAN_UNBOUNDED};
  static const size_t sizes[] = {24, 32, 48, 128};
  p->nchans = 1 + (int)rnd_below(&s, MAX_CHANS);
  for (int c = 0; c < p->nchans; c++) {
    p->cap[c] = caps[rnd_below(&s, sizeof caps / sizeof caps[0])];
    p->esize[c] = sizes[rnd_below(&s, sizeof sizes / sizeof sizes[0])];
  }
  p->nmutex = 2 + (int)rnd_below(&s, MAX_MUTEXES - 1);
  p->recursive0 = chance(&s, 50);
  p->nworkers = 4 + (int)rnd_below(&s, 5);
  p->nthreads = (int)rnd_below(&s, 3); /* drawn on every platform: the rest stays the same */
  if (one_thread) p->nthreads = 0;
  p->ndrainers = 1 + (int)rnd_below(&s, 2);
  p->nactors = p->nworkers + p->nthreads + p->ndrainers;
  static const uint32_t close_pms[] = {0, 0, 1, 3, 8};
  static const uint32_t cancel_pms[] = {0, 0, 2, 5, 15};
  p->close_pm = close_pms[rnd_below(&s, 5)];
  p->cancel_pm = cancel_pms[rnd_below(&s, 5)];
  seqs_t *sq = calloc(1, sizeof *sq);
  if (sq == NULL) fail("out of memory");
  for (int i = 0; i < p->nworkers + p->nthreads; i++) p->actors[i].kind = i < p->nworkers ? A_WORKER : A_THREAD;
  for (int d = 0; d < p->ndrainers; d++) {
    program_t *dr = &p->actors[p->nworkers + p->nthreads + d];
    dr->kind = A_DRAINER;
    dr->abandon = (uint8_t)chance(&s, 40); /* stop receiving a channel once it is closed */
  }
  /* Every channel has a drainer; some have two. */
  for (int c = 0; c < p->nchans; c++) {
    int d = (int)rnd_below(&s, (uint32_t)p->ndrainers);
    p->actors[p->nworkers + p->nthreads + d].drains[c] = 1;
    if (p->ndrainers > 1 && chance(&s, 30)) p->actors[p->nworkers + p->nthreads + (1 - d)].drains[c] = 1;
  }
  for (int i = 0; i < p->nworkers + p->nthreads; i++) {
    program_t *a = &p->actors[i];
    a->nops = 20 + (int)rnd_below(&s, 60);
    a->ops = calloc((size_t)a->nops, sizeof *a->ops);
    if (a->ops == NULL) fail("out of memory");
    for (int k = 0; k < a->nops; k++) gen_op(p, sq, &s, i, 0, &a->ops[k]);
  }
  /* The close race: 2-3 workers or threads meet at a barrier, close one channel at
   * once, and each sends on it at once after its close returned: every such send must
   * fail with WEFT_ECLOSED (a losing close must not return before the channel is
   * closed). One race per seed, so that two barriers never wait for each other. */
  int senders = p->nworkers + p->nthreads;
  if (chance(&s, 50)) {
    p->racers = 2 + (int)rnd_below(&s, 2);
    int ch = (int)rnd_below(&s, (uint32_t)p->nchans);
    uint32_t first = rnd_below(&s, (uint32_t)senders);
    for (int r = 0; r < p->racers; r++) {
      program_t *a = &p->actors[(first + (uint32_t)r) % (uint32_t)senders];
      int at = (int)rnd_below(&s, (uint32_t)a->nops + 1);
      op_t *ops = calloc((size_t)a->nops + 1, sizeof *ops);
      if (ops == NULL) fail("out of memory");
      memcpy(ops, a->ops, (size_t)at * sizeof *ops);
      memcpy(ops + at + 1, a->ops + at, (size_t)(a->nops - at) * sizeof *ops);
      op_t *op = &ops[at];
      op->kind = OP_CLOSE_RACE;
      op->chan = (uint8_t)ch;
      op->dl = DL_PAST;
      new_elem(p, sq, (int)((first + (uint32_t)r) % (uint32_t)senders), ch, &op->ledger, &op->seq);
      p->sends_planned[ch]++;
      free(a->ops);
      a->ops = ops;
      a->nops++;
    }
  }
  /* Sequence numbers in program order (the close race was inserted afterwards). */
  memset(sq, 0, sizeof *sq);
  for (int i = 0; i < p->nactors; i++)
    for (int k = 0; k < p->actors[i].nops; k++) {
      op_t *op = &p->actors[i].ops[k];
      if (op->kind == OP_SEND || op->kind == OP_CLOSE_RACE) op->seq = sq->seq[op->chan][i]++;
      if (op->kind == OP_SELECT)
        for (int c = 0; c < op->ncases; c++)
          if (op->cases[c].op == WEFT_SELECT_SEND) op->cases[c].seq = sq->seq[op->cases[c].chan][i]++;
    }
  for (int i = 0; i < p->nactors; i++) p->actors[i].rng = mix(seed, (uint64_t)i + 1000);
  free(sq);
}

static void free_plan(plan_t *p) {
  for (int i = 0; i < p->nactors; i++) free(p->actors[i].ops);
}

/* ---------------------------------------------------------------------------------- */
/* Elements and the ledger                                                            */
/* ---------------------------------------------------------------------------------- */

typedef struct {
  uint16_t magic;
  uint16_t chan;
  uint16_t producer;
  uint16_t pad;
  uint32_t seq;
  uint32_t ledger;
  uint64_t check;
} elem_hdr_t; /* 24 bytes; the rest of an element is a pattern derived from `check` */

static uint64_t elem_check(const run_t *run, uint32_t ledger, int chan, int producer, uint32_t seq) {
  return mix(run->plan->seed ^ ((uint64_t)ledger << 20), ((uint64_t)chan << 40) ^ ((uint64_t)producer << 32) ^ seq);
}

static void make_elem(const run_t *run, unsigned char *buf, int chan, int producer, uint32_t ledger, uint32_t seq) {
  elem_hdr_t h = {ELEM_MAGIC, (uint16_t)chan, (uint16_t)producer, 0, seq, ledger, 0};
  h.check = elem_check(run, ledger, chan, producer, seq);
  memcpy(buf, &h, sizeof h);
  for (size_t i = sizeof h; i < run->plan->esize[chan]; i++) buf[i] = (unsigned char)((h.check >> (8 * (i % 8))) ^ i);
}

/* Checks an element that came out of channel `chan` (received or dropped). */
static elem_hdr_t check_elem(const run_t *run, const unsigned char *buf, int chan, const char *how) {
  elem_hdr_t h;
  memcpy(&h, buf, sizeof h);
  CHECK(h.magic == ELEM_MAGIC && h.chan == chan && h.ledger < run->plan->nledger && h.producer < run->plan->nactors,
        "%s on channel %d: not an element sent on it (magic %#x, chan %u, ledger %u)", how, chan, h.magic, h.chan,
        h.ledger);
  CHECK(h.check == elem_check(run, h.ledger, chan, h.producer, h.seq), "%s on channel %d: element %u corrupted", how,
        chan, h.ledger);
  for (size_t i = sizeof h; i < run->plan->esize[chan]; i++)
    CHECK(buf[i] == (unsigned char)((h.check >> (8 * (i % 8))) ^ i), "%s on channel %d: element %u byte %zu corrupted",
          how, chan, h.ledger, i);
  return h;
}

static void ledger_mark(run_t *run, uint32_t ledger, unsigned bit, const char *what) {
  unsigned before = atomic_fetch_or(&run->ledger[ledger], (unsigned char)bit);
  if (bit == L_RECV || bit == L_DROP)
    CHECK(!(before & (L_RECV | L_DROP)), "element %u %s although it was already %s", ledger, what,
          before & L_RECV ? "received" : "dropped");
  if (bit == L_UNSENT)
    CHECK(!(before & (L_RECV | L_DROP)), "element %u: its send failed, yet it was %s", ledger,
          before & L_RECV ? "received" : "dropped");
}

static void on_drop(void *elem, void *ud) {
  chan_state_t *cs = ud;
  elem_hdr_t h = check_elem(cs->run, elem, cs->index, "elem_drop");
  ledger_mark(cs->run, h.ledger, L_DROP, "dropped");
  atomic_fetch_add(&cs->run->dropped, 1);
}

/* ---------------------------------------------------------------------------------- */
/* The interpreter                                                                    */
/* ---------------------------------------------------------------------------------- */

typedef struct {
  run_t *run;
  actor_t *me;
  const program_t *prog;
  int32_t last_seq[MAX_CHANS][MAX_ACTORS]; /* FIFO per producer, as this actor sees it */
  weft_status_t st;                        /* the current operation's main status, for the ring */
} ctx_t;

static int64_t deadline_of(run_t *run, int dl, uint64_t *s) {
  switch (dl) {
    case DL_PAST: return chance(s, 50) ? 0 : weft_now(run->rt);
    case DL_SHORT: return weft_deadline_after(run->rt, 20000 + (int64_t)rnd_below(s, 300000));
    case DL_MED: return weft_deadline_after(run->rt, 1000000 + (int64_t)rnd_below(s, 3000000));
    default: return WEFT_FOREVER;
  }
}

static void ring_begin(actor_t *a, uint32_t opno, int kind, uint32_t arg) {
  uint32_t h = atomic_load_explicit(&a->ring_head, memory_order_relaxed);
  ring_entry_t *e = &a->ring[h % RING];
  atomic_store(&e->status, -1);
  atomic_store(&e->opno, opno);
  atomic_store(&e->kind, (uint32_t)kind);
  atomic_store(&e->arg, arg);
  atomic_store(&a->ring_head, h + 1);
}

static void ring_end(actor_t *a, weft_status_t st) {
  uint32_t h = atomic_load_explicit(&a->ring_head, memory_order_relaxed);
  atomic_store(&a->ring[(h - 1) % RING].status, st);
  tick();
}

static const char *who(const ctx_t *c) {
  static _Thread_local char buf[32];
  snprintf(buf, sizeof buf, "%c%d", "wtdc"[c->prog->kind], c->me->index);
  return buf;
}

/* A status outside `allowed` (a bit mask of codes) fails the run. */
#define BIT(code) (1u << (code))
static void expect(const ctx_t *c, const char *call, weft_status_t st, unsigned allowed) {
  CHECK(st >= 0 && st < 32 && (allowed & BIT(st)), "%s: %s returned %d (%s), not allowed here", who(c), call, st,
        weft_strerror(st));
  if (st == WEFT_ECANCELED)
    CHECK(atomic_load(&c->me->cancel_requested), "%s: %s returned WEFT_ECANCELED in a task nobody cancelled", who(c),
          call);
}

static unsigned wait_codes(const ctx_t *c, int dl) {
  unsigned m = BIT(WEFT_OK);
  if (dl != DL_FOREVER) m |= BIT(WEFT_ETIMEDOUT);
  if (c->prog->kind != A_THREAD) m |= BIT(WEFT_ECANCELED);
  return m;
}

static void poll(run_t *run) { WEFT_SAFEPOINT_POLL(run->rt, run->flag); }

static void close_chan(ctx_t *c, int ch) {
  chan_state_t *cs = &c->run->chans[ch];
  expect(c, "weft_chan_close", weft_chan_close(cs->ch), BIT(WEFT_OK));
  atomic_store(&cs->closed, 1);
}

/* One operation that may send on `ch` is over, whatever its outcome. */
static void send_done(ctx_t *c, int ch) {
  if (atomic_fetch_sub(&c->run->chans[ch].remaining, 1) == 1) close_chan(c, ch);
}

static void received(ctx_t *c, int ch, const unsigned char *buf) {
  elem_hdr_t h = check_elem(c->run, buf, ch, "received");
  int32_t *last = &c->last_seq[ch][h.producer];
  CHECK((int32_t)h.seq > *last, "%s: channel %d delivered producer %u's element #%u after its #%d (FIFO broken)", who(c),
        ch, h.producer, h.seq, *last);
  *last = (int32_t)h.seq;
  ledger_mark(c->run, h.ledger, L_RECV, "received");
  atomic_fetch_add(&c->run->received, 1);
}

static void sent(ctx_t *c, uint32_t ledger, weft_status_t st) {
  if (st == WEFT_OK) {
    atomic_fetch_or(&c->run->ledger[ledger], L_SENT);
    atomic_fetch_add(&c->run->sent, 1);
  } else {
    ledger_mark(c->run, ledger, L_UNSENT, "unsent");
  }
}

static void op_send(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  chan_state_t *cs = &run->chans[op->chan];
  unsigned char buf[128];
  make_elem(run, buf, op->chan, c->me->index, op->ledger, op->seq);
  int was_closed = atomic_load(&cs->closed);
  weft_status_t st = c->st = weft_chan_send(cs->ch, buf, deadline_of(run, op->dl, s));
  unsigned allowed = wait_codes(c, op->dl) | BIT(WEFT_ECLOSED);
  expect(c, "weft_chan_send", st, allowed);
  CHECK(!(was_closed && (st == WEFT_OK || st == WEFT_ETIMEDOUT)),
        "%s: weft_chan_send on channel %d returned %s although its close had returned before the send began", who(c),
        op->chan, weft_strerror(st));
  sent(c, op->ledger, st);
  send_done(c, op->chan);
}

static void op_recv(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  chan_state_t *cs = &run->chans[op->chan];
  unsigned char buf[128];
  memset(buf, 0xa5, sizeof buf);
  int was_closed = atomic_load(&cs->closed);
  weft_status_t st = c->st = weft_chan_recv(cs->ch, buf, deadline_of(run, op->dl, s));
  expect(c, "weft_chan_recv", st, wait_codes(c, op->dl) | BIT(WEFT_ECLOSED));
  CHECK(!(was_closed && st == WEFT_ETIMEDOUT),
        "%s: weft_chan_recv on channel %d timed out although its close had returned before the receive began", who(c),
        op->chan);
  if (st == WEFT_OK) {
    received(c, op->chan, buf);
  } else {
    for (size_t i = 0; i < sizeof buf; i++)
      CHECK(buf[i] == 0xa5, "%s: weft_chan_recv returned %s but wrote its output", who(c), weft_strerror(st));
  }
}

static void op_select(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  weft_select_case_t cases[MAX_CASES];
  unsigned char bufs[MAX_CASES][128];
  int any_closed = 0, closed_before[MAX_CASES];
  for (int k = 0; k < op->ncases; k++) {
    const case_t *cs = &op->cases[k];
    cases[k].chan = run->chans[cs->chan].ch;
    cases[k].op = cs->op;
    cases[k].buf = bufs[k];
    if (cs->op == WEFT_SELECT_SEND) make_elem(run, bufs[k], cs->chan, c->me->index, cs->ledger, cs->seq);
    else memset(bufs[k], 0xa5, sizeof bufs[k]);
    closed_before[k] = atomic_load(&run->chans[cs->chan].closed);
    any_closed |= closed_before[k];
  }
  size_t chosen = (size_t)-7;
  weft_status_t st = c->st = weft_select(op->ncases ? cases : NULL, op->ncases, deadline_of(run, op->dl, s), op->flag, &chosen);
  if (op->ncases == 0) {
    expect(c, "weft_select (no cases)", st, BIT(WEFT_ETIMEDOUT) | BIT(WEFT_ECANCELED));
  } else {
    expect(c, "weft_select", st, wait_codes(c, op->dl) | BIT(WEFT_ECLOSED));
  }
  CHECK(!(any_closed && st == WEFT_ETIMEDOUT),
        "%s: weft_select timed out although a case's channel was closed before it began", who(c));
  if (st == WEFT_OK || st == WEFT_ECLOSED) {
    CHECK(chosen < op->ncases, "%s: weft_select returned %s with *chosen = %zu of %u cases", who(c), weft_strerror(st),
          chosen, op->ncases);
  } else {
    CHECK(chosen == (size_t)-7, "%s: weft_select returned %s but wrote *chosen", who(c), weft_strerror(st));
  }
  for (int k = 0; k < op->ncases; k++) {
    const case_t *cs = &op->cases[k];
    int this = (st == WEFT_OK || st == WEFT_ECLOSED) && chosen == (size_t)k;
    if (cs->op == WEFT_SELECT_SEND) {
      CHECK(!(this && st == WEFT_OK && closed_before[k]),
            "%s: weft_select sent on channel %d although its close had returned before the select began", who(c),
            cs->chan);
      sent(c, cs->ledger, this ? st : WEFT_ETIMEDOUT);
    } else if (this && st == WEFT_OK) {
      received(c, cs->chan, bufs[k]);
    } else {
      for (size_t i = 0; i < sizeof bufs[k]; i++)
        CHECK(bufs[k][i] == 0xa5, "%s: weft_select wrote the buffer of receive case %d, which it did not complete (%s)",
              who(c), k, weft_strerror(st));
    }
  }
  int seen[MAX_CHANS] = {0};
  for (int k = 0; k < op->ncases; k++)
    if (op->cases[k].op == WEFT_SELECT_SEND && !seen[op->cases[k].chan]) {
      seen[op->cases[k].chan] = 1;
      send_done(c, op->cases[k].chan);
    }
}

/* The body of a critical section on mutex k: a read-modify-write that a broken mutex
 * loses, with a yield in the middle when `yield`. */
static void section_body(ctx_t *c, int k, int yield) {
  run_t *run = c->run;
  long v = run->counter[k];
  if (yield) expect(c, "weft_yield", weft_yield(run->rt), BIT(WEFT_OK));
  run->counter[k] = v + 1;
  atomic_fetch_add(&run->sections[k], 1);
}

static void unlock_mutex(ctx_t *c, int k) {
  expect(c, "weft_mutex_unlock", weft_mutex_unlock(&c->run->mutex[k]), BIT(WEFT_OK));
}

static void op_mutex(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  int k = op->chan;
  weft_mutex_t *m = &run->mutex[k];
  weft_status_t st;
  if (op->kind == OP_MUTEX) {
    st = weft_mutex_lock(m);
    expect(c, "weft_mutex_lock", st, BIT(WEFT_OK));
  } else if (op->kind == OP_MUTEX_TRY) {
    st = weft_mutex_try_lock(m);
    expect(c, "weft_mutex_try_lock", st, BIT(WEFT_OK) | BIT(WEFT_EBUSY));
  } else {
    st = weft_mutex_lock_until(m, deadline_of(run, op->dl, s));
    expect(c, "weft_mutex_lock_until", st, BIT(WEFT_OK) | BIT(WEFT_ETIMEDOUT));
  }
  c->st = st;
  if (st != WEFT_OK) return;
  if (k == 0 && run->plan->recursive0) {
    expect(c, "weft_mutex_try_lock (recursive relock)", weft_mutex_try_lock(m), BIT(WEFT_OK));
    section_body(c, k, op->flag);
    unlock_mutex(c, k);
  } else {
    expect(c, "weft_mutex_try_lock (relock by the owner)", weft_mutex_try_lock(m), BIT(WEFT_EDEADLK));
    section_body(c, k, op->flag);
  }
  unlock_mutex(c, k);
  expect(c, "weft_mutex_unlock (not held)", weft_mutex_unlock(m), BIT(WEFT_EPERM));
}

static void op_rw(ctx_t *c, const op_t *op) {
  run_t *run = c->run;
  weft_status_t st;
  int write = op->kind == OP_RWWRITE || (op->kind == OP_RWTRY && op->flag);
  if (op->kind == OP_RWTRY) {
    st = write ? weft_rwlock_try_write_lock(&run->rw) : weft_rwlock_try_read_lock(&run->rw);
    expect(c, "weft_rwlock_try_*_lock", st, BIT(WEFT_OK) | BIT(WEFT_EBUSY));
    c->st = st;
    if (st != WEFT_OK) return;
  } else {
    st = write ? weft_rwlock_write_lock(&run->rw) : weft_rwlock_read_lock(&run->rw);
    expect(c, "weft_rwlock_*_lock", st, BIT(WEFT_OK));
  }
  c->st = st;
  long v = run->rw_counter;
  expect(c, "weft_yield", weft_yield(run->rt), BIT(WEFT_OK));
  if (write) {
    run->rw_counter = v + 1;
    atomic_fetch_add(&run->rw_writes, 1);
  } else {
    CHECK(run->rw_counter == v, "%s: the rwlock's value changed under a read lock (%ld -> %ld)", who(c), v,
          run->rw_counter);
  }
  expect(c, "weft_rwlock_unlock", weft_rwlock_unlock(&run->rw), BIT(WEFT_OK));
}

static void op_cond(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  int k = op->chan;
  if (op->kind != OP_COND_WAIT && !op->flag) {
    weft_status_t st = op->kind == OP_COND_SIGNAL ? weft_cond_signal(&run->cond[k]) : weft_cond_broadcast(&run->cond[k]);
    expect(c, "weft_cond_signal/broadcast (unlocked)", st, BIT(WEFT_OK));
    return;
  }
  expect(c, "weft_mutex_lock", weft_mutex_lock(&run->mutex[k]), BIT(WEFT_OK));
  if (op->kind == OP_COND_WAIT) {
    long g = run->cond_gen[k];
    int64_t deadline = deadline_of(run, op->dl, s);
    weft_status_t st = WEFT_OK;
    while (st == WEFT_OK && run->cond_gen[k] == g) st = weft_cond_wait_until(&run->cond[k], &run->mutex[k], deadline);
    expect(c, "weft_cond_wait_until", st, wait_codes(c, op->dl));
    c->st = st;
  } else {
    run->cond_gen[k]++;
    weft_status_t st = op->kind == OP_COND_SIGNAL ? weft_cond_signal(&run->cond[k]) : weft_cond_broadcast(&run->cond[k]);
    expect(c, "weft_cond_signal/broadcast", st, BIT(WEFT_OK));
  }
  section_body(c, k, 0); /* the mutex is held again after the wait, whatever it returned */
  unlock_mutex(c, k);
}

typedef struct {
  int running, total;
} census_t;

static bool census_visit(const weft_task_info_t *info, void *ud) {
  census_t *cn = ud;
  cn->total++;
  if (info->state == WEFT_TASK_RUNNING) cn->running++;
  return false;
}

static void op_stw(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  weft_status_t st = weft_stw_begin(run->rt, deadline_of(run, op->dl, s));
  c->st = st;
  expect(c, "weft_stw_begin", st, BIT(WEFT_OK) | (op->dl == DL_FOREVER ? 0 : BIT(WEFT_ETIMEDOUT)));
  if (st != WEFT_OK) return;
  long e0 = atomic_load(&run->epoch);
  census_t cn = {0, 0};
  expect(c, "weft_tasks_foreach", weft_tasks_foreach(run->rt, census_visit, &cn), BIT(WEFT_OK));
  CHECK(cn.running <= 1, "%s: %d of %d mutators running while the world is stopped", who(c), cn.running, cn.total);
  /* Calls that do not wait, on the stopped world. */
  int ch = (int)rnd_below(s, (uint32_t)run->plan->nchans);
  size_t len = weft_chan_len(run->chans[ch].ch);
  size_t cap = run->plan->cap[ch];
  CHECK(cap == WEFT_CHAN_UNBOUNDED || len <= cap, "%s: weft_chan_len %zu > capacity %zu", who(c), len, cap);
  int k = (int)rnd_below(s, (uint32_t)run->plan->nmutex);
  weft_status_t t = weft_mutex_try_lock(&run->mutex[k]);
  expect(c, "weft_mutex_try_lock (stopped world)", t, BIT(WEFT_OK) | BIT(WEFT_EBUSY));
  if (t == WEFT_OK) {
    section_body(c, k, 0);
    unlock_mutex(c, k);
  }
  for (int i = 0; i < 50; i++) CHECK(atomic_load(&run->epoch) == e0, "%s: managed work ran while the world was stopped", who(c));
  expect(c, "weft_stw_end", weft_stw_end(run->rt), BIT(WEFT_OK));
  expect(c, "weft_stw_end (not held)", weft_stw_end(run->rt), BIT(WEFT_EPERM));
}

static void run_program(ctx_t *c);

static int32_t child_main(void *arg, void **result) {
  actor_t *a = arg;
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) fail("out of memory");
  c->run = a->run;
  c->me = a;
  c->prog = &a->run->plan->actors[a->index];
  run_program(c);
  free(c);
  *result = a;
  return 0;
}

/* A child that never ran: its elements were never sent. */
static void child_never_ran(ctx_t *c, int idx) {
  const program_t *p = &c->run->plan->actors[idx];
  atomic_store(&c->run->actors[idx].state, 3);
  for (int i = 0; i < p->nops; i++) {
    const op_t *op = &p->ops[i];
    if (op->kind == OP_SEND) {
      sent(c, op->ledger, WEFT_ECANCELED);
      send_done(c, op->chan);
    } else if (op->kind == OP_SELECT) {
      int seen[MAX_CHANS] = {0};
      for (int k = 0; k < op->ncases; k++) {
        if (op->cases[k].op != WEFT_SELECT_SEND) continue;
        sent(c, op->cases[k].ledger, WEFT_ECANCELED);
        if (!seen[op->cases[k].chan]) send_done(c, op->cases[k].chan);
        seen[op->cases[k].chan] = 1;
      }
    }
  }
}

static void op_spawn(ctx_t *c, const op_t *op) {
  run_t *run = c->run;
  int idx = (int)op->n;
  actor_t *child = &run->actors[idx];
  char name[16];
  snprintf(name, sizeof name, "c%d", idx);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.name = name;
  opts.flags = op->flag ? WEFT_SPAWN_DETACHED : 0;
  weft_task_t *t = (weft_task_t *)&opts; /* must become NULL (detached) or a handle */
  atomic_store(&child->state, 1);
  weft_status_t st = c->st = weft_spawn(run->rt, child_main, child, &opts, &t);
  expect(c, "weft_spawn", st, BIT(WEFT_OK) | BIT(WEFT_ENOMEM));
  if (st != WEFT_OK) {
    child_never_ran(c, idx);
    return;
  }
  if (op->flag) {
    CHECK(t == NULL, "%s: weft_spawn with WEFT_SPAWN_DETACHED returned a handle", who(c));
    atomic_store(&c->me->child_state[idx], 2);
  } else {
    CHECK(t != NULL, "%s: weft_spawn returned no handle", who(c));
    child->handle = t;
    atomic_store(&c->me->child_state[idx], 1);
  }
}

/* The most recently spawned child that is still joinable, or -1. */
static int joinable_child(ctx_t *c) {
  for (int i = c->run->plan->nactors - 1; i >= 0; i--)
    if (atomic_load(&c->me->child_state[i]) == 1) return i;
  return -1;
}

static void join_child(ctx_t *c, int idx, int dl, uint64_t *s) {
  actor_t *child = &c->run->actors[idx];
  int32_t code = -1;
  void *result = NULL;
  weft_status_t st = c->st = weft_join(child->handle, deadline_of(c->run, dl, s), &code, &result);
  expect(c, "weft_join", st, wait_codes(c, dl));
  if (st == WEFT_OK) {
    CHECK(code == 0 && result == child, "%s: weft_join gave code %d, result %p for child c%d", who(c), code, result, idx);
    atomic_store(&c->me->child_state[idx], 2);
  }
}

static void op_children(ctx_t *c, const op_t *op, uint64_t *s) {
  int idx = joinable_child(c);
  if (idx < 0) return;
  actor_t *child = &c->run->actors[idx];
  if (op->kind == OP_JOIN_CHILD) {
    join_child(c, idx, chance(s, 50) ? DL_SHORT : DL_MED, s);
  } else if (op->kind == OP_CANCEL_CHILD) {
    atomic_store(&child->cancel_requested, 1);
    expect(c, "weft_cancel (child)", weft_cancel(child->handle), BIT(WEFT_OK));
  } else {
    expect(c, "weft_detach", weft_detach(child->handle), BIT(WEFT_OK));
    atomic_store(&c->me->child_state[idx], 2);
  }
}

static void op_compute(ctx_t *c, const op_t *op) {
  run_t *run = c->run;
  for (uint32_t i = 0; i < op->n; i++) {
    poll(run);
    atomic_fetch_add_explicit(&run->epoch, 1, memory_order_relaxed); /* managed work */
    if (i % 512 == 511) expect(c, "weft_yield", weft_yield(run->rt), BIT(WEFT_OK));
  }
}

static void run_op(ctx_t *c, const op_t *op, uint64_t *s) {
  run_t *run = c->run;
  switch (op->kind) {
    case OP_SEND: op_send(c, op, s); break;
    case OP_RECV: op_recv(c, op, s); break;
    case OP_SELECT: op_select(c, op, s); break;
    case OP_CLOSE: close_chan(c, op->chan); break;
    case OP_LEN: {
      size_t len = weft_chan_len(run->chans[op->chan].ch);
      size_t cap = run->plan->cap[op->chan];
      CHECK(weft_chan_capacity(run->chans[op->chan].ch) == cap, "%s: weft_chan_capacity is wrong", who(c));
      CHECK(cap == WEFT_CHAN_UNBOUNDED || len <= cap, "%s: weft_chan_len %zu > capacity %zu", who(c), len, cap);
      break;
    }
    case OP_RETAIN: {
      weft_chan_t *ch = run->chans[op->chan].ch;
      CHECK(weft_chan_retain(ch) == ch, "%s: weft_chan_retain failed", who(c));
      weft_chan_release(ch);
      break;
    }
    case OP_MUTEX:
    case OP_MUTEX_TRY:
    case OP_MUTEX_UNTIL: op_mutex(c, op, s); break;
    case OP_RWREAD:
    case OP_RWWRITE:
    case OP_RWTRY: op_rw(c, op); break;
    case OP_COND_WAIT:
    case OP_COND_SIGNAL:
    case OP_COND_BROADCAST: op_cond(c, op, s); break;
    case OP_SLEEP:
      expect(c, "weft_sleep_until", c->st = weft_sleep_until(run->rt, deadline_of(run, op->dl, s)),
             BIT(WEFT_OK) | (c->prog->kind != A_THREAD ? BIT(WEFT_ECANCELED) : 0));
      break;
    case OP_YIELD: expect(c, "weft_yield", weft_yield(run->rt), BIT(WEFT_OK)); break;
    case OP_COMPUTE: op_compute(c, op); break;
    case OP_STW: op_stw(c, op, s); break;
    case OP_CANCEL: {
      actor_t *t = &run->actors[op->chan];
      atomic_store(&t->cancel_requested, 1);
      expect(c, "weft_cancel", weft_cancel(t->handle), BIT(WEFT_OK));
      break;
    }
    case OP_SPAWN: op_spawn(c, op); break;
    case OP_CLOSE_RACE:
      atomic_fetch_add(&run->race_arrived, 1);
      while (atomic_load(&run->race_arrived) < run->plan->racers) {
        poll(run);
        if (!one_thread) {
          expect(c, "weft_yield", weft_yield(run->rt), BIT(WEFT_OK));
          continue;
        }
        /* Under virtual time a task that only yields keeps the clock still, and a racer
         * still in a timed wait would never time out: there the barrier sleeps 1 us (a
         * cancelled racer, whose sleeps return at once, waits no more: it has arrived). */
        weft_status_t st = weft_sleep_until(run->rt, weft_deadline_after(run->rt, 1000));
        expect(c, "weft_sleep_until", st, BIT(WEFT_OK) | BIT(WEFT_ECANCELED));
        if (st == WEFT_ECANCELED) break;
      }
      close_chan(c, op->chan);
      op_send(c, op, s); /* after a returned close: must be WEFT_ECLOSED */
      break;
    default: op_children(c, op, s); break;
  }
}

static void run_program(ctx_t *c) {
  run_t *run = c->run;
  uint64_t s = c->prog->rng;
  for (int i = 0; i < MAX_CHANS; i++)
    for (int j = 0; j < MAX_ACTORS; j++) c->last_seq[i][j] = -1;
  atomic_store(&c->me->state, 1);
  for (int i = 0; i < c->prog->nops; i++) {
    const op_t *op = &c->prog->ops[i];
    poll(run);
    ring_begin(c->me, (uint32_t)i, op->kind, (uint32_t)op->chan | (uint32_t)op->dl << 8);
    c->st = WEFT_OK;
    run_op(c, op, &s);
    ring_end(c->me, c->st);
  }
  /* Children still joinable are joined (or, in a cancelled actor, detached). */
  for (int idx = joinable_child(c); idx >= 0; idx = joinable_child(c)) {
    ring_begin(c->me, (uint32_t)c->prog->nops, OP_JOIN_CHILD, (uint32_t)idx | (uint32_t)DL_FOREVER << 8);
    join_child(c, idx, DL_FOREVER, &s);
    if (atomic_load(&c->me->child_state[idx]) == 1) {
      expect(c, "weft_detach", weft_detach(c->run->actors[idx].handle), BIT(WEFT_OK));
      atomic_store(&c->me->child_state[idx], 2);
    }
    ring_end(c->me, c->st);
  }
  atomic_store(&c->me->state, 2);
}

static void wait_go(run_t *run) {
  while (!atomic_load(&run->go)) {
    poll(run);
    weft_yield(run->rt);
  }
}

static int32_t worker_main(void *arg, void **result) {
  actor_t *a = arg;
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) fail("out of memory");
  c->run = a->run;
  c->me = a;
  c->prog = &a->run->plan->actors[a->index];
  wait_go(a->run);
  atomic_store(&a->state, 1);
  if (selftest_hang && a->index == 0) {
    weft_chan_t *never;
    unsigned char buf[8];
    expect(c, "weft_chan_new", weft_chan_new(a->run->rt, sizeof buf, 0, NULL, &never), BIT(WEFT_OK));
    ring_begin(a, 0, OP_RECV, 99 | (uint32_t)DL_FOREVER << 8);
    weft_chan_recv(never, buf, WEFT_FOREVER); /* nobody sends: the watchdog fires */
  }
  run_program(c);
  free(c);
  atomic_fetch_add(&a->run->workers_done, 1);
  *result = a;
  return 0;
}

static void *thread_main(void *arg) {
  actor_t *a = arg;
  run_t *run = a->run;
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) fail("out of memory");
  c->run = run;
  c->me = a;
  c->prog = &run->plan->actors[a->index];
  weft_status_t st = weft_thread_attach(run->rt);
  expect(c, "weft_thread_attach", st, BIT(WEFT_OK));
  wait_go(run);
  run_program(c);
  expect(c, "weft_thread_detach", weft_thread_detach(run->rt), BIT(WEFT_OK));
  free(c);
  atomic_fetch_add(&run->workers_done, 1);
  return NULL;
}

/* Receives from its channels, forever, until each is closed and drained (or, when it
 * abandons, closed): what makes every send that waits forever complete. */
static int32_t drainer_main(void *arg, void **result) {
  actor_t *a = arg;
  run_t *run = a->run;
  const program_t *prog = &run->plan->actors[a->index];
  ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) fail("out of memory");
  c->run = run;
  c->me = a;
  c->prog = prog;
  for (int i = 0; i < MAX_CHANS; i++)
    for (int j = 0; j < MAX_ACTORS; j++) c->last_seq[i][j] = -1;
  uint64_t s = prog->rng;
  int live[MAX_CHANS], n = 0;
  for (int ch = 0; ch < run->plan->nchans; ch++)
    if (prog->drains[ch]) live[n++] = ch;
  atomic_store(&a->state, 1);
  unsigned char bufs[MAX_CHANS][128];
  uint32_t round = 0;
  while (n > 0) {
    poll(run);
    if (prog->abandon)
      for (int k = 0; k < n; k++)
        if (atomic_load(&run->chans[live[k]].closed)) live[k--] = live[--n];
    if (n == 0) break;
    weft_select_case_t cases[MAX_CHANS];
    for (int k = 0; k < n; k++) {
      cases[k].chan = run->chans[live[k]].ch;
      cases[k].op = WEFT_SELECT_RECV;
      cases[k].buf = bufs[k];
    }
    size_t chosen = 0;
    ring_begin(a, round++, OP_COUNT, (uint32_t)n | (uint32_t)DL_FOREVER << 8);
    weft_status_t st = weft_select(cases, (size_t)n, WEFT_FOREVER, chance(&s, 30) ? WEFT_SELECT_ORDERED : 0, &chosen);
    ring_end(a, st);
    expect(c, "weft_select (drainer)", st, BIT(WEFT_OK) | BIT(WEFT_ECLOSED));
    CHECK(chosen < (size_t)n, "drainer: bad *chosen");
    if (st == WEFT_OK) {
      received(c, live[chosen], bufs[chosen]);
      if (chance(&s, 10)) /* back-pressure: let buffers fill and senders wait */
        expect(c, "weft_sleep_until (drainer)",
               weft_sleep_until(run->rt, weft_deadline_after(run->rt, (int64_t)rnd_below(&s, 500000))), BIT(WEFT_OK));
    } else {
      live[chosen] = live[--n];
    }
  }
  atomic_store(&a->state, 2);
  free(c);
  *result = a;
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* One seed                                                                           */
/* ---------------------------------------------------------------------------------- */

typedef struct {
  long sent, received, dropped, unsent;
} totals_t;

static void main_expect(const char *call, weft_status_t st, weft_status_t want) {
  CHECK(st == want, "main: %s returned %d (%s), expected %s", call, st, weft_strerror(st), weft_strerror(want));
}

/* The opening thread waits, in weft (on a one-thread platform the tasks run meanwhile). */
static void wait_until(run_t *run, atomic_int *v, int target) {
  while (atomic_load(v) < target)
    main_expect("weft_sleep_until", weft_sleep_until(run->rt, weft_deadline_after(run->rt, 200000)), WEFT_OK);
}

static void run_seed(uint64_t seed, totals_t *tot, int verbose) {
  plan_t *plan = calloc(1, sizeof *plan);
  run_t *run = calloc(1, sizeof *run);
  if (plan == NULL || run == NULL) fail("out of memory");
  current_seed = seed;
  gen_plan(plan, seed);
  run->plan = plan;
  run->ledger = calloc(plan->nledger + 1, 1);
  if (run->ledger == NULL) fail("out of memory");
  for (int i = 0; i < plan->nactors; i++) {
    run->actors[i].run = run;
    run->actors[i].index = i;
  }
  atomic_store(&current_run, run);

  weft_config_t config;
  weft_config_init(&config);
  if (getenv("WEFT_SEED") == NULL) config.seed = seed ? seed : 1; /* 0 would mean "not set" */
  main_expect("weft_runtime_open", weft_runtime_open(&config, &run->rt), WEFT_OK);
  run->flag = weft_safepoint_flag(run->rt);
  CHECK(run->flag != NULL, "weft_safepoint_flag returned NULL");
  for (int k = 0; k < plan->nmutex; k++) {
    main_expect("weft_mutex_init", weft_mutex_init(run->rt, &run->mutex[k], k == 0 && plan->recursive0 ? WEFT_MUTEX_RECURSIVE : 0), WEFT_OK);
    main_expect("weft_cond_init", weft_cond_init(run->rt, &run->cond[k]), WEFT_OK);
  }
  main_expect("weft_rwlock_init", weft_rwlock_init(run->rt, &run->rw), WEFT_OK);
  for (int ch = 0; ch < plan->nchans; ch++) {
    chan_state_t *cs = &run->chans[ch];
    cs->run = run;
    cs->index = ch;
    weft_chan_opts_t opts;
    weft_chan_opts_init(&opts);
    opts.elem_drop = on_drop;
    opts.drop_ud = cs;
    main_expect("weft_chan_new", weft_chan_new(run->rt, plan->esize[ch], plan->cap[ch], &opts, &cs->ch), WEFT_OK);
    atomic_store(&cs->remaining, plan->sends_planned[ch]);
    if (plan->sends_planned[ch] == 0) {
      main_expect("weft_chan_close", weft_chan_close(cs->ch), WEFT_OK);
      atomic_store(&cs->closed, 1);
    }
  }

  int first_thread = plan->nworkers, first_drainer = plan->nworkers + plan->nthreads;
  for (int i = 0; i < first_thread; i++) {
    char name[16];
    snprintf(name, sizeof name, "w%d", i);
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    opts.name = name;
    main_expect("weft_spawn", weft_spawn(run->rt, worker_main, &run->actors[i], &opts, &run->actors[i].handle), WEFT_OK);
  }
  for (int i = first_thread; i < first_drainer; i++)
    CHECK(pthread_create(&run->actors[i].thread, NULL, thread_main, &run->actors[i]) == 0, "pthread_create failed");
  for (int i = first_drainer; i < first_drainer + plan->ndrainers; i++) {
    char name[16];
    snprintf(name, sizeof name, "d%d", i);
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    opts.name = name;
    main_expect("weft_spawn", weft_spawn(run->rt, drainer_main, &run->actors[i], &opts, &run->actors[i].handle), WEFT_OK);
  }
  atomic_store(&run->go, 1);

  /* No cancel can come once every worker and thread is done: then join them. */
  wait_until(run, &run->workers_done, first_drainer);
  for (int i = 0; i < first_thread; i++) {
    int32_t code = -1;
    void *result = NULL;
    main_expect("weft_join", weft_join(run->actors[i].handle, WEFT_FOREVER, &code, &result), WEFT_OK);
    CHECK(code == 0 && result == &run->actors[i], "worker w%d: code %d", i, code);
  }
  for (int i = first_thread; i < first_drainer; i++) pthread_join(run->actors[i].thread, NULL);
  for (int i = first_drainer; i < first_drainer + plan->ndrainers; i++) {
    int32_t code = -1;
    main_expect("weft_join (drainer)", weft_join(run->actors[i].handle, WEFT_FOREVER, &code, NULL), WEFT_OK);
    CHECK(code == 0, "drainer failed");
  }
  main_expect("weft_runtime_drain", weft_runtime_drain(run->rt, WEFT_FOREVER), WEFT_OK);
  for (int ch = 0; ch < plan->nchans; ch++) {
    CHECK(atomic_load(&run->chans[ch].closed), "channel %d was never closed (%ld sends outstanding)", ch,
          atomic_load(&run->chans[ch].remaining));
    weft_chan_release(run->chans[ch].ch);
  }

  /* The ledger: every element sent was received or dropped, exactly once. */
  long unsent = 0;
  for (uint32_t i = 0; i < plan->nledger; i++) {
    unsigned v = atomic_load(&run->ledger[i]);
    if (v == L_UNSENT) {
      unsent++;
      continue;
    }
    CHECK(v == (L_SENT | L_RECV) || v == (L_SENT | L_DROP), "element %u: ledger state %#x (%s)", i, v,
          v == L_SENT ? "sent, never received nor dropped: lost"
          : v == 0    ? "never attempted (fuzzer bug)"
                      : "inconsistent");
  }
  for (int k = 0; k < plan->nmutex; k++) {
    CHECK(run->counter[k] == atomic_load(&run->sections[k]), "mutex %d: %ld increments kept of %ld (exclusion broken)", k,
          run->counter[k], atomic_load(&run->sections[k]));
    main_expect("weft_cond_destroy", weft_cond_destroy(&run->cond[k]), WEFT_OK);
    main_expect("weft_mutex_destroy", weft_mutex_destroy(&run->mutex[k]), WEFT_OK);
  }
  CHECK(run->rw_counter == atomic_load(&run->rw_writes), "rwlock: %ld increments kept of %ld", run->rw_counter,
        atomic_load(&run->rw_writes));
  main_expect("weft_rwlock_destroy", weft_rwlock_destroy(&run->rw), WEFT_OK);
  main_expect("weft_runtime_close", weft_runtime_close(run->rt), WEFT_OK);

  if (verbose)
    printf("seed %" PRIu64 ": %d workers, %d threads, %d children, %d channels: sent %ld, received %ld, dropped %ld, unsent %ld\n",
           seed, plan->nworkers, plan->nthreads, plan->nactors - first_drainer - plan->ndrainers, plan->nchans,
           atomic_load(&run->sent), atomic_load(&run->received), atomic_load(&run->dropped), unsent);
  tot->sent += atomic_load(&run->sent);
  tot->received += atomic_load(&run->received);
  tot->dropped += atomic_load(&run->dropped);
  tot->unsent += unsent;
  atomic_store(&current_run, NULL);
  free(run->ledger);
  free_plan(plan);
  free(plan);
  free(run);
}

/* ---------------------------------------------------------------------------------- */
/* The watchdog                                                                       */
/* ---------------------------------------------------------------------------------- */

static bool watchdog_visit(const weft_task_info_t *info, void *ud) {
  static const char *const states[] = {"running", "at safepoint", "blocking"};
  (void)ud;
  fprintf(stderr, "  mutator id %" PRIu64 " %-6s %s\n", info->id, info->name ? info->name : "(thread)",
          info->state < 3 ? states[info->state] : "?");
  return false;
}

static void watchdog_alarm(int sig) {
  (void)sig;
  static const char msg[] = "weft_tasks_foreach did not return within 10 s\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
  _exit(1);
}

static void *watchdog_main(void *arg) {
  (void)arg;
  long last = -1;
  int still = 0;
  for (;;) {
    sleep(1);
    long now = atomic_load(&progress);
    run_t *run = atomic_load(&current_run);
    if (now != last || run == NULL) {
      last = now;
      still = 0;
      continue;
    }
    if (++still < watchdog_seconds) continue;
    fprintf(stderr, "\nFUZZ HANG seed %" PRIu64 " on %s: no operation completed for %d s\n", current_seed,
            platform_name(), watchdog_seconds);
    dump_actors(run);
    print_replay();
    fprintf(stderr, "mutators (weft_tasks_foreach):\n");
    fflush(stderr);
    signal(SIGALRM, watchdog_alarm);
    alarm(10);
    weft_tasks_foreach(run->rt, watchdog_visit, NULL);
    fflush(stderr);
    _exit(1);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: %s (--seed S | --first S --seeds N) [--verbose] [--selftest-hang]\n", argv0);
  exit(2);
}

int main(int argc, char **argv) {
  argv0 = argv[0];
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t first = 0, count = 1;
  int verbose = 0, have_seed = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      first = strtoull(argv[++i], NULL, 0);
      count = 1;
      have_seed = 1;
    } else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
      first = strtoull(argv[++i], NULL, 0);
      have_seed = 1;
    } else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
      count = strtoull(argv[++i], NULL, 0);
    } else if (strcmp(argv[i], "--selftest-hang") == 0) {
      selftest_hang = 1;
    } else if (strcmp(argv[i], "--verbose") == 0) {
      verbose = 1;
    } else {
      usage();
    }
  }
  if (!have_seed) usage();
  const char *w = getenv("WEFT_FUZZ_WATCHDOG");
  if (w != NULL && atoi(w) > 0) watchdog_seconds = atoi(w);
  weft_runtime_t *probe;
  weft_config_t probe_config;
  weft_config_init(&probe_config);
  probe_config.seed = 1; /* a deterministic platform would otherwise draw and print one */
  main_expect("weft_runtime_open (probe)", weft_runtime_open(&probe_config, &probe), WEFT_OK);
  one_thread = (weft_runtime_platform(probe)->caps & WEFT_CAP_DETERMINISTIC) != 0;
  main_expect("weft_runtime_close (probe)", weft_runtime_close(probe), WEFT_OK);
  pthread_t wd;
  if (pthread_create(&wd, NULL, watchdog_main, NULL) != 0) fail("cannot start the watchdog");
  pthread_detach(wd);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  totals_t tot = {0, 0, 0, 0};
  for (uint64_t k = 0; k < count; k++) run_seed(first + k, &tot, verbose);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("fuzz: seeds %" PRIu64 "..%" PRIu64 " on %s: %" PRIu64 " passed, 0 failed in %.1f s (%.1f seeds/s); elements sent %ld, "
         "received %ld, dropped %ld, not sent %ld\n",
         first, first + count - 1, platform_name(), count, secs, (double)count / secs, tot.sent, tot.received,
         tot.dropped, tot.unsent);
  return 0;
}
