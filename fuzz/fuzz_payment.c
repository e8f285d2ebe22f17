/* Fuzz target: the Payment codec (kp_payment_parse, kp_payment_validate,
 * kp_payment_serialize, kp_payment_copy). For any input: parsing either
 * fails with a known error code or gives a payment whose serialization
 * parses back to the same payment (same serialization, same validation
 * result); a copy serializes the same. Both parse paths agree: the input
 * as it is (the fast reader, kp_jscan.h, where it applies) and the same
 * input with its first key's first character escaped (which only jansson
 * reads) give the same error, detail and serialization; and the
 * serialization is byte for byte what jansson writes for it. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"

FUZZ_QUIET_INIT

/* @p data with its first key's first character as a \\u escape, or NULL
 * when it does not start with a key that can be rewritten so. */
static char *escaped_first_key(const uint8_t *data, size_t size,
                               size_t *outlen) {
        size_t at = 0;
        while (at < size && (data[at] == ' ' || data[at] == '\t' ||
                             data[at] == '\n' || data[at] == '\r'))
                at++;
        if (at + 2 >= size || data[at] != '{' || data[at + 1] != '"' ||
            data[at + 2] < 0x20 || data[at + 2] > 0x7e || data[at + 2] == '"' ||
            data[at + 2] == '\\')
                return NULL;
        at += 2;
        char *out = kp_malloc(size + 6);
        memcpy(out, data, at);
        snprintf(out + at, 7, "\\u%04x", data[at]);
        memcpy(out + at + 6, data + at + 1, size - at - 1);
        *outlen = size + 5;
        return out;
}

/* The fast path and jansson's agree on @p data (@p err, @p detail, @p s:
 * what the fast path gave, @p s NULL unless it parsed). */
static void check_paths_agree(const uint8_t *data, size_t size,
                              kp_pay_err_t err, const char *detail,
                              const char *s) {
        size_t elen;
        char *esc = escaped_first_key(data, size, &elen);
        kp_payment_t e;
        char edetail[256];
        if (!esc)
                return;
        kp_pay_err_t eerr =
            kp_payment_parse(esc, elen, &e, edetail, sizeof(edetail));
        /* A JSON syntax error is jansson's on both paths, and its byte
         * position moves with the escape. */
        FUZZ_CHECK(eerr == err &&
                       (err == KP_PAY_E_NOT_JSON || !strcmp(edetail, detail)),
                   "paths disagree: %s (%s) against jansson's %s (%s)",
                   kp_pay_err2code(err), detail, kp_pay_err2code(eerr),
                   edetail);
        if (s) {
                char *es = kp_payment_serialize(&e, NULL);
                FUZZ_CHECK(!strcmp(es, s), "paths disagree:\n%s\n%s", s, es);
                kp_free(es);
        }
        kp_payment_clear(&e);
        kp_free(esc);
}

/* @p s (@p len bytes) is what jansson would write for the same value. */
static void check_as_jansson_writes(const char *s, size_t len) {
        json_error_t jerr;
        json_t *v = json_loadb(s, len, JSON_ALLOW_NUL, &jerr);
        FUZZ_CHECK(v, "own serialization is not JSON: %s: %s", jerr.text, s);
        char *j = json_dumps(v, JSON_COMPACT);
        FUZZ_CHECK(j && strlen(j) == len && !memcmp(j, s, len),
                   "jansson writes it otherwise:\n%s\n%s", s, j);
        free(j);
        json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        kp_payment_t p, q, c;
        char detail[256];
        kp_pay_err_t err =
            kp_payment_parse(data, size, &p, detail, sizeof(detail));
        if (err != KP_PAY_E_OK) {
                const char *code = kp_pay_err2code(err);
                FUZZ_CHECK(code && *code && strcmp(code, "ok"),
                           "error %d has no DLQ code", (int)err);
                check_paths_agree(data, size, err, detail, NULL);
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
        check_paths_agree(data, size, err, detail, s);
        check_as_jansson_writes(s, len);
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
