/* Runtime, errors, clock, platform info. */
WEFT_TEST(runtime_open_close)
WEFT_TEST(runtime_open_bad_arguments)
WEFT_TEST(runtime_use_after_close)
WEFT_TEST(strerror_names_every_code)
