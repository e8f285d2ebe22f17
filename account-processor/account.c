/* kpay-account's business logic: pure functions over an account and one
 * event (see account.h). */
#include "account.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kpay/kp_buf.h"
#include "kpay/kp_jscan.h"
#include "kpay/kp_json.h"
#include "kpay/kp_mem.h"

static const kp_topic_id_t account_inputs[] = {KP_TOPIC_INFLIGHT,
                                               KP_TOPIC_NONE};

static const char *const account_stores[] = {
    [ACCT_ST_BALANCES] = "balances",
    NULL,
};

const kp_proc_layout_t account_layout = {
    .service = "account",
    .inputs  = account_inputs,
    .stores  = account_stores,
};

void acct_init(acct_t *a) {
        memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------------
 * Store value
 */

void acct_record_init(acct_record_t *r) {
        memset(r, 0, sizeof(*r));
        kp_money_init(&r->balances);
}

void acct_record_clear(acct_record_t *r) {
        if (!r)
                return;
        kp_money_clear(&r->balances);
        acct_record_init(r);
}

void acct_view(const acct_record_t *r, const char *currency, acct_t *a) {
        acct_init(a);
        a->balance    = currency ? kp_money_get(&r->balances, currency) : 0;
        a->frozen     = r->frozen;
        a->updated_ms = r->updated_ms;
        memcpy(a->last_payment, r->last_payment, sizeof(a->last_payment));
}

kp_err_t acct_record_update(acct_record_t *r, const char *currency,
                            const acct_t *a) {
        kp_err_t err;
        if (currency &&
            (err = kp_money_set(&r->balances, currency, a->balance)))
                return err;
        r->frozen     = a->frozen;
        r->updated_ms = a->updated_ms;
        memcpy(r->last_payment, a->last_payment, sizeof(r->last_payment));
        r->last_payment[sizeof(r->last_payment) - 1] = '\0';
        return KP_OK;
}

/* Written once per debit and credit: straight into one buffer, with no
 * JSON tree and no printf. The same bytes as jansson would write. */
char *acct_encode(const acct_record_t *r, size_t *lenp) {
        kp_buf_t b = {0};
        char amount[KP_I128_DEC_SIZE];
        kp_buf_add(&b, "{\"balances\":{", 13);
        for (size_t i = 0; i < r->balances.cnt; i++) {
                size_t n = kp_i128_format(r->balances.e[i].amount, amount);
                if (i)
                        kp_buf_add(&b, ",", 1);
                kp_buf_json_str(&b, r->balances.e[i].currency);
                kp_buf_add(&b, ":\"", 2);
                kp_buf_add(&b, amount, n);
                kp_buf_add(&b, "\"", 1);
        }
        kp_buf_puts(&b, r->frozen ? "},\"frozen\":true" : "},\"frozen\":false");
        kp_buf_puts(&b, ",\"updated_ms\":");
        kp_buf_int(&b, r->updated_ms);
        kp_buf_puts(&b, ",\"last_payment\":");
        if (r->last_payment[0]) {
                /* A payment id: printable ASCII (kp_payment_id_valid()). */
                char id[sizeof(r->last_payment)];
                memcpy(id, r->last_payment, sizeof(id) - 1);
                id[sizeof(id) - 1] = '\0';
                kp_buf_json_str(&b, id);
        } else {
                kp_buf_add(&b, "null", 4);
        }
        kp_buf_add(&b, "}", 1);
        return kp_buf_take(&b, lenp);
}

/* The fast path of acct_decode(): a valid record in the simple form
 * acct_encode() writes (members in any order, no other key). 0 with @p r
 * filled, or -1: jansson then reads the record and words any error. */
static int decode_fast(const void *buf, size_t len, acct_record_t *r) {
        kp_jscan_t js;
        kp_jscan_member_t m;
        kp_jscan_res_t res;
        int seen_bal = 0, seen_frozen = 0, seen_upd = 0, seen_lp = 0;
        if (kp_jscan_begin(&js, buf, len))
                return -1;
        while ((res = kp_jscan_next(&js, &m)) == KP_JSCAN_MEMBER) {
                if (kp_jscan_key_is(&m, "balances")) {
                        if (seen_bal++ || m.type != KP_JSCAN_OBJECT)
                                return -1;
                        while ((res = kp_jscan_next(&js, &m)) ==
                               KP_JSCAN_MEMBER) {
                                char cur[KP_CURRENCY_SIZE];
                                kp_i128_t amount;
                                if (m.type != KP_JSCAN_STRING ||
                                    m.klen >= sizeof(cur))
                                        return -1;
                                memcpy(cur, m.key, m.klen);
                                cur[m.klen] = '\0';
                                if (kp_money_has(&r->balances, cur) ||
                                    kp_i128_parse(m.s, m.len, &amount) ||
                                    kp_money_set(&r->balances, cur, amount))
                                        return -1;
                        }
                        if (res != KP_JSCAN_END)
                                return -1;
                } else if (kp_jscan_key_is(&m, "frozen")) {
                        if (seen_frozen++ || (m.type != KP_JSCAN_TRUE &&
                                              m.type != KP_JSCAN_FALSE))
                                return -1;
                        r->frozen = m.type == KP_JSCAN_TRUE;
                } else if (kp_jscan_key_is(&m, "updated_ms")) {
                        if (seen_upd++ || m.type != KP_JSCAN_INT || m.i < 0)
                                return -1;
                        r->updated_ms = m.i;
                } else if (kp_jscan_key_is(&m, "last_payment")) {
                        if (seen_lp++)
                                return -1;
                        if (m.type == KP_JSCAN_STRING && m.len > 0 &&
                            m.len <= KP_PAYMENT_ID_MAX) {
                                memcpy(r->last_payment, m.s, m.len);
                                r->last_payment[m.len] = '\0';
                        } else if (m.type != KP_JSCAN_NULL) {
                                return -1;
                        }
                } else {
                        return -1;
                }
        }
        return res == KP_JSCAN_END && seen_bal && seen_frozen && seen_upd &&
                       seen_lp
                   ? 0
                   : -1;
}

/* The integer field @p name of @p obj into *valp, or an error. */
static kp_err_t get_int(json_t *obj, const char *name, int64_t *valp,
                        char *errstr, size_t errstr_size) {
        json_t *v = json_object_get(obj, name);
        if (!v) {
                snprintf(errstr, errstr_size, "field %s is missing", name);
                return KP_ERR_PARSE;
        }
        if (!json_is_integer(v)) {
                snprintf(errstr, errstr_size, "field %s is not an integer",
                         name);
                return KP_ERR_PARSE;
        }
        *valp = (int64_t)json_integer_value(v);
        return KP_OK;
}

kp_err_t acct_decode(const void *buf, size_t len, acct_record_t *r,
                     char *errstr, size_t errstr_size) {
        json_error_t jerr;
        json_t *v;
        kp_err_t err = KP_ERR_PARSE;
        acct_record_clear(r);
        if (!buf) {
                snprintf(errstr, errstr_size, "no value");
                return KP_ERR_PARSE;
        }
        if (decode_fast(buf, len, r) == 0)
                return KP_OK;
        acct_record_clear(r);
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                snprintf(errstr, errstr_size, "not JSON: %s", jerr.text);
                return KP_ERR_PARSE;
        }
        if (!json_is_object(root)) {
                snprintf(errstr, errstr_size, "not a JSON object");
                goto out;
        }
        /* "balance", one integer, is what an older kpay-account wrote. */
        if (kp_money_from_json_field(root, "balances", "balance",
                                     &r->balances)) {
                snprintf(errstr, errstr_size,
                         "field balances is missing or not an object of "
                         "currency codes to decimal strings");
                goto out;
        }
        if ((err = get_int(root, "updated_ms", &r->updated_ms, errstr,
                           errstr_size)))
                goto out;
        err = KP_ERR_PARSE;
        if (r->updated_ms < 0) {
                snprintf(errstr, errstr_size, "field updated_ms is negative");
                goto out;
        }
        v = json_object_get(root, "frozen");
        if (!v) {
                snprintf(errstr, errstr_size, "field frozen is missing");
                goto out;
        }
        if (!json_is_boolean(v)) {
                snprintf(errstr, errstr_size, "field frozen is not a boolean");
                goto out;
        }
        r->frozen = json_is_true(v);
        v         = json_object_get(root, "last_payment");
        if (!v) {
                snprintf(errstr, errstr_size, "field last_payment is missing");
                goto out;
        }
        if (json_is_string(v)) {
                size_t slen   = json_string_length(v);
                const char *s = json_string_value(v);
                if (slen == 0 || slen > KP_PAYMENT_ID_MAX ||
                    memchr(s, '\0', slen)) {
                        snprintf(errstr, errstr_size,
                                 "field last_payment is not a payment id");
                        goto out;
                }
                memcpy(r->last_payment, s, slen);
                r->last_payment[slen] = '\0';
        } else if (!json_is_null(v)) {
                snprintf(errstr, errstr_size,
                         "field last_payment is not a string or null");
                goto out;
        }
        err = KP_OK;
out:
        json_decref(root);
        if (err)
                acct_record_clear(r);
        return err;
}

