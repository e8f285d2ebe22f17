/**
 * @file inflight.h
 * @brief The business logic of kpay-inflight (the gateway), as pure
 *        functions: state in, decision out, no Kafka and no store access
 *        (docs/pipeline.md, "kpay-inflight").
 *
 * main.c reads the stores, calls these functions and applies what they
 * decide: store writes, emitted records and counters. Everything here may be
 * called on any thread; nothing keeps state between calls.
 *
 * Stores of partition p:
 * - `inflight`: payment id -> the payment as received, with `inflight_ms`
 *   and `origin_partition` stamped (Payment JSON, state INCOMING);
 * - `dedup`: `i:<id>` -> first-seen wall-clock ms (decimal), and the expiry
 *   index `t:<16 lowercase hex digits of first-seen ms>:<id>` -> "1", whose
 *   keys sort by time, so that expiry walks them oldest first. Only the
 *   `i:` keys go to the changelog, which is compact,delete with a
 *   retention of the window plus a day: the index is local state
 *   (kp_ctx_write_local()), derived again from each restored `i:` record
 *   (inflight_expiry_key_of_entry()), and expiry deletes both keys
 *   locally, without tombstones (docs/pipeline.md);
 * - `totals`: `totals` -> inflight_record_t as JSON: the counts, and the
 *   in-flight amount per currency (issue 13, defect 7).
 */
#ifndef KPAY_INFLIGHT_H
#define KPAY_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

/** What kpay-inflight reads (kpay.payments.incoming, then
 *  kpay.payments.complete) and keeps (the stores `inflight`, `dedup` and
 *  `totals`), indexed by inflight_input_t and inflight_store_t. */
extern const kp_proc_layout_t inflight_layout;

/** The inputs of inflight_layout, by index (kp_record_t.input). */
typedef enum inflight_input_e {
        INFLIGHT_IN_INCOMING,
        INFLIGHT_IN_COMPLETE,
} inflight_input_t;

/** The stores of inflight_layout, by index. */
typedef enum inflight_store_e {
        INFLIGHT_ST_INFLIGHT,
        INFLIGHT_ST_DEDUP,
        INFLIGHT_ST_TOTALS,
} inflight_store_t;

/** The one key of the `totals` store. */
#define INFLIGHT_TOTALS_KEY "totals"

/** Key prefixes of the `dedup` store ("i:" sorts before "t:"). */
#define INFLIGHT_DEDUP_PREFIX  "i:"
#define INFLIGHT_EXPIRY_PREFIX "t:"

/** Room for any dedup key "i:<id>" (with its NUL). */
#define INFLIGHT_DEDUP_KEY_SIZE (2 + KP_PAYMENT_ID_MAX + 2 + 1)
/** Room for any expiry key "t:<16 hex>:<id>" (with its NUL). */
#define INFLIGHT_EXPIRY_KEY_SIZE (2 + 16 + 1 + KP_PAYMENT_ID_MAX + 2 + 1)
/** Room for any record key kpay-inflight emits (an id or an account). */
#define INFLIGHT_KEY_SIZE (KP_PAYMENT_ID_MAX + 2)

/** Default and minimum of --dedup-retention-ms. */
#define INFLIGHT_DEDUP_RETENTION_DEFAULT_MS 604800000 /* 7 days */
#define INFLIGHT_DEDUP_RETENTION_MIN_MS     1000
/** The dedup changelog's retention beyond the window (as Kafka Streams'
 *  windowstore.changelog.additional.retention.ms): clock skew between the
 *  processor and the broker, and a restore that starts late. */
#define INFLIGHT_DEDUP_CHANGELOG_MARGIN_MS INT64_C(86400000)
/** The default window plus the margin, 8 days, as the layout's string. */
#define INFLIGHT_DEDUP_CHANGELOG_RETENTION_DEFAULT "691200000"

/**
 * @brief The retention.ms the dedup changelog needs for a window of
 *        @p window_ms: the window plus INFLIGHT_DEDUP_CHANGELOG_MARGIN_MS
 *        (saturating). An entry first seen at T is produced at T or later,
 *        and the broker deletes a segment only once its newest record is
 *        older than the retention, so a restore finds every id of the
 *        window.
 */
