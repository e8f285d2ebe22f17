/**
 * @file kp_payment.h
 * @brief The Payment event (schema version 1) and account commands: parse,
 *        validate, serialize (DESIGN.md §3, docs/events.md).
 *
 * Parsing separates two kinds of bad input:
 * - broken records (not JSON, not an object, a field of the wrong JSON type,
 *   a required field missing, an unknown schema version, an integer out of
 *   int64 range): kp_payment_parse() fails with a KP_PAY_E_* code and the
 *   record goes to the DLQ unchanged;
 * - well-formed payments that break a business rule (amount <= 0,
 *   from == to, a malformed id, an unknown state): kp_payment_parse()
 *   succeeds and kp_payment_validate() names the reason, so that the
 *   payment can be REJECTED and its client learns the outcome.
 *
 * Unknown fields are kept (in `extra`) and written back by
 * kp_payment_serialize(), so forwarding preserves them.
 */
#ifndef KPAY_KP_PAYMENT_H
#define KPAY_KP_PAYMENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_audit.h"

#define KP_PAYMENT_VERSION 1
#define KP_PAYMENT_ID_MAX  128
#define KP_ACCOUNT_ID_MAX  64
/** The longest valid account id with its optional '@': what the parser
 *  keeps whole, so that a longer one stays longer (and invalid) and is
 *  never cut into a valid id. */
#define KP_ACCOUNT_FIELD_MAX    (KP_ACCOUNT_ID_MAX + 1)
#define KP_PAYMENT_REASON_MAX   64
#define KP_PAYMENT_CURRENCY_MAX 8

/** Why a record is not a parsable Payment (it goes to the DLQ).
 *  X(NAME, "kpay-error header value", description) */
#define KP_PAY_ERR_TABLE(X)                                                    \
        X(OK, "ok", "no error")                                                \
        X(NOT_JSON, "not_json",                                                \
          "not valid JSON (or not UTF-8, or an integer "                       \
          "outside int64)")                                                    \
        X(NOT_OBJECT, "not_object", "JSON, but not an object")                 \
        X(NO_VERSION, "no_version", "field v is missing or not an integer")    \
        X(UNKNOWN_VERSION, "unknown_version",                                  \
          "schema version higher than this daemon knows (or below 1)")         \
        X(MISSING_FIELD, "missing_field", "a required field is missing")       \
        X(WRONG_TYPE, "wrong_type", "a field has the wrong JSON type")         \
        X(AMOUNT_NOT_INTEGER, "amount_not_integer",                            \
          "amount is not an integer number of minor units")                    \
        X(TOO_LONG, "too_long", "a string field is far over its limit")

typedef enum kp_pay_err_e {
#define KP__PAY_ENUM(name, code, desc) KP_PAY_E_##name,
        KP_PAY_ERR_TABLE(KP__PAY_ENUM)
#undef KP__PAY_ENUM
} kp_pay_err_t;

/** @brief The DLQ error code ("wrong_type") of @p err. */
const char *kp_pay_err2code(kp_pay_err_t err);
/** @brief A description of @p err. */
const char *kp_pay_err2str(kp_pay_err_t err);

/** Why kpay rejects (or refunds) a well-formed payment: the one list of
 *  the reasons kpay decides, in Payment.reason on the wire and in the
 *  reason label of the daemons' counters (docs/events.md lists the same).
 *  X(NAME, "wire code", description) */
#define KP_REASON_TABLE(X)                                                     \
        X(INVALID_STATE, "invalid_state",                                      \
          "a record on kpay.payments.incoming whose state is not INCOMING "    \
          "(or is unknown)")                                                   \
        X(INVALID_ID, "invalid_id", "id not 1-128 printable ASCII characters") \
        X(INVALID_ACCOUNT, "invalid_account",                                  \
          "from or to not a valid account id")                                 \
        X(SAME_ACCOUNT, "same_account", "from equals to")                      \
        X(INVALID_AMOUNT, "invalid_amount", "amount <= 0")                     \
        X(INVALID_CURRENCY, "invalid_currency",                                \
          "currency not 3 upper-case letters")                                 \
        X(INSUFFICIENT_FUNDS, "insufficient_funds",                            \
          "the debit would take a regular payer below -overdraft_limit")       \
        X(ACCOUNT_FROZEN, "account_frozen",                                    \
          "the payer or the payee is frozen")                                  \
        X(BALANCE_OVERFLOW, "balance_overflow",                                \
          "the debit or the credit would overflow int64")                      \
        X(REFUNDED, "refunded",                                                \
          "the payer was credited back after a refund that carried no "        \
          "reason")

