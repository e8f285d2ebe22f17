/**
 * @file metrics.h
 * @brief kpay-metrics' business logic as pure functions: classifying a
 *        record, tumbling windows (assignment, lateness, closing, merging),
 *        the slowest payments, SLA verdicts and burn rates. No Kafka, no
 *        store, no clock: every time is a parameter (docs/metrics.md).
 *
 * Stores of partition p:
 * - `windows`: `s:<start>` (1 s windows) and `m:<start>` (1 min windows)
 *   -> a window as JSON (metrics_window_to_json()); and the closing index
 *   `c:<due>:<window key>` -> "1", whose keys sort by the time the window
 *   is due to be emitted (its end plus the grace period, or at once after
 *   a late record amended a final window). Times are 15 decimal digits, so
 *   keys sort by time.
 * - `slowest`: `<minute start>` -> the N slowest payments of the minute
 *   (metrics_slowest_to_json()).
 *
 * Everything here may be called on any thread; nothing keeps state.
 */
#ifndef KPAY_METRICS_H
#define KPAY_METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"
#include "kpay/kp_hist.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_topics.h"

/** What kpay-metrics reads (kpay.payments.complete, kpay.dlq) and keeps
 *  (the stores `windows` and `slowest`). */
extern const kp_proc_layout_t metrics_layout;

/** The inputs of metrics_layout, by index (kp_record_t.input). */
typedef enum metrics_input_e {
        METRICS_IN_COMPLETE,
        METRICS_IN_DLQ,
} metrics_input_t;

/** The stores of metrics_layout, by index. */
typedef enum metrics_store_e {
        METRICS_ST_WINDOWS,
        METRICS_ST_SLOWEST,
} metrics_store_t;

/** The window sizes. */
typedef enum metrics_size_e {
        METRICS_1S,
        METRICS_1M,
        METRICS_SIZE__CNT
} metrics_size_t;

/** @brief The length of a window of @p size in ms (1000, 60000). */
int64_t metrics_size_ms(metrics_size_t size);

/** @brief "1s" or "1m". */
const char *metrics_size2str(metrics_size_t size);

/** @brief The size named @p s ("1s", "1m"); -1 when unknown. */
int metrics_size_parse(const char *s);

/** The latencies measured per outcome. X(NAME, "json name") */
#define METRICS_LAT_TABLE(X)                                                   \
        X(E2E, "e2e")         /* complete_ms - created_ms */                   \
        X(GATEWAY, "gateway") /* complete_ms - inflight_ms */                  \
        X(INTAKE, "intake")   /* inflight_ms - created_ms */                   \
        X(DEBIT, "debit")     /* debit_ms - inflight_ms */                     \
        X(CREDIT, "credit")   /* credit_ms - debit_ms */

typedef enum metrics_lat_e {
#define METRICS__LAT_ENUM(name, str) METRICS_LAT_##name,
        METRICS_LAT_TABLE(METRICS__LAT_ENUM)
#undef METRICS__LAT_ENUM
            METRICS_LAT__CNT
} metrics_lat_t;

/** The first stage (the stages follow it in the table). */
#define METRICS_LAT_FIRST_STAGE METRICS_LAT_INTAKE

/** @brief "e2e" for METRICS_LAT_E2E... */
const char *metrics_lat2str(metrics_lat_t lat);

/** The most distinct keys a count map of a window holds besides "other"
 *  (reasons, causes, kpay-error and kpay-service values: strings a record
 *  brings, so they are bounded). Amounts are never in such a map: they
 *  are kp_money_t, one entry per currency, never capped. */
#define METRICS_MAP_MAX_KEYS 64

/** The key counts fold into past METRICS_MAP_MAX_KEYS (also a key of its
 *  own: a rejection without a reason). */
#define METRICS_MAP_OTHER "other"

/** A small map of string -> count (reason -> outcomes...), sorted by key.
 *  Zero-initialise; release with metrics_map_clear(). */
typedef struct metrics_map_s {
        struct metrics_kv_s {
                char *key;
                int64_t v;
        } * kv;
        size_t n, cap;
} metrics_map_t;

/**
 * @brief Adds @p v to @p key (created at 0). The map keeps the
 *        METRICS_MAP_MAX_KEYS smallest keys (byte order) besides "other";
 *        the count of any larger key goes to "other" (a kept key that a
 *        smaller one displaces moves its count there). So the map is a
 *        function of the counted keys alone, whatever their order, and
 *        merging maps equals counting all their records in one.
 * @returns KP_OK or KP_ERR_OVERFLOW (the map unchanged).
 */
kp_err_t metrics_map_add(metrics_map_t *m, const char *key, int64_t v);