int64_t inflight_dedup_changelog_retention_ms(int64_t window_ms);

/**
 * @brief The expiry index key of a dedup entry: for a restored record
 *        `i:<id>` -> first-seen ms, writes "t:<16 hex>:<id>" into @p buf.
 * @returns its length, or 0 for anything else (a "t:" key of an older
 *          changelog, a tombstone, a malformed value, no room).
 */
size_t inflight_expiry_key_of_entry(char *buf, size_t size, const void *key,
                                    size_t klen, const void *val, size_t vlen);

/** How often the dedup expiry runs, and how much it deletes at most. */
#define INFLIGHT_PUNCTUATE_MS       60000
#define INFLIGHT_EXPIRY_MAX_PER_RUN 10000

/**
 * The totals of one partition as one payment sees them: the counts, and
 * the in-flight amount of that payment's currency (amounts of different
 * currencies are never added). The store keeps inflight_record_t: the
 * counts and every currency's amount; inflight_totals_view() and
 * inflight_totals_update() go between the two. Every count is
 * overflow-checked; the amount is 128 bits wide and cannot overflow (a sum
 * of fewer than 2^63 int64 amounts), so no total refuses a payment
 * (issue 13, defect 4).
 *
 * - inflight_count, inflight_amount: payments accepted and not completed
 *   yet, and the sum of their amounts (of the one currency).
 * - accepted: payments accepted into flight (a DEBIT was emitted).
 * - rejected: payments whose outcome was REJECTED, counted once each:
 *   rejections this processor decided itself (invalid_state or a
 *   kp_payment_validate() reason; they never enter flight) plus REJECTED
 *   completions of payments that were in flight (insufficient_funds,
 *   account_frozen, ...). This processor's own REJECTED records come back
 *   on kpay.payments.complete too; the id is not in flight then, so they
 *   count in completions_unknown, not in rejected a second time.
 * - duplicates: submissions dropped because their id was seen within the
 *   dedup window.
 * - completed: COMPLETE completions of payments in flight.
 * - completions_unknown: COMPLETE/REJECTED records for ids not in flight
 *   (this processor's own rejections, duplicate outcomes).
 *
 * So, at a quiescent point: accepted + own rejections = distinct ids
 * processed, and completed + rejected = outcomes = distinct ids processed,
 * with inflight_count = accepted - completed - (rejected - own rejections)
 * = 0.
 */
typedef struct inflight_totals_s {
        int64_t inflight_count;
        kp_i128_t inflight_amount; /**< of one currency */
        int64_t accepted;
        int64_t rejected;
        int64_t duplicates;
        int64_t completed;
        int64_t completions_unknown;
} inflight_totals_t;

/** The store value of `totals`: the counts of inflight_totals_t and the
 *  in-flight amount per currency. Initialize with inflight_record_init(),
 *  free with inflight_record_clear(). */
typedef struct inflight_record_s {
        int64_t inflight_count;
        int64_t accepted;
        int64_t rejected;
        int64_t duplicates;
        int64_t completed;
        int64_t completions_unknown;
        /** Per currency; an entry stays once made (at 0 when drained). */
        kp_money_t inflight_amounts;
} inflight_record_t;

/** @brief Zero totals, no currency; owns nothing yet. */
void inflight_record_init(inflight_record_t *r);

/** @brief Frees what @p r owns; it is inflight_record_init()'s afterwards. */
void inflight_record_clear(inflight_record_t *r);

/**
 * @brief The view of @p r for a payment in @p currency: the counts and that
 *        currency's in-flight amount (0 for NULL: a decision that moves no
 *        amount, a duplicate or a rejection).
 */
void inflight_totals_view(const inflight_record_t *r, const char *currency,
                          inflight_totals_t *t);

/**
 * @brief Writes the view @p t back: the counts, and the amount of
 *        @p currency (not when NULL).
 * @returns KP_OK, or KP_ERR_INVALID_ARG for a currency that is not 3
 *          letters A-Z (nothing changed).
 */