/** A rejection reason. KP_REASON_NONE is no reason (a valid payment, an
 *  empty Payment.reason); KP_REASON_OTHER stands for any reason string
 *  kpay does not know, which foreign records may carry. */
typedef enum kp_reason_e {
        KP_REASON_NONE = 0,
#define KP__REASON_ENUM(name, code, desc) KP_REASON_##name,
        KP_REASON_TABLE(KP__REASON_ENUM)
#undef KP__REASON_ENUM
            KP_REASON_OTHER,
        KP_REASON__CNT
} kp_reason_t;

/**
 * @brief The wire code of @p reason ("insufficient_funds"): "" for
 *        KP_REASON_NONE, "other" for KP_REASON_OTHER and any value out of
 *        range.
 * @returns a static string.
 * @locality any thread
 */
const char *kp_reason2str(kp_reason_t reason);

/**
 * @brief The reason whose wire code is @p code (case-sensitive).
 * @returns KP_REASON_NONE for NULL or "", KP_REASON_OTHER for a code that
 *          is not in KP_REASON_TABLE.
 * @locality any thread
 */
kp_reason_t kp_reason_from_str(const char *code);

typedef enum kp_pay_state_e {
        KP_PAY_INCOMING,
        KP_PAY_DEBIT,
        KP_PAY_CREDIT,
        KP_PAY_COMPLETE,
        KP_PAY_CONFIRMED,
        KP_PAY_REJECTED,
        KP_PAY_REFUND,
        KP_PAY_STATE_UNKNOWN, /**< a state string kpay does not know */
} kp_pay_state_t;

/** @brief "DEBIT" for KP_PAY_DEBIT; "UNKNOWN" for KP_PAY_STATE_UNKNOWN. */
const char *kp_pay_state2str(kp_pay_state_t state);

/** A Payment. Strings are NUL-terminated copies; `extra` holds the unknown
 *  fields (a JSON object owned by the payment, or NULL). */
typedef struct kp_payment_s {
        int v;
        /* Ids are kept up to a little over their limits so that validation
         * can tell "too long" from "truncated"; far longer strings are
         * KP_PAY_E_TOO_LONG. */
        char id[KP_PAYMENT_ID_MAX + 2];
        char from[KP_ACCOUNT_FIELD_MAX + 2];
        char to[KP_ACCOUNT_FIELD_MAX + 2];
        int64_t amount; /**< minor units */
        char currency[KP_PAYMENT_CURRENCY_MAX + 2];
        kp_pay_state_t state;
        char reason[KP_PAYMENT_REASON_MAX + 2]; /**< "" when null */
        int64_t created_ms;
        int64_t inflight_ms;      /**< -1 when null */
        int64_t complete_ms;      /**< -1 when null */
        int32_t origin_partition; /**< -1 when null */
        /** Stage stamps (docs/events.md): when kpay-account emitted the
         *  CREDIT after debiting the payer, and the COMPLETE after crediting
         *  the payee; -1 when null. Written only when set. */
        int64_t debit_ms;
        int64_t credit_ms;
        json_t *extra;
} kp_payment_t;