/** @brief The value of @p key, 0 when absent. */
int64_t metrics_map_get(const metrics_map_t *m, const char *key);

/** @brief Frees the map; it is then empty. */
void metrics_map_clear(metrics_map_t *m);

/** One window of one partition (or the merge of several). */
typedef struct metrics_window_s {
        metrics_size_t size;
        int64_t start_ms;
        int64_t complete_count;
        kp_money_t complete_amount; /**< currency -> minor units (128 bits) */
        int64_t rejected_count;
        kp_money_t rejected_amount;       /**< currency -> minor units */
        metrics_map_t rejected_by_reason; /**< reason -> count */
        int64_t invalid_count;
        metrics_map_t invalid_by_cause; /**< cause -> count */
        int64_t dlq_count;
        metrics_map_t dlq_by_error;   /**< kpay-error -> count */
        metrics_map_t dlq_by_service; /**< kpay-service -> count */
        /** Records counted after the window was due (end + grace). */
        int64_t late;
        /** Stage durations not recorded because they were negative (the
         *  hosts' clocks disagree). */
        int64_t skewed;
        /** Bit i set: an outcome was counted in second i of the window
         *  (bit 0 only for a 1 s window): the seconds in which traffic
         *  flowed, for the throughput objective. */
        int64_t active_mask;
        kp_hist_t lat[METRICS_LAT__CNT]; /**< in ms */
        /* The lifecycle, per partition: */
        int final;           /**< emitted once as final */
        int64_t closed_ms;   /**< when it was first emitted; 0 before */
        int64_t rev;         /**< records counted (changes) */
        int64_t emitted_rev; /**< rev of the last emission */
        /** Partitions merged into this window (1 for a partition's own). */
        int64_t partitions;
} metrics_window_t;

/** @brief An empty window of @p size starting at @p start_ms. */
void metrics_window_init(metrics_window_t *w, metrics_size_t size,
                         int64_t start_ms);

/** @brief Frees what the window owns; it must be initialised again. */
void metrics_window_clear(metrics_window_t *w);

/** @brief The start of the window of @p size holding time @p t_ms (>= 0). */
int64_t metrics_window_start(metrics_size_t size, int64_t t_ms);

/** @brief The end of @p w (exclusive). */
int64_t metrics_window_end(const metrics_window_t *w);

/** Room for a window key, a closing key and a slowest key. */
#define METRICS_KEY_SIZE 64

/** @brief Writes the store key of a window ("s:000001700000000000").
 *  @returns its length. */
size_t metrics_window_key(char *buf, size_t size, metrics_size_t wsize,
                          int64_t start_ms);

/** @brief Parses a window key. @returns 0 or -1 when it is not one. */
int metrics_window_key_parse(const char *key, size_t klen,
                             metrics_size_t *wsize, int64_t *start_ms);

/** The prefix of the closing index. */
#define METRICS_CLOSE_PREFIX "c:"

/** @brief Writes the closing key "c:<due>:<window key>". @returns length. */
size_t metrics_close_key(char *buf, size_t size, int64_t due_ms,
                         const char *wkey);

/**
 * @brief Parses a closing key. @returns 1 with the due time and a pointer
 *        to the window key inside @p key; 0 when @p key is past the index
 *        (not "c:"); -1 when malformed.
 */
int metrics_close_key_parse(const char *key, size_t klen, int64_t *due_ms,
                            const char **wkey, size_t *wklen);

/** @brief The key of kpay.metrics.windows: "<size>/<start>/<partition>". */
size_t metrics_topic_key(char *buf, size_t size, const metrics_window_t *w,
                         int32_t partition);

/** The options of the logic. */
typedef struct metrics_conf_s {
        int64_t grace_ms;                        /**< default 2000 */
        int64_t retention_ms[METRICS_SIZE__CNT]; /**< 1 h, 7 days */
        int64_t max_future_ms; /**< later event times are invalid */
        int64_t slowest_n;     /**< N slowest payments per minute */
} metrics_conf_t;

/** What a record is to kpay-metrics. */
typedef enum metrics_kind_e {
        METRICS_OUTCOME,     /**< a COMPLETE or REJECTED to count */
        METRICS_INVALID,     /**< counted under invalid, by cause */
        METRICS_DEAD_LETTER, /**< a record of kpay.dlq */
} metrics_kind_t;

