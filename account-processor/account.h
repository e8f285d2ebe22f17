/**
 * @file account.h
 * @brief kpay-account's business logic as pure functions: no Kafka, no
 *        store, no clock (docs/pipeline.md, "kpay-account").
 *
 * One step of the processor is:
 *
 *     acct_t cur, next;              // the payer's or payee's account
 *     acct_decode(stored, len, &cur, ...) or acct_init(&cur);
 *     acct_result_t res;
 *     acct_apply_payment(&cur, payment, overdraft_limit, now_ms, &res, ...);
 *     // store acct_encode(&res.account) when acct_result_changed(&res)
 *     kp_payment_t out;
 *     acct_outcome_payment(payment, &res, now_ms, &out);
 *     acct_route_t r = acct_route(&out);    // where `out` goes
 *
 * and for an account command, acct_apply_cmd(&cur, cmd, now_ms, &next).
 *
 * All arithmetic is overflow-checked. System accounts ("@bank") have no
 * lower limit; a regular account never goes below -overdraft_limit.
 */
#ifndef KPAY_ACCOUNT_H
#define KPAY_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

/** What kpay-account reads (kpay.payments.inflight, keyed by account)
 *  and keeps (the store `balances`, indexed by acct_store_t). */
extern const kp_proc_layout_t account_layout;

/** The stores of account_layout, by index. */
typedef enum acct_store_e {
        ACCT_ST_BALANCES,
} acct_store_t;

/** One account: the value of store `balances` (key: the account id). An
 *  account that does not exist is acct_init()'s: balance 0, not frozen. */
typedef struct acct_s {
        int64_t balance;    /**< minor units; may be negative */
        int frozen;         /**< 0 or 1 */
        int64_t updated_ms; /**< wall-clock ms of the last change, 0: never */
        /** Id of the last payment that moved money here; "" when none. */
        char last_payment[KP_PAYMENT_ID_MAX + 1];
} acct_t;

/** What applying one payment to its account did. */
typedef enum acct_outcome_e {
        ACCT_DEBITED,        /**< payer debited: emit CREDIT (key `to`) */
        ACCT_DEBIT_REFUSED,  /**< nothing moved: emit REJECTED (reason) */
        ACCT_CREDITED,       /**< payee credited: emit COMPLETE */
        ACCT_CREDIT_REFUSED, /**< nothing moved: emit REFUND (key `from`,
                                  reason) */
        ACCT_REFUNDED,       /**< payer credited back: emit REJECTED with the
                                  refund's reason */
} acct_outcome_t;

/** The result of acct_apply_payment(). */
typedef struct acct_result_s {
        acct_outcome_t outcome;
        /** The rejection or refund reason, a KP_REASON_TABLE code except
         *  for ACCT_REFUNDED, which carries the refund's reason as it came
         *  (KP_REASON_REFUNDED's code when it had none); "" for DEBITED and
         *  CREDITED. */
        char reason[KP_PAYMENT_REASON_MAX + 2];
        /** The account after the payment (a copy of the old one when nothing
         *  moved). */
        acct_t account;
} acct_result_t;

/** Where an emitted payment goes. */
typedef struct acct_route_s {
        kp_topic_id_t topic; /**< KP_TOPIC_INFLIGHT or KP_TOPIC_COMPLETE */
        const char *key;     /**< points into the payment routed */
        int32_t partition;   /**< explicit partition, or -1 for murmur2 */
} acct_route_t;

/**
 * @brief Sets @p a to an account that does not exist yet: balance 0, not
 *        frozen, never updated, no last payment.
 * @locality any thread
 */
void acct_init(acct_t *a);

/**
 * @brief Encodes @p a as the store value
 *        {"balance":N,"frozen":B,"updated_ms":N,"last_payment":S|null}.
 * @returns a kp_malloc()ed, NUL-terminated string (the caller frees it with
 *          kp_free()); *lenp receives its length.
 * @locality any thread
 */
char *acct_encode(const acct_t *a, size_t *lenp);

