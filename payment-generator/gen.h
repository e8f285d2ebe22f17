/**
 * @file gen.h
 * @brief kpay-gen's logic as pure functions (no Kafka): option parsing
 *        helpers, the deterministic payment stream, broken-record bodies,
 *        the send schedule, the outcome tracker, percentiles and the
 *        summary.
 *
 * The stream is counter based: record k of a run is a function of the seed,
 * the generator parameters and k alone (gen_record()), so a seed reproduces
 * a stream exactly, and any record can be recomputed without the ones
 * before it. main.c only moves these records to Kafka and the outcomes back.
 */
#ifndef KPAY_GEN_H
#define KPAY_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kpay/kp_err.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"

/** One million: ratios are parts per million. */
#define GEN_PPM 1000000u

/** The payer of funding payments. */
#define GEN_FUND_ACCOUNT "@bank"

/** What follows the id prefix in the id of funding payment i: "fund-<i>". */
#define GEN_FUND_TAG "fund-"

/** The longest id prefix: the prefix, "fund-" and 20 digits fit 128. */
#define GEN_ID_PREFIX_MAX (KP_PAYMENT_ID_MAX - 5 - 20)

/* ------------------------------------------------------------------------
 * Argument parsing. Each returns KP_OK or KP_ERR_INVALID_ARG with a
 * one-line reason in errstr (without the program name). */

/**
 * @brief Parses "MIN:MAX" (or "N", meaning N:N), amounts in minor units:
 *        two decimal int64, 1 <= MIN <= MAX.
 */
kp_err_t gen_parse_amount_range(const char *s, int64_t *minp, int64_t *maxp,
                                char *errstr, size_t errstr_size);

/**
 * @brief Parses a ratio between 0 and 1 written in decimal ("0", "0.05",
 *        "1", "1.000000") exactly into parts per million: at most six
 *        decimals, no sign, no exponent, no spaces, no floating point.
 *        "0.05" gives 50000, "1" gives 1000000.
 */
kp_err_t gen_parse_ratio_ppm(const char *s, uint32_t *ppmp, char *errstr,
                             size_t errstr_size);

/**
 * @brief Checks an id prefix: at most GEN_ID_PREFIX_MAX printable ASCII
 *        characters, so that every id it makes is a valid payment id.
 */
kp_err_t gen_check_id_prefix(const char *prefix, char *errstr,
                             size_t errstr_size);

/* ------------------------------------------------------------------------
 * Deterministic randomness (not rand(): the same on every platform). */

/** @brief splitmix64's finaliser: a bijective 64-bit mix. */
uint64_t gen_mix64(uint64_t x);

/**
 * @brief A uniform 64-bit draw that depends only on @p seed, @p index and
 *        @p stream (which independent draw of the record it is).
 */
uint64_t gen_draw(uint64_t seed, uint64_t index, uint32_t stream);

/* ------------------------------------------------------------------------
 * The stream. */

/** What the generator makes of one record of the stream. */
typedef enum gen_kind_e {
        GEN_VALID,     /**< a new, well-formed payment */
        GEN_DUPLICATE, /**< an earlier valid payment, resent as it was */
        GEN_INVALID,   /**< a broken record, dead-lettered by kpay-inflight */
} gen_kind_t;

/** The kinds of broken records, used in turn (chosen by a draw), with the
 *  `kpay-error` kpay-inflight dead-letters each with. */
typedef enum gen_invalid_e {
        GEN_INV_NOT_JSON,        /**< plain text: not_json */
        GEN_INV_FLOAT_AMOUNT,    /**< "amount":12.5: amount_not_integer */
        GEN_INV_STRING_AMOUNT,   /**< "amount":"1250": amount_not_integer */
        GEN_INV_UNKNOWN_VERSION, /**< "v":2: unknown_version */
        GEN_INV_MISSING_FIELD,   /**< no "from": missing_field */
        GEN_INV_TRUNCATED,       /**< cut in the middle: not_json */
        GEN_INV__CNT
} gen_invalid_t;

/** @brief A short name of @p kind ("float_amount"). */
const char *gen_invalid_name(gen_invalid_t kind);

