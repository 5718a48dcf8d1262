/*
 * weft.h: the public API of libweft, a concurrency runtime for C and C++ hosts.
 *
 * Generated from core/ by tools/headers (./dev headers): do not edit.
 *
 * Rules that hold for every function below:
 * - Errors. Every fallible call returns weft_status_t: WEFT_OK (0) or a WEFT_E*
 *   code (stable numbers, never reused). weft_strerror(code) names a code;
 *   weft_last_error() gives the detail of the caller's last failure (the function,
 *   the object, the reason): the running task's own, else the calling thread's. No call aborts the process, sets errno, or lets
 *   a panic escape (that becomes WEFT_EINTERNAL), except for a callback that breaks the
 *   next rule.
 * - Callbacks (task functions, the on_task_start/on_task_exit hooks, task-local
 *   slot destructors, a channel's elem_drop, blob destructors, weft_tasks_foreach
 *   visitors, weft_parallel_for bodies, weft_once functions, weft_park validators,
 *   on_check_report) must return normally: no C++ exception may leave one and no
 *   longjmp may jump out of one. An exception (or any other unwind) that leaves a
 *   callback aborts the process at once, on every platform, with "weft: <the callback> let
 *   a C++ exception ... escape into weft" on stderr. A longjmp out of a callback cannot be
 *   detected and is undefined behaviour. Catch in the callback and return an error code.
 * - Outputs. Out-parameters are written only on success (one exception: weft_select
 *   writes *chosen also when the chosen case's outcome is WEFT_ECLOSED).
 * - Ownership. A pointer argument is borrowed for the duration of the call unless its
 *   documentation says "takes ownership". A returned handle is owned by the caller, who
 *   gives it back exactly once with the named function (weft_runtime_close, weft_join
 *   or weft_detach, weft_chan_release, weft_blob_release). Strings returned by weft
 *   are owned by weft.
 * - Handles. A handle given back must not be used again. weft never returns a handle's
 *   memory to the allocator (runtimes are kept after close; tasks, channels and blobs are
 *   recycled), so a call through a handle already given back is refused with
 *   WEFT_EINVAL, until a new handle of the same kind reuses the memory. A pointer that
 *   was never a handle of the right kind is refused as far as its first bytes tell.
 * - Sync objects (weft_mutex_t, weft_cond_t, weft_rwlock_t, weft_sem_t,
 *   weft_barrier_t, weft_once_t) live in host memory, at their type's alignment, and
 *   are never copied or moved while initialised; an uninitialised or destroyed one is
 *   refused with WEFT_EINVAL while the host leaves the memory alone, and so is one at a
 *   misaligned address (inside a packed struct, say), whatever its bytes.
 * - Threads. Every function may be called from any thread or task, concurrently with
 *   any other, on the same objects, except: a _destroy, weft_runtime_close, the last
 *   _release of a handle, weft_join and weft_detach must not race with other calls
 *   on the same object or handle (they end its life); and weft_mutex_init,
 *   weft_cond_init, weft_rwlock_init must finish before anyone else uses the object.
 *   One exception to the exception: a task handle's weft_join or weft_detach may race
 *   with weft_cancel, weft_task_id, weft_task_link_chan and another join or detach
 *   of the same handle. Each of those then acts before the handle is given up, or is
 *   refused (WEFT_EINVAL; weft_task_id gives the id or 0). A call made after the join or detach
 *   has returned is the host's error as above: the handle may already be a new task's.
 *   The handle of a task spawned into a group (weft_group_spawn) is the group's: a
 *   join or detach through it (weft_task_self, a hook, the registry) is WEFT_EINVAL.
 *   Callbacks (task functions, hooks, destructors, elem_drop, visitors) may call weft.
 * - fork(). The child has only the thread that called fork(). Every runtime open in
 *   the parent is left behind: calls on it are refused with WEFT_EINVAL ("opened by the
 *   parent process before fork()"), and its tasks, channels, blobs and sync objects must
 *   not be used. The child may open a new runtime and use it normally. weft's internal
 *   locks are never inherited held (pthread_atfork), nor its first-time setup half done,
 *   even when other threads opened runtimes or started and ended tasks at the instant of
 *   the fork. Call fork() from a
 *   thread that is not a weft task or, where tasks are OS threads (WEFT_CAP_OS_THREADS:
 *   native, pthread), from a task: in the child that thread is a plain thread (no longer
 *   the task, nor cancelled), and it ends the child with exit, _exit or exec, not
 *   by returning from the task function. A green or sim task must not fork: the
 *   scheduler its coroutine runs on is not in the child. A thread attached to a parent's runtime may fork,
 *   even inside a blocking region while a collector holds the world stopped: in the
 *   child it is a plain thread, and may attach to the child's runtimes.
 * - Stacks. A task's stack is WEFT_DEFAULT_STACK_SIZE (8 MiB) unless
 *   weft_spawn_opts_t.stack_size asks otherwise; a size asked for is a minimum, raised to
 *   WEFT_MIN_STACK_SIZE and rounded up to whole pages, the same on every platform.
 * - Linking. libweft.so, or libweft.a in a dynamically linked program. A program
 *   linked fully statically (-static) cannot load a plugin: weft_runtime_open refuses
 *   it with WEFT_ENOTSUP.
 * - Time. Deadlines are absolute int64_t nanoseconds of weft_now(rt).
 *   WEFT_FOREVER never expires; a deadline at or before now means "do not wait".
 * - Blocking. Every weft call that can block enters a blocking region by itself, so a
 *   stop-the-world never waits for a task parked inside weft.
 * - Cancellation is cooperative: after weft_cancel, the task's cancellation points
 *   (sleep, join, condition waits, channel sends and receives, select) return
 *   WEFT_ECANCELED, including one it is blocked in. A call that can complete without
 *   waiting still completes (a receive with an element ready, a send with room, a join of
 *   a task that has ended, a semaphore wait with a unit there); sleep, condition waits and
 *   weft_wait_on look at the cancellation first. Lock acquisition is not a
 *   cancellation point. A wait on a runtime of another platform than the task's (two
 *   runtimes on different platforms in one process) is to that platform a plain thread's:
 *   a cancellation made before it ends it, one made while it waits does not wake it.
 */

#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"
// MAJOR * 1000000 + MINOR * 1000 + PATCH, for #if; weft_version_number() returns the
// library's own.
#define WEFT_VERSION_NUMBER 1000

// The casts in weft.h's macros: static_cast in C++, so that hosts built with
// -Wold-style-cast stay quiet.
#ifdef __cplusplus
#define WEFT_CAST_(type, value) (static_cast<type>(value))
#else
#define WEFT_CAST_(type, value) ((type)(value))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ==================================================================================== */
/* Errors                                                                               */
/* ==================================================================================== */

// Every fallible call returns a weft_status_t. The codes are stable and never
// reused; weft_strerror names one and weft_last_error tells the detail of the
// calling thread's last failure.

// The result of every fallible weft call: `WEFT_OK` (0) or one of the `WEFT_E*` codes.
// The numbers are stable and never reused; `weft_strerror` names each.
typedef int32_t weft_status_t;

// Success.
#define WEFT_OK 0

// An argument is invalid: NULL, an uninitialised or destroyed object, an unknown flag,
// a closed runtime.
#define WEFT_EINVAL 1

// The deadline passed before the operation could complete.
#define WEFT_ETIMEDOUT 2

// The object is in use: a mutex held by another task (trylock), a runtime with running
// tasks (close), a held mutex (destroy).
#define WEFT_EBUSY 3

// The call would wait for the caller itself: a non-recursive relock by the owner, a task
// joining itself.
#define WEFT_EDEADLK 4

// The caller does not own what it tries to release: an unlock by a non-owner, a
// condition wait without the mutex, a thread that is not a mutator.
#define WEFT_EPERM 5

// The channel is closed.
#define WEFT_ECLOSED 6

// Memory or another resource (threads, keys, a recursive mutex's levels) ran out.
#define WEFT_ENOMEM 7

// The calling task was cancelled with `weft_cancel`; the call did not complete.
#define WEFT_ECANCELED 8

// The loaded platform does not offer this operation.
#define WEFT_ENOTSUP 9

// A platform plugin could not be found, loaded or accepted.
#define WEFT_EPLUGIN 10

// A bug inside weft or a plugin (a caught panic, a broken invariant).
#define WEFT_EINTERNAL 11

// A static, human-readable name for a status code. Never NULL; unknown codes give
// "unknown status code". The string is owned by weft and valid forever.
const char *weft_strerror(weft_status_t code);

// The detail of the caller's last failed weft call: which function, which object,
// which path or symbol, and why. The caller is the running weft task if there is one
// (its text follows the task on a platform whose tasks share or change threads), else
// the calling thread. Never NULL ("" before any failure). Successful calls leave it
// unchanged. Borrowed: valid until the caller's next failing weft call (a task's text
// ends with the task).
const char *weft_last_error(void);

/* ==================================================================================== */
/* Runtime                                                                              */
/* ==================================================================================== */

// A runtime loads one platform plugin (native, green, sim, pthread or a path)
// and owns the tasks spawned on it. Open one with weft_runtime_open, wait for
// its tasks with weft_runtime_drain, close it with weft_runtime_close. The four
// opaque handles of the API are declared here.

// Capability bit: tasks are OS threads (blocking in foreign code blocks only that task).
#define WEFT_CAP_OS_THREADS (1 << 0)

// Capability bit: the platform runs many tasks on a few OS threads (M:N).
#define WEFT_CAP_GREEN_TASKS (1 << 1)

// Capability bit: the clock is virtual (`weft_now` advances only when every task waits).
#define WEFT_CAP_VIRTUAL_TIME (1 << 2)

// Capability bit: scheduling is deterministic and replayable from the configured seed.
#define WEFT_CAP_DETERMINISTIC (1 << 3)

// Capability bit: `weft_cancel` wakes a task blocked in a cancellation point.
#define WEFT_CAP_CANCEL (1 << 4)

