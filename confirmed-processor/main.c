/* kpay-confirmed: counts the outcomes on kpay.payments.complete (confirmed
 * and rejected, all time and per UTC day, per partition) and emits them to
 * kpay.payments.confirmed: a COMPLETE as CONFIRMED, a REJECTED as is
 * (docs/pipeline.md). The decisions are the pure functions of confirmed.c;
 * this file reads the store, applies the decisions and counts. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "confirmed.h"
#include "kpay/kp_app.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_topics.h"

/* The business counters. */
typedef struct confirmed_app_s {
        kp_counter_t *confirmed;
        kp_counter_t *rejected;
} confirmed_app_t;

KP_CTX_TYPED_GETTER(get_totals, confirmed_record_t, confirmed_totals_decode)

/* Reads the totals under @p key into @p r (initialized); zeros when there
 * are none yet. */
static kp_err_t totals_load(kp_ctx_t *ctx, const char *key,
                            confirmed_record_t *r) {
        kp_err_t err =
            get_totals(ctx, CONFIRMED_ST_TOTALS, key, strlen(key), r);
        return err == KP_ERR_NOT_FOUND ? KP_OK : err;
}

/* Writes the view @p t of @p currency back into @p r and stores it. */
static kp_err_t totals_save(kp_ctx_t *ctx, const char *key,
                            confirmed_record_t *r, const char *currency,
                            const confirmed_totals_t *t) {
        size_t len;
        kp_err_t err = confirmed_totals_update(r, currency, t);
        if (err)
                return err;
        char *s = confirmed_totals_encode(r, &len);
        err = kp_ctx_put(ctx, CONFIRMED_ST_TOTALS, key, strlen(key), s, len);
        kp_free(s);
        return err;
}

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        confirmed_app_t *a = opaque;
        confirmed_record_t rall, rday;
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
        confirmed_record_init(&rall);
        confirmed_record_init(&rday);
        if (!(err = totals_load(ctx, CONFIRMED_ALL_KEY, &rall)) &&
            !(err = totals_load(ctx, daykey, &rday))) {
                confirmed_totals_view(&rall, cur, &all);
                confirmed_totals_view(&rday, cur, &day);
                err = confirmed_on_complete(&p, &all, &day, &d);
        }
        kp_payment_clear(&p);
        if (err) {
                confirmed_record_clear(&rall);
                confirmed_record_clear(&rday);
                return err;
        }

        if (!(err = totals_save(ctx, CONFIRMED_ALL_KEY, &rall, cur, &d.all)) &&
            !(err = totals_save(ctx, daykey, &rday, cur, &d.day)) &&
            !(err = kp_ctx_emit(ctx, d.topic, d.partition, d.key, strlen(d.key),
                                d.value, d.value_len, NULL)))
                kp_counter_add(
                    d.action == CONFIRMED_CONFIRM ? a->confirmed : a->rejected,
                    1);
        confirmed_decision_clear(&d);
        confirmed_record_clear(&rall);
        confirmed_record_clear(&rday);
        return err;
}

/* Registers the business counters. */
static kp_err_t init(kp_proc_t *proc, void *opaque) {
        confirmed_app_t *a = opaque;
        kp_metrics_t *m    = kp_proc_metrics(proc);
        a->confirmed       = kp_metrics_counter(m, "kpay_confirmed_total",
                                                "Payments confirmed.", NULL);
        a->rejected = kp_metrics_counter(m, "kpay_confirmed_rejected_total",
                                         "Rejected payments counted.", NULL);
        return KP_OK;
}

int main(int argc, char **argv) {
        static confirmed_app_t a;
        static const kp_proc_def_t def = {
            .name = "kpay-confirmed",
            .summary =
                "Confirmed processor: confirmed and rejected totals, "
                "today and all time.",
            .layout  = &confirmed_layout,
            .process = process,
            .init    = init,
            .opaque  = &a,
        };
        return kp_proc_main(&def, argc, argv);
}
