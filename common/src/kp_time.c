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

void kp_backoff_init(kp_backoff_t *b, int64_t first_ms, int64_t max_ms,
                     int64_t deadline_after_ms) {
        b->wait_ms  = first_ms > 0 ? first_ms : 1;
        b->max_ms   = max_ms > b->wait_ms ? max_ms : b->wait_ms;
        b->start_ms = kp_mono_ms();
        b->deadline_ms =
            deadline_after_ms < 0 ? -1 : b->start_ms + deadline_after_ms;
        b->attempt = 0;
}

kp_err_t kp_backoff_wait(kp_backoff_t *b, int (*keep_going)(void)) {
        b->attempt++;
        int64_t now = kp_mono_ms();
        if (b->deadline_ms >= 0 && now >= b->deadline_ms)
                return KP_ERR_TIMED_OUT;
        int64_t until = now + b->wait_ms;
        if (b->deadline_ms >= 0 && until > b->deadline_ms)
                until = b->deadline_ms;
        b->wait_ms = b->wait_ms * 2 < b->max_ms ? b->wait_ms * 2 : b->max_ms;
        for (;;) {
                if (keep_going && !keep_going())
                        return KP_ERR_STATE;
                int64_t left = until - kp_mono_ms();
                if (left <= 0)
                        return KP_OK;
                kp_sleep_ms(left < 100 ? left : 100);
        }
}

int kp_backoff_log_due(const kp_backoff_t *b) {
        return b->attempt <= 3 || (b->attempt & (b->attempt - 1)) == 0;
}

int64_t kp_backoff_elapsed_ms(const kp_backoff_t *b) {
        return kp_mono_ms() - b->start_ms;
}