// Capability bit: the plugin's mutex is one byte (`mutex_size` 1), a byte lock that
// libweft may take and release itself, without calling the plugin: 0 is free, 1 is held
// with nobody waiting, every other value is the plugin's (held with waiters, say).
// libweft keeps the byte in the first 8-byte word of the `weft_mutex_t`, beside its
// tag (the plugin's bytes are then 4-aligned), takes a free mutex by one
// compare-and-swap of that word (byte 0 -> 1, acquire) and releases an uncontended one
// the same way (1 -> 0, release); when a swap fails it calls `mutex_try_lock` or
// `mutex_unlock`, and it always calls `mutex_lock` / `mutex_lock_until` to wait. The
// plugin changes the byte only by atomic read-modify-writes, or by a store of the byte
// alone while it holds the lock. `parking_lot::RawMutex` and a futex word used as a
// byte follow it. A deterministic platform must not claim it (its locks must be switch
// points).
#define WEFT_CAP_MUTEX_BYTE (1 << 5)

// Capability bit: the platform's `now` is `CLOCK_MONOTONIC` in nanoseconds, so libweft
// may read that clock itself instead of calling `now` (`weft_now` then costs what
// `clock_gettime` costs). A virtual-time platform must not claim it.
#define WEFT_CAP_MONOTONIC_CLOCK (1 << 6)

// Capability bit: `fd_wait` takes `WEFT_IO_DRAINED` in its events (and makes use of
// it). libweft removes the bit before calling a platform that does not claim this: a
// level-triggered wait is a correct drained wait.
#define WEFT_CAP_IO_DRAINED (1 << 7)

// Capability bit: the platform's `yield` is `sched_yield()` on the calling OS thread
// and nothing else, so libweft may make that call itself (`weft_yield` then costs what
// `sched_yield` costs: no call through the table, and libweft's frame is gone before
// the system call returns). Only with `WEFT_CAP_OS_THREADS`; a deterministic platform
// must not claim it (its yields must be switch points).
#define WEFT_CAP_SCHED_YIELD (1 << 8)

// `weft_config_t.flags`: report the first acquisition that closes a cycle in the
// "held A while acquiring B" graph of mutexes and rwlocks (a lock-order inversion),
// once per pair of locks, even if no deadlock happens. See docs/checks.md.
#define WEFT_CHECK_LOCK_ORDER 1

// `weft_config_t.flags`: a blocking lock or join that would close a cycle of waits
// returns `WEFT_EDEADLK` at once (and reports it) instead of waiting for ever.
#define WEFT_CHECK_DEADLOCK 2

// An immutable, reference-counted byte payload. Opaque. Made by `weft_blob_new` or
// `weft_blob_wrap` with one reference, owned by the caller; `weft_blob_retain` adds
// one, `weft_blob_release` gives one back. Any task may read the bytes while it owns a
// reference; nobody may change them.
typedef struct weft_blob_t weft_blob_t;

// A channel of fixed-size elements, copied in and out. Opaque, reference-counted:
// made by `weft_chan_new` with one reference, owned by the caller; `weft_chan_retain`
// adds one, `weft_chan_release` gives one back. Every task that uses the channel owns
// a reference (or borrows one that outlives its calls).
typedef struct weft_chan_t weft_chan_t;

// A runtime: one loaded platform plugin, the registry of its tasks and mutators, and
// its stop-the-world state. Opaque. Made by `weft_runtime_open`, owned by the caller,
// given back with `weft_runtime_close`.
typedef struct weft_runtime_t weft_runtime_t;

// A spawned task. Opaque. Returned by `weft_spawn`; the caller owns the handle and
// gives it back exactly once, with `weft_join` (once it returns `WEFT_OK`) or
// `weft_detach`.
typedef struct weft_task_t weft_task_t;

// Called on a task's own thread of execution when it starts (before its function) and
// just before it exits (after its function, before its task-local destructors). `task`
// is borrowed for the call; `ud` is `weft_config_t.hook_ud`.
typedef void (*weft_task_hook_fn)(struct weft_task_t *task, void *ud);

// Takes a check's report instead of stderr: `report` (borrowed for the call) starts
// with a line `weft: lock-order inversion` or `weft: deadlock`; `ud` is
// `weft_config_t.hook_ud`. Called on the task whose call found the problem.
typedef void (*weft_check_report_fn)(const char *report, void *ud);

// Runtime configuration. Initialise with `weft_config_init`, then set what you need.
// Borrowed by `weft_runtime_open` for the call only.
typedef struct weft_config_t {
  // `sizeof(weft_config_t)`; set by `weft_config_init`.
  uint32_t struct_size;
  // A platform name ("native" loads `libweft_native.so`, looked up next to libweft.so
  // (next to the program for libweft.a), then in the installed plugin directory
  // `LIBDIR/weft/plugins`, then in `$WEFT_PLUGIN_PATH`; never in the current directory)
  // or a path (anything containing '/'). NULL: `$WEFT_PLATFORM`, else "native".
  const char *platform;
  // Worker threads for an M:N platform; 0 = one per CPU. Other platforms ignore it.
  uint32_t workers;
  // `WEFT_CHECK_*` bits, merged with `$WEFT_CHECKS` (comma-separated `lock-order`,
  // `deadlock`, `all`). 0: no checks, and no cost.
  uint32_t flags;
  // Seed for a deterministic platform. Other platforms ignore it.
  uint64_t seed;
  // Optional: run on each task when it starts.
  weft_task_hook_fn on_task_start;
  // Optional: run on each task just before it exits.
  weft_task_hook_fn on_task_exit;
  // Passed to both hooks and to `on_check_report`.
  void *hook_ud;
  // Optional: receives the reports of the checks instead of stderr.
  weft_check_report_fn on_check_report;
} weft_config_t;

// What `weft_runtime_platform` tells about the loaded plugin. Owned by weft, valid
// for the life of the process.
typedef struct weft_platform_info_t {
  // `sizeof(weft_platform_info_t)` of the library that filled it.
  uint32_t struct_size;
  // The plugin's ABI version.
  uint32_t abi_version;
  // The plugin's name, e.g. "native".
  const char *name;
  // The plugin's own version string.
  const char *version;
  // The file the plugin was loaded from.
  const char *path;
  // `WEFT_CAP_*` bits.
  uint64_t caps;
} weft_platform_info_t;

// Fills `cfg` with the defaults: platform from `$WEFT_PLATFORM` or "native", no hooks.
// NULL is ignored.
void weft_config_init(struct weft_config_t *cfg);

// Opens a runtime on the configured platform. `cfg` (may be NULL for the defaults) is
// borrowed for the call. On success `*out` receives a runtime the caller owns and must
// close with `weft_runtime_close`. Plugin problems are `WEFT_EPLUGIN` with the path and
// the reason in `weft_last_error()`.
weft_status_t weft_runtime_open(const struct weft_config_t *cfg, struct weft_runtime_t **out);

// Closes a runtime. `WEFT_EBUSY` (and nothing changes) while tasks it spawned still
// run (`weft_runtime_drain` waits for them), other threads are still attached, or a
// stop-the-world is in force; the caller's own attachment, if any, ends. Task handles
// not yet joined stay valid for `weft_join`/`weft_detach`. Afterwards every call on
// `rt` or its objects is `WEFT_EINVAL`, except the `_destroy`, `_retain` and `_release`
// functions, the unlocks (a lock held at the close can still be released), `weft_cancel`
// of a handle not yet joined (its task has ended: it does nothing), and the
// reads that return a value, not a status (`weft_chan_capacity`,
// `weft_chan_close_code`, `weft_sem_value`). The plugin stays loaded.
weft_status_t weft_runtime_close(struct weft_runtime_t *rt);

// Waits until no task spawned on `rt` runs any more, detached tasks included, so that
// `weft_runtime_close` can succeed; `WEFT_ETIMEDOUT` at `deadline` if some still run.
// Tasks may still be spawned meanwhile (the wait then lasts until they end too). The
// waiting caller is in a blocking region. Called from a task of `rt`, it waits for
// itself: it can only time out.
weft_status_t weft_runtime_drain(struct weft_runtime_t *rt, int64_t deadline);

// The loaded platform's name, version, path, ABI version and capabilities, or NULL
// (with `weft_last_error()`) for an invalid runtime. Owned by weft; valid forever.
const struct weft_platform_info_t *weft_runtime_platform(const struct weft_runtime_t *rt);

// The library's version, "MAJOR.MINOR.PATCH" (the same as the `WEFT_VERSION_*` macros
// of the header it was built with). Static.
const char *weft_version(void);

// The library's version as one number, MAJOR * 1000000 + MINOR * 1000 + PATCH (0.1.0
// is 1000): compare it with the `WEFT_VERSION_NUMBER` of the header a program was
// compiled with to find a library older than the header.
uint32_t weft_version_number(void);

// Names the runtime that statically initialised mutexes, conditions and rwlocks
// (`WEFT_MUTEX_INIT`, `WEFT_COND_INIT`, `WEFT_RWLOCK_INIT`) bind to on their first use.
// Without it they bind to the caller's runtime (a task's, an attached thread's), else to
// the runtime opened last. NULL forgets the choice.
weft_status_t weft_set_default_runtime(struct weft_runtime_t *rt);

/* ==================================================================================== */
/* Time                                                                                 */
/* ==================================================================================== */

// The clock is the platform's: real time on native and green, virtual time on
// sim. Deadlines are absolute nanoseconds of weft_now.

// A deadline that never expires.
#define WEFT_FOREVER INT64_MAX

// The runtime's monotonic clock in nanoseconds (virtual on a virtual-time platform).
// -1 for an invalid runtime (with `weft_last_error()`); as a deadline, -1 means
// "do not wait".
int64_t weft_now(const struct weft_runtime_t *rt);

// The deadline `ns` nanoseconds from now (`weft_now(rt) + ns`, saturating at
// `WEFT_FOREVER`; a negative `ns` gives a deadline already past). -1 for an invalid
// runtime.
int64_t weft_deadline_after(const struct weft_runtime_t *rt, int64_t ns);

// Lets other tasks run; on OS threads, a `sched_yield`. A loop that spins on
// `weft_yield` does not hold up a stop-the-world (and does not run on while the world
// is stopped): the call polls the safepoint before it yields and after. (Where the
// yield leaves the task queued behind others, as on green, a stop waits until it runs
// again and polls.)
weft_status_t weft_yield(struct weft_runtime_t *rt);

// Sleeps until `deadline` (a deadline already past returns at once). A cancellation
// point: `WEFT_ECANCELED` if the calling task is cancelled before or while it sleeps.
// The sleeping task is in a blocking region: a stop-the-world does not wait for it.
weft_status_t weft_sleep_until(struct weft_runtime_t *rt, int64_t deadline);

