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
    [CONFIRMED_ST_TOTALS]   = "totals",
    [CONFIRMED_ST_OUTCOMES] = "outcomes",
    [CONFIRMED_ST_EXPIRY]   = "expiry",
    NULL,
};

const kp_proc_layout_t confirmed_layout = {
    .service = "confirmed",
    .inputs  = confirmed_inputs,
    .stores  = confirmed_stores,
};

/* The counts of the totals, in the order of the JSON. */
static const kp_json_field_t totals_fields[] = {
    {"confirmed_count", offsetof(confirmed_record_t, confirmed_count)},
    {"rejected_count", offsetof(confirmed_record_t, rejected_count)},
};
#define TOTALS_FIELD_CNT (sizeof(totals_fields) / sizeof(totals_fields[0]))

void confirmed_record_init(confirmed_record_t *r) {
        memset(r, 0, sizeof(*r));
        kp_money_init(&r->confirmed_amounts);
        kp_money_init(&r->rejected_amounts);
}

void confirmed_record_clear(confirmed_record_t *r) {
        if (!r)
                return;
        kp_money_clear(&r->confirmed_amounts);
        kp_money_clear(&r->rejected_amounts);
        confirmed_record_init(r);
}

const char *confirmed_currency(const kp_payment_t *p) {
        return kp_payment_validate(p) == KP_REASON_NONE ? p->currency : NULL;
}

void confirmed_totals_view(const confirmed_record_t *r, const char *currency,
                           confirmed_totals_t *t) {
        t->confirmed_count = r->confirmed_count;
        t->rejected_count  = r->rejected_count;
        t->confirmed_amount =
            currency ? kp_money_get(&r->confirmed_amounts, currency) : 0;
        t->rejected_amount =
            currency ? kp_money_get(&r->rejected_amounts, currency) : 0;
}

kp_err_t confirmed_totals_update(confirmed_record_t *r, const char *currency,
                                 const confirmed_totals_t *t) {
        kp_err_t err;
        if (currency) {
                if (!kp_currency_valid(currency))
                        return KP_ERR_INVALID_ARG;
                if ((err = kp_money_set(&r->confirmed_amounts, currency,
                                        t->confirmed_amount)) ||
                    (err = kp_money_set(&r->rejected_amounts, currency,
                                        t->rejected_amount)))
                        return err;
        }
        r->confirmed_count = t->confirmed_count;
        r->rejected_count  = t->rejected_count;
        return KP_OK;
}

kp_err_t confirmed_totals_decode(const void *buf, size_t len,
                                 confirmed_record_t *r) {
        json_error_t jerr;
        confirmed_record_t n;
        kp_err_t err = KP_ERR_PARSE;
        if (!buf)
                return KP_ERR_PARSE;
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return KP_ERR_PARSE;
        confirmed_record_init(&n);
        if (!kp_json_get_int64s(root, totals_fields, TOTALS_FIELD_CNT, &n,
                                sizeof(n)) &&
            !kp_money_from_json_field(root, "confirmed_amounts",
                                      "confirmed_amount",
                                      &n.confirmed_amounts) &&
            !kp_money_from_json_field(root, "rejected_amounts",
                                      "rejected_amount", &n.rejected_amounts)) {
                confirmed_record_clear(r);
                *r  = n;
                err = KP_OK;
        } else {
                confirmed_record_clear(&n);
        }
        json_decref(root);
        return err;
}

char *confirmed_totals_encode(const confirmed_record_t *r, size_t *lenp) {
        json_t *o = json_object();
        if (!o)
                return kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set_int64s(o, totals_fields, TOTALS_FIELD_CNT, r);
        if (json_object_set_new(o, "confirmed_amounts",
                                kp_money_to_json(&r->confirmed_amounts,
                                                 KP_MONEY_JSON_STRING)) ||
            json_object_set_new(
                o, "rejected_amounts",
                kp_money_to_json(&r->rejected_amounts, KP_MONEY_JSON_STRING)))
                return kp_json_dump(NULL);
        char *s = kp_json_dump(o);
        if (lenp)
                *lenp = strlen(s);
        return s;
}

kp_err_t confirmed_totals_add(confirmed_totals_t *t, kp_pay_state_t state,
                              int64_t amount) {
        confirmed_totals_t n = *t;
        /* The amounts are 128 bits: fewer than 2^63 int64 amounts cannot
         * overflow them. */
        if (state == KP_PAY_COMPLETE) {
                if (__builtin_add_overflow(n.confirmed_count, 1,
                                           &n.confirmed_count) ||
                    __builtin_add_overflow(n.confirmed_amount,
                                           (kp_i128_t)amount,
                                           &n.confirmed_amount))
                        return KP_ERR_OVERFLOW;
        } else if (state == KP_PAY_REJECTED) {
                if (__builtin_add_overflow(n.rejected_count, 1,
                                           &n.rejected_count) ||
                    __builtin_add_overflow(n.rejected_amount, (kp_i128_t)amount,
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
        /* An invalid payment's amount is not money: counted, not summed. */
        int64_t amount = confirmed_currency(p) ? p->amount : 0;
        if ((err = confirmed_totals_add(&d->all, p->state, amount)) ||
            (err = confirmed_totals_add(&d->day, p->state, amount)))
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

int confirmed_outcome_kept(const kp_payment_t *p) {
        return p && kp_payment_id_valid(p->id);
}

char *confirmed_outcome_encode(const kp_payment_t *p, int64_t recorded_ms,
                               size_t *lenp) {
        kp_payment_t c = *p;
        /* Only the known fields: a client's extras are not kept for days. */
        c.extra = json_pack("{s:I}", "recorded_ms", (json_int_t)recorded_ms);
        if (!c.extra)
                return kp_json_dump(NULL); /* aborts: out of memory */
        char *s = kp_payment_serialize(&c, lenp);
        json_decref(c.extra);
        return s;
}

kp_err_t confirmed_outcome_decode(const void *buf, size_t len, kp_payment_t *p,
                                  int64_t *recorded_msp) {
        kp_payment_t o;
        char detail[128];
        if (!buf || kp_payment_parse(buf, len, &o, detail, sizeof(detail)) !=
                        KP_PAY_E_OK)
                return KP_ERR_PARSE;
        json_t *r = o.extra ? json_object_get(o.extra, "recorded_ms") : NULL;
        if ((o.state != KP_PAY_COMPLETE && o.state != KP_PAY_REJECTED) ||
            !json_is_integer(r) || json_integer_value(r) < 0) {
                kp_payment_clear(&o);
                return KP_ERR_PARSE;
        }
        if (recorded_msp)
                *recorded_msp = json_integer_value(r);
        if (p)
                *p = o;
        else
                kp_payment_clear(&o);
        return KP_OK;
}

size_t confirmed_expiry_key(char *buf, size_t size, int64_t recorded_ms,
                            const char *id) {
        return kp_expiry_key(buf, size, CONFIRMED_EXPIRY_PREFIX, recorded_ms,
                             id);
}

int confirmed_outcome_expired(int64_t recorded_ms, int64_t now_ms,
                              int64_t retention_ms) {
        return recorded_ms < kp_expiry_cutoff(now_ms, retention_ms);
}
