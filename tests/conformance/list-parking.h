/* Parking on an address, semaphores, barriers, once, identity. */
WEFT_TEST(parking_no_lost_wakeups)
WEFT_TEST(parking_wake_counts_and_ends)
WEFT_TEST(parking_builds_a_lock)
WEFT_TEST(sem_bounded_buffer_exact)
WEFT_TEST(sem_as_a_handed_over_lock)
WEFT_TEST(barrier_rounds_one_serial_each)
WEFT_TEST(once_under_contention)
WEFT_TEST(parking_under_stop_and_identity)