/** A record, classified. */
typedef struct metrics_event_s {
        metrics_kind_t kind;
        int64_t event_ms; /**< the time that places it in a window */
        /* METRICS_OUTCOME */
        int complete; /**< 1 COMPLETE, 0 REJECTED */
        char id[KP_PAYMENT_ID_MAX + 2];
        char currency[KP_PAYMENT_CURRENCY_MAX + 2];
        int64_t amount;
        char reason[KP_PAYMENT_REASON_MAX + 2]; /**< "other" when none */
        int64_t created_ms;
        int64_t lat[METRICS_LAT__CNT]; /**< ms, or -1 when not measured */
        int skewed;                    /**< negative stages dropped */
        /* METRICS_INVALID: a static string (docs/metrics.md lists them) */
        const char *cause;
        /* METRICS_DEAD_LETTER */
        char error[KP_PAYMENT_REASON_MAX + 2];
        char service[KP_PAYMENT_REASON_MAX + 2];
} metrics_event_t;

/**
 * @brief Classifies a record of kpay.payments.complete: @p p when it
 *        parsed (@p perr KP_PAY_E_OK), else the parse error. Invalid
 *        records (a broken record; a state other than COMPLETE or
 *        REJECTED; created_ms or complete_ms missing, negative, in the
 *        future by more than max_future_ms, or complete_ms before
 *        created_ms; an amount <= 0; a bad currency) are METRICS_INVALID,
 *        placed at @p now_ms.
 */
void metrics_classify_payment(const kp_payment_t *p, kp_pay_err_t perr,
                              int64_t now_ms, const metrics_conf_t *conf,
                              metrics_event_t *ev);

/**
 * @brief Classifies a record of kpay.dlq from its kpay-error and
 *        kpay-service headers (NULL: "unknown") and its timestamp (<= 0 or
 *        in the future: @p now_ms).
 */
void metrics_classify_dead_letter(const char *error, size_t error_len,
                                  const char *service, size_t service_len,
                                  int64_t timestamp_ms, int64_t now_ms,
                                  const metrics_conf_t *conf,
                                  metrics_event_t *ev);

/** @brief Turns @p ev into an invalid record with @p cause (same time). */
void metrics_event_make_invalid(metrics_event_t *ev, const char *cause);

/**
 * @brief 1 if the window of @p size for @p ev is older than the retention
 *        at @p now_ms (not counted in that size: it was deleted).
 */
int metrics_event_expired(const metrics_event_t *ev, metrics_size_t size,
                          int64_t now_ms, const metrics_conf_t *conf);

/**
 * @brief Counts @p ev in @p w (the window of its time); a record counted
 *        at or after the window's end plus the grace period is also
 *        counted as late. rev + 1.
 * @returns KP_OK; KP_ERR_OVERFLOW when a figure would overflow (then @p w
 *          is unspecified: reload it, and count the record as invalid
 *          "overflow" instead).
 */
kp_err_t metrics_window_add(metrics_window_t *w, const metrics_event_t *ev,
                            int64_t now_ms, int64_t grace_ms);

/** What punctuation does with a window whose closing key is due. */
typedef enum metrics_close_e {
        METRICS_CLOSE_NOTHING, /**< not due yet, or nothing new */
        METRICS_CLOSE_FINAL,   /**< emit it as final for the first time */
        METRICS_CLOSE_AMEND,   /**< emit it again: late records amended it */
} metrics_close_t;

/** @brief What to do with @p w at @p now_ms. */
metrics_close_t metrics_window_due(const metrics_window_t *w, int64_t now_ms,
                                   int64_t grace_ms);

/**
 * @brief When @p w next wants punctuation under the grace period in force:
 *        its end plus @p grace_ms while it is not final; @p now_ms once a
 *        late record amended it since its last emission; -1 when nothing
 *        is pending. A closing key that fires before this (it was written
 *        under a shorter grace period, before a restart with a longer one)
 *        is put back at this time rather than dropped.
 */
int64_t metrics_window_next_due(const metrics_window_t *w, int64_t now_ms,
                                int64_t grace_ms);

/** @brief Marks @p w emitted at @p now_ms (final, closed_ms the first time,
 *         emitted_rev = rev). */
void metrics_window_emitted(metrics_window_t *w, int64_t now_ms);

/**
 * @brief Adds @p src to @p dst (the same size and start): counts and
 *        amounts add per key, histograms merge, late and skewed add; final
 *        only when both are; closed_ms the later; rev and emitted_rev add;
 *        partitions add. The merge is associative and commutative, so any
 *        grouping of partitions and instances gives the same answer.
 * @returns KP_OK, KP_ERR_OVERFLOW or KP_ERR_INVALID_ARG (another window).
 */
kp_err_t metrics_window_merge(metrics_window_t *dst,
                              const metrics_window_t *src);

/** Flags of metrics_window_to_json(). */
#define METRICS_JSON_STORE 0x1 /**< include rev/emitted_rev (the store) */

