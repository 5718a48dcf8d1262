/*
 * weft_platform.h: the ABI between libweft and a platform plugin.
 *
 * Generated from platform/src/abi.rs by tools/headers (./dev headers): do not edit.
 *
 * A plugin is a shared object that exports one function, weft_platform_entry
 * (declared at the end), returning a static weft_platform_t. docs/plugins.md has
 * the rules, what changed in each ABI version, and a worked example
 * (plugins/pthread, in C).
 */

#ifndef WEFT_PLATFORM_H
#define WEFT_PLATFORM_H

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

// First field of every plugin table ("WEFTPLAT" in ASCII, little-endian).
#define WEFT_PLATFORM_MAGIC UINT64_C(0x54414c5054464557)

// The plugin ABI version this header describes. Version 2 added `fd_wait` and
// `fd_forget` (IO readiness waits); a version-1 plugin still loads, and the runtime
// answers its IO calls with `WEFT_ENOTSUP`. Version 2 also added the optional
// members an M:N platform needs (`region_enter`, `region_leave`, `preempt_attach`,
// `preempt_point`) and, on the host side, `context_get` / `context_set`.
#define WEFT_PLATFORM_ABI_VERSION 2

// The oldest plugin ABI version this runtime still loads.
#define WEFT_PLATFORM_ABI_MIN 1

// The host-services ABI version this header describes (`weft_host_t.abi_version`).
#define WEFT_HOST_ABI_VERSION 2

// The bit of a runtime's safepoint poll word (`weft_safepoint_flag`) that a platform
// sets, through `preempt_attach`'s pointer, to make polling tasks call
// `weft_safepoint` and so its `preempt_point` (bit 0 is the runtime's: a
// stop-the-world).
#define WEFT_SAFEPOINT_PREEMPT 2

// Bytes of a `weft_mutex_t` that belong to the plugin (the rest is the runtime's
// owner and state bookkeeping). A plugin whose `mutex_size` is larger is refused.
#define WEFT_PLATFORM_MUTEX_BYTES 40

// Bytes of a `weft_cond_t` that belong to the plugin.
#define WEFT_PLATFORM_COND_BYTES 48

// Bytes of a `weft_rwlock_t` that belong to the plugin.
#define WEFT_PLATFORM_RWLOCK_BYTES 56

// Alignment the runtime guarantees for a plugin's part of every sync object.
#define WEFT_PLATFORM_SYNC_ALIGN 8

// A plugin's channel, created by `chan_new` and freed by `chan_free`. Opaque to the
// runtime.
typedef struct weft_plat_chan_t weft_plat_chan_t;

// A plugin's runtime state, created by `runtime_open`. Opaque to the runtime.
typedef struct weft_plat_rt_t weft_plat_rt_t;

// A plugin's handle to one spawned task. Opaque to the runtime.
typedef struct weft_plat_task_t weft_plat_task_t;

// What the runtime tells the plugin when it opens (copied from `weft_config_t`).
typedef struct weft_plat_config_t {
  // `sizeof(weft_plat_config_t)` as the runtime knows it.
  uint32_t struct_size;
  // Worker threads for an M:N platform; 0 = one per CPU. Other platforms ignore it.
  uint32_t workers;
  // Seed for a deterministic platform; other platforms ignore it.
  uint64_t seed;
} weft_plat_config_t;

// `runtime_open`: create the plugin's runtime state. `cfg` is borrowed for the call.
typedef weft_status_t (*weft_plat_open_fn)(const struct weft_plat_config_t *cfg, struct weft_plat_rt_t **out);

// A call that takes only the plugin's runtime state.
typedef weft_status_t (*weft_plat_rt_fn)(struct weft_plat_rt_t *rt);

// `now`: the platform's monotonic clock in nanoseconds.
typedef int64_t (*weft_plat_now_fn)(struct weft_plat_rt_t *rt);

// `sleep_until`: wait until `deadline` (a cancellation point).
typedef weft_status_t (*weft_plat_sleep_fn)(struct weft_plat_rt_t *rt, int64_t deadline);

