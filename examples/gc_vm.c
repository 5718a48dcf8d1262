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
#define VM_PROGRAM "gc_vm"
#include "vm_heap.h"

#define MUTATORS 4
#define MAX_ROOTS 256 /* per mutator: keeps the live set well below the heap size */

typedef struct {
  object_t *head; /* newest first: serials decrease along the list */
  int length;
  int index;
} roots_t;

static weft_key_t roots_key;
static atomic_int next_index, quit;
static atomic_int world_stopped; /* set by the collector between stw_begin and stw_end */
/* Written only by the thread that holds the stopped world. */
static uint64_t collections, collections_by_mutators, worst_stop_ns, worst_pause_ns;

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
  sweep();
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

/* An allocation found the heap full: this mutator collects. */
static void collect_when_full(void) { collect(1); }

/* Touches every object the mutator can reach: a freed or reused one is a GC bug. */
static void check_roots(const roots_t *roots) {
  if (atomic_load(&world_stopped)) die("mutator %d ran managed code while the world was stopped", roots->index);
  check_list(roots->head, roots->index);
}

static int32_t mutator(void *arg, void **result) {
  (void)arg;
  (void)result;
  roots_t *roots = weft_local_get(roots_key); /* made by the start hook */
  uint32_t random = 0x9e3779b9u * (uint32_t)(roots->index + 1);
  while (!atomic_load(&quit)) {
    WEFT_SAFEPOINT_POLL(rt, poll_flag); /* a loop back-edge */
    object_t *o = allocate(roots->index); /* not rooted yet: link it before the next safepoint */
    o->next = roots->head; /* rooted from here on */
    roots->head = o;
    roots->length++;
    check_roots(roots);
    if (roots->length >= MAX_ROOTS || next_random(&random) % 4 == 0)
      drop_tail(&roots->head, &roots->length, next_random(&random));
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
  heap_open(&cfg);
  CHECK(weft_key_create(rt, free, &roots_key)); /* frees each mutator's roots_t */
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
  heap_close();
  return 0;
}
