/* Helpers shared by the integration tests (real broker, real processes). */
#ifndef KPAY_IT_UTIL_H
#define KPAY_IT_UTIL_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/** The broker of the CTest fixture (KPAY_TEST_BOOTSTRAP). */
const char *it_bootstrap(void);

/** A topic prefix no other test run uses ("it-<pid>-<random>."). */
void it_unique_prefix(char *buf, size_t size, const char *test);

/** Monotonic milliseconds. */
int64_t it_now_ms(void);

/**
 * Runs argv (argv[0] is a path), waits at most timeout_ms, and returns its
 * exit status (-1 if it did not exit normally or timed out). Its stdout and
 * stderr are returned together in *outp (free() it) when outp is not NULL.
 */
int it_run(char *const argv[], int timeout_ms, char **outp);

/** A client of the fixture's broker with the given extra properties
 *  (NULL-terminated key, value list). Fails the test on error. */
rd_kafka_t *it_client(rd_kafka_type_t type, const char *const *props);

#endif
