/* inflight.c: the business logic of kpay-inflight as pure functions
 * (inflight.h, docs/pipeline.md). */
#include "inflight.h"

#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_conf.h"
#include "kpay/kp_expiry.h"
#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"

static const kp_topic_id_t inflight_inputs[] = {
    [INFLIGHT_IN_INCOMING] = KP_TOPIC_INCOMING,
    [INFLIGHT_IN_COMPLETE] = KP_TOPIC_COMPLETE,
    KP_TOPIC_NONE,
};

static const char *const inflight_stores[] = {
    [INFLIGHT_ST_INFLIGHT] = "inflight",
    [INFLIGHT_ST_DEDUP]    = "dedup",
    [INFLIGHT_ST_TOTALS]   = "totals",
    NULL,
};

/* The dedup changelog keeps an entry for the default window plus a day
 * (inflight_dedup_changelog_retention_ms()); a longer window raises it
 * (main.c). */
static const char *const inflight_retention[] = {
    [INFLIGHT_ST_INFLIGHT] = NULL,
    [INFLIGHT_ST_DEDUP]    = INFLIGHT_DEDUP_CHANGELOG_RETENTION_DEFAULT,
    [INFLIGHT_ST_TOTALS]   = NULL,
    NULL,
};

const kp_proc_layout_t inflight_layout = {
    .service            = "inflight",
    .inputs             = inflight_inputs,
    .stores             = inflight_stores,
    .store_retention_ms = inflight_retention,
};

int64_t inflight_dedup_changelog_retention_ms(int64_t window_ms) {
        int64_t r;
        if (__builtin_add_overflow(window_ms,
                                   INFLIGHT_DEDUP_CHANGELOG_MARGIN_MS, &r))
                return INT64_MAX;
        return r;
}

size_t inflight_expiry_key_of_entry(char *buf, size_t size, const void *key,
                                    size_t klen, const void *val, size_t vlen) {
        char id[KP_PAYMENT_ID_MAX + 3];
        int64_t ms;
        if (!key || klen < 2 || memcmp(key, INFLIGHT_DEDUP_PREFIX, 2) ||
            klen - 2 >= sizeof(id) || !val ||
            inflight_dedup_value_decode(val, vlen, &ms))
                return 0;
        memcpy(id, (const char *)key + 2, klen - 2);
        id[klen - 2] = '\0';
        if (memchr(id, '\0', klen - 2))
                return 0; /* an id never holds a NUL */
        return inflight_expiry_key(buf, size, ms, id);
}

/* The counts of the totals, in the order of the struct and of the JSON. */
static const kp_json_field_t totals_fields[] = {
    {"inflight_count", offsetof(inflight_record_t, inflight_count)},
    {"accepted", offsetof(inflight_record_t, accepted)},
    {"rejected", offsetof(inflight_record_t, rejected)},
    {"duplicates", offsetof(inflight_record_t, duplicates)},
    {"completed", offsetof(inflight_record_t, completed)},
    {"completions_unknown", offsetof(inflight_record_t, completions_unknown)},
};
#define TOTALS_FIELD_CNT (sizeof(totals_fields) / sizeof(totals_fields[0]))

void inflight_record_init(inflight_record_t *r) {
        memset(r, 0, sizeof(*r));
        kp_money_init(&r->inflight_amounts);
}

void inflight_record_clear(inflight_record_t *r) {
        if (!r)
                return;
        kp_money_clear(&r->inflight_amounts);
        inflight_record_init(r);
}

void inflight_totals_view(const inflight_record_t *r, const char *currency,
                          inflight_totals_t *t) {
        t->inflight_count = r->inflight_count;
        t->inflight_amount =
            currency ? kp_money_get(&r->inflight_amounts, currency) : 0;
        t->accepted            = r->accepted;
        t->rejected            = r->rejected;
        t->duplicates          = r->duplicates;
        t->completed           = r->completed;
        t->completions_unknown = r->completions_unknown;
}

kp_err_t inflight_totals_update(inflight_record_t *r, const char *currency,
                                const inflight_totals_t *t) {
        kp_err_t err;
        if (currency && (err = kp_money_set(&r->inflight_amounts, currency,
                                            t->inflight_amount)))
                return err;
        r->inflight_count      = t->inflight_count;
        r->accepted            = t->accepted;
        r->rejected            = t->rejected;
        r->duplicates          = t->duplicates;
        r->completed           = t->completed;
        r->completions_unknown = t->completions_unknown;
        return KP_OK;
}

