/*
 * The loader refuses every broken plugin with WEFT_EPLUGIN and a weft_last_error()
 * that names the path and the exact reason; nothing of a refused plugin stays loaded,
 * and the runtime keeps working. The fixtures (fixture.c built once per defect, a
 * text file, an object file) are in $WEFT_FIXTURE_DIR (by default where the build
 * put them); $WEFT_PLATFORM (by default native) is a working plugin. Run once, not per plugin (ctest label "loader").
 *
 *   loader --list     the case names
 *   loader NAME       one case (what ctest runs)
 *   loader            every case, one line each
 *
 * The cases are listed in list-loader.h (CMake reads it to register them).
 */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "weft_platform.h"

static char path[4096];
static char reason[512];

/* Sets `path` to the fixture `file`. */
static const char *fixture(const char *file) {
  const char *dir = getenv("WEFT_FIXTURE_DIR");
  if (dir == NULL) dir = WEFT_FIXTURE_DIR_BUILT; /* where this build put them */
  snprintf(path, sizeof path, "%s/%s", dir, file);
  return path;
}

static weft_status_t open_platform(const char *platform) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.platform = platform;
  weft_runtime_t *rt = (weft_runtime_t *)0x1;
  weft_status_t st = weft_runtime_open(&cfg, &rt);
  if (st == WEFT_OK) ASSERT_OK(weft_runtime_close(rt));
  else ASSERT(rt == (weft_runtime_t *)0x1); /* outputs are written only on success */
  return st;
}

/* A runtime on the working plugin `file` among the fixtures (a wrapper of native). */
static weft_runtime_t *open_fixture_runtime(const char *file) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.platform = fixture(file);
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  return rt;
}

static int32_t one(void *arg, void **result) {
  (void)arg;
  *result = (void *)1;
  return 7;
}

/* The platform in $WEFT_PLATFORM still opens and runs a task. */
static void runtime_still_works(void) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_EQ(test_join(test_spawn(rt, one, NULL)), 7);
  test_close_runtime(rt);
}

/* `file` is refused, twice (a refusal is not remembered as a load), with `reason`.
 * `entry_ran`: the refusal came after its entry function ran, and the library stays
 * loaded (what the entry started may run on in it); else it was closed again. */
static void expect_refused_after(const char *file, const char *why, bool entry_ran) {
  fixture(file);
  for (int attempt = 0; attempt < 2; attempt++) {
    ASSERT_STATUS(WEFT_EPLUGIN, open_platform(path));
    ASSERT_ERROR_MENTIONS(path);
    ASSERT_ERROR_MENTIONS(why);
  }
  void *still = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  ASSERT((still != NULL) == entry_ran);
  if (still != NULL) dlclose(still);
  runtime_still_works();
}

/* A library whose table, or its entry, refused it. */
static void expect_refused(const char *file, const char *why) { expect_refused_after(file, why, true); }

/* A file refused before any code of it ran. */
static void expect_refused_unrun(const char *file, const char *why) { expect_refused_after(file, why, false); }

/* The control: the same source without a defect passes every check of the loader. */
TEST_IMPL(loader_accepts_control) {
  ASSERT_STATUS(WEFT_ENOTSUP, open_platform(fixture("libfixture_ok.so")));
  ASSERT_ERROR_MENTIONS("platform \"fixture\" could not open a runtime");
  ASSERT_ERROR_MENTIONS("a loader fixture, not a working platform");
  void *kept = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  ASSERT(kept != NULL); /* an accepted plugin is never unloaded */
  dlclose(kept);
  runtime_still_works();
  return TEST_OK;
}


/* ABI 2's last four members are optional (only an M:N platform needs them). */
TEST_IMPL(loader_accepts_version_two_without_optional_members) {
  ASSERT_STATUS(WEFT_ENOTSUP, open_platform(fixture("libfixture_abi2_no_optional.so")));
  ASSERT_ERROR_MENTIONS("a loader fixture, not a working platform");
  runtime_still_works();
  return TEST_OK;
}