kp_err_t inflight_totals_update(inflight_record_t *r, const char *currency,
                                const inflight_totals_t *t);

/**
 * @brief Decodes the JSON of the `totals` store, strictly: an object with
 *        the six counts as JSON integers and "inflight_amounts", an object
 *        of currency codes to decimal strings (unknown fields are ignored).
 *        A value written before amounts were per currency has an integer
 *        "inflight_amount" instead: it is read as USD, the default
 *        currency.
 * @param r initialized; replaced on success.
 * @returns KP_OK with @p r filled, or KP_ERR_PARSE (@p r then untouched).
 */
kp_err_t inflight_totals_decode(const void *buf, size_t len,
                                inflight_record_t *r);

/**
 * @brief Encodes totals as compact JSON: the counts in the order of the
 *        struct, then "inflight_amounts" (currencies in byte order, each a
 *        decimal string: exact whatever its size, for every reader).
 * @returns a kp_malloc()ed NUL-terminated string; *lenp its length.
 */
char *inflight_totals_encode(const inflight_record_t *r, size_t *lenp);

/**
 * @brief Writes the dedup key "i:<id>" into @p buf.
 * @returns its length, or 0 when it does not fit @p size.
 */
size_t inflight_dedup_key(char *buf, size_t size, const char *id);

/**
 * @brief Writes the expiry index key "t:<16 lowercase hex digits of
 *        first_seen_ms>:<id>" into @p buf. The digits are fixed width, so
 *        the keys sort by time (byte order), then by id.
 * @returns its length, or 0 when it does not fit @p size or
 *          @p first_seen_ms < 0.
 */
size_t inflight_expiry_key(char *buf, size_t size, int64_t first_seen_ms,
                           const char *id);

/**
 * @brief Parses an expiry index key.
 * @param msp receives the first-seen ms.
 * @param idp, idlenp receive the id (pointing into @p key, not terminated).
 * @returns 1 for a well-formed "t:" key; 0 for a key that does not start
 *          with "t:" (the end of the index); -1 for a malformed "t:" key.
 */
int inflight_expiry_key_parse(const void *key, size_t klen, int64_t *msp,
                              const char **idp, size_t *idlenp);

/**
 * @brief Decodes a dedup value (decimal ms, >= 0).
 * @returns KP_OK or KP_ERR_PARSE.
 */
kp_err_t inflight_dedup_value_decode(const void *buf, size_t len, int64_t *msp);

/**
 * @brief The oldest first-seen time still inside the dedup window:
 *        now_ms - retention_ms (saturating). An id first seen before it has
 *        expired.
 */
int64_t inflight_dedup_cutoff(int64_t now_ms, int64_t retention_ms);

/** What to do with an INCOMING payment. */
typedef enum inflight_action_e {
        INFLIGHT_DUPLICATE, /**< seen within the window: count, drop */
        INFLIGHT_REJECT,    /**< emit REJECTED to the complete topic */
        INFLIGHT_ACCEPT,    /**< store in flight, emit DEBIT */
} inflight_action_t;

/** A record to emit. */
typedef struct inflight_emit_s {
        kp_topic_id_t topic;         /**< KP_TOPIC_COMPLETE or _INFLIGHT */
        int32_t partition;           /**< explicit, or -1 (murmur2 of key) */
        char key[INFLIGHT_KEY_SIZE]; /**< NUL-terminated */
        char *value;                 /**< kp_malloc()ed payment JSON */
        size_t value_len;
} inflight_emit_t;

/** The decision on one INCOMING payment. Release with
 *  inflight_decision_clear(). */
typedef struct inflight_decision_s {
        inflight_action_t action;
        /** REJECT: the reason; KP_REASON_NONE otherwise. */
        kp_reason_t reason;
        /** REJECT and ACCEPT: record the id in the dedup store with
         *  first-seen = now (i:<id> and its t: key). */
        int record_dedup;
        /** When record_dedup replaces an entry that had expired but was
         *  not deleted yet: its first-seen ms, whose t: key is to be
         *  deleted; else -1. */
        int64_t expired_first_seen_ms;
        /** REJECT: the REJECTED record; ACCEPT: the DEBIT record. */
        inflight_emit_t emit;
        /** ACCEPT: the `inflight` store value (kp_malloc()ed), keyed by id. */
        char *stored;
        size_t stored_len;
        /** The partition's totals after this payment. */
        inflight_totals_t totals;
} inflight_decision_t;