kp_err_t inflight_totals_decode(const void *buf, size_t len,
                                inflight_record_t *r) {
        json_error_t jerr;
        inflight_record_t n;
        kp_err_t err = KP_ERR_PARSE;
        if (!buf)
                return KP_ERR_PARSE;
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return KP_ERR_PARSE;
        inflight_record_init(&n);
        if (kp_json_get_int64s(root, totals_fields, TOTALS_FIELD_CNT, &n,
                               sizeof(n)) ||
            kp_money_from_json_field(root, "inflight_amounts",
                                     "inflight_amount", &n.inflight_amounts))
                goto out;
        inflight_record_clear(r);
        *r  = n;
        err = KP_OK;
out:
        json_decref(root);
        if (err)
                inflight_record_clear(&n);
        return err;
}

char *inflight_totals_encode(const inflight_record_t *r, size_t *lenp) {
        json_t *o = json_object();
        if (!o)
                return kp_json_dump(NULL); /* aborts: out of memory */
        kp_json_set_int64s(o, totals_fields, TOTALS_FIELD_CNT, r);
        if (json_object_set_new(
                o, "inflight_amounts",
                kp_money_to_json(&r->inflight_amounts, KP_MONEY_JSON_STRING)))
                return kp_json_dump(NULL);
        char *s = kp_json_dump(o);
        if (lenp)
                *lenp = strlen(s);
        return s;
}

size_t inflight_dedup_key(char *buf, size_t size, const char *id) {
        int n = snprintf(buf, size, INFLIGHT_DEDUP_PREFIX "%s", id);
        if (n < 0 || (size_t)n >= size)
                return 0;
        return (size_t)n;
}

size_t inflight_expiry_key(char *buf, size_t size, int64_t first_seen_ms,
                           const char *id) {
        return kp_expiry_key(buf, size, INFLIGHT_EXPIRY_PREFIX, first_seen_ms,
                             id);
}

int inflight_expiry_key_parse(const void *key, size_t klen, int64_t *msp,
                              const char **idp, size_t *idlenp) {
        return kp_expiry_key_parse(key, klen, INFLIGHT_EXPIRY_PREFIX, msp, idp,
                                   idlenp);
}

kp_err_t inflight_dedup_value_decode(const void *buf, size_t len,
                                     int64_t *msp) {
        char text[24];
        int64_t ms;

        if (!buf || len == 0 || len >= sizeof(text))
                return KP_ERR_PARSE;
        memcpy(text, buf, len);
        text[len] = '\0';
        /* Plain digits only: kp_parse_int64 alone would take "+5" or " 5". */
        for (size_t i = 0; i < len; i++)
                if (text[i] < '0' || text[i] > '9')
                        return KP_ERR_PARSE;
        if (kp_parse_int64(text, &ms))
                return KP_ERR_PARSE;
        *msp = ms;
        return KP_OK;
}

int64_t inflight_dedup_cutoff(int64_t now_ms, int64_t retention_ms) {
        return kp_expiry_cutoff(now_ms, retention_ms);
}

/* Copies @p p with the changes of an outcome or a stamp, serialized.
 * @p state is the new state, @p reason KP_REASON_NONE to keep the
 * payment's. */
static char *stamped(const kp_payment_t *p, kp_pay_state_t state,
                     kp_reason_t reason, int64_t inflight_ms,
                     int64_t complete_ms, int32_t partition, size_t *lenp) {
        kp_payment_t c;
        kp_payment_copy(&c, p);
        c.state = state;
        if (reason != KP_REASON_NONE)
                snprintf(c.reason, sizeof(c.reason), "%s",
                         kp_reason2str(reason));
        if (inflight_ms >= 0)
                c.inflight_ms = inflight_ms;
        if (complete_ms >= 0)
                c.complete_ms = complete_ms;
        c.origin_partition = partition;
        /* The stage stamps are kpay-account's to write: a client's would
         * skew kpay-metrics' stage latencies. */
        c.debit_ms  = -1;
        c.credit_ms = -1;
        char *s     = kp_payment_serialize(&c, lenp);
        kp_payment_clear(&c);
        return s;
}

static void set_key(inflight_emit_t *e, const char *key) {
        snprintf(e->key, sizeof(e->key), "%s", key);
}

