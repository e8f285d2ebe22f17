/* kpay-account: the balances processor (docs/pipeline.md, "kpay-account").
 *
 * Reads kpay.payments.inflight (keyed by account), keeps store "balances"
 * (account -> {"balances":{currency:"minor units"},"frozen","updated_ms",
 * "last_payment"}: one balance per currency) and, for
 * each payment, emits the next step of the saga: CREDIT or REFUND back to
 * kpay.payments.inflight, COMPLETE or REJECTED to kpay.payments.complete on
 * the payment's origin partition. An account command on a partition that
 * does not own its account moves there; a payment there is dead-lettered
 * (wrong_partition). The decisions are account.c's pure
 * functions; this file only moves bytes between them and the runtime. */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "account.h"
#include "kpay/kp_app.h"
#include "kpay/kp_audit.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_metrics.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_topics.h"

typedef struct account_conf_s {
        int64_t overdraft_limit;
} account_conf_t;

static const kp_conf_opt_t account_opts[] = {
    {"overdraft-limit", 0, KP_CONF_INT,
     offsetof(account_conf_t, overdraft_limit), "0", 0, INT64_MAX, "CENTS",
     "How far below zero a regular account may go, in minor units (system "
     "accounts, @..., have no limit)."},
    {NULL},
};

/* Everything process() needs, handed over as its opaque. */
typedef struct account_proc_s {
        int64_t overdraft_limit;
        kp_counter_t *debits;
        kp_counter_t *credits;
        kp_counter_t *commands;
        const char *instance;                   /* for the audit records */
        kp_counter_t *refunds[KP_REASON__CNT];  /* by reason; [NONE] unused */
        kp_counter_t *rejected[KP_REASON__CNT]; /* likewise */
} account_proc_t;

static void register_metrics(account_proc_t *ap, kp_metrics_t *m) {
        char labels[128];
        ap->debits   = kp_metrics_counter(m, "kpay_account_debits_total",
                                          "Payers debited.", NULL);
        ap->credits  = kp_metrics_counter(m, "kpay_account_credits_total",
                                          "Payees credited.", NULL);
        ap->commands = kp_metrics_counter(
            m, "kpay_account_commands_total",
            "Account commands (freeze, unfreeze) applied.", NULL);
        for (int r = KP_REASON_NONE + 1; r < KP_REASON__CNT; r++) {
                snprintf(labels, sizeof(labels), "reason=\"%s\"",
                         kp_reason2str((kp_reason_t)r));
                ap->refunds[r] = kp_metrics_counter(
                    m, "kpay_account_refunds_total",
                    "Payers credited back after a refused credit, by "
                    "reason.",
                    labels);
                ap->rejected[r] = kp_metrics_counter(
                    m, "kpay_account_rejected_total",
                    "Payments this processor ended REJECTED (refused debit "
                    "or completed refund), by reason.",
                    labels);
        }
}

/* The counter of @p reason among @p by_reason (indexed by kp_reason_t); a
 * reason kpay does not know, or none, counts as "other". */
static kp_counter_t *reason_counter(kp_counter_t *const *by_reason,
                                    const char *reason) {
        kp_reason_t r = kp_reason_from_str(reason);
        return by_reason[r == KP_REASON_NONE ? KP_REASON_OTHER : r];
}

static int key_is(const kp_record_t *rec, const char *account) {
        size_t len = strlen(account);
        return rec->key && rec->key_len == len &&
               !memcmp(rec->key, account, len);
}

/* Reads @p account from the store into @p a (initialized; a new account
 * when absent). A value that does not decode is corruption: KP_ERR_STORE
 * stops the instance, and the restart restores the store from its
 * changelog. */
static kp_err_t load_account(kp_ctx_t *ctx, const char *account,
                             acct_record_t *a) {
        void *val;
        size_t vlen;
        char errstr[256];
        kp_err_t err = kp_ctx_get(ctx, ACCT_ST_BALANCES, account,
                                  strlen(account), &val, &vlen);
        if (err == KP_ERR_NOT_FOUND)
                return KP_OK;
        if (err) {
                KP_ERROR("reading account %s: %s", account, kp_err2str(err));
                return KP_ERR_STORE;
        }
        err = acct_decode(val, vlen, a, errstr, sizeof(errstr));
        kp_free(val);
        if (err) {
                KP_ERROR("stored value of account %s is corrupt: %s", account,
                         errstr);
                return KP_ERR_STORE;
        }
        return KP_OK;
}

static kp_err_t store_account(kp_ctx_t *ctx, const char *account,
                              const acct_record_t *a) {
        size_t vlen;
        char *val    = acct_encode(a, &vlen);
        kp_err_t err = kp_ctx_put(ctx, ACCT_ST_BALANCES, account,
                                  strlen(account), val, vlen);
        kp_free(val);
        return err;
}

/* The audit record of an applied command (kp_audit.h), emitted in the
 * transaction that stores the account: it commits with the change, once,
 * or not at all. The trace is the command record's kpay-trace, else the
 * command id. */
