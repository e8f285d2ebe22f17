/**
 * @file kp_time.h
 * @brief The clocks of kpay: monotonic time for intervals and deadlines,
 *        wall-clock time for event stamps, and a sleep that survives
 *        signals.
 *
 * Every module reads the time through these, so that there is one place to
 * change how kpay reads clocks (and no copy of clock_gettime() boilerplate
 * in each file). All are @locality any thread.
 */
#ifndef KPAY_KP_TIME_H
#define KPAY_KP_TIME_H

#include <stdint.h>

/** @brief CLOCK_MONOTONIC in milliseconds: for intervals and deadlines. */
int64_t kp_mono_ms(void);

/** @brief CLOCK_MONOTONIC in nanoseconds: for rates and fine latencies. */
int64_t kp_mono_ns(void);

/** @brief CLOCK_REALTIME in milliseconds since the epoch: event stamps. */
int64_t kp_wall_ms(void);

/**
 * @brief Sleeps @p ms milliseconds (nothing when <= 0). A signal ends the
 *        sleep early, so that a SIGTERM is noticed at once.
 */
void kp_sleep_ms(int64_t ms);

#endif /* KPAY_KP_TIME_H */
