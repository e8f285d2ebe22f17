/**
 * @file kp_currency.h
 * @brief ISO 4217 currencies and their minor-unit exponents, and exact
 *        conversion between decimal strings ("12.34") and int64 minor
 *        units (1234), for the public API (issue 11).
 *
 * kpay moves int64 minor units (kp_payment.h); a person writes "12.34".
 * The conversion is exact or refused, never rounded: "12.345" in USD
 * (exponent 2) is refused, so is anything that is not plain decimal
 * digits with at most one '.' (no sign, no exponent, no whitespace, no
 * '+', no empty part, no leading zero but a single "0", at most
 * `exponent` digits after the '.') and anything beyond int64.
 *
 * The table holds the active codes of ISO 4217 that have a minor unit
 * (list one, 2025: with SLE, VED, ZWG and XCG; without the withdrawn
 * HRK, SLL, ZWL and ANG). Codes whose minor unit ISO gives as "N.A."
 * (precious metals XAU, XAG, XPD, XPT, the bond-market units XBA-XBD,
 * XDR, XSU, XUA, XTS and XXX) are not in it: a number of their minor
 * units means nothing. Everything here may be called on any thread.
 */
#ifndef KPAY_KP_CURRENCY_H
#define KPAY_KP_CURRENCY_H

#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_err.h"

/** The largest exponent in the table (CLF and UYW: 4). */
#define KP_CURRENCY_EXPONENT_MAX 4

/** Room for any int64 amount written by kp_amount_format(): 19 digits,
 *  a sign, a '.', a leading "0" and the NUL. */
#define KP_AMOUNT_DEC_SIZE 24

/** One row of the table. */
typedef struct kp_currency_info_s {
        char code[4]; /**< "USD", NUL-terminated */
        int exponent; /**< minor-unit exponent: 0..KP_CURRENCY_EXPONENT_MAX */
} kp_currency_info_t;

/** @brief The number of currencies in the table. */
size_t kp_currency_count(void);

/**
 * @brief Row @p i of the table (codes in byte order), or NULL past the
 *        end.
 */
const kp_currency_info_t *kp_currency_at(size_t i);

/**
 * @brief The minor-unit exponent of @p code ("USD" -> 2, "JPY" -> 0,
 *        "BHD" -> 3), case-sensitive.
 * @returns the exponent, or -1 when @p code is NULL or not in the table.
 */
int kp_currency_exponent(const char *code);

/**
 * @brief Converts the decimal string @p s (@p len bytes, no NUL needed)
 *        to minor units of a currency with @p exponent, exactly: "12.34"
 *        with exponent 2 is 1234, "12" is 1200, "0.05" is 5.
 *
 * Accepted: one or more digits with no leading zero (but a single "0"),
 * optionally '.' and 1..@p exponent digits (none when @p exponent is 0).
 * Zero ("0", "0.00") is accepted here: whether an amount may be 0 is the
 * Payment's rule (kp_payment_validate()).
 *
 * @returns KP_OK with *@p out set; KP_ERR_PARSE for a malformed string or
 *          more fraction digits than @p exponent (which would round);
 *          KP_ERR_OVERFLOW when the value exceeds INT64_MAX minor units;
 *          KP_ERR_INVALID_ARG for an exponent out of 0..
 *          KP_CURRENCY_EXPONENT_MAX. *@p out is untouched on error.
 */
kp_err_t kp_amount_parse(const char *s, size_t len, int exponent, int64_t *out);

/**
 * @brief Writes @p minor units of a currency with @p exponent as a
 *        decimal string: 1234 and 2 -> "12.34", 5 and 2 -> "0.05", 100
 *        and 0 -> "100", -5 and 2 -> "-0.05"; always exactly @p exponent
 *        fraction digits. kp_amount_parse() reads back every
 *        non-negative result.
 * @param buf at least KP_AMOUNT_DEC_SIZE bytes.
 * @returns the length written, or 0 for an exponent out of range (then
 *          @p buf holds "").
 */
size_t kp_amount_format(int64_t minor, int exponent, char *buf);

typedef struct json_t json_t;

/**
 * @brief The table as a new JSON object {"AED":2,...,"USD":2,...}, codes
 *        in byte order (GET /api/v1/currencies).
 * @returns a new reference.
 */
json_t *kp_currency_table_json(void);

#endif /* KPAY_KP_CURRENCY_H */
