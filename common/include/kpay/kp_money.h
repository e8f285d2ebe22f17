/**
 * @file kp_money.h
 * @brief Money kept per currency (issue 13, defect 7): a map from a
 *        currency code to an amount of minor units, and exact 128-bit sums.
 *
 * Money of different currencies is never added: every balance and every
 * total is a kp_money_t, one entry per currency (docs/pipeline.md, "Money
 * per currency"). A sum of int64 amounts does not fit an int64, so the
 * entries are 128 bits wide (kp_i128_t): a total of up to 2^63 payments of
 * up to INT64_MAX each cannot overflow, and no total can refuse a payment
 * (defect 4). Counts stay int64.
 *
 * JSON: a map is an object with the currencies in byte order, each mapped
 * to either
 * - a decimal string (KP_MONEY_JSON_STRING), what kpay writes for every
 *   balance and total: exact for every reader, a JavaScript one included
 *   (its numbers are exact only to 2^53; BigInt("...") is), and for a C one
 *   whose JSON integers are int64 (jansson);
 * - a JSON integer (KP_MONEY_JSON_INT64), for a reader that wants numbers
 *   and values that are known to stay within int64.
 */
#ifndef KPAY_KP_MONEY_H
#define KPAY_KP_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"

/** A signed 128-bit integer (GCC and clang). */
__extension__ typedef __int128 kp_i128_t;

/** Room for any kp_i128_t in decimal, sign and NUL included. */
#define KP_I128_DEC_SIZE 41

/** A currency code: exactly 3 letters A-Z, NUL-terminated. */
#define KP_CURRENCY_SIZE 4

/**
 * @brief Writes @p v in decimal ("-12", "0") into @p buf (at least
 *        KP_I128_DEC_SIZE bytes).
 * @returns the length written.
 * @locality any thread
 */
size_t kp_i128_format(kp_i128_t v, char *buf);

/**
 * @brief Parses a decimal integer, strictly: an optional '-', then digits
 *        with no leading zero (but "0"), nothing else, "-0" refused, in the
 *        range of kp_i128_t.
 * @returns KP_OK, or KP_ERR_PARSE (@p out untouched).
 * @locality any thread
 */
kp_err_t kp_i128_parse(const char *s, size_t len, kp_i128_t *out);

/** @brief 1 if @p s is a currency code: exactly 3 letters A-Z. */
int kp_currency_valid(const char *s);

/** One currency's amount. */
typedef struct kp_money_entry_s {
        char currency[KP_CURRENCY_SIZE];
        kp_i128_t amount;
} kp_money_entry_t;

/**
 * Amounts per currency, entries sorted by currency (byte order), each
 * currency at most once. A value type with an owned array: initialize
 * with kp_money_init() (or zero it), free with kp_money_clear(), copy
 * with kp_money_copy().
 */
typedef struct kp_money_s {
        kp_money_entry_t *e;
        size_t cnt;
        size_t cap;
} kp_money_t;

/** @brief An empty map. */
void kp_money_init(kp_money_t *m);

/** @brief Frees what @p m owns; it is empty afterwards (reusable). */
void kp_money_clear(kp_money_t *m);

/** @brief Makes @p dst (initialized) a deep copy of @p src. */
void kp_money_copy(kp_money_t *dst, const kp_money_t *src);

/** @brief The amount of @p currency, 0 when it has no entry. */
kp_i128_t kp_money_get(const kp_money_t *m, const char *currency);

/** @brief 1 if @p currency has an entry. */
int kp_money_has(const kp_money_t *m, const char *currency);

/**
 * @brief Sets the amount of @p currency (adding its entry if needed; an
 *        entry set to 0 stays).
 * @returns KP_OK, or KP_ERR_INVALID_ARG when @p currency is not a
 *          currency code.
 */
kp_err_t kp_money_set(kp_money_t *m, const char *currency, kp_i128_t amount);

/**
 * @brief Adds @p delta to the amount of @p currency.
 * @returns KP_OK, KP_ERR_OVERFLOW when the sum would leave kp_i128_t (not
 *          reachable by sums of int64 amounts counted by an int64: then
 *          @p m is unchanged) or KP_ERR_INVALID_ARG for a bad currency.
 */
kp_err_t kp_money_add(kp_money_t *m, const char *currency, kp_i128_t delta);

/**
 * @brief Adds every entry of @p src to @p dst, currency by currency.
 * @returns KP_OK or KP_ERR_OVERFLOW (then @p dst is unchanged).
 */
kp_err_t kp_money_add_all(kp_money_t *dst, const kp_money_t *src);

/** @brief 1 if every entry of @p m is 0 (an empty map too). */
int kp_money_is_zero(const kp_money_t *m);

/** @brief 1 if @p a and @p b have the same non-zero entries (an entry at
 *         0 is the same as none). */
int kp_money_equal(const kp_money_t *a, const kp_money_t *b);

/** How a map's amounts are written in JSON. */
typedef enum kp_money_json_e {
        KP_MONEY_JSON_STRING, /**< decimal strings: sums, exact beyond int64 */
        KP_MONEY_JSON_INT64,  /**< JSON integers: every amount within int64 */
} kp_money_json_t;

typedef struct json_t json_t;

/**
 * @brief The map as a new JSON object, currencies in byte order.
 * @returns a new reference. With KP_MONEY_JSON_INT64 every amount must fit
 *          int64 (the caller keeps it so); one that does not aborts.
 */
json_t *kp_money_to_json(const kp_money_t *m, kp_money_json_t how);

/**
 * @brief Reads a map written by kp_money_to_json(), strictly: an object
 *        whose keys are currency codes and whose values are decimal strings
 *        (kp_i128_parse()) or, with KP_MONEY_JSON_INT64, JSON integers.
 * @param m initialized; replaced on success, unchanged on error.
 * @returns KP_OK or KP_ERR_PARSE.
 */
kp_err_t kp_money_from_json(const json_t *o, kp_money_json_t how,
                            kp_money_t *m);

/** The currency of an amount stored before amounts were per currency: the
 *  Payment's default currency. */
#define KP_MONEY_LEGACY_CURRENCY "USD"

/**
 * @brief Reads the money field @p name (decimal strings) of the object
 *        @p root into @p m; when it is absent, the single integer
 *        @p legacy_name that an older kpay wrote instead (one amount for
 *        every currency) is read as that amount in
 *        KP_MONEY_LEGACY_CURRENCY (0: no entry).
 * @param m initialized; replaced on success, unchanged on error.
 * @returns KP_OK, or KP_ERR_PARSE (neither field, or one malformed).
 */
kp_err_t kp_money_from_json_field(const json_t *root, const char *name,
                                  const char *legacy_name, kp_money_t *m);

#endif /* KPAY_KP_MONEY_H */
