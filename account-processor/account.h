/**
 * @file account.h
 * @brief kpay-account's business logic as pure functions: no Kafka, no
 *        store, no clock (docs/pipeline.md, "kpay-account").
 *
 * An account has one balance per currency (issue 13, defect 7): the store
 * value is an acct_record_t, and a payment is decided on the view of its
 * currency, an acct_t. One step of the processor is:
 *
 *     acct_record_t rec;             // the payer's or payee's account
 *     acct_decode(stored, len, &rec, ...) or acct_record_init(&rec);
 *     acct_t cur;
 *     acct_view(&rec, payment->currency, &cur);
 *     acct_result_t res;
 *     acct_apply_payment(&cur, payment, overdraft_limit, now_ms, &res, ...);
 *     // when acct_result_changed(&res):
 *     //   acct_record_update(&rec, payment->currency, &res.account);
 *     //   store acct_encode(&rec)
 *     kp_payment_t out;
 *     acct_outcome_payment(payment, &res, now_ms, &out);
 *     acct_route_t r = acct_route(&out);    // where `out` goes
 *     acct_record_clear(&rec);
 *
 * and for an account command, the same with acct_view(&rec, NULL, &cur),
 * acct_apply_cmd(&cur, cmd, now_ms, &cur), acct_record_update(&rec, NULL,
 * &cur): a command touches no balance.
 *
 * All arithmetic is overflow-checked. System accounts ("@bank") have no
 * lower limit; a regular account never goes below -overdraft_limit. A
 * debit or a credit keeps a balance within int64; a refund always applies
 * (the balance is 128 bits wide, so it cannot overflow), so that a payment
 * whose credit was refused always ends REJECTED (defect 4).
 */
#ifndef KPAY_ACCOUNT_H
#define KPAY_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

/** What kpay-account reads (kpay.payments.inflight, keyed by account)
 *  and keeps (the store `balances`, indexed by acct_store_t). */
extern const kp_proc_layout_t account_layout;

/** The stores of account_layout, by index. */
typedef enum acct_store_e {
        ACCT_ST_BALANCES,
} acct_store_t;

/** One account as one payment sees it: its balance in the payment's
 *  currency, and what the account's currencies share. An account that does
 *  not exist is acct_init()'s: balance 0, not frozen. */
typedef struct acct_s {
        /** Minor units of the currency; may be negative. Within int64 but
         *  after a refund, which may take it up to the refunded amount above
         *  INT64_MAX (a credit received between the debit and the refund). */
        kp_i128_t balance;
        int frozen;         /**< 0 or 1 */
        int64_t updated_ms; /**< wall-clock ms of the last change, 0: never */
        /** Id of the last payment that moved money here; "" when none. */
        char last_payment[KP_PAYMENT_ID_MAX + 1];
} acct_t;

/** One account whole: the value of store `balances` (key: the account id),
 *  one balance per currency. Initialize with acct_record_init(), free with
 *  acct_record_clear(). */
typedef struct acct_record_s {
        /** Per currency; a currency's entry exists once a payment in it
         *  moved money here (it stays when it returns to 0). */
        kp_money_t balances;
        int frozen;         /**< 0 or 1: every currency */
        int64_t updated_ms; /**< wall-clock ms of the last change, 0: never */
        /** Id of the last payment that moved money here; "" when none. */
        char last_payment[KP_PAYMENT_ID_MAX + 1];
} acct_record_t;

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

/** @brief Sets @p r to an account that does not exist yet (no balance, not
 *         frozen, never updated); it owns nothing yet. */
void acct_record_init(acct_record_t *r);

/** @brief Frees what @p r owns; it is acct_record_init()'s afterwards. */
void acct_record_clear(acct_record_t *r);

/**
 * @brief The view of @p r for a payment in @p currency: that currency's
 *        balance (0 when it has none) and the shared fields. @p currency
 *        NULL: balance 0 (for an account command, which touches no
 *        balance).
 */
void acct_view(const acct_record_t *r, const char *currency, acct_t *a);

