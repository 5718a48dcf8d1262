/*
 * gc_vm: a small VM-shaped host on weft, the way a language VM with one shared,
 * garbage-collected heap uses it.
 *
 *   - The heap is a fixed array of objects with a free list under a weft mutex. Every
 *     object carries a canary (LIVE while allocated, FREED once swept), the mutator that
 *     allocated it and a serial number.
 *   - Mutators are weft tasks. Each keeps its roots, a linked list of its objects, in a
 *     task-local slot (set up by the on_task_start hook, dropped by on_task_exit). They
 *     allocate, link, drop links, check every object they touch, poll a safepoint at
 *     loop back-edges and allocation sites, lock the heap and sometimes sleep in weft.
 *   - The collector stops the world, finds every mutator's roots with
 *     weft_tasks_foreach, marks, sweeps and resumes. The main thread (attached) collects
 *     periodically; a mutator that finds the heap full collects too: weft serialises the
 *     two requesters.
 *
 * If the collector ever frees an object a mutator can still reach (because a mutator
 * ran during a stop, or its roots were missed), the mutator finds a FREED canary or a
 * reused object on its next walk and the program fails loudly.
 *
 *   usage: gc_vm [seconds]       (default 2)
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#define HEAP_OBJECTS 4096
#define MUTATORS 4
#define MAX_ROOTS 256 /* per mutator: keeps the live set well below the heap size */
#define LIVE 0x4c49564521212121ull
#define FREED 0x4652454544454144ull

typedef struct object {
  uint64_t canary;
  uint64_t serial; /* increases with every allocation */
  int owner;       /* the mutator that allocated it */
  int marked;
  struct object *next; /* the link: a root list, or the free list */
} object_t;

typedef struct {
  object_t *head; /* newest first: serials decrease along the list */
  int length;
  int index;
} roots_t;

static weft_runtime_t *rt;
static const void *poll_flag;
static weft_key_t roots_key;
static object_t heap[HEAP_OBJECTS];
static object_t *free_list;
static weft_mutex_t heap_lock;
static atomic_uint_fast64_t next_serial, allocated;
static atomic_int next_index, quit;
static atomic_int world_stopped; /* set by the collector between stw_begin and stw_end */
/* Written only by the thread that holds the stopped world. */
static uint64_t freed, collections, collections_by_mutators, worst_stop_ns, worst_pause_ns;

