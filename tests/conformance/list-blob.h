/* Blobs: immutable shared payloads, their reference count and destructor. */
WEFT_TEST(blob_new_copies)
WEFT_TEST(blob_wrap_dtor_once)
WEFT_TEST(blob_shared_across_tasks)
WEFT_TEST(blob_through_channel)
WEFT_TEST(blob_errors)
