/* IO readiness waits: readiness, deadlines, cancellation, forget, hang-up, many
 * waiters, bad input, stop-the-world, waking workers around the netpoller, a loopback
 * TCP echo. */
WEFT_TEST(io_read_ready)
WEFT_TEST(io_write_ready)
WEFT_TEST(io_regular_file_always_ready)
WEFT_TEST(io_deadlines)
WEFT_TEST(io_cancel_parked_wait)
WEFT_TEST(io_cancel_before_wait)
WEFT_TEST(io_forget_wakes_waiters)
WEFT_TEST(io_forget_is_per_runtime)
WEFT_TEST(io_hangup)
WEFT_TEST(io_many_waiters_one_fd)
WEFT_TEST(io_bad_fds)
WEFT_TEST(io_number_reused_without_forget)
WEFT_TEST(io_stw_while_waiting)
WEFT_TEST(io_wakeups_around_the_poller)
WEFT_TEST(io_ready_while_workers_busy)
WEFT_TEST(io_tcp_echo_many_connections)
