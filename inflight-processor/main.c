/* kpay-inflight: the gateway processor (docs/pipeline.md). It reads
 * kpay.payments.incoming and kpay.payments.complete, moves a payment that
 * arrived away from its id's partition there, dedups payment ids,
 * rejects invalid payments, records accepted ones in flight and emits their
 * DEBIT, and removes them from flight when their outcome arrives. The
 * decisions are the pure functions of inflight.c; this file reads the
 * stores, applies the decisions and counts. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "gate.h"
#include "inflight.h"
#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_expiry.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_topics.h"

typedef struct inflight_conf_s {
        int64_t dedup_retention_ms;
} inflight_conf_t;

/* What the callbacks share: the configuration and the business counters. */
typedef struct inflight_app_s {
        int64_t retention_ms;
        kp_counter_t *accepted;
        kp_counter_t *rejected[KP_REASON__CNT]; /* by reason; [NONE] unused */
        kp_counter_t *duplicates;
        kp_counter_t *completed;
        kp_counter_t *completions_unknown;
        kp_counter_t *dedup_expired;
        gate_t *gate; /* the control plane's pause gate and rate limit */
} inflight_app_t;

static inflight_conf_t iconf;

static const kp_conf_opt_t inflight_opts[] = {
    {"dedup-retention-ms", 0, KP_CONF_INT,
     offsetof(inflight_conf_t, dedup_retention_ms), "604800000",
     INFLIGHT_DEDUP_RETENTION_MIN_MS, INT64_C(3153600000000), "MS",
     "How long a payment id is remembered: a resubmission within this "
     "window is counted and dropped, a later one is treated as new."},
    {NULL},
};

/* The rejection counter of @p reason; an outcome that carries no reason
 * counts as "other". */
static kp_counter_t *rejected_counter(inflight_app_t *a, kp_reason_t reason) {
        return a->rejected[reason == KP_REASON_NONE ? KP_REASON_OTHER : reason];
}

/* Typed readers of the stores' values. */
KP_CTX_TYPED_GETTER(get_first_seen, int64_t, inflight_dedup_value_decode)

/* The totals, kept decoded for the transaction (kp_ctx_cached()): every
 * record reads and writes them, so they are decoded and encoded once per
 * commit instead of once per record. */
KP_CTX_VALUE_TYPE(totals_type, inflight_record_t, inflight_record_init,
                  inflight_record_clear, inflight_totals_decode,
                  inflight_totals_encode);

/* The partition's totals (zeros when there are none yet). */
static kp_err_t totals_load(kp_ctx_t *ctx, inflight_record_t **recp) {
        void *obj;
        kp_err_t err =
            kp_ctx_cached(ctx, INFLIGHT_ST_TOTALS, INFLIGHT_TOTALS_KEY,
                          strlen(INFLIGHT_TOTALS_KEY), &totals_type, &obj);
        *recp = err ? NULL : obj;
        return err;
}

/* Writes the view @p t of @p currency (NULL: counts only) back into @p rec,
 * stored at the commit. */
static kp_err_t totals_save(kp_ctx_t *ctx, inflight_record_t *rec,
                            const char *currency, const inflight_totals_t *t) {
        kp_err_t err = inflight_totals_update(rec, currency, t);
        if (!err)
                kp_ctx_cached_put(ctx, rec);
        return err;
}

/* Reads the first-seen time of @p id: -1 when the id is not known. */
static kp_err_t dedup_load(kp_ctx_t *ctx, const char *id, int64_t *msp) {
        char key[INFLIGHT_DEDUP_KEY_SIZE];
        size_t klen = inflight_dedup_key(key, sizeof(key), id);
        if (!klen)
                return KP_ERR_INVALID_ARG;
        *msp         = -1;
        kp_err_t err = get_first_seen(ctx, INFLIGHT_ST_DEDUP, key, klen, msp);
        return err == KP_ERR_NOT_FOUND ? KP_OK : err;
}

/* Records @p id as first seen at @p now_ms (and drops the expiry key of an
 * expired entry it replaces). Only "i:" reaches the changelog: the "t:"
 * index is local, derived again on restore (restored()). */
