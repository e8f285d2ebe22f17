/* kpay-confirmed: counts the outcomes on kpay.payments.complete (confirmed
 * and rejected, all time and per UTC day, per partition) and emits them to
 * kpay.payments.confirmed: a COMPLETE as CONFIRMED, a REJECTED as is
 * (docs/pipeline.md), and keeps each outcome for a bounded time in the
 * store `outcomes` (kpay-web's GET /api/v1/payments/{id}). The decisions are
 * the pure functions of confirmed.c; this file reads the stores, applies
 * the decisions, expires old outcomes and counts. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "confirmed.h"
#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_expiry.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_topics.h"

typedef struct confirmed_conf_s {
        int64_t outcome_retention_ms;
        int64_t outcome_expiry_interval_ms;
} confirmed_conf_t;

/* The configuration and the business counters. */
typedef struct confirmed_app_s {
        int64_t retention_ms;
        kp_counter_t *confirmed;
        kp_counter_t *rejected;
        kp_counter_t *outcomes_expired;
} confirmed_app_t;

static confirmed_conf_t cconf;

static const kp_conf_opt_t confirmed_opts[] = {
    {"outcome-retention-ms", 0, KP_CONF_INT,
     offsetof(confirmed_conf_t, outcome_retention_ms), "604800000",
     CONFIRMED_OUTCOME_RETENTION_MIN_MS, INT64_C(3153600000000), "MS",
     "How long a payment's outcome stays in the store `outcomes` (what "
     "GET /api/v1/payments/{id} answers from) after it is recorded."},
    {"outcome-expiry-interval-ms", 0, KP_CONF_INT,
     offsetof(confirmed_conf_t, outcome_expiry_interval_ms), "60000", 100,
     INT64_C(3600000), "MS",
     "How often expired outcomes are deleted (at most 10,000 per partition "
     "and run)."},
    {NULL},
};

/* The totals, kept decoded for the transaction (kp_ctx_cached()): every
 * record reads and writes two of them, decoded and encoded once per commit
 * instead of once per record. */
KP_CTX_VALUE_TYPE(totals_type, confirmed_record_t, confirmed_record_init,
                  confirmed_record_clear, confirmed_totals_decode,
                  confirmed_totals_encode);

/* The totals under @p key (zeros when there are none yet). */
static kp_err_t totals_load(kp_ctx_t *ctx, const char *key,
                            confirmed_record_t **rp) {
        void *obj;
        kp_err_t err = kp_ctx_cached(ctx, CONFIRMED_ST_TOTALS, key, strlen(key),
                                     &totals_type, &obj);
        *rp          = err ? NULL : obj;
        return err;
}

/* Writes the view @p t of @p currency back into @p r, stored at the
 * commit. */
static kp_err_t totals_save(kp_ctx_t *ctx, confirmed_record_t *r,
                            const char *currency, const confirmed_totals_t *t) {
        kp_err_t err = confirmed_totals_update(r, currency, t);
        if (!err)
                kp_ctx_cached_put(ctx, r);
        return err;
}

/* Records the outcome @p p in the store `outcomes`, with its expiry index
 * key. An older outcome of the same id (a resubmission after the dedup
 * window) is replaced; its index key stays until it expires, and then
 * finds the newer record and leaves it (expire_outcome()). */
static kp_err_t outcome_save(kp_ctx_t *ctx, const kp_payment_t *p) {
        char tkey[CONFIRMED_EXPIRY_KEY_SIZE];
        size_t len;
        kp_err_t err;
        int64_t now = kp_ctx_now_ms(ctx);
        if (!confirmed_outcome_kept(p))
                return KP_OK;
        size_t tlen = confirmed_expiry_key(tkey, sizeof(tkey), now, p->id);
        if (!tlen)
                return KP_ERR_INVALID_ARG;
        char *s = confirmed_outcome_encode(p, now, &len);
        err = kp_ctx_put(ctx, CONFIRMED_ST_OUTCOMES, p->id, strlen(p->id), s,
                         len);
        kp_free(s);
        /* Not empty: Kafka may carry an empty value as a tombstone. */
        return err ? err
                   : kp_ctx_put(ctx, CONFIRMED_ST_EXPIRY, tkey, tlen, "1", 1);
}

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        confirmed_app_t *a = opaque;
        confirmed_record_t *rall, *rday;
        confirmed_totals_t all, day;
        confirmed_decision_t d;
        kp_payment_t p;
        char detail[256], daykey[CONFIRMED_DAY_KEY_SIZE];
        kp_err_t err;

        kp_pay_err_t perr =
            kp_payment_parse(rec->value ? rec->value : "", rec->value_len, &p,
                             detail, sizeof(detail));
        if (perr)
                return kp_ctx_dead_letter(ctx, kp_pay_err2code(perr), detail);
        if (p.state != KP_PAY_COMPLETE && p.state != KP_PAY_REJECTED) {
                snprintf(detail, sizeof(detail),
                         "state %s on the complete topic (payment %s)",
                         kp_pay_state2str(p.state), p.id);
                kp_payment_clear(&p);
                return kp_ctx_dead_letter(ctx, "wrong_state", detail);
        }
        if (!confirmed_day_key(daykey, sizeof(daykey),
                               confirmed_outcome_ms(&p, kp_ctx_now_ms(ctx)))) {
                kp_payment_clear(&p);
                return KP_ERR_INVALID_ARG;
        }
        /* The amounts are per currency: the views of the outcome's. */
        const char *cur               = confirmed_currency(&p);
        char curbuf[KP_CURRENCY_SIZE] = "";
        if (cur) {
                memcpy(curbuf, cur, KP_CURRENCY_SIZE);
                cur = curbuf;
        }
        if (!(err = totals_load(ctx, CONFIRMED_ALL_KEY, &rall)) &&
            !(err = totals_load(ctx, daykey, &rday))) {
                confirmed_totals_view(rall, cur, &all);
                confirmed_totals_view(rday, cur, &day);
                err = confirmed_on_complete(&p, &all, &day, &d);
        }
        if (err) {
                kp_payment_clear(&p);
                return err;
        }

        if (!(err = totals_save(ctx, rall, cur, &d.all)) &&
            !(err = totals_save(ctx, rday, cur, &d.day)) &&
            !(err = outcome_save(ctx, &p)) &&
            !(err = kp_ctx_emit(ctx, d.topic, d.partition, d.key, strlen(d.key),
                                d.value, d.value_len, NULL)))
                kp_counter_add(
                    d.action == CONFIRMED_CONFIRM ? a->confirmed : a->rejected,
                    1);
        kp_payment_clear(&p);
        confirmed_decision_clear(&d);
        return err;
}

