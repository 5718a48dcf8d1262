/* Task-local keys. */
WEFT_TEST(keys_destructors)
WEFT_TEST(keys_host_threads)
WEFT_TEST(keys_invalid)
WEFT_TEST(keys_exhaustion)
WEFT_TEST(keys_delete)
WEFT_TEST(keys_create_delete_forever)
WEFT_TEST(keys_null_arguments)
WEFT_TEST(keys_thread_exit_calls_weft)
