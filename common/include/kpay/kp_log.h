/**
 * @file kp_log.h
 * @brief Structured (logfmt) logging to stderr, with levels.
 *
 * One line per event:
 *   ts=2026-11-24T06:30:00.123Z level=info service=kpay-account msg="..."
 * The KP_LOG macro checks the level before evaluating its arguments, and
 * librdkafka's own log lines are routed in through kp_log_rdkafka_cb().
 */
#ifndef KPAY_KP_LOG_H
#define KPAY_KP_LOG_H

#include "kpay/kp_err.h"

typedef enum kp_log_level_e {
        KP_LOG_FATAL = 0,
        KP_LOG_ERROR = 1,
        KP_LOG_WARN  = 2,
        KP_LOG_INFO  = 3,
        KP_LOG_DEBUG = 4,
} kp_log_level_t;

/** The current level; read by KP_LOG without a call. */
extern volatile int kp_log_level_current;

/**
 * @brief Sets the service name printed on every line (not copied: pass a
 *        string that lives as long as the process, such as argv[0]'s basename
 *        or a literal). @locality main thread, before other threads start
 */
void kp_log_set_service(const char *service);

/** @brief Sets the level; lines above it are skipped. @locality any thread */
void kp_log_set_level(kp_log_level_t level);

/**
 * @brief Parses "fatal", "error", "warn", "info" or "debug".
 * @returns KP_OK, or KP_ERR_INVALID_ARG for anything else.
 */
kp_err_t kp_log_level_parse(const char *name, kp_log_level_t *levelp);

/** @brief The lowercase name of @p level. */
const char *kp_log_level_name(kp_log_level_t level);

/**
 * @brief Writes one log line. Prefer the KP_LOG macro.
 * @locality any thread (each line is written with one write)
 */
void kp_log_write(kp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define KP_LOG(level, ...)                                                     \
        do {                                                                   \
                if ((int)(level) <= kp_log_level_current)                      \
                        kp_log_write((level), __VA_ARGS__);                    \
        } while (0)

#define KP_FATAL(...) KP_LOG(KP_LOG_FATAL, __VA_ARGS__)
#define KP_ERROR(...) KP_LOG(KP_LOG_ERROR, __VA_ARGS__)
#define KP_WARN(...)  KP_LOG(KP_LOG_WARN, __VA_ARGS__)
#define KP_INFO(...)  KP_LOG(KP_LOG_INFO, __VA_ARGS__)
#define KP_DEBUG(...) KP_LOG(KP_LOG_DEBUG, __VA_ARGS__)

struct rd_kafka_s;
/**
 * @brief librdkafka log callback (rd_kafka_conf_set_log_cb) that maps syslog
 *        levels onto kp_log levels. @locality librdkafka threads
 */
void kp_log_rdkafka_cb(const struct rd_kafka_s *rk, int level, const char *fac,
                       const char *buf);

#endif /* KPAY_KP_LOG_H */
