/**
 * @file kp_err.h
 * @brief The one error enum of kpay, and its string table.
 *
 * Every fallible libkpay function returns a kp_err_t: KP_OK (0) or a negative
 * code. The codes and their descriptions are generated from one X-macro table
 * so that kp_err2str() and kp_err2name() can never fall out of step.
 */
#ifndef KPAY_KP_ERR_H
#define KPAY_KP_ERR_H

/* X(NAME, value, description) */
#define KP_ERR_TABLE(X)                                                        \
        X(OK, 0, "Success")                                                    \
        X(ERR_INVALID_ARG, -1, "Invalid argument")                             \
        X(ERR_CONFIG, -2, "Invalid configuration")                             \
        X(ERR_KAFKA, -3, "Kafka client error")                                 \
        X(ERR_TIMED_OUT, -4, "Operation timed out")                            \
        X(ERR_TOPIC_MISMATCH, -5,                                              \
          "Existing topic does not match the expected layout")                 \
        X(ERR_NOT_FOUND, -6, "Not found")                                      \
        X(ERR_IO, -7, "I/O error")                                             \
        X(ERR_STORE, -8, "State store error")                                  \
        X(ERR_PARSE, -9, "Malformed input")                                    \
        X(ERR_OVERFLOW, -10, "Arithmetic overflow")                            \
        X(ERR_FATAL, -11, "Fatal error")                                       \
        X(ERR_ABORTED, -12, "Transaction aborted")                             \
        X(ERR_STATE, -13, "Operation not valid in the current state")          \
        X(ERR_AUTH, -14, "Kafka refused the credentials or TLS handshake")

typedef enum kp_err_e {
#define KP__ERR_ENUM(name, value, desc) KP_##name = value,
        KP_ERR_TABLE(KP__ERR_ENUM)
#undef KP__ERR_ENUM
} kp_err_t;

/**
 * @brief A human readable description of @p err.
 * @returns a static string; "Unknown error" for codes outside the table.
 * @locality any thread
 */
const char *kp_err2str(kp_err_t err);

/**
 * @brief The symbolic name of @p err without the KP_ prefix ("ERR_CONFIG").
 * @returns a static string; "ERR_UNKNOWN" for codes outside the table.
 * @locality any thread
 */
const char *kp_err2name(kp_err_t err);

#include <stddef.h>

/**
 * @brief Writes a formatted reason into @p errstr (when not NULL and
 *        @p errstr_size > 0), for the functions that take
 *        `char *errstr, size_t errstr_size`.
 * @returns @p err, so that a failure path is one statement.
 * @locality any thread
 */
kp_err_t kp_errstr_set(kp_err_t err, char *errstr, size_t errstr_size,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* KPAY_KP_ERR_H */
