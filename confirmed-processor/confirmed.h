/**
 * @file confirmed.h
 * @brief The business logic of kpay-confirmed, as pure functions: state in,
 *        decision out, no Kafka and no store access (docs/pipeline.md,
 *        "kpay-confirmed").
 *
 * Store `totals` of partition p holds two kinds of keys, each with a
 * confirmed_record_t as JSON: `all` (all time) and `day:YYYY-MM-DD` (the
 * UTC day of the outcome's complete_ms). Readers sum the partitions, and
 * the amounts per currency (issue 13, defect 7).
 *
 * Store `outcomes` of partition p: payment id -> the outcome (the Payment
 * as it arrived on kpay.payments.complete, COMPLETE or REJECTED, without
 * its unknown fields, plus `recorded_ms`), which kpay-web's
 * GET /api/v1/payments/{id} reads; partition p is the id's home
 * (murmur2(id) % N), since kpay writes every outcome to partition
 * origin_partition. Store `expiry`: the outcomes' expiry index
 * (kp_expiry.h) `t:<16 hex of recorded_ms>:<id>` -> "1", so that an outcome
 * is kept for --outcome-retention-ms (default 7 days) and then deleted.
 * Everything here may be called on any thread.
 */
#ifndef KPAY_CONFIRMED_H
#define KPAY_CONFIRMED_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_expiry.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

/** What kpay-confirmed reads (kpay.payments.complete) and keeps (the
 *  store `totals`, indexed by confirmed_store_t). */
extern const kp_proc_layout_t confirmed_layout;

/** The stores of confirmed_layout, by index. */
typedef enum confirmed_store_e {
        CONFIRMED_ST_TOTALS,
        CONFIRMED_ST_OUTCOMES,
        CONFIRMED_ST_EXPIRY,
} confirmed_store_t;

/** The key prefix of the `expiry` store's index (kp_expiry.h). */
#define CONFIRMED_EXPIRY_PREFIX "t:"
/** Room for any expiry key of a valid payment id (with its NUL). */
#define CONFIRMED_EXPIRY_KEY_SIZE KP_EXPIRY_KEY_SIZE(KP_PAYMENT_ID_MAX)

/** Default and minimum of --outcome-retention-ms. */
#define CONFIRMED_OUTCOME_RETENTION_DEFAULT_MS 604800000 /* 7 days */
#define CONFIRMED_OUTCOME_RETENTION_MIN_MS     1000
/** How often the outcome expiry runs, and how much it deletes at most. */
#define CONFIRMED_PUNCTUATE_MS       60000
#define CONFIRMED_EXPIRY_MAX_PER_RUN 10000

/** The all-time key of the `totals` store. */
#define CONFIRMED_ALL_KEY "all"

/** Room for any day key, "day:" and a date whose year may be far out. */
#define CONFIRMED_DAY_KEY_SIZE 48

/** Room for any record key kpay-confirmed emits (a payment id). */
#define CONFIRMED_KEY_SIZE (KP_PAYMENT_ID_MAX + 2)

/** Confirmed and rejected payments of one partition as one outcome sees
 *  them: the counts, and the amounts of that outcome's currency. The
 *  amounts are 128 bits wide: a sum of fewer than 2^63 int64 amounts
 *  cannot overflow them, so no total refuses an outcome (issue 13,
 *  defect 4); the counts are overflow-checked. */
typedef struct confirmed_totals_s {
        int64_t confirmed_count;
        kp_i128_t confirmed_amount; /**< of one currency */
        int64_t rejected_count;
        kp_i128_t rejected_amount; /**< of one currency */
} confirmed_totals_t;

/** A `totals` store value: the counts, and the amounts per currency.
 *  Initialize with confirmed_record_init(), free with
 *  confirmed_record_clear(). */
typedef struct confirmed_record_s {
        int64_t confirmed_count;
        int64_t rejected_count;
        kp_money_t confirmed_amounts;
        kp_money_t rejected_amounts;
} confirmed_record_t;

