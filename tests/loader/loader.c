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
#include <dlfcn.h>
#include <stddef.h>

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

/* `file` is refused, twice (a refusal is not remembered as a load), with `reason`. */
static void expect_refused(const char *file, const char *why) {
  fixture(file);
  for (int attempt = 0; attempt < 2; attempt++) {
    ASSERT_STATUS(WEFT_EPLUGIN, open_platform(path));
    ASSERT_ERROR_MENTIONS(path);
    ASSERT_ERROR_MENTIONS(why);
  }
  void *still = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  ASSERT(still == NULL); /* closed again: not half-loaded */
  runtime_still_works();
}

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

/* A plugin of an older version loads: its table ends where its version's members end. */
TEST_IMPL(loader_accepts_version_one_table) {
  ASSERT_STATUS(WEFT_ENOTSUP, open_platform(fixture("libfixture_abi1.so")));
  ASSERT_ERROR_MENTIONS("a loader fixture, not a working platform");
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

TEST_IMPL(loader_refuses_null_name) {
  expect_refused("libfixture_null_name.so", "the table's name is NULL");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_entry_null) {
  expect_refused("libfixture_entry_null.so", "weft_platform_entry() returned NULL: the plugin refused this runtime");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_no_entry) {
  expect_refused("libfixture_no_entry.so", "no symbol \"weft_platform_entry\" (not a weft platform plugin)");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_text_file) {
  expect_refused("not_a_plugin.so", "not a shared object (no ELF header)");
  return TEST_OK;
}

TEST_IMPL(loader_refuses_object_file) {
  /* With the dynamic linker's reason (glibc: "only ET_DYN and ET_EXEC can be loaded"). */
  expect_refused("fixture_object.o", "cannot load: ");
  ASSERT_ERROR_MENTIONS("fixture_object.o: cannot load: ");
  ASSERT(strstr(weft_last_error(), "dlopen failed") == NULL);
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