// What the runtime tells the plugin about one spawn.
typedef struct weft_plat_spawn_t {
  // `sizeof(weft_plat_spawn_t)` as the runtime knows it.
  uint32_t struct_size;
  // Stack size in bytes. The runtime passes the final size: a whole number of pages,
  // at least 64 KiB (`WEFT_DEFAULT_STACK_SIZE` when the host asked for none), so every
  // platform gives the same stacks. 0 = the platform's default (no runtime sends it).
  size_t stack_size;
  // The task's name (borrowed for the duration of `spawn`), or NULL.
  const char *name;
  // The task's id (`weft_task_id`), for the platform's own messages (e.g. a stack
  // overflow report). Read it only if `struct_size` covers it (runtimes of host ABI 2
  // and later).
  uint64_t id;
} weft_plat_spawn_t;

// `spawn`: start a task that calls `host->task_run(ctx)`; `opts` is borrowed for the call.
typedef weft_status_t (*weft_plat_spawn_fn)(struct weft_plat_rt_t *rt, void *ctx, const struct weft_plat_spawn_t *opts, struct weft_plat_task_t **out);

// `join`: wait until the task's `task_run` returned, or `deadline`. The handle stays
// valid either way (the runtime releases it with `detach`). The wait is a cancellation
// point for the caller.
typedef weft_status_t (*weft_plat_join_fn)(struct weft_plat_task_t *task, int64_t deadline);

// A call that takes one task handle (`detach` releases it; `cancel` does not).
typedef weft_status_t (*weft_plat_task_fn)(struct weft_plat_task_t *task);

// Initialise a sync object's plugin bytes (`obj` is 8-aligned, zeroed).
typedef weft_status_t (*weft_plat_init_fn)(struct weft_plat_rt_t *rt, void *obj);

// An operation on a sync object's plugin bytes.
typedef weft_status_t (*weft_plat_obj_fn)(void *obj);

// A timed operation on a sync object's plugin bytes.
typedef weft_status_t (*weft_plat_obj_until_fn)(void *obj, int64_t deadline);

// `cond_wait_until`: atomically release `mutex`, wait for a signal, the deadline or a
// cancellation, and re-acquire `mutex` before returning (whatever the result).
typedef weft_status_t (*weft_plat_cond_wait_fn)(void *cond, void *mutex, int64_t deadline);

// `chan_new`: create a channel of `elem_size`-byte elements (0 is allowed: elements
// carry no bytes and the channel counts them). `capacity` 0 = rendezvous (a send
// completes only by handing its element to a receiver), `WEFT_CHAN_UNBOUNDED`
// (`SIZE_MAX`) = unbounded (sends never wait), otherwise at most `capacity` buffered
// elements. `WEFT_ENOMEM` (never an abort) when the buffer cannot be had, e.g. a
// bounded channel whose `elem_size * capacity` overflows or cannot be allocated.
typedef weft_status_t (*weft_plat_chan_new_fn)(struct weft_plat_rt_t *rt, size_t elem_size, size_t capacity, struct weft_plat_chan_t **out);

// `chan_send`: copy the `elem_size` bytes at `elem` into the channel (see
// `weft_platform_t.chan_send`).
typedef weft_status_t (*weft_plat_chan_send_fn)(struct weft_plat_chan_t *ch, const void *elem, int64_t deadline);

// `chan_recv`: copy the oldest element of the channel to `out` (see
// `weft_platform_t.chan_recv`).
typedef weft_status_t (*weft_plat_chan_recv_fn)(struct weft_plat_chan_t *ch, void *out, int64_t deadline);

// A call that takes one channel (`chan_close`).
typedef weft_status_t (*weft_plat_chan_fn)(struct weft_plat_chan_t *ch);

// `chan_len`: the number of elements buffered now.
typedef size_t (*weft_plat_chan_len_fn)(struct weft_plat_chan_t *ch);