static kp_err_t audit_cmd(kp_ctx_t *ctx, const kp_record_t *rec,
                          const account_proc_t *ap, const kp_account_cmd_t *cmd,
                          int was_frozen, int frozen) {
        char target[KP_ACCOUNT_FIELD_MAX + 16], trace[KP_AUDIT_TRACE_MAX + 1];
        const void *tv = NULL;
        size_t tlen    = 0;
        const char *tp = cmd->id[0] ? cmd->id : NULL;
        if (rec->headers &&
            !rd_kafka_header_get_last(rec->headers, "kpay-trace", &tv, &tlen) &&
            tv) {
                snprintf(trace, sizeof(trace), "%.*s", (int)tlen,
                         (const char *)tv);
                tp = trace;
        }
        snprintf(target, sizeof(target), "account:%s", cmd->account);
        json_t *before = json_pack("{s:b}", "frozen", was_frozen);
        json_t *after  = json_pack("{s:b}", "frozen", frozen);
        json_t *extra =
            json_pack("{s:s, s:o}", "account", cmd->account, "command_id",
                      cmd->id[0] ? json_string(cmd->id) : json_null());
        kp_audit_rec_t ar = {
            .service  = "account",
            .instance = ap->instance,
            .actor    = cmd->actor[0] ? cmd->actor : "anonymous",
            .action   = cmd->command == KP_CMD_FREEZE ? "freeze" : "unfreeze",
            .target   = target,
            .before   = before,
            .after    = after,
            .trace    = tp,
            .ts       = kp_ctx_now_ms(ctx),
        };
        size_t len;
        char *val = kp_audit_serialize(&ar, extra, &len);
        json_decref(before);
        json_decref(after);
        json_decref(extra);
        kp_err_t err = kp_ctx_emit(ctx, KP_TOPIC_OPS_AUDIT, -1, "account", 7,
                                   val, len, NULL);
        kp_free(val);
        return err;
}

static kp_err_t process_cmd(kp_ctx_t *ctx, const kp_record_t *rec,
                            account_proc_t *ap) {
        kp_account_cmd_t cmd;
        char detail[256];
        acct_record_t a;
        acct_t view;
        kp_pay_err_t perr = kp_account_cmd_parse(rec->value, rec->value_len,
                                                 &cmd, detail, sizeof(detail));
        if (perr != KP_PAY_E_OK)
                return kp_ctx_dead_letter(ctx, kp_pay_err2code(perr), detail);
        if (!key_is(rec, cmd.account))
                return kp_ctx_dead_letter(ctx, "wrong_key",
                                          "an account command must be keyed "
                                          "by its account");
        /* An account lives on one partition; a command that a producer's
         * partitioner put elsewhere must not make a second copy of it
         * there: it moves to the owner, exactly once, in this
         * transaction. */
        size_t alen   = strlen(cmd.account);
        int32_t owner = kp_ctx_key_partition(ctx, cmd.account, alen);
        if (owner != kp_ctx_partition(ctx)) {
                KP_DEBUG("%s of account %s: partition %d -> %d",
                         cmd.command == KP_CMD_FREEZE ? "FREEZE" : "UNFREEZE",
                         cmd.account, (int)kp_ctx_partition(ctx), (int)owner);
                return kp_ctx_reroute(ctx, KP_TOPIC_INFLIGHT, owner,
                                      cmd.account, alen);
        }
        acct_record_init(&a);
        int was_frozen = 0;
        kp_err_t err   = load_account(ctx, cmd.account, &a);
        if (!err) {
                /* A command touches no balance: the view of no currency. */
                acct_view(&a, NULL, &view);
                was_frozen = view.frozen;
                acct_apply_cmd(&view, &cmd, kp_ctx_now_ms(ctx), &view);
                err = acct_record_update(&a, NULL, &view);
        }
        if (!err)
                err = store_account(ctx, cmd.account, &a);
        if (!err)
                err = audit_cmd(ctx, rec, ap, &cmd, was_frozen, a.frozen);
        acct_record_clear(&a);
        if (!err)
                kp_counter_add(ap->commands, 1);
        return err;
}

/* Serializes @p out and emits it where acct_route() says. */
static kp_err_t emit_payment(kp_ctx_t *ctx, const kp_payment_t *out) {
        acct_route_t r = acct_route(out);
        size_t vlen;
        char *val    = kp_payment_serialize(out, &vlen);
        kp_err_t err = kp_ctx_emit(ctx, r.topic, r.partition, r.key,
                                   strlen(r.key), val, vlen, NULL);
        kp_free(val);
        return err;
}

static void count_outcome(account_proc_t *ap, const acct_result_t *res) {
        switch (res->outcome) {
        case ACCT_DEBITED:
                kp_counter_add(ap->debits, 1);
                break;
        case ACCT_CREDITED:
                kp_counter_add(ap->credits, 1);
                break;
        case ACCT_CREDIT_REFUSED:
                /* Counted once the refund is applied. */
                break;
        case ACCT_REFUNDED:
                kp_counter_add(reason_counter(ap->refunds, res->reason), 1);
                kp_counter_add(reason_counter(ap->rejected, res->reason), 1);
                break;
        case ACCT_DEBIT_REFUSED:
                kp_counter_add(reason_counter(ap->rejected, res->reason), 1);
                break;
        }
}