/* ==================================================================================== */
/* Tasks                                                                                */
/* ==================================================================================== */

// A task runs a function on the runtime's platform: an OS thread on native, a
// green task on green. Join or detach every handle exactly once; cancellation
// is cooperative.

// `weft_spawn_opts_t.flags`: the task is detached from the start; `weft_spawn` returns
// no handle (its `out` may be NULL and is set to NULL).
#define WEFT_SPAWN_DETACHED 1

// The stack size of a task spawned with `stack_size` 0: 8 MiB, glibc's usual default
// for a pthread, on every platform.
#define WEFT_DEFAULT_STACK_SIZE (8 << 20)

// The smallest stack weft gives a task (smaller requests are raised to it): less could
// not run the runtime's own bookkeeping around the task function.
#define WEFT_MIN_STACK_SIZE (64 << 10)

// A task's function. It runs on the task; `arg` is what was given to `weft_spawn`.
// It may store a pointer in `*result` for the joiner. A non-zero return means the task
// failed with that code; `weft_join` reports it.
typedef int32_t (*weft_task_fn)(void *arg, void **result);

// Options for `weft_spawn`. Initialise with `weft_spawn_opts_init`. Borrowed for the
// call only (the name is copied).
typedef struct weft_spawn_opts_t {
  // `sizeof(weft_spawn_opts_t)`; set by `weft_spawn_opts_init`.
  uint32_t struct_size;
  // The task's name (copied), shown by `weft_tasks_foreach` and, where the platform
  // can, by debuggers. NULL: unnamed.
  const char *name;
  // Stack size in bytes, a minimum: raised to `WEFT_MIN_STACK_SIZE` (64 KiB) and
  // rounded up to whole pages. 0 = `WEFT_DEFAULT_STACK_SIZE` (8 MiB). The same on every
  // platform. At most 2^56 (`WEFT_ENOMEM` above).
  size_t stack_size;
  // `WEFT_SPAWN_*` bits.
  uint32_t flags;
  // Optional: receives the new task's id (as `weft_task_id`) on success, also for a
  // `WEFT_SPAWN_DETACHED` task, which has no handle to ask.
  uint64_t *id_out;
} weft_spawn_opts_t;

// The caller's identity: the task's id (as `weft_task_id`) on a weft task, and a
// process-unique id, never 0, on any other thread, attached or not. "Is this the same
// thread of execution" needs no table of the host's.
uint64_t weft_self_id(void);

// Fills `opts` with the defaults (no name, default stack, joinable). NULL is ignored.
void weft_spawn_opts_init(struct weft_spawn_opts_t *opts);

// Starts a task that runs `func(arg, &result)`. `opts` may be NULL (defaults). On
// success `*out` receives the handle, which the caller owns and must pass to
// `weft_join` or `weft_detach` exactly once (with `WEFT_SPAWN_DETACHED`, `out` may be
// NULL and receives NULL). On failure the task never runs. `arg` stays the caller's.
// `WEFT_ENOMEM` when the platform cannot start it (a stack it cannot map), or for a
// stack over 64 PiB.
weft_status_t weft_spawn(struct weft_runtime_t *rt, weft_task_fn func, void *arg, const struct weft_spawn_opts_t *opts, struct weft_task_t **out);

// Waits until `t` finishes or `deadline` passes. On `WEFT_OK` writes the task's return
// code to `*code` and its result pointer to `*result` (either may be NULL) and consumes
// the handle: `t` must not be used again. On every error the handle stays the
// caller's, still valid: `WEFT_ETIMEDOUT` (the task still runs), `WEFT_ECANCELED` (the
// caller was cancelled while it waited), `WEFT_EDEADLK` (a task joining itself),
// `WEFT_EINVAL` (`t` is not a live handle, another thread is joining it, or it is a
// task of a group: its group joins it). A cancellation point for the caller; the
// waiting caller is in a blocking region.
weft_status_t weft_join(struct weft_task_t *t, int64_t deadline, int32_t *code, void **result);

// Gives up the handle: the task runs on, and its resources go when it ends. Consumes
// the handle (its result is lost); `t` must not be used again. `WEFT_EINVAL` for a
// handle already given up, and for a task of a group (its group joins it).
weft_status_t weft_detach(struct weft_task_t *t);

// Asks `t` to stop: from now on its cancellation points (sleep, join, condition waits,
// channel waits) return `WEFT_ECANCELED`, including one it is blocked in (on a runtime
// of the task's own platform: see the rules on cancellation). The task decides how to
// end. Lock acquisition is not a cancellation point. Cancelling a task
// that has finished does nothing. The handle stays the caller's; a handle already given
// up (joined or detached) is `WEFT_EINVAL`. Safe while another thread joins or detaches
// `t`: the cancel then happens before the handle is given up, or is `WEFT_EINVAL`.
weft_status_t weft_cancel(struct weft_task_t *t);

// Links channel `ch` to task `t`: when `t` ends (however: returning 0, failing, after a
// cancellation), `ch` is closed with `t`'s return code, so a receiver waiting for a
// result the task will never send gets `WEFT_ECLOSED` instead of waiting forever, and
// reads the code with `weft_chan_close_code`. If `t` has ended already, `ch` is closed
// at once. `t` keeps a reference on `ch` until then (the caller keeps its own). A channel
// may be linked to several tasks: the first to end closes it. `t`'s handle stays the
// caller's; a handle already given up, or a channel of another runtime than `t`'s, is
// `WEFT_EINVAL`.
weft_status_t weft_task_link_chan(struct weft_task_t *t, struct weft_chan_t *ch);

// The calling task, or NULL on a thread that is not a weft task. Borrowed: valid until
// the task exits; not a handle to join or detach unless it is the spawner's own (a
// group's task: `WEFT_EINVAL`, the group joins it).
struct weft_task_t *weft_task_self(void);

// Names the calling task (or thread): `name` is copied, and shown by
// `weft_tasks_foreach`, in the checks' reports and, where the caller is an OS thread of
// its own, by the system (`/proc`, debuggers; the first 15 bytes). `WEFT_EINVAL` for NULL.
weft_status_t weft_task_set_name(const char *name);

// The calling task's (or thread's) name, or NULL if it has none. Owned by weft, valid
// until the caller ends (a later rename does not free it).
const char *weft_task_name(void);

// The id of task `t`: unique in the process, never 0. 0 for NULL or an invalid task
// (a handle joined, or detached from a task that has ended). While another thread
// joins or detaches `t`: its id, or 0 once the join or detach is done with it.
uint64_t weft_task_id(const struct weft_task_t *t);

// True when the calling task has been cancelled (for tasks that compute without
// reaching a cancellation point). False on a thread that is not a task.
bool weft_task_cancelled(void);

/* ==================================================================================== */
/* Task groups and parallel loops                                                       */
/* ==================================================================================== */

// A group runs tasks with one failure policy: the first task that fails gives the
// group its code and cancels the others. weft_parallel_for splits a range over a
// pool of worker tasks, the caller taking part. See docs/parallel.md.

// A group of tasks with one failure policy: waited for together; the first task that
// fails (returns non-zero) gives the group its code and cancels the others. Opaque.
// Made by `weft_group_new`, owned by the caller, given back with `weft_group_free`.
typedef struct weft_group_t weft_group_t;

// A body of `weft_parallel_for`: handles the indices `[begin, end)` and returns 0, or
// non-zero to fail (the sub-ranges not started yet are then skipped). `ud` is the
// `ud` given to `weft_parallel_for`, shared by every call (which run in parallel).
typedef int32_t (*weft_range_fn)(size_t begin, size_t end, void *ud);

// Creates an empty group of tasks on `rt`. On success `*out` receives the group, owned
// by the caller, who gives it back with `weft_group_free`.
weft_status_t weft_group_new(struct weft_runtime_t *rt, struct weft_group_t **out);

// Starts `func(arg, &result)` as a task of group `g` (`opts` as for `weft_spawn`, NULL
// for the defaults; `WEFT_SPAWN_DETACHED` is refused: the group joins its tasks, and
// their results are dropped). A task may spawn into its own group, also while someone
// waits on it. `WEFT_ECANCELED` once a task of the group has failed (a failed group takes
// no new task), and while `weft_group_free` runs on it.
weft_status_t weft_group_spawn(struct weft_group_t *g, weft_task_fn func, void *arg, const struct weft_spawn_opts_t *opts);

// Waits until every task of the group has finished (tasks spawned into it meanwhile
// too), then writes 0 to `*code` (may be NULL) if they all succeeded, or the code of
// the first task that failed, and returns `WEFT_OK`; the group is then empty and may
// take new tasks unless one failed. `WEFT_ETIMEDOUT` at `deadline`: the tasks left run
// on and stay in the group. A cancellation point; the waiting caller is in a blocking
// region. From a task of the group itself it would wait for itself: `WEFT_EDEADLK`.
weft_status_t weft_group_wait(struct weft_group_t *g, int64_t deadline, int32_t *code);

// Cancels the group's tasks that still run, waits for them, and frees the group; `g`
// must not be used again. A task of the group that spawns into it meanwhile gets
// `WEFT_ECANCELED` (or its new task is cancelled too), so the free never waits for a
// task nobody cancelled. Allowed from a foreign thread or another task; not from a task
// of the group (`WEFT_EDEADLK`).
weft_status_t weft_group_free(struct weft_group_t *g);

// Calls `body(b, e, ud)` on disjoint sub-ranges `[b, e)` that together cover
// `[begin, end)`, in parallel on the runtime's pool of worker tasks (started on first
// use, one per CPU but one; the caller takes part), and returns once every call
// returned. No sub-range is shorter than `grain` unless the whole range is; `grain` 0
// lets weft choose (a few sub-ranges per CPU). A body that returns non-zero stops the
// sub-ranges not started yet, and the first such code is written to `*code` (0 when all
// succeeded; `code` may be NULL); the call still returns `WEFT_OK`. Bodies may call
// `weft_parallel_for` again (nesting), and several tasks may call it at once: neither
// deadlocks. While a `weft_runtime_drain` waits, a call runs all its sub-ranges on the
// caller (the drain stopped the pool). Not a cancellation point: a cancelled caller's
// call runs to its end too. An empty range calls nothing. `begin > end` or a NULL `body` is
// `WEFT_EINVAL`.
weft_status_t weft_parallel_for(struct weft_runtime_t *rt, size_t begin, size_t end, size_t grain, weft_range_fn body, void *ud, int32_t *code);

