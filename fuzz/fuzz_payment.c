/* Fuzz target: the Payment codec (kp_payment_parse, kp_payment_validate,
 * kp_payment_serialize, kp_payment_copy). For any input: parsing either
 * fails with a known error code or gives a payment whose serialization
 * parses back to the same payment (same serialization, same validation
 * result); a copy serializes the same. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

FUZZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        kp_payment_t p, q, c;
        char detail[256];
        kp_pay_err_t err =
            kp_payment_parse(data, size, &p, detail, sizeof(detail));
        if (err != KP_PAY_E_OK) {
                const char *code = kp_pay_err2code(err);
                FUZZ_CHECK(code && *code && strcmp(code, "ok"),
                           "error %d has no DLQ code", (int)err);
                return 0;
        }
        kp_reason_t why = kp_payment_validate(&p);
        FUZZ_CHECK(why >= KP_REASON_NONE && why < KP_REASON__CNT,
                   "reason %d out of range", (int)why);
        FUZZ_CHECK(
            strlen(p.id) < sizeof(p.id) && strlen(p.from) < sizeof(p.from),
            "unterminated id");

        size_t len;
        char *s = kp_payment_serialize(&p, &len);
        FUZZ_CHECK(s && strlen(s) == len, "serialize length");
        err = kp_payment_parse(s, len, &q, detail, sizeof(detail));
        FUZZ_CHECK(err == KP_PAY_E_OK,
                   "own serialization does not parse: %s: %s", detail, s);
        FUZZ_CHECK(kp_payment_validate(&q) == why,
                   "validation changed after a round trip: %s", s);
        FUZZ_CHECK(q.amount == p.amount && q.state == p.state && q.v == p.v &&
                       q.created_ms == p.created_ms &&
                       q.inflight_ms == p.inflight_ms &&
                       q.complete_ms == p.complete_ms &&
                       q.origin_partition == p.origin_partition,
                   "a number changed in a round trip: %s", s);
        FUZZ_CHECK(!strcmp(q.id, p.id) && !strcmp(q.from, p.from) &&
                       !strcmp(q.to, p.to) && !strcmp(q.currency, p.currency) &&
                       !strcmp(q.reason, p.reason),
                   "a string changed in a round trip: %s", s);
        size_t len2;
        char *s2 = kp_payment_serialize(&q, &len2);
        FUZZ_CHECK(len2 == len && !memcmp(s, s2, len),
                   "serialization is not stable:\n%s\n%s", s, s2);

        kp_payment_copy(&c, &p);
        char *s3 = kp_payment_serialize(&c, &len2);
        FUZZ_CHECK(len2 == len && !memcmp(s, s3, len), "a copy differs");

        kp_free(s);
        kp_free(s2);
        kp_free(s3);
        kp_payment_clear(&p);
        kp_payment_clear(&q);
        kp_payment_clear(&c);
        return 0;
}