// What `chan_free` calls on each undelivered element: `elem` points to the element's
// `elem_size` bytes (valid during the call only), `ud` is what `chan_free` was given.
// `elem` is aligned to at least the largest power of two that divides `elem_size`, up
// to 16 (what any C type of that size needs; weft.h promises it to the host).
typedef void (*weft_plat_elem_drop_fn)(void *elem, void *ud);

// `chan_free`: drop every undelivered element and free the channel (see
// `weft_platform_t.chan_free`).
typedef void (*weft_plat_chan_free_fn)(struct weft_plat_chan_t *ch, weft_plat_elem_drop_fn drop, void *ud);

// One case of `chan_select`, as the runtime hands it to the plugin (translated from
// the host's `weft_select_case_t`; borrowed for the call).
typedef struct weft_plat_select_case_t {
  // A live channel of this plugin.
  struct weft_plat_chan_t *chan;
  // `WEFT_SELECT_SEND` or `WEFT_SELECT_RECV`.
  int32_t op;
  // Send: the element to copy from. Receive: where to copy the element to. Points to
  // the channel's `elem_size` bytes; NULL only when `elem_size` is 0.
  void *buf;
} weft_plat_select_case_t;

// `chan_select`: complete exactly one of `n` (at least 1) send and receive cases, or
// none (see `weft_platform_t.chan_select`).
typedef weft_status_t (*weft_plat_select_fn)(const struct weft_plat_select_case_t *cases, size_t n, int64_t deadline, uint32_t flags, size_t *chosen);

