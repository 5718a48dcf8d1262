/* Lock-order and deadlock checks. */
WEFT_TEST(checks_lock_order_inversion)
WEFT_TEST(checks_repeated_orders)
WEFT_TEST(checks_what_is_not_an_inversion)
WEFT_TEST(checks_deadlock_two_tasks)
WEFT_TEST(checks_deadlock_three_tasks)
WEFT_TEST(checks_join_cycle)
WEFT_TEST(checks_deadlock_nested_read)
WEFT_TEST(checks_from_the_environment)