/* ==================================================================================== */
/* Task-local slots                                                                     */
/* ==================================================================================== */

// Keys are process-wide; each task (and each host thread) has its own value for
// every key, which follows the task wherever it runs.

/* The slot of key `k`: its index in `weft_task_info_t.locals`. */
#define WEFT_KEY_SLOT(k) WEFT_CAST_(size_t, ((k) & ((1u << WEFT_KEY_SLOT_BITS) - 1u)) - 1u)

// How many keys may be live at once in a process (created and not deleted). Deleted
// keys do not count: a process may create and delete keys without end.
#define WEFT_KEYS_MAX ((1 << WEFT_KEY_SLOT_BITS) - 1)

// The bits of a key that name its slot (`WEFT_KEY_SLOT`).
#define WEFT_KEY_SLOT_BITS 20

// Destructor of task-local values, called with a non-NULL value when its task exits.
typedef void (*weft_key_dtor_fn)(void *value);

// A task-local key. 0 is never a valid key. Its low `WEFT_KEY_SLOT_BITS` bits are
// its slot + 1 (see `WEFT_KEY_SLOT`), the rest a generation that changes when a
// deleted key's slot is reused.
typedef uint32_t weft_key_t;

// Owned by libweft, for weft.h's inline `weft_task_state()` only (read it, never write
// it): the offset of the running task's state word from the thread pointer, the same
// on every thread; 0 until published, and where weft.h does not read it inline.
extern ptrdiff_t weft_state_tls_offset_;

// Creates a task-local key. Every task (and host thread) starts with NULL for it.
// `dtor` (may be NULL) is called on the exiting task with each non-NULL value it
// holds, as pthread calls its key destructors: the key reads NULL during the call,
// the keys whose destructors have not run yet still read their values, and values a
// destructor sets are destroyed in a next round (four at most). At most `WEFT_KEYS_MAX` keys are live at once (`WEFT_ENOMEM` after that);
// deleted keys do not count. `*out` is written only on success. `rt` is an open
// runtime, checked, or NULL: a key belongs to no runtime (keys are process-wide, as
// pthread keys), so one made before any runtime opens, or with a runtime closed since,
// stays valid in every runtime until `weft_key_delete`.
weft_status_t weft_key_create(struct weft_runtime_t *rt, weft_key_dtor_fn dtor, weft_key_t *out);

// The calling task's (or host thread's) value for `key`; NULL if never set, and NULL
// for an invalid key (with `weft_last_error()` set). The value is the caller's: weft
// only stores it.
void *weft_local_get(weft_key_t key);

// Sets the calling task's (or host thread's) value for `key`. The previous value is
// not destroyed. Works from any thread: a host thread's values are destroyed when the
// thread exits.
weft_status_t weft_local_set(weft_key_t key, void *value);

// Deletes `key` (as `pthread_key_delete`): every task's value for it is forgotten
// without its destructor being called (the values are the host's to free), and the
// key is no longer valid (`WEFT_EINVAL` from every call that takes it). A later key may
// reuse its slot, with another generation, so it never equals the deleted one (until
// 4096 keys have come and gone in that slot). Any thread may delete any key; deleting
// a key while another thread uses it is the host's race, as with pthread.
weft_status_t weft_key_delete(weft_key_t key);

// Sets the calling task's (or host thread's) state pointer: one pointer per task that
// weft keeps beside the task's identity and switches with it (a VM's per-thread state
// structure), read back with weft.h's inline `weft_task_state()` at the cost of one
// thread-local load. NULL until set; gone with the task. The pointer is the host's:
// weft only keeps it. Always `WEFT_OK`.
weft_status_t weft_task_set_state(void *state);

// The calling task's (or host thread's) state pointer, out of line: what weft.h's
// `weft_task_state()` calls where it cannot read it inline. NULL until set.
void *weft_task_state_get(void);

/*
* weft_task_state(): the calling task's (or host thread's) state pointer, as set
* with weft_task_set_state; NULL until set. Inline, one load through the thread
* pointer: libweft keeps the running task's pointer in a thread-local word of its
* own and switches it with the task, so a green task reads its own on whatever
* worker it runs. Read it again after any weft call that may switch tasks; do not
* keep its value in a variable meant as "this thread's". Where it cannot be read
* inline (another compiler or architecture, or libweft.a without its constructor)
* it calls weft_task_state_get().
*/
#if (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && defined(__x86_64__)
static inline void *weft_task_state(void) {
  void *state;
  ptrdiff_t offset = weft_state_tls_offset_;
  if (__builtin_expect(offset == 0, 0)) return weft_task_state_get();
  __asm__ volatile("movq %%fs:(%1), %0" : "=r"(state) : "r"(offset));
  return state;
}
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && defined(__aarch64__)
static inline void *weft_task_state(void) {
  char *tp;
  ptrdiff_t offset = weft_state_tls_offset_;
  if (__builtin_expect(offset == 0, 0)) return weft_task_state_get();
  __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
  return *(void *const volatile *)(tp + offset);
}
#else
static inline void *weft_task_state(void) { return weft_task_state_get(); }
#endif

/* ==================================================================================== */
/* Mutexes                                                                              */
/* ==================================================================================== */

// Mutexes live in host memory (a global, a struct member). They always check
// their errors: a relock by the owner is WEFT_EDEADLK (or counted, for a
// recursive mutex), an unlock by anyone else WEFT_EPERM.

// The first word of a statically initialised sync object: the tag weft reads at
// offset 0, in the host's byte order.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WEFT_STATIC_TAG_(tag) (WEFT_CAST_(uint64_t, tag) << 32)
#else
#define WEFT_STATIC_TAG_(tag) WEFT_CAST_(uint64_t, tag)
#endif

// Static initialiser of a (plain) weft_mutex_t in static storage: the mutex binds
// to a runtime on first use (weft_set_default_runtime names which; else the
// caller's, else the one opened last), with every check afterwards as if
// weft_mutex_init had been called. weft_mutex_destroy works on it, used or not.
#define WEFT_MUTEX_INIT {{WEFT_STATIC_TAG_(0x574d5453u)}}

// Size in bytes of `weft_mutex_t`; part of the ABI.
#define WEFT_MUTEX_SIZE 64

// `weft_mutex_init` flag: the owner may lock again; each lock needs its unlock. A
// recursive mutex is held at most 16,777,216 (2^24) times at once: one more lock is
// `WEFT_ENOMEM`.
#define WEFT_MUTEX_RECURSIVE 1

// A mutex that lives in host memory (a global, a struct member, the heap).
// Initialise it with `weft_mutex_init`, destroy it with `weft_mutex_destroy`; the host
// owns the memory, weft owns the contents between the two calls. Never copy or move an
// initialised mutex.
typedef struct weft_mutex_t {
  uint64_t _opaque[8];
} weft_mutex_t;

// Initialises the mutex in host memory at `m` (`WEFT_MUTEX_RECURSIVE` or 0). The host
// owns the memory; it must stay in place, and not be copied, until
// `weft_mutex_destroy`. Initialising a mutex that is in use is undefined.
weft_status_t weft_mutex_init(struct weft_runtime_t *rt, struct weft_mutex_t *m, uint32_t flags);

// Destroys an unlocked mutex; its memory is the host's again. `WEFT_EBUSY` while it is
// held, and while a lock or unlock of it is seen under way (a destroy must not race
// with other calls on the mutex, a task blocked in its lock among them: docs/rules.md).
// Later calls on it are `WEFT_EINVAL`. Allowed after the runtime closed.
weft_status_t weft_mutex_destroy(struct weft_mutex_t *m);

// Locks the mutex, waiting as long as it takes (inside a blocking region while it
// waits). Not a cancellation point. `WEFT_EDEADLK` if the caller already holds a
// non-recursive mutex (a recursive one counts the level).
weft_status_t weft_mutex_lock(struct weft_mutex_t *m);

// Locks the mutex if it is free; `WEFT_EBUSY` if another task holds it. A relock by the
// owner is counted (recursive) or `WEFT_EDEADLK`.
weft_status_t weft_mutex_try_lock(struct weft_mutex_t *m);

// Locks the mutex, or gives up at `deadline` with `WEFT_ETIMEDOUT` (a deadline already
// past: one try). A relock by the owner is counted (recursive) or `WEFT_EDEADLK`.
weft_status_t weft_mutex_lock_until(struct weft_mutex_t *m, int64_t deadline);

// Unlocks the mutex (one level, if recursive). `WEFT_EPERM` if the caller does not
// hold it. Allowed after the runtime closed (so that a mutex held then can be released
// and destroyed). A mutex whose holder ended (a task returned, a thread detached)
// stays held by it; its owner is a token that a new task or thread may be given once
// at least 4,096 others have ended, and that one then counts as the holder (as
// glibc's error-checking mutex counts a new thread with a reused thread id).
weft_status_t weft_mutex_unlock(struct weft_mutex_t *m);

// Names the mutex in the reports of the checks (`WEFT_CHECK_*`): `name` is copied;
// NULL clears it. The name goes when the mutex is destroyed.
weft_status_t weft_mutex_set_name(struct weft_mutex_t *m, const char *name);

/* ==================================================================================== */
/* Condition variables                                                                  */
/* ==================================================================================== */

// Conditions live in host memory and are used with a weft mutex. Waits are
// cancellation points; spurious wake-ups happen.

// Static initialiser of a weft_cond_t (binds on first use, as WEFT_MUTEX_INIT).
#define WEFT_COND_INIT {{WEFT_STATIC_TAG_(0x57435453u)}}

// Size in bytes of `weft_cond_t`; part of the ABI.
#define WEFT_COND_SIZE 64

// A condition variable that lives in host memory; same rules as `weft_mutex_t`.
typedef struct weft_cond_t {
  uint64_t _opaque[8];
} weft_cond_t;

// Initialises the condition variable in host memory at `c`. The host owns the memory;
// it must stay in place, and not be copied, until `weft_cond_destroy`.
weft_status_t weft_cond_init(struct weft_runtime_t *rt, struct weft_cond_t *c);