/**
 * @brief Parses one Payment.
 *
 * Required: v (integer), id, from, to (strings), amount (JSON integer),
 * state (string). Optional (null or absent): currency (string, default
 * "USD"), reason (string), created_ms, inflight_ms, complete_ms,
 * origin_partition, debit_ms, credit_ms (integers). Strings over 4x their limit
 * are KP_PAY_E_TOO_LONG; shorter overlong strings parse and fail validation.
 *
 * @param detail receives a one-line explanation naming the field.
 * @returns KP_PAY_E_OK with @p p filled (release with kp_payment_clear()),
 *          or the error (then @p p needs no clearing).
 * @locality any thread
 */
kp_pay_err_t kp_payment_parse(const void *buf, size_t len, kp_payment_t *p,
                              char *detail, size_t detail_size);

/**
 * @brief Checks the business rules of a parsed payment, in this order: id
 *        1-128 printable ASCII; from and to 1-64 of [A-Za-z0-9._:-],
 *        optionally after one leading '@' (system accounts); from != to;
 *        amount > 0; currency 3 upper-case letters.
 * @returns KP_REASON_NONE when valid, else the first rule broken:
 *          KP_REASON_INVALID_ID, _INVALID_ACCOUNT, _SAME_ACCOUNT,
 *          _INVALID_AMOUNT or _INVALID_CURRENCY.
 * @locality any thread
 */
kp_reason_t kp_payment_validate(const kp_payment_t *p);

/** @brief 1 if @p account is a system account ("@bank"). */
int kp_account_is_system(const char *account);

/**
 * @brief Checks an account id (1-64 of [A-Za-z0-9._:-], optionally after
 *        one leading '@'). @returns 1 if valid.
 */
int kp_account_id_valid(const char *account);

/** @brief Checks a payment id (1-128 printable ASCII). @returns 1 if valid. */
int kp_payment_id_valid(const char *id);

/**
 * @brief Serializes @p p (all known fields, nulls for unset optional ones,
 *        then the unknown fields) as compact JSON.
 * @returns a kp_malloc()ed string; *lenp receives its length.
 */
char *kp_payment_serialize(const kp_payment_t *p, size_t *lenp);

/** @brief Deep copy (extra included). Clear @p dst with kp_payment_clear(). */
void kp_payment_copy(kp_payment_t *dst, const kp_payment_t *src);

/** @brief Frees what the payment owns (extra); the struct can be reused. */
void kp_payment_clear(kp_payment_t *p);

/** An account command (freeze / unfreeze), on kpay.payments.inflight keyed
 *  by account: {"v":1,"command":"FREEZE","account":"alice","id":"cmd-1",
 *  "created_ms":...,"actor":"alice"}. */
typedef enum kp_cmd_type_e {
        KP_CMD_FREEZE,
        KP_CMD_UNFREEZE,
} kp_cmd_type_t;

typedef struct kp_account_cmd_s {
        int v;
        kp_cmd_type_t command;
        char account[KP_ACCOUNT_FIELD_MAX + 2];
        char id[KP_PAYMENT_ID_MAX + 2];
        int64_t created_ms;
        /** Who asked (kpay-web: the token identity or "anonymous"), for the
         *  audit record; "" when absent. Optional and forward compatible:
         *  characters outside [A-Za-z0-9._@:-] become '_', cut to
         *  KP_AUDIT_ACTOR_MAX (kp_audit_actor()). */
        char actor[KP_AUDIT_ACTOR_MAX + 1];
} kp_account_cmd_t;

/**
 * @brief 1 if the JSON object in @p buf has a "command" field (so it is an
 *        account command, not a payment); 0 otherwise (including for
 *        input that is not JSON).
 */
int kp_is_account_cmd(const void *buf, size_t len);

/**
 * @brief Parses an account command. An unknown command or an invalid
 *        account id is KP_PAY_E_WRONG_TYPE with a detail.
 */
kp_pay_err_t kp_account_cmd_parse(const void *buf, size_t len,
                                  kp_account_cmd_t *cmd, char *detail,
                                  size_t detail_size);

/** @brief Serializes a command as compact JSON (kp_malloc()ed). */
char *kp_account_cmd_serialize(const kp_account_cmd_t *cmd, size_t *lenp);

#endif /* KPAY_KP_PAYMENT_H */