/** The parameters that define a stream. */
typedef struct gen_params_s {
        uint64_t seed;
        int64_t accounts;       /**< >= 2; accounts are acc-0 .. acc-N-1 */
        int64_t amount_min;     /**< >= 1 */
        int64_t amount_max;     /**< >= amount_min */
        uint32_t invalid_ppm;   /**< share of broken records */
        uint32_t duplicate_ppm; /**< share of resent records */
} gen_params_t;

/** Record k of the stream. */
typedef struct gen_record_s {
        uint64_t index; /**< k */
        gen_kind_t kind;
        gen_invalid_t invalid; /**< GEN_INVALID only */
        /** The payment number whose id the record carries: k itself, or for
         *  a duplicate the earlier valid record it repeats. */
        uint64_t payment;
        int64_t from;   /**< payer account number */
        int64_t to;     /**< payee account number, != from */
        int64_t amount; /**< in [amount_min, amount_max] */
} gen_record_t;

/**
 * @brief Checks @p gp: accounts >= 2, 1 <= amount_min <= amount_max,
 *        ratios <= 1 and their sum <= 1.
 */
kp_err_t gen_params_check(const gen_params_t *gp, char *errstr,
                          size_t errstr_size);

/**
 * @brief Record @p index of the stream defined by @p gp (checked).
 *
 * A duplicate repeats a uniformly drawn earlier valid record (the nearest
 * valid one at or before the draw); record 0, or a record with no valid
 * one before it, is a new payment instead.
 */
void gen_record(const gen_params_t *gp, uint64_t index, gen_record_t *rec);

/** @brief Writes account id "acc-<n>" into @p buf. @returns @p buf. */
char *gen_account_id(char *buf, size_t size, int64_t n);

/** @brief Writes "<prefix><n>" into @p buf. @returns @p buf. */
char *gen_payment_id(char *buf, size_t size, const char *prefix, uint64_t n);

/** @brief Writes "<prefix>fund-<i>" into @p buf. @returns @p buf. */
char *gen_fund_id(char *buf, size_t size, const char *prefix, int64_t i);

/**
 * @brief Fills @p p with the INCOMING payment of @p rec (its payment
 *        number's id, accounts and amount, currency USD, @p created_ms).
 *        @p p owns nothing (no kp_payment_clear() needed).
 */
void gen_payment(const char *prefix, const gen_record_t *rec,
                 int64_t created_ms, kp_payment_t *p);

/**
 * @brief Fills @p p with funding payment @p i: @p amount from @bank to
 *        acc-<i>, id "<prefix>fund-<i>".
 */
void gen_fund_payment(const char *prefix, int64_t i, int64_t amount,
                      int64_t created_ms, kp_payment_t *p);

/**
 * @brief The value of a record: the Payment JSON of @p p for a valid record
 *        or a duplicate, else @p p turned into a broken record of kind
 *        @p invalid (it keeps the id where the kind has one).
 * @returns a kp_malloc()ed buffer (NUL-terminated); *lenp gets its length.
 */
char *gen_body(const kp_payment_t *p, gen_kind_t kind, gen_invalid_t invalid,
               size_t *lenp);

/* ------------------------------------------------------------------------
 * The schedule. */

/**
 * @brief When record @p k is due, in ns on the clock of @p start_ns:
 *        start + k / rate seconds, computed exactly (no drift however many
 *        records). A rate of 0 means as fast as possible: always start.
 */
int64_t gen_due_ns(int64_t start_ns, uint64_t k, int64_t rate);

/* ------------------------------------------------------------------------
 * Percentiles. */

/** @brief Sorts @p v ascending. */
void gen_sort_i64(int64_t *v, size_t n);

/**
 * @brief The nearest-rank percentile @p pct (1-100) of the sorted array
 *        @p v: the smallest value with at least pct% of the values at or
 *        below it. @returns 0 when @p n is 0.
 */
int64_t gen_percentile(const int64_t *v, size_t n, unsigned pct);

/* ------------------------------------------------------------------------
 * Outcome tracking (--fund, --wait). */

typedef struct gen_tracker_s gen_tracker_t;