// Destroys a condition variable nobody is blocked on (`WEFT_EBUSY` while a task waits
// on it and no signal or broadcast woke it). As POSIX allows, the destroy may follow a
// broadcast (or a signal to the only waiter) at once, before the woken waiters have
// taken their mutex back: it waits for them to leave their waits, after which the
// memory is the host's again (to free, say). They need their mutex back to leave: a
// destroy by the holder of that mutex returns `WEFT_EBUSY` once none left for 200 ms.
// Later calls on it are `WEFT_EINVAL`. Allowed after the runtime closed.
weft_status_t weft_cond_destroy(struct weft_cond_t *c);

// Atomically unlocks `m` (held by the caller) and waits for a signal; `m` is locked
// again on every return. Spurious wake-ups happen: wait in a loop on your predicate.
// A cancellation point (`WEFT_ECANCELED`, with `m` locked again). `WEFT_EPERM` if the
// caller does not hold `m`. The waiting caller is in a blocking region.
weft_status_t weft_cond_wait(struct weft_cond_t *c, struct weft_mutex_t *m);

// As `weft_cond_wait`, giving up at `deadline` with `WEFT_ETIMEDOUT` (`m` locked again).
weft_status_t weft_cond_wait_until(struct weft_cond_t *c, struct weft_mutex_t *m, int64_t deadline);

// As `weft_cond_wait`, giving up `ns` nanoseconds after the call with `WEFT_ETIMEDOUT`
// (`m` locked again), on the clock of `c`'s runtime (virtual on a virtual-time
// platform): for a host whose timed waits take a relative timeout (as libuv's
// `uv_cond_timedwait`) and that does not keep the runtime at hand. `ns <= 0` does not
// wait; `WEFT_FOREVER` waits for ever.
weft_status_t weft_cond_wait_for(struct weft_cond_t *c, struct weft_mutex_t *m, int64_t ns);

// Wakes at least one task waiting on `c`, if any. The caller need not hold the mutex.
weft_status_t weft_cond_signal(struct weft_cond_t *c);

// Wakes every task waiting on `c`.
weft_status_t weft_cond_broadcast(struct weft_cond_t *c);

/* ==================================================================================== */
/* Readers-writer locks                                                                 */
/* ==================================================================================== */

// Readers-writer locks live in host memory; writers are not starved.

// Static initialiser of a weft_rwlock_t (binds on first use, as WEFT_MUTEX_INIT).
#define WEFT_RWLOCK_INIT {{WEFT_STATIC_TAG_(0x57525453u)}}

// Size in bytes of `weft_rwlock_t`; part of the ABI.
#define WEFT_RWLOCK_SIZE 80

// A readers-writer lock that lives in host memory; same rules as `weft_mutex_t`.
typedef struct weft_rwlock_t {
  uint64_t _opaque[10];
} weft_rwlock_t;

// Names the rwlock in the reports of the checks (`WEFT_CHECK_*`): `name` is copied;
// NULL clears it. The name goes when the rwlock is destroyed.
weft_status_t weft_rwlock_set_name(struct weft_rwlock_t *l, const char *name);

// Initialises the rwlock in host memory at `l`. The host owns the memory; it must stay
// in place, and not be copied, until `weft_rwlock_destroy`.
weft_status_t weft_rwlock_init(struct weft_runtime_t *rt, struct weft_rwlock_t *l);

// Destroys an rwlock nobody holds (`WEFT_EBUSY` otherwise). Later calls on it are
// `WEFT_EINVAL`. Allowed after the runtime closed.
weft_status_t weft_rwlock_destroy(struct weft_rwlock_t *l);

// Takes shared (read) access, waiting while a writer holds or waits for the lock.
// `WEFT_EDEADLK` if the caller holds the write lock. Taking a second read lock while a
// writer waits deadlocks (as with every writer-preferring lock): do not nest reads.
weft_status_t weft_rwlock_read_lock(struct weft_rwlock_t *l);

// As `weft_rwlock_read_lock`, giving up at `deadline` (of the rwlock's runtime's
// clock, `weft_now`) with `WEFT_ETIMEDOUT`; a deadline already past makes one try.
// `WEFT_ENOTSUP` on a platform without timed rwlock locks (a plugin's optional table
// members).
weft_status_t weft_rwlock_read_lock_until(struct weft_rwlock_t *l, int64_t deadline);

// Takes shared access if no writer holds or waits for it; `WEFT_EBUSY` otherwise, and
// `WEFT_EDEADLK` if the caller holds the write lock.
weft_status_t weft_rwlock_try_read_lock(struct weft_rwlock_t *l);

// Takes exclusive (write) access, waiting for readers and writers to leave.
// `WEFT_EDEADLK` if the caller holds the write lock already, or a read lock of `l`
// (there is no upgrade: the write lock would wait for the caller's own read lock).
weft_status_t weft_rwlock_write_lock(struct weft_rwlock_t *l);

// As `weft_rwlock_write_lock`, giving up at `deadline` with `WEFT_ETIMEDOUT` (a
// deadline already past: one try). A writer that gives up no longer holds new readers
// back. `WEFT_ENOTSUP` on a platform without timed rwlock locks.
weft_status_t weft_rwlock_write_lock_until(struct weft_rwlock_t *l, int64_t deadline);

// Takes exclusive access if nobody holds the lock; `WEFT_EBUSY` otherwise, and
// `WEFT_EDEADLK` if the caller holds the write lock already.
weft_status_t weft_rwlock_try_write_lock(struct weft_rwlock_t *l);

// Releases the caller's write lock, or one of its read locks. `WEFT_EPERM` if the
// caller holds neither (a read lock of another rwlock, or another task's read lock of
// this one, does not count). Allowed after the runtime closed
// (so that a lock held then can be released and destroyed).
weft_status_t weft_rwlock_unlock(struct weft_rwlock_t *l);

/* ==================================================================================== */
/* Parking, semaphores, barriers, once                                                  */
/* ==================================================================================== */

// Parking on an address is what a VM builds one-byte locks on (WebKit's
// ParkingLot, CPython's PyMutex): weft_wait_on/weft_wake are futex-style,
// weft_park/weft_unpark validate under the bucket lock. Semaphores, barriers and
// once are built on them. Parking parks the task, not the thread, where the
// platform can. See docs/parking.md.

// Static initialiser of a weft_once_t.
#define WEFT_ONCE_INIT {{0, 0}}

// Decides, atomically with respect to `weft_unpark` on the same address, whether
// `weft_park` parks the caller: true parks. `ud` is what `weft_park` was given.
typedef bool (*weft_park_validate_fn)(void *ud);

// A counting semaphore in host memory: `weft_sem_init` / `weft_sem_destroy`, same rules
// as `weft_mutex_t`. Any task may post, any task may wait: a semaphore of value 1 is the
// lock that one thread takes and another releases (Python's `_thread.lock`).
typedef struct weft_sem_t {
  uint64_t _opaque[4];
} weft_sem_t;

// A barrier in host memory for a fixed number of tasks, reusable round after round:
// `weft_barrier_init` / `weft_barrier_destroy`, same rules as `weft_mutex_t`.
typedef struct weft_barrier_t {
  uint64_t _opaque[4];
} weft_barrier_t;

// Runs a function exactly once, however many tasks call `weft_once` on it at once.
// Statically initialised: `weft_once_t once = WEFT_ONCE_INIT;`. Needs no destroy.
typedef struct weft_once_t {
  uint64_t _opaque[2];
} weft_once_t;

// The function `weft_once` runs, with its `ud`.
typedef void (*weft_once_fn)(void *ud);

// Parks the caller while `*addr == expected` (futex-style): returns `WEFT_OK` when
// woken by `weft_wake` on `addr`, and at once, also `WEFT_OK`, if `*addr` already
// differs from `expected` (there is no "try again" status: re-check your word after
// every return). Spurious wake-ups do not happen, but a wake meant for an earlier value
// may arrive: loop on your condition. `WEFT_ETIMEDOUT` at `deadline`, `WEFT_ECANCELED`
// if the calling task is cancelled (a cancellation point, checked first: also when
// `*addr` already differs). The comparison and the
// parking are atomic with respect to `weft_wake`: change the word, then wake. `addr`
// is read atomically; it must stay valid while anyone is parked on it. Parks the task,
// not the thread, where the platform can; the parked caller is in a blocking region.
weft_status_t weft_wait_on(struct weft_runtime_t *rt, const uint32_t *addr, uint32_t expected, int64_t deadline);

// Wakes up to `n` callers parked on `addr` (by `weft_wait_on` or `weft_park`), oldest
// first, and returns how many it woke. `SIZE_MAX` wakes them all. 0 on bad input, with
// `weft_last_error()`.
size_t weft_wake(struct weft_runtime_t *rt, const void *addr, size_t n);

// Parks the caller on `addr` if `validate(ud)` returns true, evaluated atomically with
// respect to `weft_unpark` on the same address (ParkingLot-style: a lock builder checks
// its state word and parks in one step). `WEFT_OK` once unparked, or at once if
// `validate` said false (the caller tells the two apart from its own state);
// `WEFT_ETIMEDOUT`, `WEFT_ECANCELED` as `weft_wait_on`. `validate` runs on the caller,
// with the address's bucket locked: it must be short and must not park or wake.
weft_status_t weft_park(struct weft_runtime_t *rt, const void *addr, weft_park_validate_fn validate, void *ud, int64_t deadline);

// Wakes up to `n` callers parked on `addr`; how many it woke (as `weft_wake`).
size_t weft_unpark(struct weft_runtime_t *rt, const void *addr, size_t n);

// Initialises the semaphore in host memory at `s` with `value` units. The host owns the
// memory; it must stay in place, and not be copied, until `weft_sem_destroy`.
weft_status_t weft_sem_init(struct weft_runtime_t *rt, struct weft_sem_t *s, uint32_t value);

// Destroys a semaphore nobody waits on (`WEFT_EBUSY` otherwise). Allowed after the
// runtime closed.
weft_status_t weft_sem_destroy(struct weft_sem_t *s);

// Adds one unit, waking one waiter if any. Any task or thread may post (the poster need
// not be a waiter). `WEFT_EINVAL` at the maximum value, `UINT32_MAX`.
weft_status_t weft_sem_post(struct weft_sem_t *s);