/* The DLQ error code of an acct_apply_payment() failure. */
static const char *apply_err2code(kp_err_t err) {
        switch (err) {
        case KP_ERR_STATE:
                return "invalid_state";
        case KP_ERR_OVERFLOW:
                return kp_reason2str(KP_REASON_BALANCE_OVERFLOW);
        default:
                return "invalid_payment";
        }
}

static kp_err_t process_payment(kp_ctx_t *ctx, const kp_record_t *rec,
                                account_proc_t *ap) {
        kp_payment_t p, out;
        acct_record_t a;
        acct_t view;
        acct_result_t res;
        char detail[256];
        kp_err_t err;
        int64_t now;
        acct_record_init(&a);
        kp_pay_err_t perr = kp_payment_parse(rec->value, rec->value_len, &p,
                                             detail, sizeof(detail));
        if (perr != KP_PAY_E_OK)
                return kp_ctx_dead_letter(ctx, kp_pay_err2code(perr), detail);

        const char *account = acct_payment_account(&p);
        if (!account) {
                snprintf(detail, sizeof(detail),
                         "state %s does not belong on the inflight topic",
                         kp_pay_state2str(p.state));
                err = kp_ctx_dead_letter(ctx, "invalid_state", detail);
                goto out;
        }
        if (!key_is(rec, account)) {
                snprintf(detail, sizeof(detail),
                         "a %s must be keyed by its account %s",
                         kp_pay_state2str(p.state), account);
                err = kp_ctx_dead_letter(ctx, "wrong_key", detail);
                goto out;
        }
        /* Money moves only on the account's own partition: a payment
         * elsewhere would create a second copy of the account (a split
         * balance). kpay partitions them by murmur2 itself; one that
         * arrives elsewhere was produced by someone else, and may already
         * have moved money, so it is refused for an operator to look at
         * rather than moved on. */
        int32_t owner = kp_ctx_key_partition(ctx, account, strlen(account));
        if (owner != kp_ctx_partition(ctx)) {
                snprintf(detail, sizeof(detail),
                         "a %s of account %s belongs on partition %" PRId32
                         ", not %" PRId32,
                         kp_pay_state2str(p.state), account, owner,
                         kp_ctx_partition(ctx));
                err = kp_ctx_dead_letter(ctx, "wrong_partition", detail);
                goto out;
        }
        if (p.origin_partition < 0 ||
            p.origin_partition >= kp_ctx_partition_count(ctx)) {
                snprintf(detail, sizeof(detail),
                         "origin_partition %" PRId32 " is not in [0, %" PRId32
                         ")",
                         p.origin_partition, kp_ctx_partition_count(ctx));
                err = kp_ctx_dead_letter(ctx, "no_origin_partition", detail);
                goto out;
        }
        if ((err = load_account(ctx, account, &a)))
                goto out;
        now = kp_ctx_now_ms(ctx);
        /* The balance of the payment's currency: currencies never mix. */
        acct_view(&a, p.currency, &view);
        err = acct_apply_payment(&view, &p, ap->overdraft_limit, now, &res,
                                 detail, sizeof(detail));
        if (err) {
                err = kp_ctx_dead_letter(ctx, apply_err2code(err), detail);
                goto out;
        }
        /* A changed balance is one of a validated payment: its currency is
         * a currency code. */
        if (acct_result_changed(&res) &&
            ((err = acct_record_update(&a, p.currency, &res.account)) ||
             (err = store_account(ctx, account, &a))))
                goto out;
        acct_outcome_payment(&p, &res, now, &out);
        err = emit_payment(ctx, &out);
        kp_payment_clear(&out);
        if (!err)
                count_outcome(ap, &res);
out:
        acct_record_clear(&a);
        kp_payment_clear(&p);
        return err;
}

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        account_proc_t *ap = opaque;
        if (!rec->value || rec->value_len == 0)
                return kp_ctx_dead_letter(
                    ctx, kp_pay_err2code(KP_PAY_E_NOT_JSON), "empty record");
        if (kp_is_account_cmd(rec->value, rec->value_len))
                return process_cmd(ctx, rec, ap);
        return process_payment(ctx, rec, ap);
}

static account_conf_t aconf;

/* Options are loaded: take them over, and register the counters. */
static kp_err_t init(kp_proc_t *proc, void *opaque) {
        account_proc_t *ap  = opaque;
        ap->overdraft_limit = aconf.overdraft_limit;
        ap->instance        = kp_service_instance(kp_proc_service(proc));
        register_metrics(ap, kp_proc_metrics(proc));
        return KP_OK;
}

int main(int argc, char **argv) {
        static account_proc_t ap;
        static const kp_conf_section_t sections[] = {{account_opts, &aconf},
                                                     {NULL, NULL}};
        static const kp_proc_def_t def            = {
                       .name     = "kpay-account",
                       .summary  = "Account processor: balances, debit, credit, refund.",
                       .layout   = &account_layout,
                       .sections = sections,
                       .process  = process,
                       .init     = init,
                       .opaque   = &ap,
        };
        return kp_proc_main(&def, argc, argv);
}
