/* Runtime, errors, clock, platform info. */
#include "test.h"

TEST_IMPL(runtime_open_close) {
  weft_runtime_t *rt = test_open_runtime();
  const weft_platform_info_t *info = weft_runtime_platform(rt);
  ASSERT(info != NULL);
  ASSERT(info->name != NULL && info->name[0] != '\0');
  ASSERT(info->path != NULL && strchr(info->path, '/') != NULL);
  ASSERT(info->abi_version >= 1);
  int64_t a = weft_now(rt), b = weft_now(rt);
  ASSERT(a >= 0 && b >= a);
  ASSERT(weft_deadline_after(rt, 1000) >= b + 1000);
  ASSERT_EQ(weft_deadline_after(rt, WEFT_FOREVER), WEFT_FOREVER);
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(runtime_open_bad_arguments) {
  weft_runtime_t *rt = (weft_runtime_t *)0x1;
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_open(NULL, NULL));
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.struct_size = 0;
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_open(&cfg, &rt));
  ASSERT_ERROR_MENTIONS("struct_size");
  weft_config_init(&cfg);
  cfg.flags = 0x80;
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_open(&cfg, &rt));
  weft_config_init(&cfg);
  cfg.platform = "no such platform!";
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_open(&cfg, &rt));
  cfg.platform = "surely_not_installed";
  ASSERT_STATUS(WEFT_EPLUGIN, weft_runtime_open(&cfg, &rt));
  ASSERT_ERROR_MENTIONS("libweft_surely_not_installed.so");
  cfg.platform = "/nonexistent/libweft_x.so";
  ASSERT_STATUS(WEFT_EPLUGIN, weft_runtime_open(&cfg, &rt));
  ASSERT_ERROR_MENTIONS("/nonexistent/libweft_x.so");
  ASSERT(rt == (weft_runtime_t *)0x1); /* outputs are written only on success */
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_close(NULL));
  ASSERT_EQ(weft_now(NULL), -1);
  ASSERT(weft_runtime_platform(NULL) == NULL);
  return TEST_OK;
}

TEST_IMPL(runtime_use_after_close) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  test_close_runtime(rt);
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_close(rt));
  ASSERT_ERROR_MENTIONS("closed");
  ASSERT_STATUS(WEFT_EINVAL, weft_yield(rt));
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&m));
  ASSERT_OK(weft_mutex_destroy(&m)); /* destroy stays allowed */
  ASSERT_EQ(weft_now(rt), -1);
  return TEST_OK;
}

TEST_IMPL(strerror_names_every_code) {
  for (weft_status_t code = WEFT_OK; code <= WEFT_EINTERNAL; code++) {
    const char *s = weft_strerror(code);
    ASSERT(s != NULL && s[0] != '\0');
    ASSERT(strcmp(s, "unknown status code") != 0);
  }
  ASSERT(strcmp(weft_strerror(9999), "unknown status code") == 0);
  ASSERT(strcmp(weft_version(), WEFT_VERSION_STRING) == 0);
  ASSERT(weft_last_error() != NULL);
  return TEST_OK;
}