// Takes one unit, waiting while there is none. A cancellation point where it waits (a
// unit there is taken by a cancelled caller too, as a channel's ready element is
// received); the waiting caller is in a blocking region.
weft_status_t weft_sem_wait(struct weft_sem_t *s);

// As `weft_sem_wait`, giving up at `deadline` with `WEFT_ETIMEDOUT`.
weft_status_t weft_sem_wait_until(struct weft_sem_t *s, int64_t deadline);

// Takes one unit if there is one; `WEFT_EBUSY` otherwise.
weft_status_t weft_sem_try_wait(struct weft_sem_t *s);

// The number of units now (a snapshot); 0 for an invalid semaphore.
uint32_t weft_sem_value(struct weft_sem_t *s);

// Initialises a barrier for `count` tasks (at least 1) in host memory at `b`.
weft_status_t weft_barrier_init(struct weft_runtime_t *rt, struct weft_barrier_t *b, uint32_t count);

// Destroys a barrier; `WEFT_EBUSY` while tasks wait in a round that has not
// completed. A task whose wait returned (the serial one, typically) may destroy the
// barrier at once, and then free its memory: the tasks the round released leave their
// waits before the destroy returns, and none touches the barrier after.
weft_status_t weft_barrier_destroy(struct weft_barrier_t *b);

// Waits until `count` tasks have called it, then lets them all go and starts a new
// round. `*serial` (may be NULL) is true for exactly one task of each round, false for
// the others. A cancellation point: a task cancelled while it waits leaves the round
// (`WEFT_ECANCELED`, its arrival taken back) unless the round completed first.
weft_status_t weft_barrier_wait(struct weft_barrier_t *b, bool *serial);

// Runs `func(ud)` if no call on `once` has run it yet; if another task is running it,
// waits until it has returned. After any call returns `WEFT_OK`, the function has run
// exactly once and its effects are visible. `WEFT_EDEADLK` if `func` itself calls
// `weft_once` on the same `once`. Works before any runtime is open (a waiter then
// yields its thread instead of parking). In a child of `fork()`, a once whose
// function a thread of the parent was running at the fork (that thread is not in the
// child) is run again by the child's first call, as `pthread_once` does.
weft_status_t weft_once(struct weft_once_t *once, weft_once_fn func, void *ud);

/* ==================================================================================== */
/* Channels and select                                                                  */
/* ==================================================================================== */

// Channels carry fixed-size elements, copied in and out: rendezvous, bounded or
// unbounded. An elem_drop callback makes a channel of owned pointers leak-free;
// weft_select waits on several sends and receives at once.

// `weft_chan_new` capacity: the channel never fills; a send never waits (it fails
// with WEFT_ENOMEM only when memory runs out).
#define WEFT_CHAN_UNBOUNDED SIZE_MAX

// `weft_select_case_t.op`: send `elem_size` bytes from `buf` on the case's channel.
#define WEFT_SELECT_SEND 1

// `weft_select_case_t.op`: receive `elem_size` bytes into `buf` from the case's channel.
#define WEFT_SELECT_RECV 2

// `weft_select` flag: among the cases ready at once, take the first in array order
// instead of a uniformly random one.
#define WEFT_SELECT_ORDERED 1

// Called on each element a channel still holds when its last reference goes:
// `elem` points to the element's `elem_size` bytes (valid during the call only), `ud`
// is `weft_chan_opts_t.drop_ud`. `elem` is aligned as any C type of `elem_size` bytes
// needs (to the largest power of two that divides `elem_size`, up to 16: a 16-byte
// `long double` or a struct of two pointers is read in place as its type).
typedef void (*weft_chan_drop_fn)(void *elem, void *ud);

// Options for `weft_chan_new`. Initialise with `weft_chan_opts_init`. Borrowed for the
// call only.
typedef struct weft_chan_opts_t {
  // `sizeof(weft_chan_opts_t)`; set by `weft_chan_opts_init`.
  uint32_t struct_size;
  // Optional. When the channel's last reference is released, called exactly once on
  // each element that was sent but never received, oldest first. Never called on an
  // element that was received, nor on one whose send failed (that element stays the
  // sender's). This is how a channel of owned pointers ("move") never leaks. It must
  // not call into the channel being released.
  weft_chan_drop_fn elem_drop;
  // Passed to `elem_drop` as `ud`.
  void *drop_ud;
} weft_chan_opts_t;

// One case of `weft_select`: send from, or receive into, `buf` on `chan`.
typedef struct weft_select_case_t {
  // The channel (borrowed: the caller owns a reference for the duration of the call).
  struct weft_chan_t *chan;
  // `WEFT_SELECT_SEND` or `WEFT_SELECT_RECV`.
  int32_t op;
  // Send: the element to send (`elem_size` bytes, copied only if this case is
  // chosen). Receive: where the element is written, only if this case is chosen.
  // May be NULL only for a channel of 0-byte elements.
  void *buf;
} weft_select_case_t;

// Fills `opts` with the defaults (no `elem_drop`). NULL is ignored.
void weft_chan_opts_init(struct weft_chan_opts_t *opts);

// Creates a channel of `elem_size`-byte elements. `capacity` 0 makes a rendezvous
// channel (a send completes when a receiver takes the element), `WEFT_CHAN_UNBOUNDED`
// an unbounded one (a send never waits), anything else a bounded channel holding at
// most `capacity` elements (its buffer is allocated now). `elem_size` may be 0: the
// channel then carries bare signals, and element pointers may be NULL. `opts` may be
// NULL (no `elem_drop`). On success `*out` receives a channel with one reference, owned
// by the caller, who must give it back with `weft_chan_release`. `WEFT_ENOMEM` when the
// buffer cannot be allocated (a huge `capacity`).
weft_status_t weft_chan_new(struct weft_runtime_t *rt, size_t elem_size, size_t capacity, const struct weft_chan_opts_t *opts, struct weft_chan_t **out);

// Sends the `elem_size` bytes at `elem` (copied; `elem` is borrowed for the call).
// Waits while the channel is full (a rendezvous channel: until a receiver takes the
// element), at most until `deadline`. `WEFT_OK`: the element is in the channel or was
// received. `WEFT_ECLOSED`: the channel is closed, or was closed while the caller
// waited; `WEFT_ETIMEDOUT`: still full at the deadline; `WEFT_ECANCELED`: the calling
// task was cancelled before or while it waited. On every error the element was not
// taken: it stays the caller's (free what it owns). A send that can complete at once
// completes even in a cancelled task. The waiting caller is in a blocking region.
weft_status_t weft_chan_send(struct weft_chan_t *ch, const void *elem, int64_t deadline);

// Receives the oldest element into `out` (`elem_size` bytes, written only on
// `WEFT_OK`). Waits while the channel is empty, at most until `deadline`. After
// `weft_chan_close`, the buffered elements are still received, then `WEFT_ECLOSED`.
// `WEFT_ETIMEDOUT`: still empty at the deadline; `WEFT_ECANCELED`: the calling task
// was cancelled before or while it waited. A receive that can complete at once
// completes even in a cancelled task. The waiting caller is in a blocking region.
weft_status_t weft_chan_recv(struct weft_chan_t *ch, void *out, int64_t deadline);

// Closes the channel. From now on sends fail with `WEFT_ECLOSED`, and so do the sends
// waiting now (their elements were not taken and stay their senders'); receivers get
// the elements still buffered, then `WEFT_ECLOSED` (receivers waiting now get it at
// once). Closing does not release: the channel lives until its last reference goes.
// Closing a closed channel does nothing and returns `WEFT_OK` (so any of several
// producers may close).
weft_status_t weft_chan_close(struct weft_chan_t *ch);

// `weft_chan_close`, recording `code` for receivers to read with `weft_chan_close_code`
// (for instance why a producer stopped). A channel already closed keeps the code of
// its first close.
weft_status_t weft_chan_close_with(struct weft_chan_t *ch, int32_t code);

// The code the channel was closed with: the `code` of `weft_chan_close_with`, or the
// return code of the task it was linked to (`weft_task_link_chan`); 0 while it is open
// and after a plain `weft_chan_close`. 0 for an invalid channel (with
// `weft_last_error()`). Read it after a receive returned `WEFT_ECLOSED`.
int32_t weft_chan_close_code(const struct weft_chan_t *ch);

// The number of elements buffered now (0 for a rendezvous channel). A snapshot: other
// tasks may change it at once. 0 for an invalid channel (with `weft_last_error()`).
size_t weft_chan_len(const struct weft_chan_t *ch);

// The capacity the channel was made with: 0 (rendezvous), a bound, or
// `WEFT_CHAN_UNBOUNDED`. 0 for an invalid channel (with `weft_last_error()`).
size_t weft_chan_capacity(const struct weft_chan_t *ch);

// Adds a reference to the channel (atomically; any thread) and returns `ch`, or NULL
// for an invalid or released channel (with `weft_last_error()`). The caller owns the
// new reference and must give it back with `weft_chan_release`. Retain before handing
// the channel to another task that will release it.
struct weft_chan_t *weft_chan_retain(struct weft_chan_t *ch);

// Gives back one reference (atomically; any thread). The last one frees the channel:
// `elem_drop`, if set, runs exactly once on each element still buffered, oldest first,
// on the calling thread; then the channel is gone and `ch` must not be used again (a
// later call through it is refused with `WEFT_EINVAL` until a new channel reuses its
// memory). Nobody may be waiting on the channel then (a task that uses the channel
// owns a reference). Allowed after the runtime closed. NULL is a no-op.
void weft_chan_release(struct weft_chan_t *ch);

// Waits until one of `n` channel operations can complete, completes exactly that one,
// and writes its index to `*chosen`. `cases` is borrowed for the call; the channels
// must belong to one runtime, and one channel may appear in several cases. A send
// case is ready when its channel has room, a waiting receiver, or is closed; a receive
// case when its channel has an element, a waiting sender, or is closed. Among the cases
// ready at once, one is chosen uniformly at random, or with `WEFT_SELECT_ORDERED` in
// `flags` the one with the lowest index (a priority order). Unknown flags are
// `WEFT_EINVAL`.
//
// Returns the chosen case's outcome: `WEFT_OK` (sent, or received into its `buf`) or
// `WEFT_ECLOSED` (its channel is closed: a send case's element was not taken; a
// receive case's channel is closed and empty); `*chosen` is written for both. Or, with
// no case completed (nothing sent, nothing received, `*chosen` untouched):
// `WEFT_ETIMEDOUT` at the deadline, `WEFT_ECANCELED` if the calling task was cancelled
// before or while it waited. With `n` 0 (`cases` may then be NULL) the call sleeps
// until `deadline` and returns `WEFT_ETIMEDOUT` (a select with no cases and
// `WEFT_FOREVER` waits until the task is cancelled), on the runtime of the calling task
// or attached thread, or else on the runtime opened last. The waiting caller is in a
// blocking region.
weft_status_t weft_select(const struct weft_select_case_t *cases, size_t n, int64_t deadline, uint32_t flags, size_t *chosen);