/** @brief The window as JSON (docs/metrics.md, "Windows"). A new ref. */
json_t *metrics_window_to_json(const metrics_window_t *w, int flags);

/** @brief metrics_window_to_json() as a kp_malloc()ed string. */
char *metrics_window_encode(const metrics_window_t *w, int flags, size_t *lenp);

/**
 * @brief Reads a window from its JSON (what metrics_window_to_json()
 *        wrote, with or without the store fields), strictly.
 * @returns KP_OK with @p w initialised (clear it), or KP_ERR_PARSE with a
 *          reason (then @p w needs no clearing).
 */
kp_err_t metrics_window_from_json(const json_t *j, metrics_window_t *w,
                                  char *errstr, size_t errstr_size);

/** @brief metrics_window_from_json() of a string. */
kp_err_t metrics_window_decode(const void *buf, size_t len, metrics_window_t *w,
                               char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------------
 * The slowest payments of a minute.
 */

/** One slow payment. */
typedef struct metrics_slow_s {
        char id[KP_PAYMENT_ID_MAX + 2];
        int64_t latency_ms; /**< e2e */
        int64_t created_ms;
        int64_t stage[METRICS_LAT__CNT]; /**< -1 when not measured */
        int32_t partition;
} metrics_slow_t;

/** The N slowest payments of a minute, slowest first (ties: id order). */
typedef struct metrics_slowest_s {
        int64_t minute_ms;
        size_t n;
        metrics_slow_t *items; /**< kp_malloc()ed, up to cap */
        size_t cap;
} metrics_slowest_t;

/** @brief Frees the list; it is then empty. */
void metrics_slowest_clear(metrics_slowest_t *s);

/**
 * @brief Offers @p item to the list of at most @p max entries.
 * @returns 1 if the list changed (store it), 0 if @p item is not among
 *          the slowest.
 */
int metrics_slowest_offer(metrics_slowest_t *s, const metrics_slow_t *item,
                          size_t max);

/** @brief Merges @p src into @p dst keeping the @p max slowest. */
void metrics_slowest_merge(metrics_slowest_t *dst, const metrics_slowest_t *src,
                           size_t max);

/** @brief The slow payment of an outcome event. */
void metrics_slow_of(const metrics_event_t *ev, int32_t partition,
                     metrics_slow_t *item);

/** @brief The store key of a minute's list ("000001700000000000"). */
size_t metrics_slowest_key(char *buf, size_t size, int64_t minute_ms);

/** @brief As JSON {"minute_ms","items":[{"id","latency_ms",...}]}. */
json_t *metrics_slowest_to_json(const metrics_slowest_t *s);

/** @brief Reads what metrics_slowest_to_json() wrote. KP_OK/KP_ERR_PARSE. */
kp_err_t metrics_slowest_decode(const void *buf, size_t len,
                                metrics_slowest_t *s, char *errstr,
                                size_t errstr_size);

/* ------------------------------------------------------------------------
 * SLA.
 */

/** The objectives (docs/metrics.md, "SLA"). */
typedef struct metrics_objectives_s {
        int64_t p99_ms;           /**< p99 of e2e below it (200) */
        int64_t min_throughput;   /**< outcomes/s while traffic flows */
        int64_t max_rejection_bp; /**< rejected/outcomes below it, in
                                       basis points (100 = 1 %) */
} metrics_objectives_t;

/** A verdict on a window or a period. */
typedef struct metrics_verdict_s {
        int64_t outcomes;        /**< COMPLETE + REJECTED */
        int64_t traffic_seconds; /**< seconds with an outcome */
        double throughput;       /**< outcomes per traffic second */
        int64_t p99_ms;          /**< -1 without outcomes */
        double rejection_rate;   /**< 0..1 */
        int latency_ok, throughput_ok, rejection_ok, ok;
        /** Fraction of the error budget burnt per unit of its allowance:
         *  slow outcomes (e2e >= p99_ms) / 1 %, rejections / the maximum
         *  rate; burn_rate is the larger. 1 spends the budget exactly at
         *  the allowed pace. */
        double latency_burn, rejection_burn, burn_rate;
} metrics_verdict_t;

/**
 * @brief Judges @p w (a window, or the merge of a period's windows with
 *        @p traffic_seconds the seconds in which traffic flowed; -1: those
 *        of @p w's active_mask) against @p obj. Without outcomes every
 *        objective holds.
 */
void metrics_verdict(const metrics_window_t *w, int64_t traffic_seconds,
                     const metrics_objectives_t *obj, metrics_verdict_t *v);

/** @brief The verdict as JSON. A new reference. */
json_t *metrics_verdict_to_json(const metrics_verdict_t *v);

#endif /* KPAY_METRICS_H */