kp_err_t inflight_on_incoming(const kp_payment_t *p, int64_t first_seen_ms,
                              int64_t retention_ms,
                              const inflight_totals_t *totals,
                              int32_t partition, int64_t now_ms,
                              inflight_decision_t *d) {
        inflight_totals_t t;

        if (!p || !totals || !d || partition < 0 || now_ms < 0)
                return KP_ERR_INVALID_ARG;
        memset(d, 0, sizeof(*d));
        d->expired_first_seen_ms = -1;
        t                        = *totals;

        /* 1. Dedup, before validation: every id gets one outcome. But an
         * id that is not valid is no dedup key: every empty id would share
         * the key "i:" on its partition, every over-long id the key of its
         * first KP_PAYMENT_ID_MAX + 1 characters, so a second such payment
         * would be dropped as a duplicate of another one, without an
         * outcome. Such a payment is rejected (invalid_id) each time, and
         * not recorded. */
        int id_valid = kp_payment_id_valid(p->id);
        if (id_valid && first_seen_ms >= 0 &&
            first_seen_ms >= inflight_dedup_cutoff(now_ms, retention_ms)) {
                if (__builtin_add_overflow(t.duplicates, 1, &t.duplicates))
                        return KP_ERR_OVERFLOW;
                d->action = INFLIGHT_DUPLICATE;
                d->totals = t;
                return KP_OK;
        }

        /* 2. The state, then the business rules. */
        kp_reason_t reason;
        if (p->state != KP_PAY_INCOMING)
                reason = KP_REASON_INVALID_STATE;
        else
                reason = kp_payment_validate(p);

        if (reason != KP_REASON_NONE) {
                if (__builtin_add_overflow(t.rejected, 1, &t.rejected))
                        return KP_ERR_OVERFLOW;
                d->action         = INFLIGHT_REJECT;
                d->reason         = reason;
                d->emit.topic     = KP_TOPIC_COMPLETE;
                d->emit.partition = partition;
                d->emit.value = stamped(p, KP_PAY_REJECTED, reason, -1, now_ms,
                                        partition, &d->emit.value_len);
        } else {
                /* The amount is 128 bits: fewer than 2^63 int64 amounts
                 * cannot overflow it. */
                if (__builtin_add_overflow(t.accepted, 1, &t.accepted) ||
                    __builtin_add_overflow(t.inflight_count, 1,
                                           &t.inflight_count) ||
                    __builtin_add_overflow(t.inflight_amount,
                                           (kp_i128_t)p->amount,
                                           &t.inflight_amount))
                        return KP_ERR_OVERFLOW;
                d->action         = INFLIGHT_ACCEPT;
                d->emit.topic     = KP_TOPIC_INFLIGHT;
                d->emit.partition = -1;
                d->emit.value = stamped(p, KP_PAY_DEBIT, KP_REASON_NONE, now_ms,
                                        -1, partition, &d->emit.value_len);
                d->stored     = stamped(p, p->state, KP_REASON_NONE, now_ms, -1,
                                        partition, &d->stored_len);
        }
        set_key(&d->emit, reason != KP_REASON_NONE ? p->id : p->from);
        d->record_dedup = id_valid;
        if (id_valid && first_seen_ms >= 0)
                d->expired_first_seen_ms = first_seen_ms;
        d->totals = t;
        return KP_OK;
}

void inflight_decision_clear(inflight_decision_t *d) {
        if (!d)
                return;
        kp_free(d->emit.value);
        kp_free(d->stored);
        d->emit.value = NULL;
        d->stored     = NULL;
}

int inflight_is_outcome(kp_pay_state_t state) {
        return state == KP_PAY_COMPLETE || state == KP_PAY_REJECTED;
}

kp_err_t inflight_on_complete(const kp_payment_t *c, const kp_payment_t *flight,
                              inflight_totals_t *totals,
                              inflight_completion_t *whatp) {
        inflight_totals_t t;

        if (!c || !totals || !whatp)
                return KP_ERR_INVALID_ARG;
        t = *totals;
        if (!inflight_is_outcome(c->state)) {
                *whatp = INFLIGHT_WRONG_STATE;
                return KP_OK;
        }
        if (!flight) {
                if (__builtin_add_overflow(t.completions_unknown, 1,
                                           &t.completions_unknown))
                        return KP_ERR_OVERFLOW;
                *totals = t;
                *whatp  = INFLIGHT_UNKNOWN;
                return KP_OK;
        }
        /* The stored amount is what entered the totals. */
        if (__builtin_sub_overflow(t.inflight_count, 1, &t.inflight_count) ||
            __builtin_sub_overflow(t.inflight_amount, (kp_i128_t)flight->amount,
                                   &t.inflight_amount))
                return KP_ERR_OVERFLOW;
        if (c->state == KP_PAY_COMPLETE) {
                if (__builtin_add_overflow(t.completed, 1, &t.completed))
                        return KP_ERR_OVERFLOW;
                *whatp = INFLIGHT_COMPLETED;
        } else {
                if (__builtin_add_overflow(t.rejected, 1, &t.rejected))
                        return KP_ERR_OVERFLOW;
                *whatp = INFLIGHT_REJECTED;
        }
        *totals = t;
        return KP_OK;
}