/* ==================================================================================== */
/* IO readiness waits                                                                   */
/* ==================================================================================== */

// A task waits for a file descriptor (socket, pipe, eventfd, terminal) to become
// readable or writable, parking the task, not the thread, where the platform can.
// The fd stays the host's; call weft_fd_forget before closing one. See docs/io.md.

// `weft_fd_wait` events and ready events: the fd is readable, or the peer hung up
// (end of file is readable: the next read returns 0 or the error).
#define WEFT_IO_READ 1

// `weft_fd_wait` events and ready events: the fd is writable.
#define WEFT_IO_WRITE 2

// In `weft_fd_wait`'s ready events only (asking for it changes nothing): the fd has an
// error or hang-up condition; it is reported whichever events were asked for.
#define WEFT_IO_ERROR 4

// In `weft_fd_wait`'s events only, beside `WEFT_IO_READ` / `WEFT_IO_WRITE`: the
// caller promises that since its last wait on this fd returned it read (for
// `WEFT_IO_READ`) or wrote (for `WEFT_IO_WRITE`) until the fd answered `EAGAIN`. The
// platform may then wait for the fd's readiness to change instead of checking it now:
// green then makes no system call to wait, as Go's netpoller (an fd that is still
// ready may otherwise sleep until more data or room comes). Requires `weft_fd_forget`
// before every close of the fd.
#define WEFT_IO_DRAINED 8

// Waits until the file descriptor `fd` (a socket, pipe, eventfd, terminal...) is ready
// for one of `events` (`WEFT_IO_READ`, `WEFT_IO_WRITE`, or both), or `deadline`.
// Level-triggered: an fd that is ready now returns at once. On `WEFT_OK` writes the
// ready events to `*revents` (if `revents` is not NULL): `WEFT_IO_READ` and
// `WEFT_IO_WRITE` as asked for and ready, plus `WEFT_IO_ERROR` whenever the fd has an
// error or hang-up condition (then the host's next read or write reports it).
//
// The fd stays the host's: weft never reads, writes, closes or changes it; making it
// non-blocking (`O_NONBLOCK`) so that a read after a wake-up cannot block is the
// host's job. Before closing an fd that tasks may wait on, call `weft_fd_forget`.
//
// `events` may add `WEFT_IO_DRAINED` when the caller read or wrote until `EAGAIN`
// since its last wait on `fd` returned: the wait then waits for the readiness to
// change rather than checking it (no system call to wait on green, as in Go). A
// drained wait on an fd that is still ready may sleep until the next data or room.
//
// `WEFT_ETIMEDOUT` at the deadline (a deadline at or before now polls once).
// `WEFT_ECANCELED` if the calling task is cancelled before or while it waits (a
// cancellation point). `WEFT_ECLOSED` if `weft_fd_forget(rt, fd)` is called while it
// waits. `WEFT_EINVAL` (naming the fd and the reason) for `rt` NULL or closed, `fd`
// negative or not open, `events` without `WEFT_IO_READ`/`WEFT_IO_WRITE` or with
// unknown bits. `WEFT_ENOTSUP` on a platform plugin older than IO waits (ABI 1).
// The waiting caller is in a blocking region: a stop-the-world does not wait for it.
// Several tasks may wait on one fd; each whose events are ready is woken.
weft_status_t weft_fd_wait(struct weft_runtime_t *rt, int fd, uint32_t events, int64_t deadline, uint32_t *revents);

// Tells weft that the host is about to close `fd`: every task waiting on `fd` in `rt`
// returns `WEFT_ECLOSED` (without waiting for them), and whatever the platform keeps
// for `fd` is dropped. Call it before `close(fd)`, never after: a wait on an fd closed
// under it may not notice, and the number may already name a new file. Fine for an fd
// never waited on. It affects `rt` only (an fd waited on in two runtimes is forgotten
// in each). `WEFT_EINVAL` for `rt` NULL or closed or `fd` negative, and for an fd that
// is no longer open (its waiters are woken all the same). `WEFT_ENOTSUP` on a platform
// plugin older than IO waits (ABI 1).
weft_status_t weft_fd_forget(struct weft_runtime_t *rt, int fd);

/* ==================================================================================== */
/* Blobs                                                                                */
/* ==================================================================================== */

// Immutable byte payloads shared by reference count: the third way (beside
// copying and moving) for a value to cross a task boundary.

// Frees the memory a blob wrapped: called once, by the last `weft_blob_release`, with
// the `ptr` and `ud` given to `weft_blob_wrap`.
typedef void (*weft_blob_dtor_fn)(void *ptr, void *ud);

// Creates a blob holding a copy of the `len` bytes at `data` (`data` is borrowed for
// the call; it may be NULL when `len` is 0). The copy is aligned to 16 bytes. On
// success `*out` receives a blob with one reference, owned by the caller, who must
// give it back with `weft_blob_release`. `WEFT_ENOMEM` if the copy cannot be allocated.
weft_status_t weft_blob_new(const void *data, size_t len, struct weft_blob_t **out);

// Creates a blob over the `len` bytes at `ptr` without copying, and takes ownership
// of them: `dtor(ptr, ud)` runs exactly once, on the thread of the last
// `weft_blob_release`. `dtor` may be NULL for memory that needs no freeing (static
// data). `ptr` may be NULL only when `len` is 0. The bytes must not change while the
// blob lives. On success `*out` receives a blob with one reference, owned by the
// caller. On failure nothing was taken: `dtor` is never called and `ptr` stays the
// caller's.
weft_status_t weft_blob_wrap(void *ptr, size_t len, weft_blob_dtor_fn dtor, void *ud, struct weft_blob_t **out);

// The blob's bytes, and their number in `*len` (if `len` is not NULL). Borrowed: valid
// while the caller owns a reference. Never NULL for a valid blob, even an empty one;
// NULL (and `*len` untouched) for an invalid blob, with `weft_last_error()`.
const void *weft_blob_data(const struct weft_blob_t *b, size_t *len);

// The number of bytes in the blob; 0 for an invalid blob (with `weft_last_error()`).
size_t weft_blob_len(const struct weft_blob_t *b);

// Adds a reference (atomically; any thread) and returns `b`, or NULL for an invalid
// blob (with `weft_last_error()`). The caller owns the new reference and must give it
// back with `weft_blob_release`.
struct weft_blob_t *weft_blob_retain(struct weft_blob_t *b);

// Gives back one reference (atomically; any thread). The last one frees the blob (and
// runs the `weft_blob_wrap` destructor, on the calling thread); `b` must not be used
// again (a later call through it is refused with `WEFT_EINVAL` until a new blob reuses
// its memory). NULL is a no-op.
void weft_blob_release(struct weft_blob_t *b);

// An `elem_drop` for channels whose elements are `weft_blob_t *`: releases the blob an
// undelivered element holds (`ud` is ignored). Pass it as `weft_chan_opts_t.elem_drop`
// so that a blob sent but never received is not leaked.
void weft_blob_elem_drop(void *elem, void *ud);

/* ==================================================================================== */
/* VM integration                                                                       */
/* ==================================================================================== */

// For language VMs with a garbage collector: threads the host made become
// mutators with weft_thread_attach; managed code polls WEFT_SAFEPOINT_POLL; a
// collector stops the world with weft_stw_begin, walks the mutators with
// weft_tasks_foreach and resumes with weft_stw_end. Code that blocks outside
// weft runs inside weft_blocking_begin / weft_blocking_end. See docs/vm.md.

/*
* WEFT_SAFEPOINT_POLL(rt, flag): the inline safepoint poll, for the loop back-edges,
* calls and allocation sites of managed code. `flag` is the value of
* weft_safepoint_flag(rt), fetched once and kept (it never changes for a runtime).
* When no stop-the-world is requested the poll is one relaxed atomic load and one
* branch; otherwise it calls weft_safepoint(rt), which parks the caller until the stop
* ends. With a compiler that lacks the GNU atomic builtins it is the plain call.
*/
#if defined(__GNUC__) || defined(__clang__)
/* The flag's word, for the poll below (a function: any pointer converts to its
* parameter, and no cast is written at the caller). */
static inline const volatile uint32_t *weft_poll_word_(const volatile void *flag) {
  return WEFT_CAST_(const volatile uint32_t *, flag);
}
#define WEFT_SAFEPOINT_POLL(rt, flag)                                                   \
  do {                                                                                  \
    if (__builtin_expect(__atomic_load_n(weft_poll_word_(flag), __ATOMIC_RELAXED) != 0, 0)) \
      (void)weft_safepoint(rt);                                                         \
  } while (0)
#else
#define WEFT_SAFEPOINT_POLL(rt, flag)                                                   \
  do {                                                                                  \
    (void)(flag);                                                                       \
    (void)weft_safepoint(rt);                                                           \
  } while (0)
#endif

// The mutator runs managed code (or may at any moment).
#define WEFT_TASK_RUNNING 0

// The mutator is parked at a safepoint.
#define WEFT_TASK_AT_SAFEPOINT 1

// The mutator is in a blocking region and will not touch managed memory until it
// leaves it (and leaving waits while the world is stopped).
#define WEFT_TASK_BLOCKING 2

// A task spawned but not started yet (not a mutator: it runs nothing before the world
// resumes). `weft_tasks_foreach` reports it, with its spawn argument in `arg`, so that
// a collector sees the argument of a just-spawned task as a root.
#define WEFT_TASK_STARTING 3

// Number of words in `weft_task_info_t.regs`, the saved callee-saved registers. On
// x86-64: rbx, rbp, r12, r13, r14, r15 in that order; on aarch64: x19 to x29; the
// remaining words are 0.
#define WEFT_SAVED_REGS 12

