/* Blobs: immutable shared payloads, their reference count and destructor. */
#include "chan-helpers.h"

TEST_IMPL(blob_new_copies) {
  char text[] = "hello, weft";
  weft_blob_t *b = NULL;
  ASSERT_OK(weft_blob_new(text, sizeof text, &b));
  text[0] = 'J'; /* the blob has its own copy */
  size_t len = 0;
  const char *data = weft_blob_data(b, &len);
  ASSERT(data != NULL && data != text);
  ASSERT_EQ(len, sizeof text);
  ASSERT_EQ(weft_blob_len(b), sizeof text);
  ASSERT(strcmp(data, "hello, weft") == 0);
  ASSERT_EQ((uintptr_t)data % 16, 0);
  ASSERT(weft_blob_data(b, NULL) == data);
  ASSERT(weft_blob_retain(b) == b);
  weft_blob_release(b);
  weft_blob_release(b);
  /* empty blobs: data never NULL */
  weft_blob_t *e = NULL;
  ASSERT_OK(weft_blob_new(NULL, 0, &e));
  len = 99;
  ASSERT(weft_blob_data(e, &len) != NULL);
  ASSERT_EQ(len, 0);
  weft_blob_release(e);
  return TEST_OK;
}

typedef struct {
  atomic_int calls;
  void *last_ptr;
} dtor_log_t;

static void count_dtor(void *ptr, void *ud) {
  dtor_log_t *log = ud;
  log->last_ptr = ptr;
  atomic_fetch_add(&log->calls, 1);
  free(ptr);
}

/* weft_blob_wrap takes ownership: the destructor runs once, on the last release. */
TEST_IMPL(blob_wrap_dtor_once) {
  dtor_log_t log = {0};
  char *mem = malloc(64);
  ASSERT(mem != NULL);
  memset(mem, 'x', 64);
  weft_blob_t *b = NULL;
  ASSERT_OK(weft_blob_wrap(mem, 64, count_dtor, &log, &b));
  ASSERT(weft_blob_data(b, NULL) == mem); /* not copied */
  for (int i = 0; i < 10; i++) ASSERT(weft_blob_retain(b) == b);
  for (int i = 0; i < 10; i++) weft_blob_release(b);
  ASSERT_EQ(atomic_load(&log.calls), 0);
  weft_blob_release(b);
  ASSERT_EQ(atomic_load(&log.calls), 1);
  ASSERT(log.last_ptr == mem);
  /* static data needs no destructor; an empty wrap of NULL gives NULL back */
  static const char greeting[] = "static";
  ASSERT_OK(weft_blob_wrap((void *)greeting, sizeof greeting, NULL, NULL, &b));
  ASSERT(weft_blob_data(b, NULL) == greeting);
  weft_blob_release(b);
  dtor_log_t empty = {0};
  empty.last_ptr = &empty;
  ASSERT_OK(weft_blob_wrap(NULL, 0, count_dtor, &empty, &b));
  ASSERT(weft_blob_data(b, NULL) != NULL);
  weft_blob_release(b);
  ASSERT_EQ(atomic_load(&empty.calls), 1);
  ASSERT(empty.last_ptr == NULL);
  return TEST_OK;
}

#define SHARERS 8
#define SHARE_ROUNDS 100000 /* per task; see test_volume */

static int32_t share_hammer(void *arg, void **result) {
  (void)result;
  weft_blob_t *b = arg;
  const int rounds = (int)test_volume(SHARE_ROUNDS);
  for (int i = 0; i < rounds; i++) {
    if (weft_blob_retain(b) != b) return 1;
    size_t len;
    const uint8_t *data = weft_blob_data(b, &len);
    if (data == NULL || len != 4096 || data[4095] != 0xab) return 2;
    weft_blob_release(b);
  }
  weft_blob_release(b); /* the reference the spawner handed over */
  return 0;
}