/**
 * @brief Decides what to do with an INCOMING payment (already parsed) read
 *        on partition @p partition, in the order of docs/pipeline.md:
 *        dedup before validation, then the state, then
 *        kp_payment_validate().
 *
 * - first seen within the window (@p first_seen_ms >= now - retention):
 *   INFLIGHT_DUPLICATE, duplicates + 1, nothing emitted or recorded;
 * - state not INCOMING: INFLIGHT_REJECT KP_REASON_INVALID_STATE;
 * - a business rule broken: INFLIGHT_REJECT with kp_payment_validate()'s
 *   reason;
 *   a rejection is the payment with state REJECTED, the reason,
 *   complete_ms = now and origin_partition = @p partition, keyed by id to
 *   the complete topic, partition @p partition; rejected + 1;
 * - else INFLIGHT_ACCEPT: the payment with inflight_ms = now and
 *   origin_partition = @p partition is stored (state INCOMING) and emitted
 *   as DEBIT keyed by `from` to the inflight topic (partition -1);
 *   accepted + 1, inflight_count + 1, inflight_amount + amount (so
 *   @p totals is the view of the payment's currency; for the other
 *   actions the amount is not touched).
 * Emitted and stored payments keep every other field, unknown ones too.
 *
 * @param first_seen_ms the id's dedup entry, or -1 when there is none.
 * @param totals the partition's totals before this payment.
 * @returns KP_OK with @p d filled (clear it), or KP_ERR_OVERFLOW when a
 *          count would pass INT64_MAX (2^63 records: not reachable; the
 *          amount cannot overflow; nothing to apply, @p d needs no
 *          clearing) or KP_ERR_INVALID_ARG.
 */
kp_err_t inflight_on_incoming(const kp_payment_t *p, int64_t first_seen_ms,
                              int64_t retention_ms,
                              const inflight_totals_t *totals,
                              int32_t partition, int64_t now_ms,
                              inflight_decision_t *d);

/** @brief Frees what a decision owns. The struct can be reused. */
void inflight_decision_clear(inflight_decision_t *d);

/** What a record on the complete topic does. */
typedef enum inflight_completion_e {
        INFLIGHT_COMPLETED,   /**< COMPLETE of a payment in flight */
        INFLIGHT_REJECTED,    /**< REJECTED of a payment in flight */
        INFLIGHT_UNKNOWN,     /**< COMPLETE/REJECTED of an id not in flight */
        INFLIGHT_WRONG_STATE, /**< any other state: dead-letter wrong_state */
} inflight_completion_t;

/** @brief 1 if @p state is an outcome (COMPLETE or REJECTED). */
int inflight_is_outcome(kp_pay_state_t state);

/**
 * @brief Decides what a completion does to the totals.
 *
 * COMPLETE or REJECTED of an id in flight (@p flight non-NULL: the
 * `inflight` store's payment): remove it (the caller deletes the key),
 * inflight_count - 1, inflight_amount - the stored amount (so @p totals is
 * the view of the stored payment's currency), completed or rejected + 1.
 * Of an id not in flight: completions_unknown + 1. Another state:
 * INFLIGHT_WRONG_STATE, totals unchanged.
 *
 * @param flight the stored payment, or NULL when the id is not in flight.
 * @param totals in: the totals before; out: after. Untouched on error.
 * @returns KP_OK with *@p whatp set, or KP_ERR_OVERFLOW (a count at
 *          INT64_MAX: not reachable).
 */
kp_err_t inflight_on_complete(const kp_payment_t *c, const kp_payment_t *flight,
                              inflight_totals_t *totals,
                              inflight_completion_t *whatp);

#endif /* KPAY_INFLIGHT_H */