// The function `weft_blocking_call` runs inside a blocking region, with `arg` as given.
typedef void (*weft_blocking_fn)(void *arg);

// What `weft_tasks_foreach` tells about one mutator. Borrowed: valid during the
// callback only.
typedef struct weft_task_info_t {
  // `sizeof(weft_task_info_t)` of the library that filled it.
  uint32_t struct_size;
  // `WEFT_TASK_RUNNING`, `WEFT_TASK_AT_SAFEPOINT`, `WEFT_TASK_BLOCKING` or
  // `WEFT_TASK_STARTING`. While the caller holds the stopped world, every mutator but
  // the caller is AT_SAFEPOINT or BLOCKING (STARTING tasks are not mutators yet).
  uint32_t state;
  // The task's id (as `weft_task_id`), or the attached thread's id (unique in the
  // process too, never 0).
  uint64_t id;
  // The task's name, or NULL.
  const char *name;
  // The task, or NULL for an attached host thread (and for a task that ended and was
  // joined while the walk ran). It names this task for the whole call of the
  // visitor, which may use it (`weft_cancel`, `weft_task_id`; a detached task's handle
  // was given up: `weft_cancel` on it is `WEFT_EINVAL`).
  struct weft_task_t *task;
  // The mutator's task-local values: `locals[WEFT_KEY_SLOT(k)]` is its value for key
  // `k` when `WEFT_KEY_SLOT(k) < nlocals` (NULL if it never set one), NULL otherwise
  // (for a key never deleted and reused, `WEFT_KEY_SLOT(k)` is `k - 1`). Valid for
  // the call of the visitor. Given only where they
  // cannot change under the reader: for the caller's own entry, and for every entry
  // while the caller holds the stopped world; otherwise `locals` is NULL and
  // `nlocals` 0.
  void *const *locals;
  // Number of entries in `locals`.
  size_t nlocals;
  // The mutator's stack: the lowest and one past the highest address of the memory
  // its stack may use (a green or sim task's own stack; for an OS thread, what
  // `pthread_getattr_np` reports). Found by the mutator the first time it parks,
  // waits in a blocking region or asks (`weft_task_stack`), so given for every
  // mutator during a stop and for the caller's own entry; NULL for a mutator that
  // never did, and for a `WEFT_TASK_STARTING` task.
  void *stack_lo;
  // See `stack_lo`. The stack grows down from here.
  void *stack_hi;
  // The mutator's stack pointer where weft recorded it when the mutator parked or
  // entered its (outermost) blocking region: every word of its stack a collector must
  // scan lies in `[sp, stack_hi)`, and every callee-saved register it held then is in
  // `regs`. Given where it cannot change under the reader: for every mutator but the
  // caller while the caller holds the stopped world (all are AT_SAFEPOINT or
  // BLOCKING), and for the caller's own entry (recorded by `weft_tasks_foreach`
  // itself, valid during the callback); otherwise NULL, as for a STARTING task.
  void *sp;
  // The callee-saved registers recorded with `sp` (layout: `WEFT_SAVED_REGS`), all 0
  // when `sp` is NULL. Scan them as words, like the stack.
  size_t regs[WEFT_SAVED_REGS];
  // The `arg` a task was spawned with, while its function has not been called yet
  // (a `WEFT_TASK_STARTING` task, or one that started during a stop and is parked
  // before its start hook): then weft alone holds it, so it is the task's root. NULL
  // once the function runs (the argument is then on its stack or in its registers),
  // and for attached threads.
  void *arg;
} weft_task_info_t;

// Called by `weft_tasks_foreach` once per live mutator, with `ud` as given; return
// true to stop the enumeration.
typedef bool (*weft_task_visit_fn)(const struct weft_task_info_t *info, void *ud);

// Makes the calling host thread a mutator of `rt` until `weft_thread_detach`: a
// stop-the-world then waits for it to reach a safepoint or a blocking region. Attaching
// again is counted, not refused: each attach needs its detach, and the thread stays a
// mutator until the last one (so nested libraries can attach independently). From a
// weft task of `rt`, which is a mutator already, it is counted the same way. A thread is
// a mutator of one runtime at a time (`WEFT_EBUSY` for a second). If another thread
// holds the world stopped, returns once it resumes. A thread that exits while attached
// stops being a mutator then (after its task-local destructors ran).
weft_status_t weft_thread_attach(struct weft_runtime_t *rt);

// Ends one `weft_thread_attach` of the calling thread; the last one makes it stop being
// a mutator. `WEFT_EINVAL` if the thread is not attached to `rt` (never attached, or
// detached as often as attached; a task's own membership cannot be detached);
// `WEFT_EBUSY` inside a blocking region. A stop the thread holds stays in force.
weft_status_t weft_thread_detach(struct weft_runtime_t *rt);

// A safepoint: if a stop-the-world by another thread is requested or in force, parks
// the calling mutator until it ends; otherwise returns at once. Inside a blocking
// region it returns at once (the stop does not wait for the caller, and leaving the
// region will wait if needed). `WEFT_EPERM` if the caller is not a mutator of `rt`.
// The inline `WEFT_SAFEPOINT_POLL` calls it only when the flag is set.
weft_status_t weft_safepoint(struct weft_runtime_t *rt);

// The address of `rt`'s safepoint word, for `WEFT_SAFEPOINT_POLL`: a `uint32_t`,
// non-zero while a stop-the-world is requested or in force, or while the platform asks
// a task to yield (`WEFT_SAFEPOINT_PREEMPT`, set by M:N platforms such as green). Read
// it only with an atomic load. Owned by weft; valid for the life of the process (also after close).
// NULL for an invalid runtime.
const void *weft_safepoint_flag(struct weft_runtime_t *rt);

// Stops the world: returns `WEFT_OK` once every other mutator of `rt` is parked at a
// safepoint or inside a blocking region; they stay so until the caller's
// `weft_stw_end` (a mutator leaving its region waits; a thread that attaches or a task
// that starts meanwhile starts parked). The caller, a mutator or not, keeps running and
// may call any weft function, blocking ones included.
//
// If another thread requests or holds a stop, the caller waits for its turn: a caller
// that is a mutator parks there as at a safepoint (the other stop counts it as
// stopped, so two requesters never deadlock) and, since it must not run while another
// holds the world, returns no earlier than that stop's end whatever its deadline; a
// caller that is not a mutator gives up at `deadline` with `WEFT_ETIMEDOUT`.
//
// `WEFT_ETIMEDOUT` at `deadline` if some mutators did not stop: the world is resumed
// and `weft_last_error()` names them. `WEFT_EDEADLK` if the caller already holds the
// world. If the caller exits (task or thread) without `weft_stw_end`, the world resumes.
weft_status_t weft_stw_begin(struct weft_runtime_t *rt, int64_t deadline);

// Resumes the world stopped by the caller's `weft_stw_begin`. `WEFT_EPERM` if the
// caller does not hold it.
weft_status_t weft_stw_end(struct weft_runtime_t *rt);

// Enters a blocking region: until the matching `weft_blocking_end`, the calling
// mutator promises not to touch managed memory (nor to call `weft_local_set`), and a
// stop-the-world does not wait for it. Nestable. Every weft call that can block does
// this by itself while it waits. `WEFT_EPERM` if the caller is not a mutator of `rt`.
//
// The outermost begin records, for `weft_tasks_foreach`, the caller's callee-saved
// registers as they were at the call and its stack pointer as it is once the call has
// returned: a collector scanning from there finds what the caller's frames hold, as
// long as the caller's function does not return before `weft_blocking_end`. (Prefer
// `weft_blocking_call`, which keeps that frame alive itself.)
weft_status_t weft_blocking_begin(struct weft_runtime_t *rt);

// Leaves the blocking region of the matching `weft_blocking_begin`. Leaving the
// outermost one while another thread holds the world stopped waits until it resumes.
// `WEFT_EPERM` if the caller is not a mutator of `rt` or not in a blocking region.
weft_status_t weft_blocking_end(struct weft_runtime_t *rt);

// Runs `func(arg)` inside a blocking region of the calling mutator, as
// `weft_blocking_begin(rt); func(arg); weft_blocking_end(rt);` would, but with the
// caller's registers and stack pointer recorded in a frame of weft's that stays alive
// until `func` returns (Boehm GC's `GC_do_blocking`): a conservative collector scanning
// the caller during a stop finds everything its frames hold. Nests with
// `weft_blocking_begin/_end` and with itself. `func` must not touch managed memory
// (nor call `weft_local_set`); returning from it while another thread holds the world
// stopped waits until the world resumes. `WEFT_EINVAL` if `func` is NULL, `WEFT_EPERM`
// if the caller is not a mutator of `rt`; on these errors `func` is not called.
// `WEFT_EPERM` after `func` if it ended the region the call opened (a
// `weft_blocking_end` without its `weft_blocking_begin`): the caller is then in no
// region.
weft_status_t weft_blocking_call(struct weft_runtime_t *rt, weft_blocking_fn func, void *arg);

// The calling mutator's stack (a task's, or an attached thread's): writes its lowest
// address to `*lo` and one past its highest to `*hi` (a green or sim task's own stack
// without its guard; an OS thread's as `pthread_getattr_np` reports it). The same
// bounds `weft_tasks_foreach` reports. `WEFT_EINVAL` if `lo` or `hi` is NULL,
// `WEFT_EPERM` if the caller is not a mutator (not a weft task, not attached).
weft_status_t weft_task_stack(void **lo, void **hi);

// Calls `visit(info, ud)` for every live mutator of `rt` (tasks that have started and
// not exited, and attached threads), then for every task spawned and not started yet
// (`WEFT_TASK_STARTING`, with its spawn argument in `arg`), until it returns true.
// Meant for a collector that holds the stopped world: then the list, the states, the
// task-local values and the parked stack pointers and registers it sees cannot change
// under it (a task that starts during the stop moves from STARTING to AT_SAFEPOINT at
// once, never missed). Otherwise states may change as they are read, and `locals`,
// `sp` and `regs` are given only for the caller itself. The callback may call weft.
// `WEFT_EINVAL` if `visit` is NULL.
weft_status_t weft_tasks_foreach(struct weft_runtime_t *rt, weft_task_visit_fn visit, void *ud);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  /* WEFT_H */