/* ------------------------------------------------------------------------
 * Payments and commands
 */

const char *acct_payment_account(const kp_payment_t *p) {
        switch (p->state) {
        case KP_PAY_DEBIT:
        case KP_PAY_REFUND:
                return p->from;
        case KP_PAY_CREDIT:
                return p->to;
        default:
                return NULL;
        }
}

static void set_reason(acct_result_t *res, kp_reason_t reason) {
        snprintf(res->reason, sizeof(res->reason), "%s", kp_reason2str(reason));
}

/* Records on @p res->account that payment @p p moved its balance to
 * @p balance. */
static void moved(acct_result_t *res, const kp_payment_t *p, kp_i128_t balance,
                  int64_t now_ms) {
        res->account.balance    = balance;
        res->account.updated_ms = now_ms;
        /* Validation bounded the id to KP_PAYMENT_ID_MAX bytes. */
        size_t n = strnlen(p->id, sizeof(res->account.last_payment) - 1);
        memcpy(res->account.last_payment, p->id, n);
        res->account.last_payment[n] = '\0';
}

static void apply_debit(const kp_payment_t *p, int64_t overdraft_limit,
                        int64_t now_ms, acct_result_t *res) {
        kp_reason_t invalid = kp_payment_validate(p);
        res->outcome        = ACCT_DEBIT_REFUSED;
        if (invalid != KP_REASON_NONE) {
                set_reason(res, invalid);
                return;
        }
        if (res->account.frozen) {
                set_reason(res, KP_REASON_ACCOUNT_FROZEN);
                return;
        }
        /* 128 bits: the difference of an int64 amount and a balance within
         * a few int64 ranges cannot overflow. */
        kp_i128_t balance = res->account.balance - p->amount;
        if (kp_account_is_system(p->from)) {
                if (balance < INT64_MIN) {
                        set_reason(res, KP_REASON_BALANCE_OVERFLOW);
                        return;
                }
        } else if (balance < -(kp_i128_t)overdraft_limit) {
                /* Below INT64_MIN is below -limit too. */
                set_reason(res, KP_REASON_INSUFFICIENT_FUNDS);
                return;
        }
        res->outcome = ACCT_DEBITED;
        moved(res, p, balance, now_ms);
}

