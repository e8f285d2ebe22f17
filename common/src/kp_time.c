/* kp_time.c: the clocks of kpay (kp_time.h). */
#include "kpay/kp_time.h"

#include <time.h>

int64_t kp_mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kp_mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t kp_wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kp_sleep_ms(int64_t ms) {
        if (ms <= 0)
                return;
        struct timespec ts = {.tv_sec  = (time_t)(ms / 1000),
                              .tv_nsec = (long)(ms % 1000) * 1000000};
        /* EINTR ends it early on purpose: the caller re-checks its flags. */
        nanosleep(&ts, NULL);
}