// The table a plugin returns from `weft_platform_entry`. Static: it must stay valid
// and unchanged for the life of the process (the runtime never unloads a plugin).
//
// Versioning: the table only ever grows at the end. The members added by ABI version
// N follow the line "ABI version N and later"; the loader reads a member only when the
// plugin's `abi_version` is at least N and its `struct_size` covers the member, and it
// accepts `WEFT_PLATFORM_ABI_MIN` to `WEFT_PLATFORM_ABI_VERSION`. Every member of the
// plugin's declared version must be non-NULL: an operation a platform cannot offer is
// a function that returns `WEFT_ENOTSUP`.
//
// Deadlines are absolute nanoseconds of the plugin's own `now`; `WEFT_FOREVER` never
// expires; a deadline at or before now means "try once, do not wait".
// Cancellation points (`sleep_until`, `join`, `cond_wait_until`, `fd_wait`, and the
// channel members when they would wait) return `WEFT_ECANCELED` at once when
// `host->cancel_pending()` says so, and wake up to return it when `cancel` is called
// while they wait. Lock acquisition is not a cancellation point.
//
// Channels (`chan_*`): the runtime keeps the public `weft_chan_t` (argument checks,
// the reference count, the closed flag, the `elem_drop` bookkeeping) and calls the
// channel members only with valid
// arguments: a live channel of this plugin, `elem`/`out`/`buf` pointing to
// `elem_size` bytes (NULL only when `elem_size` is 0), calls from any thread. The
// plugin does the storing and the waiting. Rules every channel member keeps:
// * Copies: the plugin copies exactly `elem_size` bytes, never interprets them, and
//   uses a caller's buffer only during the call that lent it (a blocked sender's
//   `elem` may be read by the receiver that completes it while the sender still
//   waits; a blocked receiver's `out` may be written by the sender that completes
//   it). Every element sent with `WEFT_OK` is received exactly once or stays
//   buffered until `chan_free`; nothing is duplicated or lost.
// * Order: one channel delivers elements in the order their sends completed (FIFO);
//   senders blocked on a full channel complete in the order they blocked.
// * A call that can complete at once completes, even when the caller has a
//   cancellation pending. A call that cannot: `WEFT_ECANCELED` if
//   `host->cancel_pending()`, else `WEFT_ETIMEDOUT` if the deadline has passed, else
//   it waits, inside `host->blocking_enter()` / `blocking_leave()` (no plugin lock
//   held across `blocking_leave`), until it completes, the deadline passes
//   (`WEFT_ETIMEDOUT`) or `cancel` wakes the task (`WEFT_ECANCELED`; ask
//   `cancel_pending` again on every wake-up). If the operation was completed by
//   another task before the waiter gives up, the waiter reports that completion
//   (`WEFT_OK` or `WEFT_ECLOSED`), never the timeout or cancellation: an element
//   handed over is never lost. A call that gives up has taken or delivered nothing.
// * Nothing aborts: allocation failure is `WEFT_ENOMEM`.
// * `cancel` must wake a task waiting in a channel call, as in any cancellation point.
//
// docs/plugins.md describes a design that meets these rules (the pthread plugin's).
typedef struct weft_platform_t {
  // `WEFT_PLATFORM_MAGIC`.
  uint64_t magic;
  // `sizeof(weft_platform_t)` as the plugin was compiled.
  uint32_t struct_size;
  // The plugin ABI version the plugin was compiled against.
  uint32_t abi_version;
  // Short name, e.g. "native" (static string).
  const char *name;
  // The plugin's own version, e.g. "1.2.0" (static string).
  const char *version;
  // `WEFT_CAP_*` bits.
  uint64_t caps;
  // Bytes the plugin needs in each mutex; at most `WEFT_PLATFORM_MUTEX_BYTES`.
  uint32_t mutex_size;
  // Bytes the plugin needs in each condition; at most `WEFT_PLATFORM_COND_BYTES`.
  uint32_t cond_size;
  // Bytes the plugin needs in each rwlock; at most `WEFT_PLATFORM_RWLOCK_BYTES`.
  uint32_t rwlock_size;
  // Alignment the plugin needs for its sync bytes; at most `WEFT_PLATFORM_SYNC_ALIGN`.
  uint32_t sync_align;

  /* ---- ABI version 1 and later ---- */
  // Creates the plugin's runtime state.
  weft_plat_open_fn runtime_open;
  // Frees the plugin's runtime state. Called once no task of it runs.
  weft_plat_rt_fn runtime_close;
  // The monotonic clock, in nanoseconds.
  weft_plat_now_fn now;
  // Lets other tasks run.
  weft_plat_rt_fn yield;
  // Waits until a deadline (cancellation point).
  weft_plat_sleep_fn sleep_until;
  // Starts a task.
  weft_plat_spawn_fn spawn;
  // Waits for a task to finish.
  weft_plat_join_fn join;
  // Releases a task handle, after a join or instead of one (the task runs on).
  // Called exactly once per spawned task.
  weft_plat_task_fn detach;
  // Wakes a task if it waits in a cancellation point (the runtime has already marked
  // it cancelled; the wait sees it through `host->cancel_pending`).
  weft_plat_task_fn cancel;
  // Initialises a mutex.
  weft_plat_init_fn mutex_init;
  // Destroys an unlocked mutex.
  weft_plat_obj_fn mutex_destroy;
  // Acquires a mutex, waiting as long as it takes.
  weft_plat_obj_fn mutex_lock;
  // Acquires a mutex if it is free; `WEFT_EBUSY` otherwise.
  weft_plat_obj_fn mutex_try_lock;
  // Acquires a mutex or gives up at the deadline with `WEFT_ETIMEDOUT`.
  weft_plat_obj_until_fn mutex_lock_until;
  // Releases a mutex held by the caller.
  weft_plat_obj_fn mutex_unlock;
  // Initialises a condition variable.
  weft_plat_init_fn cond_init;
  // Destroys a condition variable nobody waits on.
  weft_plat_obj_fn cond_destroy;
  // Waits on a condition variable (cancellation point; spurious wake-ups allowed).
  weft_plat_cond_wait_fn cond_wait_until;
  // Wakes at least one waiter, if any.
  weft_plat_obj_fn cond_signal;
  // Wakes every waiter.
  weft_plat_obj_fn cond_broadcast;
  // Initialises a readers-writer lock; writers must not starve.
  weft_plat_init_fn rwlock_init;
  // Destroys an unlocked rwlock.
  weft_plat_obj_fn rwlock_destroy;
  // Acquires shared access.
  weft_plat_obj_fn rwlock_read_lock;
  // Acquires shared access if no writer holds or waits; `WEFT_EBUSY` otherwise.
  weft_plat_obj_fn rwlock_try_read_lock;
  // Acquires exclusive access.
  weft_plat_obj_fn rwlock_write_lock;
  // Acquires exclusive access if free; `WEFT_EBUSY` otherwise.
  weft_plat_obj_fn rwlock_try_write_lock;
  // Releases shared access.
  weft_plat_obj_fn rwlock_read_unlock;
  // Releases exclusive access.
  weft_plat_obj_fn rwlock_write_unlock;
  // Creates a channel (see `weft_plat_chan_new_fn`).
  weft_plat_chan_new_fn chan_new;
  // Sends one element. `WEFT_OK`: the `elem_size` bytes at `elem` were copied into the
  // buffer or straight into a waiting receiver's `out` (rendezvous: only the latter).
  // `WEFT_ECLOSED`: the channel was closed before the element was taken, including
  // while the sender waited; at once for a closed channel even if it has room; the
  // element was not copied and stays the caller's. `WEFT_ETIMEDOUT`,
  // `WEFT_ECANCELED`: as in the rules above, nothing taken. `WEFT_ENOMEM`: an
  // unbounded channel could not grow, nothing taken. Never waits on an unbounded
  // channel.
  weft_plat_chan_send_fn chan_send;
  // Receives the oldest element into `out`. `WEFT_OK`: one element was copied
  // (from the buffer, or from a waiting sender, whose send then completes with
  // `WEFT_OK`; when a bounded buffer is full and a sender waits, the receiver takes
  // the buffer's head and the sender's element moves to its tail). After a close,
  // buffered elements are still received; `WEFT_ECLOSED` once the channel is closed
  // and empty (also for a receiver waiting when the close comes). `WEFT_ETIMEDOUT`,
  // `WEFT_ECANCELED`: as in the rules above, `out` untouched.
  weft_plat_chan_recv_fn chan_recv;
  // Closes the channel; the runtime calls it at most once per channel. Returns at
  // once. Every sender waiting (in `chan_send` or a send case of `chan_select`)
  // returns `WEFT_ECLOSED` without its element being taken; every receiver waiting
  // (the buffer is then empty) returns `WEFT_ECLOSED`; a waiting `chan_select` with a
  // case on this channel completes that case with `WEFT_ECLOSED`. Buffered elements
  // stay for receivers to drain.
  weft_plat_chan_fn chan_close;
  // The number of elements buffered now (0 for a rendezvous channel; a waiting
  // sender's element is not counted). Never waits (a short internal lock is fine).
  weft_plat_chan_len_fn chan_len;
  // Frees a channel. Called exactly once, when no call on the channel runs or will
  // run (nobody waits on it), possibly after `runtime_close` of the runtime that made
  // it: a channel must not need the runtime state to be freed. If `drop` is not NULL,
  // calls `drop(elem, ud)` exactly once for each element still buffered, oldest
  // first, before freeing (with `elem_size` 0, `elem` is a non-NULL pointer that must
  // not be read).
  weft_plat_chan_free_fn chan_free;
  // Completes exactly one of `n` cases (`n >= 1`, `cases` borrowed for the call), or
  // none. The cases may be on channels of any kind, and the same channel may appear
  // in several cases, with either operation. A send case is ready when its channel
  // is closed, has room, or has a waiting receiver; a receive case when its channel
  // has a buffered element, a waiting sender, or is closed. A waiting select is
  // never completed by one of its own cases (its send and receive cases on one
  // rendezvous channel do not meet).
  // * Some cases ready: complete one. With `WEFT_SELECT_ORDERED` in `flags`, the
  //   ready case with the lowest index; otherwise one chosen uniformly at random
  //   among the ready cases (the conformance suite checks that each of several
  //   always-ready cases is chosen near its fair share over 100000 rounds).
  // * None ready: as the rules above: `WEFT_ECANCELED`, `WEFT_ETIMEDOUT`, or wait for
  //   the first case another task makes completable (its sender, receiver or close).
  //   A waiting select claims a case atomically: at most one case ever completes,
  //   whatever races with whom.
  //
  // On completion writes the case's index to `*chosen` and returns that case's
  // outcome, exactly as `chan_send` / `chan_recv` would give it: `WEFT_OK` (data
  // copied) or `WEFT_ECLOSED` (a send case's element was not taken). On
  // `WEFT_ETIMEDOUT` or `WEFT_ECANCELED` no case completed: nothing was sent or
  // received and `*chosen` is untouched; likewise with `WEFT_ENOMEM` (a send case on
  // an unbounded channel that could not grow). Unknown `flags` bits are ignored (the
  // runtime refuses them). A select with no cases never reaches the plugin.
  weft_plat_select_fn chan_select;

  /* ---- ABI version 2 and later ---- */
  // ABI 2 and later. Waits until `fd` is ready for one of `events`, level-triggered: an fd ready now
  // returns at once, however often it is asked. On `WEFT_OK` writes the ready events
  // to `*revents`: `WEFT_IO_READ` when readable or the peer hung up (EOF is
  // readable), `WEFT_IO_WRITE` when writable (each only if asked for), and
  // `WEFT_IO_ERROR` (4) whenever the fd has an error or hang-up condition, asked for
  // or not (an fd in that state is ready: the host's next read or write reports it).
  // Otherwise `*revents` is untouched and the result is:
  // * `WEFT_ECANCELED`: a cancellation point: at once when `host->cancel_pending()`
  //   says so (even if `fd` is ready), and when `cancel` wakes the waiting task;
  // * `WEFT_ETIMEDOUT` at the deadline; a deadline at or before now polls once;
  // * `WEFT_ECLOSED` when `fd_forget(rt, fd)` is called while it waits;
  // * `WEFT_EINVAL` when `fd` is not open, when the call starts or later (closed
  //   while waiting without `fd_forget`: the wait must not hang), with a detail
  //   through `host->set_error_detail` that says "fd N is not open". The runtime
  //   does not check beforehand (that would be a syscall per wait): `poll` reports
  //   such an fd as `POLLNVAL`, `epoll_ctl` fails with `EBADF`.
  //
  // The wait itself happens inside `host->blocking_enter()` / `blocking_leave()`, so a
  // stop-the-world never waits for it. Any number of tasks may wait on one fd, for
  // the same or different events; each whose events are ready is woken. Never a
  // poll loop with a sleep: a thread-per-task plugin polls the fd and a wake-up fd of
  // the waiter's own (an eventfd that `cancel` and `fd_forget` write to) in one
  // `poll`; an M:N plugin parks the task and lets its netpoller wake it.
  weft_status_t (*fd_wait)(struct weft_plat_rt_t *rt, int32_t fd, uint32_t events, int64_t deadline, uint32_t *revents);
  // ABI 2 and later. The host is about to close `fd`: every `fd_wait` on `fd` in this plugin runtime
  // that is waiting now returns `WEFT_ECLOSED`, and the plugin drops whatever it
  // registered for `fd` (an epoll registration), so that a new fd with the same
  // number starts clean. Waits that start afterwards are not affected. Fine for an
  // fd never waited on, and for one already closed (its waiters are still woken).
  // Never waits for the woken tasks to return. `WEFT_OK` unless the plugin breaks.
  weft_status_t (*fd_forget)(struct weft_plat_rt_t *rt, int32_t fd);
  // The calling task enters a blocking region the host opened itself
  // (`weft_blocking_begin`): it may now block its OS thread for long (a `read()`, a
  // C library, a lock of the host's). An M:N platform hands the thread's other
  // tasks to another thread here. Called after the runtime marked the region; a
  // platform with one thread per task returns `WEFT_OK` and does nothing.
  weft_plat_rt_fn region_enter;
  // The calling task leaves the region of `region_enter` (`weft_blocking_end`),
  // before the runtime unmarks it.
  weft_plat_rt_fn region_leave;
  // Hands the platform the runtime's safepoint poll word, right after `runtime_open`
  // (valid until `runtime_close`; atomic `uint32_t`). A platform that preempts at the
  // host's polls atomically ORs `WEFT_SAFEPOINT_PREEMPT` into it when a task overran
  // its time slice, and clears that bit (never another) when no task needs it. Others
  // return `WEFT_OK` and ignore it.
  weft_status_t (*preempt_attach)(struct weft_plat_rt_t *rt, uint32_t *word);
  // Called by `weft_safepoint` (the slow path of `WEFT_SAFEPOINT_POLL`) on a task
  // outside any blocking region while `WEFT_SAFEPOINT_PREEMPT` is set: the platform
  // switches the calling task out if it is the one that overran its slice, and
  // returns at once otherwise.
  weft_plat_rt_fn preempt_point;
  // The calling task's stack, for a platform that runs tasks on stacks of its own
  // (coroutines): writes its lowest address to `*lo` and one past its highest to
  // `*hi` (the usable stack, without its guard page) and returns `WEFT_OK`. Returns
  // `WEFT_ENOTSUP` when the caller runs on its OS thread's own stack (a thread that is
  // not one of the platform's tasks, or every task of a platform with one thread per
  // task): the runtime then asks `pthread_getattr_np`, as it does when the member is
  // NULL. Called on the task itself, once, when it becomes a mutator; never waits.
  weft_status_t (*stack_bounds)(struct weft_plat_rt_t *rt, size_t *lo, size_t *hi);
  // Optional, with `unpark` (both or neither): parking on an address for
  // `weft_wait_on` / `weft_park`, the semaphores, barriers and `weft_once`. Parks the
  // calling task on `key` if `validate(ud)`, which the platform calls with its queue
  // for `key` locked (so that no `unpark(key)` comes between the check and the park),
  // returns true; until an `unpark` of `key` wakes it, `deadline` passes or the task
  // is cancelled. Returns `WEFT_OK` when woken and when `validate` said false (it
  // never slept: the runtime's callers look at their state again either way),
  // `WEFT_ETIMEDOUT`, `WEFT_ECANCELED` (a cancellation point);
  // an unpark that came first wins over a deadline or a cancellation met at the same
  // time. The wait happens between `host->blocking_enter()` and `blocking_leave()`.
  // Keys are the runtime's (never an address the plugin itself parks on); a wake-up
  // that is not an `unpark` of `key` must not return `WEFT_OK`. Without these members
  // the runtime parks with a table of its own over `mutex_*` and `cond_*`.
  weft_status_t (*park)(struct weft_plat_rt_t *rt, size_t key, bool (*validate)(void *ud), void *ud, int64_t deadline);
  // Wakes up to `n` tasks parked on `key` with `park`, oldest first where the platform
  // can; returns how many it woke. Never waits.
  size_t (*unpark)(struct weft_plat_rt_t *rt, size_t key, size_t n);
  // Optional, with `rwlock_write_lock_until` (both or neither; without them the
  // runtime answers `weft_rwlock_read_lock_until` and `weft_rwlock_write_lock_until`
  // with `WEFT_ENOTSUP`): acquires shared access as `rwlock_read_lock` does, or gives
  // up at `deadline` with `WEFT_ETIMEDOUT` (a deadline already past: one try). Not a
  // cancellation point.
  weft_plat_obj_until_fn rwlock_read_lock_until;
  // Acquires exclusive access as `rwlock_write_lock` does, or gives up at `deadline`
  // with `WEFT_ETIMEDOUT`. A writer that gives up no longer holds readers back: the
  // readers that waited only for it go on.
  weft_plat_obj_until_fn rwlock_write_lock_until;
} weft_platform_t;