static kp_err_t dedup_record(kp_ctx_t *ctx, const char *id, int64_t now_ms,
                             int64_t expired_ms) {
        char ikey[INFLIGHT_DEDUP_KEY_SIZE], tkey[INFLIGHT_EXPIRY_KEY_SIZE];
        char val[24];
        kp_err_t err;
        size_t ilen = inflight_dedup_key(ikey, sizeof(ikey), id);
        size_t tlen = inflight_expiry_key(tkey, sizeof(tkey), now_ms, id);
        int vlen    = snprintf(val, sizeof(val), "%" PRId64, now_ms);
        if (!ilen || !tlen)
                return KP_ERR_INVALID_ARG;
        if (expired_ms >= 0) {
                char okey[INFLIGHT_EXPIRY_KEY_SIZE];
                size_t olen =
                    inflight_expiry_key(okey, sizeof(okey), expired_ms, id);
                if (olen && (err = kp_ctx_write_local(ctx, INFLIGHT_ST_DEDUP,
                                                      okey, olen, NULL, 0)))
                        return err;
        }
        if ((err = kp_ctx_put(ctx, INFLIGHT_ST_DEDUP, ikey, ilen, val,
                              (size_t)vlen)))
                return err;
        return kp_ctx_write_local(ctx, INFLIGHT_ST_DEDUP, tkey, tlen, "1", 1);
}

static kp_err_t on_incoming(kp_ctx_t *ctx, inflight_app_t *a,
                            const kp_payment_t *p) {
        int64_t now = kp_ctx_now_ms(ctx), first_seen;
        inflight_record_t *rec;
        inflight_totals_t totals;
        inflight_decision_t d;
        kp_err_t err;
        /* The amounts are per currency: the view of the payment's (an
         * invalid one is rejected and moves no amount). */
        const char *cur = kp_currency_valid(p->currency) ? p->currency : NULL;

        if ((err = dedup_load(ctx, p->id, &first_seen)) ||
            (err = totals_load(ctx, &rec)))
                return err;
        inflight_totals_view(rec, cur, &totals);
        if ((err = inflight_on_incoming(p, first_seen, a->retention_ms, &totals,
                                        kp_ctx_partition(ctx), now, &d)))
                return err;

        if (d.record_dedup)
                err = dedup_record(ctx, p->id, now, d.expired_first_seen_ms);
        if (!err && d.action == INFLIGHT_ACCEPT)
                err = kp_ctx_put(ctx, INFLIGHT_ST_INFLIGHT, p->id,
                                 strlen(p->id), d.stored, d.stored_len);
        if (!err && d.action != INFLIGHT_DUPLICATE)
                err = kp_ctx_emit(ctx, d.emit.topic, d.emit.partition,
                                  d.emit.key, strlen(d.emit.key), d.emit.value,
                                  d.emit.value_len, NULL);
        if (!err)
                err = totals_save(ctx, rec,
                                  d.action == INFLIGHT_ACCEPT ? cur : NULL,
                                  &d.totals);
        if (!err) {
                switch (d.action) {
                case INFLIGHT_DUPLICATE:
                        kp_counter_add(a->duplicates, 1);
                        KP_DEBUG("duplicate payment %s dropped", p->id);
                        break;
                case INFLIGHT_REJECT:
                        kp_counter_add(rejected_counter(a, d.reason), 1);
                        KP_DEBUG("payment %s rejected: %s", p->id,
                                 kp_reason2str(d.reason));
                        break;
                case INFLIGHT_ACCEPT:
                        kp_counter_add(a->accepted, 1);
                        break;
                }
        }
        inflight_decision_clear(&d);
        return err;
}