/**
 * @brief A tracker of the outcomes of the payments of one run: ids
 *        "<prefix><n>" and "<prefix>fund-<i>" (i < @p fund_cnt).
 *        The prefix is copied.
 */
gen_tracker_t *gen_tracker_new(const char *prefix, int64_t fund_cnt);

/** @brief Frees the tracker. NULL is a no-op. */
void gen_tracker_destroy(gen_tracker_t *t);

/** @brief Payment @p n was sent and should get an outcome. */
void gen_tracker_expect(gen_tracker_t *t, uint64_t n);

/** @brief Funding payment @p i was sent and should get an outcome. */
void gen_tracker_expect_fund(gen_tracker_t *t, int64_t i);

/**
 * @brief The record of payment @p n (or funding payment n when @p fund)
 *        was not delivered: no outcome is expected for it any more.
 */
void gen_tracker_failed(gen_tracker_t *t, int fund, uint64_t n);

/**
 * @brief Accounts for one record read from kpay.payments.complete.
 * @returns 1 if it is an outcome (COMPLETE or REJECTED) of a payment of
 *          this run, else 0 (another producer's, or not an outcome).
 */
int gen_tracker_outcome(gen_tracker_t *t, const kp_payment_t *p);

/** @brief Payments expected and still without an outcome. */
int64_t gen_tracker_pending(const gen_tracker_t *t);

/** @brief Funding payments expected and still without an outcome. */
int64_t gen_tracker_pending_fund(const gen_tracker_t *t);

/** @brief Payments (funding included) sent that should get an outcome. */
int64_t gen_tracker_expected(const gen_tracker_t *t);

/**
 * @brief Payments (funding included) waited for: those with an outcome
 *        plus those pending (so not those that failed delivery and have
 *        none).
 */
int64_t gen_tracker_awaited(const gen_tracker_t *t);

/** What the tracker saw, for the summary. */
typedef struct gen_outcomes_s {
        int64_t expected;           /**< payments sent that should get one */
        int64_t undelivered;        /**< of which failed delivery */
        int64_t outcomes;           /**< distinct payments with an outcome */
        int64_t complete;           /**< first outcomes that are COMPLETE */
        int64_t rejected;           /**< first outcomes that are REJECTED */
        size_t reason_cnt;          /**< rejections by reason: */
        const char *const *reasons; /**< reason names (tracker-owned) */
        const int64_t *reason_counts;
        int64_t missing;           /**< expected, no outcome */
        int64_t multiple_outcomes; /**< payments with more than one */
        int64_t unexpected;        /**< outcomes of records not expected */
        int64_t latency_cnt;       /**< latencies measured */
        int64_t p50_ms, p95_ms, p99_ms, max_ms;
} gen_outcomes_t;

/**
 * @brief Fills @p out (valid until the tracker changes or is destroyed),
 *        computing the latency percentiles (complete_ms - created_ms of
 *        first outcomes).
 */
void gen_tracker_outcomes(gen_tracker_t *t, gen_outcomes_t *out);

/* ------------------------------------------------------------------------
 * Progress and summary. */

/**
 * @brief The live progress line (no newline): sent, of how many (@p total,
 *        or -1 when bounded by time), acked, the rate and an ETA
 *        (@p eta_s, or -1 when unknown).
 * @returns @p buf.
 */
char *gen_progress_line(char *buf, size_t size, int64_t sent, int64_t total,
                        int64_t acked, int64_t rate_x10, int64_t eta_s);

/* ------------------------------------------------------------------------
 * The books: every balance, per currency (docs/pipeline.md, "Money per
 * currency"). */

/** The sums of every account's balances, read from kpay-account's
 *  `balances` store (its changelog). Initialize with gen_books_init(),
 *  free with gen_books_clear(). */
typedef struct gen_books_s {
        kp_money_t sums;   /**< per currency, system accounts included */
        int64_t accounts;  /**< account values read */
        int64_t overdrawn; /**< regular accounts below 0 in a currency */
        int64_t corrupt;   /**< values that do not decode */
} gen_books_t;

/** @brief Empty books. */
void gen_books_init(gen_books_t *b);

/** @brief Frees what @p b owns; it is empty afterwards. */
void gen_books_clear(gen_books_t *b);

