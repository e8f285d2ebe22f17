/* kp_bucket.c: the rate limit's token bucket (kp_bucket.h). */
#include "kpay/kp_bucket.h"

void kp_bucket_refill(kp_bucket_t *b, double rate, int64_t now_ms) {
        double cap =
            rate * KP_BUCKET_BURST_S > 1.0 ? rate * KP_BUCKET_BURST_S : 1.0;
        if (b->last_ms == 0)
                b->tokens = cap;
        else if (now_ms > b->last_ms)
                b->tokens += rate * (double)(now_ms - b->last_ms) / 1000.0;
        if (b->tokens > cap)
                b->tokens = cap;
        if (b->last_ms == 0 || now_ms > b->last_ms)
                b->last_ms = now_ms;
}

void kp_bucket_take(kp_bucket_t *b, double rate, int64_t now_ms) {
        kp_bucket_refill(b, rate, now_ms);
        b->tokens -= 1.0;
}

int kp_bucket_empty(const kp_bucket_t *b) {
        return b->tokens < 1.0;
}

int64_t kp_bucket_wait_ms(const kp_bucket_t *b, double rate) {
        if (!kp_bucket_empty(b))
                return 0;
        if (!(rate > 0))
                return INT64_MAX;
        double ms = (1.0 - b->tokens) * 1000.0 / rate;
        return ms < 1.0 ? 1 : (int64_t)ms;
}

void kp_bucket_reset(kp_bucket_t *b) {
        b->tokens  = 0;
        b->last_ms = 0;
}