/** @brief Zero totals, no currency; owns nothing yet. */
void confirmed_record_init(confirmed_record_t *r);

/** @brief Frees what @p r owns; it is confirmed_record_init()'s after. */
void confirmed_record_clear(confirmed_record_t *r);

/**
 * @brief The currency whose amounts an outcome adds to: its currency when
 *        the payment passes kp_payment_validate(), else NULL (a payment
 *        rejected for a broken rule, say invalid_amount or
 *        invalid_currency, is counted but its amount is not money).
 */
const char *confirmed_currency(const kp_payment_t *p);

/** @brief The view of @p r for @p currency (amounts 0 for NULL). */
void confirmed_totals_view(const confirmed_record_t *r, const char *currency,
                           confirmed_totals_t *t);

/**
 * @brief Writes the view @p t back: the counts, and the amounts of
 *        @p currency (not when NULL).
 * @returns KP_OK, or KP_ERR_INVALID_ARG for a currency that is not 3
 *          letters A-Z (nothing changed).
 */
kp_err_t confirmed_totals_update(confirmed_record_t *r, const char *currency,
                                 const confirmed_totals_t *t);

/**
 * @brief Decodes a `totals` value, strictly: an object with
 *        confirmed_count and rejected_count (JSON integers) and
 *        confirmed_amounts and rejected_amounts (objects of currency codes
 *        to decimal strings); unknown fields are ignored. A value written
 *        before amounts were per currency (integers confirmed_amount and
 *        rejected_amount) is read as USD, the default currency.
 * @param r initialized; replaced on success.
 * @returns KP_OK with @p r filled, or KP_ERR_PARSE (@p r then untouched).
 */
kp_err_t confirmed_totals_decode(const void *buf, size_t len,
                                 confirmed_record_t *r);

/**
 * @brief Encodes totals as compact JSON: {"confirmed_count":N,
 *        "rejected_count":N,"confirmed_amounts":{"USD":"N"},
 *        "rejected_amounts":{...}}, currencies in byte order, amounts as
 *        decimal strings (exact whatever their size, for every reader).
 * @returns a kp_malloc()ed NUL-terminated string; *lenp its length.
 */
char *confirmed_totals_encode(const confirmed_record_t *r, size_t *lenp);

/**
 * @brief Adds one outcome to @p t: a COMPLETE to the confirmed fields, a
 *        REJECTED to the rejected fields; @p amount to the amount (0 for
 *        one whose amount is not counted, see confirmed_currency()).
 * @returns KP_OK, KP_ERR_OVERFLOW when a count is at INT64_MAX (not
 *          reachable; then @p t is untouched) or KP_ERR_INVALID_ARG for
 *          another state.
 */
kp_err_t confirmed_totals_add(confirmed_totals_t *t, kp_pay_state_t state,
                              int64_t amount);

/**
 * @brief The proleptic Gregorian UTC date of @p ms (ms since the epoch,
 *        negative before 1970).
 */
void confirmed_utc_date(int64_t ms, int64_t *yearp, int *monthp, int *dayp);

/**
 * @brief Writes the day key "day:YYYY-MM-DD" of the UTC date of @p ms.
 * @returns its length, or 0 when it does not fit @p size.
 */
size_t confirmed_day_key(char *buf, size_t size, int64_t ms);

/**
 * @brief The time an outcome is counted at: its complete_ms, or @p now_ms
 *        when complete_ms is null.
 */
int64_t confirmed_outcome_ms(const kp_payment_t *p, int64_t now_ms);

/** What to do with a record of the complete topic. */
typedef enum confirmed_action_e {
        CONFIRMED_CONFIRM,     /**< COMPLETE: count, emit CONFIRMED */
        CONFIRMED_REJECT,      /**< REJECTED: count, forward as is */
        CONFIRMED_WRONG_STATE, /**< anything else: dead-letter wrong_state */
} confirmed_action_t;