/**
 * @brief Decodes a store value written by acct_encode(), strictly: it must
 *        be a JSON object with balance (integer), frozen (boolean),
 *        updated_ms (integer >= 0) and last_payment (a string of at most
 *        KP_PAYMENT_ID_MAX bytes without NUL, or null). Unknown fields are
 *        ignored, so that a newer version's additions do not stop an older
 *        one.
 * @returns KP_OK with @p a filled, or KP_ERR_PARSE with a one-line reason in
 *          @p errstr (then @p a is unspecified).
 * @locality any thread
 */
kp_err_t acct_decode(const void *buf, size_t len, acct_t *a, char *errstr,
                     size_t errstr_size);

/**
 * @brief The account a payment on kpay.payments.inflight belongs to (and
 *        must be keyed by): `from` for DEBIT and REFUND, `to` for CREDIT.
 * @returns a pointer into @p p, or NULL for any other state (such a payment
 *          does not belong on that topic).
 */
const char *acct_payment_account(const kp_payment_t *p);

/**
 * @brief Applies payment @p p to @p cur, the account acct_payment_account()
 *        names, and says what to emit.
 *
 * - DEBIT: refused (nothing moves) when the payment breaks a business rule
 *   (kp_payment_validate()'s reason), the payer is frozen
 *   (account_frozen), a regular payer would drop below -overdraft_limit
 *   (insufficient_funds) or a system payer would pass INT64_MIN
 *   (balance_overflow); else debited.
 * - CREDIT: refused when the payee is frozen (account_frozen) or would pass
 *   INT64_MAX (balance_overflow); else credited.
 * - REFUND: the payer is credited back even when frozen meanwhile (refusing
 *   it would destroy the money); the outcome carries the refund's reason.
 *
 * A change sets updated_ms to @p now_ms and last_payment to the id.
 *
 * @param overdraft_limit >= 0.
 * @returns KP_OK with @p res filled; otherwise nothing moves, the record is
 *          not processable and belongs in the DLQ (reason in @p errstr):
 *          KP_ERR_STATE for a state other than DEBIT, CREDIT or REFUND,
 *          KP_ERR_INVALID_ARG for a CREDIT or REFUND that breaks a business
 *          rule (money has moved already: an operator must look),
 *          KP_ERR_OVERFLOW for a refund that would overflow the payer's
 *          balance.
 * @locality any thread
 */
kp_err_t acct_apply_payment(const acct_t *cur, const kp_payment_t *p,
                            int64_t overdraft_limit, int64_t now_ms,
                            acct_result_t *res, char *errstr,
                            size_t errstr_size);

/** @brief 1 if the outcome changed the account (it must be stored). */
int acct_result_changed(const acct_result_t *res);

/**
 * @brief Applies account command @p cmd to @p cur into @p next: FREEZE sets
 *        frozen, UNFREEZE clears it; both set updated_ms to @p now_ms (so
 *        the account exists afterwards). @p next may be @p cur.
 * @locality any thread
 */
void acct_apply_cmd(const acct_t *cur, const kp_account_cmd_t *cmd,
                    int64_t now_ms, acct_t *next);

/**
 * @brief Builds the payment to emit after @p res: a deep copy of @p in
 *        (unknown fields included) with the state the outcome calls for
 *        (CREDIT, REJECTED, COMPLETE, REFUND), the reason of @p res
 *        (cleared for CREDIT and COMPLETE), and complete_ms = @p now_ms for
 *        COMPLETE and REJECTED.
 * @param out receives the payment; release it with kp_payment_clear().
 * @locality any thread
 */
void acct_outcome_payment(const kp_payment_t *in, const acct_result_t *res,
                          int64_t now_ms, kp_payment_t *out);

/**
 * @brief Where a payment emitted by kpay-account goes: CREDIT to
 *        kpay.payments.inflight keyed by `to`, REFUND (and DEBIT) keyed by
 *        `from`, both partitioned by murmur2; COMPLETE, REJECTED and any
 *        other state to kpay.payments.complete keyed by id on partition
 *        origin_partition.
 * @returns the route; its key points into @p p.
 */
acct_route_t acct_route(const kp_payment_t *p);

#endif /* KPAY_ACCOUNT_H */