TEST_IMPL(loader_refuses_bad_magic) {
  snprintf(reason, sizeof reason, "bad magic 0x0123456789abcdef in the table from weft_platform_entry, expected 0x%016llx",
           (unsigned long long)WEFT_PLATFORM_MAGIC);
  expect_refused("libfixture_bad_magic.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_abi_too_new) {
  snprintf(reason, sizeof reason,
           "weft_platform_entry() returned a table of plugin ABI version %d, outside the range this runtime accepts (%d to %d)",
           WEFT_PLATFORM_ABI_VERSION + 1, WEFT_PLATFORM_ABI_MIN, WEFT_PLATFORM_ABI_VERSION);
  expect_refused("libfixture_abi_too_new.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_abi_too_old) {
  snprintf(reason, sizeof reason,
           "weft_platform_entry() returned a table of plugin ABI version %d, outside the range this runtime accepts (%d to %d)",
           WEFT_PLATFORM_ABI_MIN - 1, WEFT_PLATFORM_ABI_MIN, WEFT_PLATFORM_ABI_VERSION);
  expect_refused("libfixture_abi_too_old.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_short_table) {
  snprintf(reason, sizeof reason, "table too small: struct_size is %zu bytes, ABI version %d needs at least %zu",
           offsetof(weft_platform_t, chan_select), WEFT_PLATFORM_ABI_VERSION,
           offsetof(weft_platform_t, region_enter)); /* the optional members need not be there */
  expect_refused("libfixture_short_table.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_null_member) {
  snprintf(reason, sizeof reason, "table member \"cond_signal\" is NULL (ABI version %d requires it)",
           WEFT_PLATFORM_ABI_VERSION);
  expect_refused("libfixture_null_member.so", reason);
  return TEST_OK;
}

/* ABI 2 added the IO members: a version-2 table must have them. */
TEST_IMPL(loader_refuses_null_io_member) {
  snprintf(reason, sizeof reason, "table member \"fd_forget\" is NULL (ABI version %d requires it)",
           WEFT_PLATFORM_ABI_VERSION);
  expect_refused("libfixture_null_io_member.so", reason);
  return TEST_OK;
}

/* A version-1 table ends before the IO members: it is accepted. (That nothing past its
 * struct_size is read is checked by loader_abi1_plugin_io_not_supported, whose plugin
 * keeps traps there.) */
TEST_IMPL(loader_accepts_abi1_table) {
  ASSERT_STATUS(WEFT_ENOTSUP, open_platform(fixture("libfixture_abi1.so")));
  ASSERT_ERROR_MENTIONS("platform \"fixture\" could not open a runtime");
  runtime_still_works();
  return TEST_OK;
}

static int32_t io_on_old_plugin(void *arg, void **result) {
  (void)result;
  weft_runtime_t *rt = arg;
  int fds[2];
  ASSERT(pipe(fds) == 0);
  uint32_t revents = 0;
  ASSERT_STATUS(WEFT_ENOTSUP, weft_fd_wait(rt, fds[1], WEFT_IO_WRITE, WEFT_FOREVER, &revents));
  ASSERT_ERROR_MENTIONS("weft_fd_wait");
  ASSERT_ERROR_MENTIONS("platform \"native-abi1\" (plugin ABI 1)");
  ASSERT_STATUS(WEFT_ENOTSUP, weft_fd_forget(rt, fds[0]));
  ASSERT_ERROR_MENTIONS("platform \"native-abi1\" (plugin ABI 1)");
  /* Bad arguments are still named as such. */
  ASSERT_STATUS(WEFT_EINVAL, weft_fd_wait(rt, -1, WEFT_IO_READ, WEFT_FOREVER, &revents));
  close(fds[0]);
  close(fds[1]);
  return 3;
}

/* A working plugin of ABI 1 loads, runs tasks, and answers the IO waits of ABI 2 with
 * WEFT_ENOTSUP naming the plugin. */
TEST_IMPL(loader_abi1_plugin_io_not_supported) {
  weft_runtime_t *rt = open_fixture_runtime("libfixture_abi1_native.so");
  ASSERT_EQ(weft_runtime_platform(rt)->abi_version, 1);
  ASSERT_EQ(test_join(test_spawn(rt, io_on_old_plugin, rt)), 3);
  io_on_old_plugin(rt, NULL); /* and from a thread that is not a task */
  test_close_runtime(rt);
  return TEST_OK;
}

/* The runtime hands a thread's processor off once per outermost host region: nested
 * weft_blocking_begin / weft_blocking_end pairs inside it, and weft_blocking_call, call
 * the plugin's region_enter and region_leave no more. */
static void count_regions(int *enter, int *leave) {
  void *wrapper = dlopen(fixture("libfixture_region_native.so"), RTLD_NOW | RTLD_NOLOAD);
  ASSERT(wrapper != NULL);
  void (*counts)(int *, int *);
  *(void **)&counts = dlsym(wrapper, "weft_fixture_region_counts");
  ASSERT(counts != NULL);
  counts(enter, leave);
  dlclose(wrapper);
}

static void nothing(void *ud) {
  (void)ud;
}

TEST_IMPL(loader_nested_host_regions_hand_off_once) {
  weft_runtime_t *rt = open_fixture_runtime("libfixture_region_native.so");
  ASSERT_OK(weft_thread_attach(rt));
  int enter0, leave0, enter, leave;
  count_regions(&enter0, &leave0);
  ASSERT_OK(weft_blocking_begin(rt));
  ASSERT_OK(weft_blocking_begin(rt));
  ASSERT_OK(weft_blocking_end(rt));
  ASSERT_OK(weft_blocking_call(rt, nothing, NULL));
  count_regions(&enter, &leave);
  ASSERT_EQ(enter - enter0, 1);
  ASSERT_EQ(leave - leave0, 0); /* still inside the outer region */
  ASSERT_OK(weft_blocking_end(rt));
  count_regions(&enter, &leave);
  ASSERT_EQ(leave - leave0, 1);
  ASSERT_OK(weft_blocking_call(rt, nothing, NULL)); /* alone: a region of its own */
  count_regions(&enter, &leave);
  ASSERT_EQ(enter - enter0, 2);
  ASSERT_EQ(leave - leave0, 2);
  ASSERT_OK(weft_thread_detach(rt));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A plugin's entry function runs once per process: two threads that open their first
 * runtimes on it at once (it ran twice), and an open through a hard link to it, which
 * dlopen gives the same library (it ran again, and the library had two records). */
static int entry_calls(void) {
  void *wrapper = dlopen(fixture("libfixture_entry_native.so"), RTLD_NOW | RTLD_NOLOAD);
  ASSERT(wrapper != NULL);
  int (*calls)(void);
  *(void **)&calls = dlsym(wrapper, "weft_fixture_entry_calls");
  ASSERT(calls != NULL);
  int n = calls();
  dlclose(wrapper);
  return n;
}

static void *open_entry_fixture(void *arg) {
  (void)arg;
  weft_config_t cfg;
  weft_config_init(&cfg);
  char own[4096];
  snprintf(own, sizeof own, "%s", fixture("libfixture_entry_native.so"));
  cfg.platform = own;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  ASSERT_EQ(test_join(test_spawn(rt, one, NULL)), 7);
  test_close_runtime(rt);
  return NULL;
}

TEST_IMPL(loader_entry_runs_once) {
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) ASSERT_EQ(pthread_create(&threads[i], NULL, open_entry_fixture, NULL), 0);
  for (int i = 0; i < 2; i++) ASSERT_EQ(pthread_join(threads[i], NULL), 0);
  ASSERT_EQ(entry_calls(), 1);
  char original[4096], linked[4096];
  snprintf(original, sizeof original, "%s", fixture("libfixture_entry_native.so"));
  snprintf(linked, sizeof linked, "%s", fixture("libfixture_entry_native_linked.so"));
  unlink(linked);
  ASSERT_EQ(link(original, linked), 0);
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.platform = linked;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  ASSERT_EQ(test_join(test_spawn(rt, one, NULL)), 7);
  test_close_runtime(rt);
  unlink(linked);
  ASSERT_EQ(entry_calls(), 1);
  return TEST_OK;
}

/* A plugin's detail for an error the runtime words itself (a receive's timeout) is in
 * that error's text, and not in a later failure's on the thread (it was the reason
 * given for the next plugin failure that came through the runtime's usual wording). */
TEST_IMPL(loader_plugin_detail_joins_its_own_error) {
  weft_runtime_t *rt = open_fixture_runtime("libfixture_detail_native.so");
  weft_chan_t *ch = NULL;
  ASSERT_OK(weft_chan_new(rt, sizeof(int), 1, NULL, &ch));
  int v;
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(ch, &v, 0));
  ASSERT_ERROR_MENTIONS("still empty at the deadline");
  ASSERT_ERROR_MENTIONS("the platform says: nothing came: the wrapper's own words");
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = SIZE_MAX;
  weft_task_t *never = NULL;
  ASSERT_STATUS(WEFT_ENOMEM, weft_spawn(rt, one, NULL, &opts, &never));
  ASSERT(strstr(weft_last_error(), "wrapper's own words") == NULL);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(ch, &v, 0));
  weft_chan_release(ch);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A table at an address its alignment does not allow is refused, not read. */
TEST_IMPL(loader_refuses_misaligned_table) {
  expect_refused("libfixture_misaligned_table.so", "not aligned");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_mutex_too_big) {
  snprintf(reason, sizeof reason, "sync objects do not fit: the plugin needs %d bytes per mutex, weft_mutex_t leaves %d",
           WEFT_PLATFORM_MUTEX_BYTES + 8, WEFT_PLATFORM_MUTEX_BYTES);
  expect_refused("libfixture_mutex_too_big.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_align_too_big) {
  snprintf(reason, sizeof reason, "sync objects do not fit: the plugin needs %d-byte alignment, weft guarantees %d",
           WEFT_PLATFORM_SYNC_ALIGN * 2, WEFT_PLATFORM_SYNC_ALIGN);
  expect_refused("libfixture_align_too_big.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_contradictory_caps) {
  expect_refused("libfixture_byte_lock_deterministic.so",
                 "claims both WEFT_CAP_MUTEX_BYTE and WEFT_CAP_DETERMINISTIC: libweft would take its mutexes "
                 "without a switch point");
  expect_refused("libfixture_byte_lock_too_big.so",
                 "claims WEFT_CAP_MUTEX_BYTE with a mutex of 8 bytes: that mutex is its byte lock alone "
                 "(mutex_size 1)");
  expect_refused("libfixture_monotonic_virtual.so",
                 "claims both WEFT_CAP_MONOTONIC_CLOCK and WEFT_CAP_VIRTUAL_TIME: its clock cannot be both");
  expect_refused("libfixture_sched_yield_green.so",
                 "claims WEFT_CAP_SCHED_YIELD without WEFT_CAP_OS_THREADS: a sched_yield of the calling thread "
                 "would not let its other tasks run");
  expect_refused("libfixture_sched_yield_deterministic.so",
                 "claims both WEFT_CAP_SCHED_YIELD and WEFT_CAP_DETERMINISTIC: libweft would yield without a "
                 "switch point");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_park_without_unpark) {
  expect_refused("libfixture_park_without_unpark.so",
                 "has one of the table members \"park\" and \"unpark\" without the other");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_half_timed_rwlock) {
  expect_refused("libfixture_timed_read_only.so",
                 "has one of the table members \"rwlock_read_lock_until\" and \"rwlock_write_lock_until\" without "
                 "the other");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_null_name) {
  expect_refused("libfixture_null_name.so", "the table's name is NULL");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_entry_null) {
  expect_refused("libfixture_entry_null.so", "weft_platform_entry() returned NULL: the plugin refused this runtime");
  ASSERT_ERROR_MENTIONS("it says: needs a newer host"); /* its reason, in its refusal... */
  /* ... and not in a later, unrelated plugin failure on this thread. */
  ASSERT_STATUS(WEFT_ENOTSUP, open_platform(fixture("libfixture_ok.so")));
  ASSERT_ERROR_MENTIONS("a loader fixture, not a working platform");
  ASSERT(strstr(weft_last_error(), "newer host") == NULL);
  /* The refused library stays loaded (its entry started a thread that runs on in it),
   * and its entry ran once for both refusals: the second is the first's, repeated. */
  void *refused = dlopen(fixture("libfixture_entry_null.so"), RTLD_NOW | RTLD_NOLOAD);
  ASSERT(refused != NULL);
  int (*calls)(void);
  *(void **)&calls = dlsym(refused, "weft_fixture_entry_calls");
  ASSERT(calls != NULL);
  ASSERT_EQ(calls(), 1);
  dlclose(refused);
  usleep(20000); /* the thread ticks on in the library's code meanwhile */
  return TEST_OK;
}

TEST_IMPL(loader_refuses_torn_member) {
  snprintf(reason, sizeof reason, "struct_size is %zu bytes, which ends inside a member",
           offsetof(weft_platform_t, preempt_attach) + 4);
  expect_refused("libfixture_torn_member.so", reason);
  return TEST_OK;
}

TEST_IMPL(loader_refuses_no_entry) {
  expect_refused_unrun("libfixture_no_entry.so", "no symbol \"weft_platform_entry\" (not a weft platform plugin)");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_text_file) {
  expect_refused_unrun("not_a_plugin.so", "not a shared object (no ELF header)");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_object_file) {
  expect_refused_unrun("fixture_object.o", "an ELF file that is not a shared object");
  ASSERT(strstr(weft_last_error(), "dlopen failed") == NULL);
  return TEST_OK;
}

/* A scratch directory for files the cases make themselves, removed with whatever a
 * failed case left in it when the process exits. */
static char scratch_dir[64];

static void remove_scratch(void) {
  DIR *d = opendir(scratch_dir);
  if (d == NULL) return;
  char file[PATH_MAX];
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(file, sizeof file, "%s/%s", scratch_dir, e->d_name);
    unlink(file);
  }
  closedir(d);
  rmdir(scratch_dir);
}

static const char *scratch(const char *file) {
  if (scratch_dir[0] == 0) {
    strcpy(scratch_dir, "/tmp/weft-loader-XXXXXX");
    ASSERT(mkdtemp(scratch_dir) != NULL);
    atexit(remove_scratch);
  }
  snprintf(path, sizeof path, "%s/%s", scratch_dir, file);
  return path;
}

/* A plugin cut short (a failed copy, a full disk) is refused before dlopen, which
 * would touch pages past the end of the file and die of SIGBUS. */
TEST_IMPL(loader_refuses_truncated_file) {
  FILE *in = fopen(fixture("libfixture_ok.so"), "rb");
  ASSERT(in != NULL);
  char head[2000];
  ASSERT_EQ(fread(head, 1, sizeof head, in), sizeof head);
  fclose(in);
  FILE *out = fopen(scratch("libweft_cut.so"), "wb");
  ASSERT(out != NULL);
  ASSERT_EQ(fwrite(head, 1, sizeof head, out), sizeof head);
  fclose(out);
  for (int attempt = 0; attempt < 2; attempt++) {
    ASSERT_STATUS(WEFT_EPLUGIN, open_platform(path));
    ASSERT_ERROR_MENTIONS("libweft_cut.so: truncated");
  }
  unlink(path);
  runtime_still_works();
  return TEST_OK;
}

/* A FIFO (or any file that is not regular) is refused at once: opening it for dlopen
 * would wait for a writer forever. */
TEST_IMPL(loader_refuses_fifo) {
  ASSERT_EQ(mkfifo(scratch("libweft_fifo.so"), 0600), 0);
  ASSERT_STATUS(WEFT_EPLUGIN, open_platform(path));
  ASSERT_ERROR_MENTIONS("not a regular file");
  unlink(path);
  ASSERT_STATUS(WEFT_EPLUGIN, open_platform(scratch(".")));
  ASSERT_ERROR_MENTIONS("not a regular file");
  runtime_still_works();
  return TEST_OK;
}

/* A name (no '/') is looked up next to libweft, then in each $WEFT_PLUGIN_PATH entry. */
TEST_IMPL(loader_finds_name_in_plugin_path) {
  char dirs[4200];
  snprintf(dirs, sizeof dirs, "/nonexistent::%s", fixture("by-name"));
  ASSERT(setenv("WEFT_PLUGIN_PATH", dirs, 1) == 0);
  ASSERT_STATUS(WEFT_ENOTSUP, open_platform("fixture"));
  ASSERT_ERROR_MENTIONS("platform \"fixture\" could not open a runtime");
  ASSERT_ERROR_MENTIONS("a loader fixture, not a working platform");
  ASSERT(unsetenv("WEFT_PLUGIN_PATH") == 0);
  runtime_still_works();
  return TEST_OK;
}

/* A name that is nowhere: the message names the file and every directory searched. */
TEST_IMPL(loader_names_where_it_looked) {
  ASSERT(setenv("WEFT_PLUGIN_PATH", "/nonexistent/a:/nonexistent/b", 1) == 0);
  ASSERT_STATUS(WEFT_EPLUGIN, open_platform("fixture_missing"));
  ASSERT_ERROR_MENTIONS("libweft_fixture_missing.so");
  ASSERT_ERROR_MENTIONS("/nonexistent/a ($WEFT_PLUGIN_PATH)");
  ASSERT_ERROR_MENTIONS("/nonexistent/b ($WEFT_PLUGIN_PATH)");
  ASSERT_ERROR_MENTIONS("(next to libweft)");
  ASSERT(unsetenv("WEFT_PLUGIN_PATH") == 0);
  ASSERT_STATUS(WEFT_EINVAL, open_platform("bad name!"));
  ASSERT_ERROR_MENTIONS("neither a name");
  return TEST_OK;
}

static const struct {
  const char *name;
  int (*fn)(void);
} tests[] = {
#define LOADER_TEST(name) {#name, test_##name},
#include "list-loader.h"
#undef LOADER_TEST
};

int main(int argc, char **argv) {
  size_t count = sizeof tests / sizeof tests[0];
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < count; i++) printf("%s\n", tests[i].name);
    return 0;
  }
  if (argc == 2) {
    for (size_t i = 0; i < count; i++)
      if (strcmp(argv[1], tests[i].name) == 0) return tests[i].fn();
    fprintf(stderr, "no test named \"%s\" (see --list)\n", argv[1]);
    return 2;
  }
  for (size_t i = 0; i < count; i++) { /* a failure aborts with its reason */
    tests[i].fn();
    printf("ok    %s\n", tests[i].name);
  }
  printf("%zu passed\n", count);
  return 0;
}
