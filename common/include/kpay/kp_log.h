/**
 * @file kp_log.h
 * @brief Structured (logfmt) logging to stderr, with levels.
 *
 * One line per event:
 *   ts=2026-11-24T06:30:00.123Z level=info service=kpay-account msg="..."
 * The KP_LOG macro checks the level before evaluating its arguments, and
 * librdkafka's own log lines are routed in through kp_log_rdkafka_cb().
 *
 * Repeated lines are rate-limited: of the lines with the same level and
 * the same message, at most a burst (5) is written per window (10 s); the
 * rest are counted, and the count is written once the window is over, as
 *   msg="... 1,234 identical lines suppressed: <the message>"
 * (on the next line written, or by kp_log_flush()). A retry loop that
 * fails the same way forever thus writes a few lines per window, not
 * thousands per second.
 */
#ifndef KPAY_KP_LOG_H
#define KPAY_KP_LOG_H

#include <stddef.h>
#include <stdint.h>

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

/**
 * @brief Sets the repeat limit: at most @p burst identical lines per
 *        @p window_ms (burst 0: no limit). @locality any thread
 */
void kp_log_set_repeat_limit(int burst, int64_t window_ms);

/**
 * @brief Writes the pending "identical lines suppressed" counts of every
 *        window that is over (all of them when @p all), as log lines.
 *        kp_log_write() does this itself; call it on exit with @p all.
 *        @locality any thread
 */
void kp_log_flush(int all);

/**
 * @brief Replaces the clock of the repeat limit (milliseconds, monotonic);
 *        NULL restores the real one. For tests. @locality main thread
 */
void kp_log_set_clock(int64_t (*now_ms)(void));

/**
 * @brief Formats @p n with a comma between thousands ("1,234,567") into
 *        @p buf. @returns buf. @locality any thread
 */
char *kp_log_fmt_count(char *buf, size_t size, int64_t n);

/**
 * @brief Receives every line written at @p max_level or above (more
 *        severe), after the repeat limit, while kp_log's lock is held:
 *        it must only copy the line and return, and never log.
 */
typedef void(kp_log_sink_cb)(kp_log_level_t level, int64_t ts_ms,
                             const char *msg, void *opaque);

/**
 * @brief Installs @p cb (NULL removes it). Once it returns, the previous
 *        sink is not running and will not be called again.
 * @locality any thread
 */
void kp_log_set_sink(kp_log_sink_cb *cb, kp_log_level_t max_level,
                     void *opaque);

/**
 * @brief Set to 1 on a thread whose lines must not reach the sink (the
 *        sink's own threads: what they log would feed the sink itself).
 */
extern _Thread_local int kp_log_sink_off;

struct rd_kafka_s;
/**
 * @brief librdkafka log callback (rd_kafka_conf_set_log_cb) that maps syslog
 *        levels onto kp_log levels. @locality librdkafka threads
 */
void kp_log_rdkafka_cb(const struct rd_kafka_s *rk, int level, const char *fac,
                       const char *buf);

#endif /* KPAY_KP_LOG_H */