static void apply_credit(const kp_payment_t *p, int64_t now_ms,
                         acct_result_t *res) {
        res->outcome = ACCT_CREDIT_REFUSED;
        if (res->account.frozen) {
                set_reason(res, KP_REASON_ACCOUNT_FROZEN);
                return;
        }
        kp_i128_t balance = res->account.balance + p->amount;
        if (balance > INT64_MAX) {
                set_reason(res, KP_REASON_BALANCE_OVERFLOW);
                return;
        }
        res->outcome = ACCT_CREDITED;
        moved(res, p, balance, now_ms);
}

/* A refund is never refused: the payer was debited this amount, and its
 * balance may have been credited meanwhile up to INT64_MAX, so the refund
 * may take it above INT64_MAX; the 128-bit balance holds it exactly. */
static kp_err_t apply_refund(const kp_payment_t *p, int64_t now_ms,
                             acct_result_t *res, char *errstr,
                             size_t errstr_size) {
        kp_i128_t balance;
        if (__builtin_add_overflow(res->account.balance, (kp_i128_t)p->amount,
                                   &balance)) {
                snprintf(errstr, errstr_size,
                         "refund of %" PRId64
                         " would pass the 128-bit balance of %s",
                         p->amount, p->from);
                return KP_ERR_OVERFLOW;
        }
        res->outcome = ACCT_REFUNDED;
        if (p->reason[0])
                snprintf(res->reason, sizeof(res->reason), "%s", p->reason);
        else
                set_reason(res, KP_REASON_REFUNDED);
        moved(res, p, balance, now_ms);
        return KP_OK;
}