/* One expiry run: the retention window at the run's time. */
typedef struct expiry_run_s {
        int64_t now_ms;
        int64_t retention_ms;
} expiry_run_t;

/* Deletes the outcome of an expired index key, unless it was recorded
 * again since (then a newer index key covers it). */
static kp_err_t expire_outcome(kp_ctx_t *ctx, const char *id, size_t idlen,
                               int64_t ms, void *opaque) {
        const expiry_run_t *x = opaque;
        int64_t recorded;
        void *val;
        size_t vlen;
        (void)ms;
        kp_err_t err =
            kp_ctx_get(ctx, CONFIRMED_ST_OUTCOMES, id, idlen, &val, &vlen);
        if (err == KP_ERR_NOT_FOUND)
                return KP_OK;
        if (err)
                return err;
        err = confirmed_outcome_decode(val, vlen, NULL, &recorded);
        kp_free(val);
        if (!err &&
            !confirmed_outcome_expired(recorded, x->now_ms, x->retention_ms))
                return KP_OK;
        if (err)
                KP_WARN("store outcomes [%d]: deleting an undecodable entry",
                        (int)kp_ctx_partition(ctx));
        return kp_ctx_delete(ctx, CONFIRMED_ST_OUTCOMES, id, idlen);
}

/* Deletes outcomes older than the retention, oldest first, through the
 * expiry index (kp_expiry.h). */
static void punctuate(kp_ctx_t *ctx, int64_t now_ms, void *opaque) {
        confirmed_app_t *a = opaque;
        expiry_run_t x     = {now_ms, a->retention_ms};
        int64_t deleted    = 0;
        kp_err_t err       = kp_expiry_run(
                  ctx, CONFIRMED_ST_EXPIRY, CONFIRMED_EXPIRY_PREFIX,
                  kp_expiry_cutoff(now_ms, a->retention_ms),
                  CONFIRMED_EXPIRY_MAX_PER_RUN, 0, expire_outcome, &x, &deleted);
        if (deleted > 0) {
                kp_counter_add(a->outcomes_expired, deleted);
                KP_DEBUG("partition %d: %" PRId64 " outcome index keys expired",
                         (int)kp_ctx_partition(ctx), deleted);
        }
        if (err)
                KP_ERROR("partition %d: outcome expiry: %s",
                         (int)kp_ctx_partition(ctx), kp_err2str(err));
}

/* Takes the expiry interval from its option. */
static kp_err_t configure(kp_proc_def_t *def, void *opaque) {
        (void)opaque;
        def->punctuate_interval_ms = cconf.outcome_expiry_interval_ms;
        return KP_OK;
}

/* Registers the business counters. */
static kp_err_t init(kp_proc_t *proc, void *opaque) {
        confirmed_app_t *a  = opaque;
        kp_metrics_t *m     = kp_proc_metrics(proc);
        a->retention_ms     = cconf.outcome_retention_ms;
        a->outcomes_expired = kp_metrics_counter(
            m, "kpay_confirmed_outcomes_expired_total",
            "Outcome expiry index entries deleted after the retention.", NULL);
        a->confirmed = kp_metrics_counter(m, "kpay_confirmed_total",
                                          "Payments confirmed.", NULL);
        a->rejected  = kp_metrics_counter(m, "kpay_confirmed_rejected_total",
                                          "Rejected payments counted.", NULL);
        return KP_OK;
}

int main(int argc, char **argv) {
        static confirmed_app_t a;
        static const kp_conf_section_t sections[] = {{confirmed_opts, &cconf},
                                                     {NULL, NULL}};
        static const kp_proc_def_t def            = {
                       .name = "kpay-confirmed",
                       .summary =
                           "Confirmed processor: confirmed and rejected totals, "
                                      "today and all time.",
                       .layout                = &confirmed_layout,
                       .sections              = sections,
                       .process               = process,
                       .punctuate             = punctuate,
                       .punctuate_interval_ms = CONFIRMED_PUNCTUATE_MS,
                       .configure             = configure,
                       .init                  = init,
                       .opaque                = &a,
        };
        return kp_proc_main(&def, argc, argv);
}