/**
 * @brief Adds account @p account's `balances` store value (@p val,
 *        acct_decode()'s format) to the books: its balances to the sums,
 *        currency by currency, and counts it overdrawn when it is a regular
 *        account below 0 in a currency. A value that does not decode is
 *        counted in corrupt (the books are then unknown).
 */
void gen_books_add(gen_books_t *b, const char *account, size_t account_len,
                   const void *val, size_t len);

/** @brief 1 if the books balance: every currency sums to exactly 0, no
 *         regular account is overdrawn, and every value decoded. */
int gen_books_balanced(const gen_books_t *b);

/** kpay-metrics' view of the run (--metrics URL): its 1 s windows of the
 *  run's time range, merged. */
typedef struct gen_server_s {
        int fetched;      /**< 0: unavailable, see error */
        char error[256];  /**< why it is unavailable */
        const char *url;  /**< --metrics */
        int64_t from_ms;  /**< the windows from this second on */
        int64_t windows;  /**< windows with records */
        int all_final;    /**< every window was final */
        int64_t complete; /**< COMPLETE outcomes counted */
        int64_t rejected; /**< REJECTED outcomes counted */
        int64_t invalid;  /**< records counted as invalid */
        int64_t late;     /**< records counted after their window was due */
        int64_t latency_cnt;
        int64_t p50_ms, p95_ms, p99_ms, max_ms; /**< e2e, merged */
} gen_server_t;

/**
 * @brief Fills @p v from a /v1/metrics/windows answer (@p json): counts
 *        summed, the e2e histograms merged (kp_hist) and their percentiles.
 * @returns KP_OK (v->fetched 1) or KP_ERR_PARSE with a reason in
 *          v->error.
 */
kp_err_t gen_server_view(const char *json, size_t len, gen_server_t *v);

/** The totals of a run. */
typedef struct gen_summary_s {
        const char *topic;
        const char *id_prefix;
        uint64_t seed;
        int64_t sent;            /**< records produced, funding included */
        int64_t acked;           /**< records the broker acknowledged */
        int64_t failed;          /**< records that failed delivery */
        int64_t duplicates_sent; /**< of which resent payments */
        int64_t invalid_sent;    /**< of which broken records */
        int64_t funded;          /**< of which funding payments */
        int64_t elapsed_ms;      /**< the stream: first send to last ack */
        int interrupted;         /**< stopped by a signal */
        int waited;              /**< outcomes below are filled */
        int timed_out;           /**< the wait ended before every outcome */
        int64_t wait_ms;         /**< how long the wait took */
        gen_outcomes_t outcomes;
        /** After the wait, the books (NULL: not read, e.g. timed out). */
        const gen_books_t *books;
        const gen_server_t *server; /**< --metrics, or NULL */
} gen_summary_t;

/**
 * @brief The stream's rate in tenths of records per second: (sent -
 *        funded) * 10000 / elapsed_ms, rounded down; 0 when no time passed.
 */
int64_t gen_rate_x10(int64_t records, int64_t elapsed_ms);

/**
 * @brief The summary as one compact JSON object:
 *        {"topic","id_prefix","seed","sent","acked","failed",
 *         "duplicates_sent","invalid_sent","funded","elapsed_s","rate",
 *         "interrupted"} and, when waited: "outcomes" {"complete",
 *        "rejected","rejected_by_reason"{...}}, "latency_ms" {"p50","p95",
 *        "p99","max"}, "expected", "undelivered", "missing",
 *        "multiple_outcomes",
 *        "unexpected", "wait_s", "timed_out"; with books: "books"
 *        {"balanced","accounts","overdrawn","corrupt","sums"{currency:
 *        "minor units"}} (the sums are decimal strings); with --metrics,
 *        "server" {"url","fetched","error"|"from_ms","windows","all_final",
 *        "complete","rejected","invalid","late","latency_ms"{...}}.
 * @returns a kp_malloc()ed string.
 */
char *gen_summary_json(const gen_summary_t *s);

/** @brief Writes the summary for people to @p fp. */
void gen_summary_print(const gen_summary_t *s, FILE *fp);

#endif /* KPAY_GEN_H */