#define CHECK(call)                                                                     \
  do {                                                                                  \
    weft_status_t s_ = (call);                                                          \
    if (s_ != WEFT_OK) die("%s: %s (%s)", #call, weft_strerror(s_), weft_last_error()); \
  } while (0)

#define die(...)                                            \
  do {                                                      \
    fprintf(stderr, "gc_vm: FAILED: " __VA_ARGS__);         \
    fputc('\n', stderr);                                    \
    abort();                                                \
  } while (0)

/* ---- the collector ------------------------------------------------------------ */

static bool mark_roots(const weft_task_info_t *info, void *ud) {
  (void)ud;
  roots_t *roots = info->nlocals >= roots_key ? info->locals[roots_key - 1] : NULL;
  for (object_t *o = roots ? roots->head : NULL; o != NULL; o = o->next) o->marked = 1;
  return 0;
}

static void collect(int by_mutator) {
  int64_t start = weft_now(rt);
  CHECK(weft_stw_begin(rt, weft_deadline_after(rt, 10 * 1000000000ll)));
  int64_t stopped = weft_now(rt);
  atomic_store(&world_stopped, 1);
  /* Safe during a stop: no mutator is parked holding a weft mutex it was handed. */
  CHECK(weft_mutex_lock(&heap_lock));
  CHECK(weft_tasks_foreach(rt, mark_roots, NULL));
  for (int i = 0; i < HEAP_OBJECTS; i++) {
    object_t *o = &heap[i];
    if (o->canary == LIVE && !o->marked) {
      o->canary = FREED;
      o->next = free_list;
      free_list = o;
      freed++;
    }
    o->marked = 0;
  }
  CHECK(weft_mutex_unlock(&heap_lock));
  atomic_store(&world_stopped, 0);
  collections++;
  collections_by_mutators += by_mutator;
  uint64_t to_stop = (uint64_t)(stopped - start), pause = (uint64_t)(weft_now(rt) - start);
  if (to_stop > worst_stop_ns) worst_stop_ns = to_stop;
  if (pause > worst_pause_ns) worst_pause_ns = pause;
  CHECK(weft_stw_end(rt));
}

/* ---- the mutators --------------------------------------------------------------- */

/* Returns an object that is not yet rooted: link it before the next safepoint. */
static object_t *allocate(int owner) {
  for (;;) {
    WEFT_SAFEPOINT_POLL(rt, poll_flag); /* an allocation site */
    CHECK(weft_mutex_lock(&heap_lock));
    object_t *o = free_list;
    if (o != NULL) free_list = o->next;
    CHECK(weft_mutex_unlock(&heap_lock));
    if (o != NULL) {
      if (o->canary != FREED) die("object %p on the free list is not free", (void *)o);
      o->canary = LIVE;
      o->serial = atomic_fetch_add(&next_serial, 1) + 1;
      o->owner = owner;
      o->next = NULL;
      atomic_fetch_add(&allocated, 1);
      return o;
    }
    collect(1); /* the heap is full: this mutator collects */
  }
}

/* Touches every object the mutator can reach: a freed or reused one is a GC bug. */
static void check_roots(const roots_t *roots) {
  if (atomic_load(&world_stopped)) die("mutator %d ran managed code while the world was stopped", roots->index);
  uint64_t previous = UINT64_MAX;
  for (const object_t *o = roots->head; o != NULL; o = o->next) {
    if (o->canary != LIVE) die("mutator %d reached object %p, which was freed", roots->index, (void *)o);
    if (o->owner != roots->index || o->serial >= previous)
      die("mutator %d reached object %p, which was freed and allocated again", roots->index, (void *)o);
    previous = o->serial;
  }
}

static uint32_t next_random(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

static int32_t mutator(void *arg, void **result) {
  (void)arg;
  (void)result;
  roots_t *roots = weft_local_get(roots_key); /* made by the start hook */
  uint32_t random = 0x9e3779b9u * (uint32_t)(roots->index + 1);
  while (!atomic_load(&quit)) {
    WEFT_SAFEPOINT_POLL(rt, poll_flag); /* a loop back-edge */
    object_t *o = allocate(roots->index);
    o->next = roots->head; /* rooted from here on */
    roots->head = o;
    roots->length++;
    check_roots(roots);
    if (roots->length >= MAX_ROOTS || next_random(&random) % 4 == 0) {
      int keep = (int)(next_random(&random) % (uint32_t)(roots->length + 1));
      if (keep == 0) {
        roots->head = NULL; /* drops every link: the list is garbage now */
      } else {
        object_t *last = roots->head;
        for (int i = 1; i < keep; i++) last = last->next;
        last->next = NULL;
      }
      roots->length = keep;
    }
    if (next_random(&random) % 64 == 0) {
      CHECK(weft_sleep_until(rt, weft_deadline_after(rt, 100000)));
      check_roots(roots); /* managed code right after a blocking call, before any poll */
    }
  }
  return 0;
}

/* Per-mutator VM state, registered on the task's own thread when it starts. */
static void vm_thread_start(weft_task_t *task, void *ud) {
  (void)ud;
  (void)task;
  roots_t *roots = calloc(1, sizeof *roots);
  if (roots == NULL) die("out of memory");
  roots->index = atomic_fetch_add(&next_index, 1);
  CHECK(weft_local_set(roots_key, roots));
}

static void vm_thread_exit(weft_task_t *task, void *ud) {
  (void)ud;
  (void)task;
  roots_t *roots = weft_local_get(roots_key);
  roots->head = NULL; /* the mutator's objects become garbage */
}

/* ---- the program ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.on_task_start = vm_thread_start;
  cfg.on_task_exit = vm_thread_exit;
  CHECK(weft_runtime_open(&cfg, &rt));
  poll_flag = weft_safepoint_flag(rt);
  CHECK(weft_key_create(rt, free, &roots_key)); /* frees each mutator's roots_t */
  CHECK(weft_mutex_init(rt, &heap_lock, 0));
  for (int i = HEAP_OBJECTS - 1; i >= 0; i--) {
    heap[i].canary = FREED;
    heap[i].next = free_list;
    free_list = &heap[i];
  }
  CHECK(weft_thread_attach(rt)); /* the collector is a mutator too (with no roots) */

  weft_task_t *tasks[MUTATORS];
  for (int i = 0; i < MUTATORS; i++) CHECK(weft_spawn(rt, mutator, NULL, NULL, &tasks[i]));
  int64_t end = weft_deadline_after(rt, (int64_t)(seconds * 1e9));
  while (weft_now(rt) < end) {
    CHECK(weft_sleep_until(rt, weft_deadline_after(rt, 2000000)));
    collect(0);
  }
  atomic_store(&quit, 1);
  for (int i = 0; i < MUTATORS; i++) CHECK(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
  collect(0); /* every mutator has exited: everything is garbage now */

  if (freed != atomic_load(&allocated)) die("allocated %" PRIu64 " objects but freed %" PRIu64, (uint64_t)allocated, freed);
  printf("gc_vm: %d mutators, %.1f s: %" PRIu64 " collections (%" PRIu64 " by mutators), %" PRIu64
         " objects allocated, %" PRIu64 " freed, worst time to stop %.1f us, worst pause %.1f us\n",
         MUTATORS, seconds, collections, collections_by_mutators, (uint64_t)allocated, freed, worst_stop_ns / 1e3,
         worst_pause_ns / 1e3);
  CHECK(weft_thread_detach(rt));
  CHECK(weft_mutex_destroy(&heap_lock));
  CHECK(weft_runtime_close(rt));
  return 0;
}