static kp_err_t on_complete(kp_ctx_t *ctx, inflight_app_t *a,
                            const kp_payment_t *c) {
        kp_payment_t flight;
        inflight_record_t *rec;
        inflight_totals_t totals;
        inflight_completion_t what;
        void *val;
        size_t vlen;
        char detail[256];
        int in_flight = 0;
        kp_err_t err;

        if (!inflight_is_outcome(c->state)) {
                snprintf(detail, sizeof(detail),
                         "state %s on the complete topic (payment %s)",
                         kp_pay_state2str(c->state), c->id);
                return kp_ctx_dead_letter(ctx, "wrong_state", detail);
        }
        err = kp_ctx_get(ctx, INFLIGHT_ST_INFLIGHT, c->id, strlen(c->id), &val,
                         &vlen);
        if (err == KP_OK) {
                kp_pay_err_t perr = kp_payment_parse(val, vlen, &flight, detail,
                                                     sizeof(detail));
                kp_free(val);
                if (perr) {
                        KP_ERROR("store inflight [%d]: payment %s: %s",
                                 (int)kp_ctx_partition(ctx), c->id, detail);
                        return KP_ERR_STORE;
                }
                in_flight = 1;
        } else if (err != KP_ERR_NOT_FOUND) {
                return err;
        }

        /* The stored payment's currency is the one whose amount it
         * entered; validated when it was accepted. */
        const char *cur = in_flight ? flight.currency : NULL;
        err             = totals_load(ctx, &rec);
        if (!err) {
                inflight_totals_view(rec, cur, &totals);
                err = inflight_on_complete(c, in_flight ? &flight : NULL,
                                           &totals, &what);
        }
        if (!err && in_flight)
                err = kp_ctx_delete(ctx, INFLIGHT_ST_INFLIGHT, c->id,
                                    strlen(c->id));
        if (!err)
                err = totals_save(ctx, rec, cur, &totals);
        if (!err) {
                if (what == INFLIGHT_COMPLETED)
                        kp_counter_add(a->completed, 1);
                else if (what == INFLIGHT_REJECTED)
                        kp_counter_add(
                            rejected_counter(a, kp_reason_from_str(c->reason)),
                            1);
                else
                        kp_counter_add(a->completions_unknown, 1);
        }
        if (in_flight)
                kp_payment_clear(&flight);
        return err;
}

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        inflight_app_t *a = opaque;
        kp_payment_t p;
        char detail[256];
        kp_err_t err;

        kp_pay_err_t perr =
            kp_payment_parse(rec->value ? rec->value : "", rec->value_len, &p,
                             detail, sizeof(detail));
        if (perr)
                return kp_ctx_dead_letter(ctx, kp_pay_err2code(perr), detail);
        if (rec->input == INFLIGHT_IN_INCOMING) {
                /* Dedup and flight live on the id's partition: a payment
                 * that a producer's partitioner (or another key) put
                 * elsewhere moves there first, exactly once, in this
                 * transaction (docs/pipeline.md). An empty id has no home
                 * and is rejected here. */
                size_t idlen = strlen(p.id);
                int32_t home = kp_ctx_key_partition(ctx, p.id, idlen);
                if (home >= 0 && home != kp_ctx_partition(ctx)) {
                        KP_DEBUG("payment %s: partition %d -> %d", p.id,
                                 (int)kp_ctx_partition(ctx), (int)home);
                        err = kp_ctx_reroute(ctx, KP_TOPIC_INCOMING, home, p.id,
                                             idlen);
                } else {
                        err = on_incoming(ctx, a, &p);
                }
        } else {
                err = on_complete(ctx, a, &p);
        }
        kp_payment_clear(&p);
        return err;
}

/* Deletes "i:<id>" unless it was re-recorded after the expired time (a
 * resubmission after the window): then a newer "t:" key covers it. The
 * deletes are local: the changelog drops expired entries by retention. */
static kp_err_t expire_id(kp_ctx_t *ctx, const char *id, size_t idlen,
                          int64_t ms, void *opaque) {
        char key[INFLIGHT_DEDUP_KEY_SIZE];
        void *val;
        size_t vlen;
        int64_t seen, cutoff = *(const int64_t *)opaque;
        (void)ms;
        if (idlen + 2 >= sizeof(key))
                return KP_OK; /* no such i: key can exist */
        memcpy(key, INFLIGHT_DEDUP_PREFIX, 2);
        memcpy(key + 2, id, idlen);
        kp_err_t err =
            kp_ctx_get(ctx, INFLIGHT_ST_DEDUP, key, idlen + 2, &val, &vlen);
        if (err == KP_ERR_NOT_FOUND)
                return KP_OK;
        if (err)
                return err;
        err = inflight_dedup_value_decode(val, vlen, &seen);
        kp_free(val);
        if (!err && seen >= cutoff)
                return KP_OK;
        if (err)
                KP_WARN("store dedup [%d]: deleting an undecodable entry",
                        (int)kp_ctx_partition(ctx));
        return kp_ctx_write_local(ctx, INFLIGHT_ST_DEDUP, key, idlen + 2, NULL,
                                  0);
}

/* Expires dedup entries older than the window, oldest first, through the
 * expiry index (kp_expiry.h), locally: the index is local state and the
 * changelog drops expired ids by retention. */
static void punctuate(kp_ctx_t *ctx, int64_t now_ms, void *opaque) {
        inflight_app_t *a = opaque;
        int64_t cutoff    = inflight_dedup_cutoff(now_ms, a->retention_ms);
        int64_t deleted   = 0;
        kp_err_t err      = kp_expiry_run(
                 ctx, INFLIGHT_ST_DEDUP, INFLIGHT_EXPIRY_PREFIX, cutoff,
                 INFLIGHT_EXPIRY_MAX_PER_RUN, 1, expire_id, &cutoff, &deleted);
        if (deleted > 0) {
                kp_counter_add(a->dedup_expired, deleted);
                KP_DEBUG("partition %d: %" PRId64 " dedup entries expired",
                         (int)kp_ctx_partition(ctx), deleted);
        }
        if (err)
                KP_ERROR("partition %d: dedup expiry: %s",
                         (int)kp_ctx_partition(ctx), kp_err2str(err));
}

