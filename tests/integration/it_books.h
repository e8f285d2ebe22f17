/* The books of a running pipeline, read the way an auditor would: every
 * outcome on kpay.payments.complete, every balance, the in-flight and the
 * confirmed totals, each through the daemons' HTTP store API. The checks of
 * docs/pipeline.md ("Invariants") are written once, here, so that a change
 * of the stores' JSON (per-currency amounts, say) is adapted in one place:
 * it_books_amount(). Stores are read with it_store_items() (it_util.h). */
#ifndef KPAY_IT_BOOKS_H
#define KPAY_IT_BOOKS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/**
 * The amount of @p currency in field @p field of a store value: either
 * @p field is an amount (one currency per deployment: the amount is in
 * @p currency), or @p field or its plural (`balance` -> `balances`,
 * decision D1) is an object currency -> amount (absent: 0). An amount is
 * a JSON integer or a decimal string. Fails the test for anything else.
 */
int64_t it_books_amount(const json_t *value, const char *field,
                        const char *currency);

/** The outcomes on kpay.payments.complete of the payments whose id starts
 *  with a prefix. */
typedef struct it_outcomes_s {
        size_t ids;              /**< distinct payment ids with an outcome */
        size_t total;            /**< outcome records */
        size_t multiple;         /**< ids with more than one outcome */
        size_t complete;         /**< COMPLETE outcomes */
        size_t rejected;         /**< REJECTED outcomes */
        int64_t complete_amount; /**< sum of the COMPLETE amounts (one
                                      currency, checked) */
        int64_t rejected_amount;
        char first_multiple[160]; /**< one id with several outcomes */
} it_outcomes_t;

/** Reads every committed outcome of @p topic for ids starting with
 *  @p id_prefix (NULL: all) in @p currency; fails on another state or
 *  currency, or on an amount sum that would overflow. */
void it_books_outcomes(const char *topic, const char *id_prefix,
                       const char *currency, it_outcomes_t *o);

/** The balances of every account, merged over the @p cnt instances of
 *  kpay-account at @p endpoints: account -> amount in @p currency. Fails
 *  when an account is served by two instances. */
json_t *it_books_balances(const char *const *endpoints, size_t cnt,
                          const char *currency);

/** Sum of integer field @p field (in @p currency when it is an amount) of
 *  every item of @p store whose key starts with @p key_prefix (NULL: all),
 *  over the @p cnt instances at @p endpoints. */
int64_t it_books_store_sum(const char *const *endpoints, size_t cnt,
                           const char *store, const char *key_prefix,
                           const char *field, const char *currency);

#endif