/* Many tasks retain and release one blob at once: the destructor runs exactly once. */
TEST_IMPL(blob_shared_across_tasks) {
  weft_runtime_t *rt = test_open_runtime();
  dtor_log_t log = {0};
  uint8_t *mem = malloc(4096);
  ASSERT(mem != NULL);
  memset(mem, 0xab, 4096);
  weft_blob_t *b = NULL;
  ASSERT_OK(weft_blob_wrap(mem, 4096, count_dtor, &log, &b));
  weft_task_t *t[SHARERS];
  for (int i = 0; i < SHARERS; i++) t[i] = test_spawn(rt, share_hammer, weft_blob_retain(b));
  weft_blob_release(b);
  for (int i = 0; i < SHARERS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&log.calls), 1);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Blobs through a channel: received ones are released by the receiver, undelivered
 * ones by weft_blob_elem_drop at the channel's last release. */
TEST_IMPL(blob_through_channel) {
  weft_runtime_t *rt = test_open_runtime();
  dtor_log_t log = {0};
  weft_chan_opts_t opts;
  weft_chan_opts_init(&opts);
  opts.elem_drop = weft_blob_elem_drop;
  weft_chan_t *ch = NULL;
  ASSERT_OK(weft_chan_new(rt, sizeof(weft_blob_t *), WEFT_CHAN_UNBOUNDED, &opts, &ch));
  for (int i = 0; i < 20; i++) {
    char *mem = malloc(16);
    ASSERT(mem != NULL);
    snprintf(mem, 16, "msg %d", i);
    weft_blob_t *b = NULL;
    ASSERT_OK(weft_blob_wrap(mem, 16, count_dtor, &log, &b));
    ASSERT_OK(weft_chan_send(ch, &b, 0)); /* the channel now holds our reference */
  }
  for (int i = 0; i < 5; i++) {
    weft_blob_t *b = NULL;
    ASSERT_OK(weft_chan_recv(ch, &b, 0));
    char expect[16];
    snprintf(expect, sizeof expect, "msg %d", i);
    ASSERT(strcmp(weft_blob_data(b, NULL), expect) == 0);
    weft_blob_release(b);
  }
  ASSERT_EQ(atomic_load(&log.calls), 5);
  weft_chan_release(ch);
  ASSERT_EQ(atomic_load(&log.calls), 20);
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(blob_errors) {
  weft_blob_t *b = (weft_blob_t *)0x1;
  ASSERT_STATUS(WEFT_EINVAL, weft_blob_new("x", 1, NULL));
  ASSERT_ERROR_MENTIONS("out is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_blob_new(NULL, 3, &b));
  ASSERT_ERROR_MENTIONS("data is NULL");
  ASSERT_STATUS(WEFT_ENOMEM, weft_blob_new("x", SIZE_MAX - 8, &b));
  /* a failed wrap takes nothing: the destructor is never called */
  dtor_log_t log = {0};
  ASSERT_STATUS(WEFT_EINVAL, weft_blob_wrap(NULL, 3, count_dtor, &log, &b));
  ASSERT_ERROR_MENTIONS("ptr is NULL");
  char mem[4];
  ASSERT_STATUS(WEFT_EINVAL, weft_blob_wrap(mem, 4, count_dtor, &log, NULL));
  ASSERT_EQ(atomic_load(&log.calls), 0);
  ASSERT(b == (weft_blob_t *)0x1); /* outputs are written only on success */
  /* NULL and foreign blobs */
  size_t len = 77;
  ASSERT(weft_blob_data(NULL, &len) == NULL);
  ASSERT_ERROR_MENTIONS("blob is NULL");
  ASSERT_EQ(len, 77);
  ASSERT_EQ(weft_blob_len(NULL), 0);
  ASSERT(weft_blob_retain(NULL) == NULL);
  weft_blob_release(NULL); /* a no-op */
  uint64_t not_a_blob[8] = {0};
  ASSERT(weft_blob_data((weft_blob_t *)not_a_blob, &len) == NULL);
  ASSERT_ERROR_MENTIONS("not a weft blob");
  ASSERT(weft_blob_retain((weft_blob_t *)not_a_blob) == NULL);
  weft_blob_release((weft_blob_t *)not_a_blob); /* refused, nothing freed */
  ASSERT_EQ(weft_blob_len((weft_blob_t *)not_a_blob), 0);
  weft_blob_elem_drop(NULL, NULL); /* ignored */
  return TEST_OK;
}