/* A restored dedup entry brings its local expiry key back. */
static void restored(kp_restore_ctx_t *rc, int store, const void *key,
                     size_t klen, const void *val, size_t vlen, void *opaque) {
        char tkey[INFLIGHT_EXPIRY_KEY_SIZE];
        (void)opaque;
        if (store != INFLIGHT_ST_DEDUP)
                return;
        size_t tlen = inflight_expiry_key_of_entry(tkey, sizeof(tkey), key,
                                                   klen, val, vlen);
        if (tlen)
                kp_restore_write_local(rc, tkey, tlen, "1", 1);
}

/* A window longer than the default needs a longer dedup changelog
 * retention than inflight_layout's: the runtime creates the changelog
 * with it, or refuses one that keeps less. */
static kp_err_t configure(kp_proc_def_t *def, void *opaque) {
        static char retention[24];
        static const char *store_retention[] = {
            [INFLIGHT_ST_INFLIGHT] = NULL,
            [INFLIGHT_ST_DEDUP]    = retention,
            [INFLIGHT_ST_TOTALS]   = NULL,
        };
        static kp_proc_layout_t layout;
        (void)opaque;
        int64_t need =
            inflight_dedup_changelog_retention_ms(iconf.dedup_retention_ms);
        int64_t have;
        if (!kp_parse_int64(INFLIGHT_DEDUP_CHANGELOG_RETENTION_DEFAULT,
                            &have) &&
            need <= have)
                return KP_OK;
        snprintf(retention, sizeof(retention), "%" PRId64, need);
        layout                    = *def->layout;
        layout.store_retention_ms = store_retention;
        def->layout               = &layout;
        return KP_OK;
}

static void register_metrics(kp_metrics_t *m, inflight_app_t *a) {
        char labels[64];
        a->accepted =
            kp_metrics_counter(m, "kpay_inflight_accepted_total",
                               "Payments accepted into flight.", NULL);
        for (int r = KP_REASON_NONE + 1; r < KP_REASON__CNT; r++) {
                snprintf(labels, sizeof(labels), "reason=\"%s\"",
                         kp_reason2str((kp_reason_t)r));
                a->rejected[r] = kp_metrics_counter(
                    m, "kpay_inflight_rejected_total",
                    "Payments rejected: by this processor, or while in "
                    "flight.",
                    labels);
        }
        a->duplicates = kp_metrics_counter(
            m, "kpay_inflight_duplicates_total",
            "Submissions dropped as duplicates of an id seen before.", NULL);
        a->completed =
            kp_metrics_counter(m, "kpay_inflight_completed_total",
                               "Payments in flight that completed.", NULL);
        a->completions_unknown = kp_metrics_counter(
            m, "kpay_inflight_completions_unknown_total",
            "Outcomes of ids not in flight (own rejections, duplicates).",
            NULL);
        a->dedup_expired = kp_metrics_counter(
            m, "kpay_inflight_dedup_expired_total",
            "Dedup entries deleted after the retention window.", NULL);
}

/* Options are loaded: take them over, register the counters, and apply
 * the control plane's current status before the first assignment. */
static kp_err_t init(kp_proc_t *proc, void *opaque) {
        inflight_app_t *a = opaque;
        char errstr[512];
        a->retention_ms = iconf.dedup_retention_ms;
        register_metrics(kp_proc_metrics(proc), a);
        if (!(a->gate = gate_new(proc, errstr, sizeof(errstr)))) {
                KP_ERROR("control plane: %s", errstr);
                return KP_ERR_KAFKA;
        }
        return KP_OK;
}

static void tick(kp_proc_t *proc, int64_t now_ms, void *opaque) {
        inflight_app_t *a = opaque;
        gate_tick(a->gate, proc, now_ms);
}

static void fini(kp_proc_t *proc, void *opaque) {
        inflight_app_t *a = opaque;
        (void)proc;
        gate_destroy(a->gate);
        a->gate = NULL;
}

int main(int argc, char **argv) {
        static inflight_app_t a;
        static const kp_conf_section_t sections[] = {{inflight_opts, &iconf},
                                                     {NULL, NULL}};
        static const kp_proc_def_t def            = {
                       .name      = "kpay-inflight",
                       .summary   = "Gateway processor: intake, dedup, in-flight totals.",
                       .layout    = &inflight_layout,
                       .sections  = sections,
                       .process   = process,
                       .punctuate = punctuate,
                       .punctuate_interval_ms = INFLIGHT_PUNCTUATE_MS,
                       .configure             = configure,
                       .restored              = restored,
                       .init                  = init,
                       .tick                  = tick,
                       .fini                  = fini,
                       .opaque                = &a,
        };
        return kp_proc_main(&def, argc, argv);
}
