/* Readers-writer locks. */
WEFT_TEST(rwlock_basics)
WEFT_TEST(rwlock_exclusion_and_try)
WEFT_TEST(rwlock_readers_share)
WEFT_TEST(rwlock_writer_relock)
WEFT_TEST(rwlock_unlock_and_destroy_rules)
WEFT_TEST(rwlock_writer_goes_first)
WEFT_TEST(rwlock_readers_writers_stream)
WEFT_TEST(rwlock_null_arguments)
