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

static kp_proc_conf_t pconf;

/* Reads the totals under @p key; zeros when there are none yet. */
static kp_err_t totals_load(kp_ctx_t *ctx, const char *key,
                            confirmed_totals_t *t) {
        memset(t, 0, sizeof(*t));
        kp_err_t err =
            kp_ctx_get_decoded(ctx, CONFIRMED_ST_TOTALS, key, strlen(key),
                               confirmed_totals_decode, t);
        return err == KP_ERR_NOT_FOUND ? KP_OK : err;
}

static kp_err_t totals_save(kp_ctx_t *ctx, const char *key,
                            const confirmed_totals_t *t) {
        size_t len;
        char *s = confirmed_totals_encode(t, &len);
        kp_err_t err =
            kp_ctx_put(ctx, CONFIRMED_ST_TOTALS, key, strlen(key), s, len);
        kp_free(s);
        return err;
}

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        confirmed_app_t *a = opaque;
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
        if ((err = totals_load(ctx, CONFIRMED_ALL_KEY, &all)) ||
            (err = totals_load(ctx, daykey, &day)) ||
            (err = confirmed_on_complete(&p, &all, &day, &d))) {
                kp_payment_clear(&p);
                return err; /* an overflow: dead-lettered by the runtime */
        }
        kp_payment_clear(&p);

        if (!(err = totals_save(ctx, CONFIRMED_ALL_KEY, &d.all)) &&
            !(err = totals_save(ctx, daykey, &d.day)) &&
            !(err = kp_ctx_emit(ctx, kp_topic_spec(d.topic)->name, d.partition,
                                d.key, strlen(d.key), d.value, d.value_len,
                                NULL)))
                kp_counter_add(
                    d.action == CONFIRMED_CONFIRM ? a->confirmed : a->rejected,
                    1);
        confirmed_decision_clear(&d);
        return err;
}

int main(int argc, char **argv) {
        int rc;
        char errstr[512];
        static const char *inputs[KP_TOPIC__CNT + 1];
        const char *const *stores = confirmed_layout.stores;
        static confirmed_app_t a;
        const kp_app_def_t def = {
            .name = "kpay-confirmed",
            .summary =
                "Confirmed processor: confirmed and rejected totals, "
                "today and all time.",
            .groups     = KP_APP_CLIENT | KP_APP_SERVICE | KP_APP_PROCESSOR,
            .opts2      = kp_proc_conf_table(),
            .opts2_base = &pconf,
        };
        kp_app_t *app = kp_app_new(&def, argc, argv, &rc);
        if (!app)
                return rc;
        kp_topic_names(confirmed_layout.inputs, inputs, KP_TOPIC__CNT + 1);
        kp_proc_def_t pdef = {
            .service = confirmed_layout.service,
            .inputs  = inputs,
            .stores  = stores,
            .process = process,
            .opaque  = &a,
        };
        kp_proc_t *proc =
            kp_proc_new(app, &pconf, &pdef, errstr, sizeof(errstr));
        if (!proc) {
                fprintf(stderr, "kpay-confirmed: %s\n", errstr);
                kp_app_destroy(app);
                return 2;
        }
        kp_metrics_t *m = kp_proc_metrics(proc);
        a.confirmed     = kp_metrics_counter(m, "kpay_confirmed_total",
                                             "Payments confirmed.", NULL);
        a.rejected      = kp_metrics_counter(m, "kpay_confirmed_rejected_total",
                                             "Rejected payments counted.", NULL);
        rc              = kp_proc_run(proc);
        kp_proc_destroy(proc);
        kp_app_destroy(app);
        return rc;
}
