/**
 * @file confirmed.h
 * @brief The business logic of kpay-confirmed, as pure functions: state in,
 *        decision out, no Kafka and no store access (docs/pipeline.md,
 *        "kpay-confirmed").
 *
 * Store `totals` of partition p holds two kinds of keys, each with a
 * confirmed_totals_t as JSON: `all` (all time) and `day:YYYY-MM-DD` (the
 * UTC day of the outcome's complete_ms). Readers sum the partitions.
 * Everything here may be called on any thread.
 */
#ifndef KPAY_CONFIRMED_H
#define KPAY_CONFIRMED_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

/** What kpay-confirmed reads (kpay.payments.complete) and keeps (the
 *  store `totals`, indexed by confirmed_store_t). */
extern const kp_proc_layout_t confirmed_layout;

/** The stores of confirmed_layout, by index. */
typedef enum confirmed_store_e {
        CONFIRMED_ST_TOTALS,
} confirmed_store_t;

/** The all-time key of the `totals` store. */
#define CONFIRMED_ALL_KEY "all"

/** Room for any day key, "day:" and a date whose year may be far out. */
#define CONFIRMED_DAY_KEY_SIZE 48

/** Room for any record key kpay-confirmed emits (a payment id). */
#define CONFIRMED_KEY_SIZE (KP_PAYMENT_ID_MAX + 2)

/** Confirmed and rejected payments of one partition: counts and sums of
 *  minor units, every update overflow-checked. */
typedef struct confirmed_totals_s {
        int64_t confirmed_count;
        int64_t confirmed_amount;
        int64_t rejected_count;
        int64_t rejected_amount;
} confirmed_totals_t;

/**
 * @brief Decodes a `totals` value, strictly: an object with the four fields
 *        as JSON integers (unknown fields are ignored).
 * @returns KP_OK with @p t filled, or KP_ERR_PARSE (@p t then untouched).
 */
kp_err_t confirmed_totals_decode(const void *buf, size_t len,
                                 confirmed_totals_t *t);

/**
 * @brief Encodes totals as compact JSON, fields in the order of the struct.
 * @returns a kp_malloc()ed NUL-terminated string; *lenp its length.
 */
char *confirmed_totals_encode(const confirmed_totals_t *t, size_t *lenp);

/**
 * @brief Adds one outcome to @p t: a COMPLETE to the confirmed fields, a
 *        REJECTED to the rejected fields.
 * @returns KP_OK, KP_ERR_OVERFLOW (then @p t is untouched) or
 *          KP_ERR_INVALID_ARG for another state.
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
 * forwarded unchanged. Another state: CONFIRMED_WRONG_STATE, nothing else.
 *
 * @param all, day the totals before (zeros for a key not stored yet).
 * @returns KP_OK with @p d filled (clear it), KP_ERR_OVERFLOW when a total
 *          would overflow (nothing to apply; @p d needs no clearing) or
 *          KP_ERR_INVALID_ARG.
 */
kp_err_t confirmed_on_complete(const kp_payment_t *p,
                               const confirmed_totals_t *all,
                               const confirmed_totals_t *day,
                               confirmed_decision_t *d);

/** @brief Frees what a decision owns. The struct can be reused. */
void confirmed_decision_clear(confirmed_decision_t *d);

#endif /* KPAY_CONFIRMED_H */