/**
 * @brief Writes the view @p a back into @p r: the balance of @p currency
 *        (not when NULL) and the shared fields.
 * @returns KP_OK, or KP_ERR_INVALID_ARG when @p currency is not 3 letters
 *          A-Z (nothing changed).
 */
kp_err_t acct_record_update(acct_record_t *r, const char *currency,
                            const acct_t *a);

/**
 * @brief Encodes @p r as the store value
 *        {"balances":{"EUR":"-300","USD":"1250"},"frozen":B,
 *        "updated_ms":N,"last_payment":S|null}: each balance a decimal
 *        string (exact for every reader, JavaScript's too), currencies in
 *        byte order.
 * @returns a kp_malloc()ed, NUL-terminated string (the caller frees it with
 *          kp_free()); *lenp receives its length.
 * @locality any thread
 */
char *acct_encode(const acct_record_t *r, size_t *lenp);

/**
 * @brief Decodes a store value written by acct_encode(), strictly: it must
 *        be a JSON object with balances (an object of currency codes to
 *        decimal strings, kp_money_from_json()), frozen (boolean),
 *        updated_ms (integer >= 0) and last_payment (a string of at most
 *        KP_PAYMENT_ID_MAX bytes without NUL, or null). Unknown fields are
 *        ignored, so that a newer version's additions do not stop an older
 *        one. A value written before balances were per currency has an
 *        integer "balance" instead of "balances": it is read as that
 *        balance in USD, the default currency (docs/pipeline.md).
 * @param r initialized (acct_record_init()); replaced on success.
 * @returns KP_OK with @p r filled, or KP_ERR_PARSE with a one-line reason in
 *          @p errstr (then @p r is empty).
 * @locality any thread
 */
kp_err_t acct_decode(const void *buf, size_t len, acct_record_t *r,
                     char *errstr, size_t errstr_size);

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
 * @p cur is the view of the payment's currency (acct_view()).
 *
 * - DEBIT: refused (nothing moves) when the payment breaks a business rule
 *   (kp_payment_validate()'s reason), the payer is frozen
 *   (account_frozen), a regular payer would drop below -overdraft_limit
 *   (insufficient_funds) or a system payer would pass INT64_MIN
 *   (balance_overflow); else debited.
 * - CREDIT: refused when the payee is frozen (account_frozen) or would pass
 *   INT64_MAX (balance_overflow); else credited.
 * - REFUND: the payer is credited back even when frozen meanwhile (refusing
 *   it would destroy the money), and even above INT64_MAX (the balance is
 *   128 bits wide; later credits are refused until it is back within
 *   int64); the outcome carries the refund's reason.
 *
 * A change sets updated_ms to @p now_ms and last_payment to the id.
 *
 * @param overdraft_limit >= 0.
 * @returns KP_OK with @p res filled; otherwise nothing moves, the record is
 *          not processable and belongs in the DLQ (reason in @p errstr):
 *          KP_ERR_STATE for a state other than DEBIT, CREDIT or REFUND,
 *          KP_ERR_INVALID_ARG for a CREDIT or REFUND that breaks a business
 *          rule (money has moved already: an operator must look),
 *          KP_ERR_OVERFLOW for a refund that would pass the 128-bit range
 *          (not reachable with int64 amounts).
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
 *        frozen, UNFREEZE clears it (for every currency of the account);
 *        both set updated_ms to @p now_ms (so the account exists
 *        afterwards). @p next may be @p cur.
 * @locality any thread
 */
void acct_apply_cmd(const acct_t *cur, const kp_account_cmd_t *cmd,
                    int64_t now_ms, acct_t *next);

/**
 * @brief Builds the payment to emit after @p res: a deep copy of @p in
 *        (unknown fields included) with the state the outcome calls for
 *        (CREDIT, REJECTED, COMPLETE, REFUND), the reason of @p res
 *        (cleared for CREDIT and COMPLETE), complete_ms = @p now_ms for
 *        COMPLETE and REJECTED, and the stage stamps: debit_ms = @p now_ms
 *        for CREDIT, credit_ms = @p now_ms for COMPLETE.
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