kp_err_t acct_apply_payment(const acct_t *cur, const kp_payment_t *p,
                            int64_t overdraft_limit, int64_t now_ms,
                            acct_result_t *res, char *errstr,
                            size_t errstr_size) {
        memset(res, 0, sizeof(*res));
        res->account = *cur;
        if (overdraft_limit < 0) {
                snprintf(errstr, errstr_size, "negative overdraft limit");
                return KP_ERR_INVALID_ARG;
        }
        if (p->state == KP_PAY_DEBIT) {
                apply_debit(p, overdraft_limit, now_ms, res);
                return KP_OK;
        }
        if (p->state != KP_PAY_CREDIT && p->state != KP_PAY_REFUND) {
                snprintf(errstr, errstr_size,
                         "state %s does not belong on the inflight topic",
                         kp_pay_state2str(p->state));
                return KP_ERR_STATE;
        }
        /* Money moved already for a CREDIT or REFUND; one that breaks the
         * rules was not made by kpay and cannot be rejected safely. */
        kp_reason_t invalid = kp_payment_validate(p);
        if (invalid != KP_REASON_NONE) {
                snprintf(errstr, errstr_size, "%s %s is invalid: %s",
                         kp_pay_state2str(p->state), p->id,
                         kp_reason2str(invalid));
                return KP_ERR_INVALID_ARG;
        }
        if (p->state == KP_PAY_CREDIT) {
                apply_credit(p, now_ms, res);
                return KP_OK;
        }
        return apply_refund(p, now_ms, res, errstr, errstr_size);
}

int acct_result_changed(const acct_result_t *res) {
        return res->outcome == ACCT_DEBITED || res->outcome == ACCT_CREDITED ||
               res->outcome == ACCT_REFUNDED;
}

void acct_apply_cmd(const acct_t *cur, const kp_account_cmd_t *cmd,
                    int64_t now_ms, acct_t *next) {
        if (next != cur)
                *next = *cur;
        next->frozen     = cmd->command == KP_CMD_FREEZE;
        next->updated_ms = now_ms;
}

/* ------------------------------------------------------------------------
 * Emitted payments
 */

void acct_outcome_payment(const kp_payment_t *in, const acct_result_t *res,
                          int64_t now_ms, kp_payment_t *out) {
        kp_payment_copy(out, in);
        switch (res->outcome) {
        case ACCT_DEBITED:
                out->state    = KP_PAY_CREDIT;
                out->debit_ms = now_ms; /* the stage stamps (events.md) */
                break;
        case ACCT_CREDITED:
                out->state     = KP_PAY_COMPLETE;
                out->credit_ms = now_ms;
                break;
        case ACCT_CREDIT_REFUSED:
                out->state = KP_PAY_REFUND;
                break;
        case ACCT_DEBIT_REFUSED:
        case ACCT_REFUNDED:
                out->state = KP_PAY_REJECTED;
                break;
        }
        snprintf(out->reason, sizeof(out->reason), "%s", res->reason);
        if (out->state == KP_PAY_COMPLETE || out->state == KP_PAY_REJECTED)
                out->complete_ms = now_ms;
}

acct_route_t acct_route(const kp_payment_t *p) {
        acct_route_t r = {KP_TOPIC_INFLIGHT, p->from, -1};
        switch (p->state) {
        case KP_PAY_DEBIT:
        case KP_PAY_REFUND:
                break;
        case KP_PAY_CREDIT:
                r.key = p->to;
                break;
        default:
                r.topic     = KP_TOPIC_COMPLETE;
                r.key       = p->id;
                r.partition = p->origin_partition;
                break;
        }
        return r;
}
