/* Mutexes, conditions, rwlocks. */
WEFT_TEST(mutex_counter_8_threads)