/** The decision on one outcome. Release with confirmed_decision_clear(). */
typedef struct confirmed_decision_s {
        confirmed_action_t action;
        /** The totals of `all` and of the outcome's day, after it. */
        confirmed_totals_t all;
        confirmed_totals_t day;
        /** The record to emit (CONFIRM and REJECT): to topic
         *  (KP_TOPIC_CONFIRMED), partition -1 (murmur2 of the key), keyed
         *  by the payment id. */
        kp_topic_id_t topic;
        int32_t partition;
        char key[CONFIRMED_KEY_SIZE];
        char *value; /**< kp_malloc()ed payment JSON */
        size_t value_len;
} confirmed_decision_t;

/**
 * @brief Decides what an outcome on kpay.payments.complete does.
 *
 * COMPLETE: confirmed_count + 1 and confirmed_amount + amount in both
 * totals, and the payment copied with state CONFIRMED (every other field,
 * unknown ones too, kept) to kpay.payments.confirmed. REJECTED:
 * rejected_count + 1 and rejected_amount + amount, and the payment
 * forwarded unchanged. The amount is added only when confirmed_currency()
 * names a currency. Another state: CONFIRMED_WRONG_STATE, nothing else.
 *
 * @param all, day the totals before (zeros for a key not stored yet): the
 *        views of confirmed_currency(@p p).
 * @returns KP_OK with @p d filled (clear it), KP_ERR_OVERFLOW when a count
 *          is at INT64_MAX (not reachable; the amounts cannot overflow;
 *          nothing to apply, @p d needs no clearing) or
 *          KP_ERR_INVALID_ARG.
 */
kp_err_t confirmed_on_complete(const kp_payment_t *p,
                               const confirmed_totals_t *all,
                               const confirmed_totals_t *day,
                               confirmed_decision_t *d);

/** @brief Frees what a decision owns. The struct can be reused. */
void confirmed_decision_clear(confirmed_decision_t *d);

/**
 * @brief 1 if the outcome of @p p is kept in the `outcomes` store: its id
 *        is valid (kp_payment_id_valid()), so that it can be a key and be
 *        asked for. An outcome with a broken id is counted and forwarded,
 *        not kept.
 */
int confirmed_outcome_kept(const kp_payment_t *p);

/**
 * @brief Encodes the `outcomes` value of @p p recorded at @p recorded_ms:
 *        the Payment JSON (kp_payment_serialize(): id, state, reason, from,
 *        to, amount, currency, the stage times...) without the payment's
 *        unknown fields, plus "recorded_ms".
 * @returns a kp_malloc()ed NUL-terminated string; *lenp its length.
 */
char *confirmed_outcome_encode(const kp_payment_t *p, int64_t recorded_ms,
                               size_t *lenp);

/**
 * @brief Decodes an `outcomes` value, strictly: a Payment
 *        (kp_payment_parse()) in state COMPLETE or REJECTED with an
 *        integer "recorded_ms" >= 0.
 * @param p receives the payment (release with kp_payment_clear()); its
 *        `extra` holds recorded_ms. May be NULL.
 * @returns KP_OK or KP_ERR_PARSE (then @p p needs no clearing).
 */
kp_err_t confirmed_outcome_decode(const void *buf, size_t len, kp_payment_t *p,
                                  int64_t *recorded_msp);

/**
 * @brief Writes the expiry index key of the outcome of @p id recorded at
 *        @p recorded_ms ("t:<16 hex>:<id>").
 * @returns its length, or 0 when it does not fit @p size.
 */
size_t confirmed_expiry_key(char *buf, size_t size, int64_t recorded_ms,
                            const char *id);

/**
 * @brief 1 if an outcome recorded at @p recorded_ms has expired at
 *        @p now_ms with @p retention_ms (recorded before now - retention).
 */
int confirmed_outcome_expired(int64_t recorded_ms, int64_t now_ms,
                              int64_t retention_ms);

#endif /* KPAY_CONFIRMED_H */