// Host services: the runtime's functions a plugin calls back. The plugin receives the
// table in `weft_platform_entry`; it is static and valid for the life of the process.
typedef struct weft_host_t {
  // `sizeof(weft_host_t)` as the runtime knows it.
  uint32_t struct_size;
  // `WEFT_HOST_ABI_VERSION` of the runtime.
  uint32_t abi_version;
  // Runs a spawned task to completion on the calling execution context: the runtime
  // registers the task as a mutator (task started), runs the start hook, the task
  // function, the exit hook and the task-local destructors, and unregisters it (task
  // exited). A plugin calls it exactly once per successful `spawn`, with the `ctx` it
  // was given, from the new task's own context. After it returns the plugin must not
  // touch the runtime state (`weft_plat_rt_t`): the runtime may be closing.
  void (*task_run)(void *ctx);
  // Call before the calling task may block (park, sleep, wait on the OS) inside the
  // plugin, and `blocking_leave` after. While inside, a stop-the-world does not wait
  // for the task; `blocking_leave` may itself park the task until the world resumes.
  // Only the slow path needs it: an uncontended lock need not call it. Regions nest:
  // around `mutex_lock`, `mutex_lock_until`, the rwlock locks and `cond_wait_until`
  // the runtime keeps a region of its own open, so there the plugin's leave never
  // parks (the runtime gives the lock back itself if the world was stopped meanwhile).
  // Call it from the function that then waits (or from a helper inlined into it), not
  // from a helper that returns before the wait: the runtime records the caller's
  // callee-saved registers and stack pointer at this call, for collectors that scan
  // stopped tasks' stacks (`weft_task_info_t.sp`), and the frames above that stack
  // pointer must stay as they are until `blocking_leave`.
  void (*blocking_enter)(void);
  // Leaves the blocking region entered with `blocking_enter`. Call it with no plugin
  // lock held that another task needs to make progress.
  void (*blocking_leave)(void);
  // Records a human-readable detail for the error the plugin is about to return
  // (copied; e.g. the `strerror` of a failed `pthread_create`). The runtime adds it to
  // `weft_last_error()`.
  void (*set_error_detail)(const char *detail);
  // Non-zero when the calling task has been cancelled and the runtime does not mask
  // cancellation for the current wait (it does for its own internal waits). Every
  // cancellation point asks before it waits and again whenever it wakes; the plugin's
  // `cancel` only has to wake the task.
  int32_t (*cancel_pending)(void);
  // The running weft context of the calling OS thread, or NULL. Opaque.
  void *(*context_get)(void);
  // Makes `ctx` (a value from `context_get` or `context_set`, or NULL) the running
  // context of the calling OS thread; returns the previous one. Never blocks, never
  // fails, no lock taken.
  void *(*context_set)(void *ctx);
} weft_host_t;

// The one symbol a plugin exports, `weft_platform_entry`. It receives the runtime's
// host services (static, valid for the life of the process) and returns the plugin's
// static table, or NULL if the plugin cannot work with this host (e.g. `host` too old).
typedef const struct weft_platform_t *(*weft_platform_entry_fn)(const struct weft_host_t *host);

// Marks the entry function for export from the plugin's shared object.
#if defined(__GNUC__) || defined(__clang__)
#define WEFT_PLATFORM_EXPORT __attribute__((visibility("default")))
#else
#define WEFT_PLATFORM_EXPORT
#endif

// True when the host-services table `host` has member `member` (a field added by
// a later host ABI version is present only if the runtime is that new).
#define WEFT_HOST_HAS(host, member) \
  ((host)->struct_size >= offsetof(weft_host_t, member) + sizeof((host)->member) && \
   (host)->member != NULL)

// The one function a plugin exports, by the symbol name `weft_platform_entry`:
// receives the runtime's host services (static, valid for the life of the process)
// and returns the plugin's static table, or NULL if it cannot work with this host.
WEFT_PLATFORM_EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *host);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  /* WEFT_PLATFORM_H */
