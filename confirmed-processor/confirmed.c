/* confirmed.c: the business logic of kpay-confirmed as pure functions
 * (confirmed.h, docs/pipeline.md). */
#include "confirmed.h"

#include "kpay/kp_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_mem.h"

#define MS_PER_DAY INT64_C(86400000)

static const kp_topic_id_t confirmed_inputs[] = {KP_TOPIC_COMPLETE,
                                                 KP_TOPIC_NONE};

static const char *const confirmed_stores[] = {
    [CONFIRMED_ST_TOTALS] = "totals",
    NULL,
};

const kp_proc_layout_t confirmed_layout = {
    .service = "confirmed",
    .inputs  = confirmed_inputs,
    .stores  = confirmed_stores,
};

/* The totals' fields, in the order of the struct and of the JSON. */
static const kp_json_field_t totals_fields[] = {
    {"confirmed_count", offsetof(confirmed_totals_t, confirmed_count)},
    {"confirmed_amount", offsetof(confirmed_totals_t, confirmed_amount)},
    {"rejected_count", offsetof(confirmed_totals_t, rejected_count)},
    {"rejected_amount", offsetof(confirmed_totals_t, rejected_amount)},
};
#define TOTALS_FIELD_CNT (sizeof(totals_fields) / sizeof(totals_fields[0]))

kp_err_t confirmed_totals_decode(const void *buf, size_t len,
                                 confirmed_totals_t *t) {
        return kp_json_decode_int64s(buf, len, totals_fields, TOTALS_FIELD_CNT,
                                     t, sizeof(confirmed_totals_t));
}

char *confirmed_totals_encode(const confirmed_totals_t *t, size_t *lenp) {
        return kp_json_encode_int64s(totals_fields, TOTALS_FIELD_CNT, t, lenp);
}

kp_err_t confirmed_totals_add(confirmed_totals_t *t, kp_pay_state_t state,
                              int64_t amount) {
        confirmed_totals_t n = *t;
        if (state == KP_PAY_COMPLETE) {
                if (__builtin_add_overflow(n.confirmed_count, 1,
                                           &n.confirmed_count) ||
                    __builtin_add_overflow(n.confirmed_amount, amount,
                                           &n.confirmed_amount))
                        return KP_ERR_OVERFLOW;
        } else if (state == KP_PAY_REJECTED) {
                if (__builtin_add_overflow(n.rejected_count, 1,
                                           &n.rejected_count) ||
                    __builtin_add_overflow(n.rejected_amount, amount,
                                           &n.rejected_amount))
                        return KP_ERR_OVERFLOW;
        } else {
                return KP_ERR_INVALID_ARG;
        }
        *t = n;
        return KP_OK;
}

void confirmed_utc_date(int64_t ms, int64_t *yearp, int *monthp, int *dayp) {
        /* Days since 1970-01-01, rounded down, then Howard Hinnant's
         * civil_from_days (eras of 400 years, years starting in March). */
        int64_t days = ms / MS_PER_DAY;
        if (ms % MS_PER_DAY < 0)
                days--;
        int64_t z   = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp  = (5 * doy + 2) / 153;
        int64_t d   = doy - (153 * mp + 2) / 5 + 1;
        int64_t m   = mp < 10 ? mp + 3 : mp - 9;
        *yearp      = yoe + era * 400 + (m <= 2);
        *monthp     = (int)m;
        *dayp       = (int)d;
}

size_t confirmed_day_key(char *buf, size_t size, int64_t ms) {
        int64_t y;
        int m, d;
        confirmed_utc_date(ms, &y, &m, &d);
        int n = snprintf(buf, size, "day:%04" PRId64 "-%02d-%02d", y, m, d);
        if (n < 0 || (size_t)n >= size)
                return 0;
        return (size_t)n;
}

int64_t confirmed_outcome_ms(const kp_payment_t *p, int64_t now_ms) {
        return p->complete_ms >= 0 ? p->complete_ms : now_ms;
}

kp_err_t confirmed_on_complete(const kp_payment_t *p,
                               const confirmed_totals_t *all,
                               const confirmed_totals_t *day,
                               confirmed_decision_t *d) {
        kp_err_t err;

        if (!p || !all || !day || !d)
                return KP_ERR_INVALID_ARG;
        memset(d, 0, sizeof(*d));
        d->all = *all;
        d->day = *day;
        if (p->state != KP_PAY_COMPLETE && p->state != KP_PAY_REJECTED) {
                d->action = CONFIRMED_WRONG_STATE;
                return KP_OK;
        }
        if ((err = confirmed_totals_add(&d->all, p->state, p->amount)) ||
            (err = confirmed_totals_add(&d->day, p->state, p->amount)))
                return err;

        d->topic     = KP_TOPIC_CONFIRMED;
        d->partition = -1;
        snprintf(d->key, sizeof(d->key), "%s", p->id);
        if (p->state == KP_PAY_COMPLETE) {
                kp_payment_t c;
                kp_payment_copy(&c, p);
                c.state  = KP_PAY_CONFIRMED;
                d->value = kp_payment_serialize(&c, &d->value_len);
                kp_payment_clear(&c);
                d->action = CONFIRMED_CONFIRM;
        } else {
                d->value  = kp_payment_serialize(p, &d->value_len);
                d->action = CONFIRMED_REJECT;
        }
        return KP_OK;
}

void confirmed_decision_clear(confirmed_decision_t *d) {
        if (!d)
                return;
        kp_free(d->value);
        d->value = NULL;
}
