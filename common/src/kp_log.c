/* kp_log.c: logfmt lines on stderr. */
#include "kpay/kp_log.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

volatile int kp_log_level_current = KP_LOG_INFO;
static const char *log_service    = "kpay";

static const char *level_names[] = {"fatal", "error", "warn", "info", "debug"};

void kp_log_set_service(const char *service) {
        log_service = service ? service : "kpay";
}

void kp_log_set_level(kp_log_level_t level) {
        kp_log_level_current = (int)level;
}

kp_err_t kp_log_level_parse(const char *name, kp_log_level_t *levelp) {
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
             i++) {
                if (!strcasecmp(name, level_names[i])) {
                        *levelp = (kp_log_level_t)i;
                        return KP_OK;
                }
        }
        if (!strcasecmp(name, "warning")) {
                *levelp = KP_LOG_WARN;
                return KP_OK;
        }
        return KP_ERR_INVALID_ARG;
}

const char *kp_log_level_name(kp_log_level_t level) {
        if ((int)level < 0 || (int)level > KP_LOG_DEBUG)
                return "unknown";
        return level_names[level];
}

/* Appends @p s to buf as a logfmt quoted value, escaping quotes, backslashes
 * and control characters so that one event is always one line. */
static size_t append_quoted(char *buf, size_t of, size_t size, const char *s) {
        if (of + 1 < size)
                buf[of++] = '"';
        for (; *s && of + 5 < size; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\') {
                        buf[of++] = '\\';
                        buf[of++] = (char)c;
                } else if (c == '\n') {
                        buf[of++] = '\\';
                        buf[of++] = 'n';
                } else if (c < 0x20) {
                        of +=
                            (size_t)snprintf(buf + of, size - of, "\\x%02x", c);
                } else {
                        buf[of++] = (char)c;
                }
        }
        if (of + 1 < size)
                buf[of++] = '"';
        return of;
}

void kp_log_write(kp_log_level_t level, const char *fmt, ...) {
        char msg[2048];
        char line[4608];
        va_list ap;
        struct timespec ts;
        struct tm tm;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        int n     = snprintf(line, sizeof(line),
                             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s "
                                 "service=%s msg=",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                             kp_log_level_name(level), log_service);
        size_t of = n > 0 ? (size_t)n : 0;
        if (of >= sizeof(line))
                of = sizeof(line) - 1;
        of         = append_quoted(line, of, sizeof(line) - 1, msg);
        line[of++] = '\n';
        /* One write per line so that lines from threads never interleave. */
        ssize_t r = write(STDERR_FILENO, line, of);
        (void)r;
}

void kp_log_rdkafka_cb(const struct rd_kafka_s *rk, int level, const char *fac,
                       const char *buf) {
        kp_log_level_t l;
        /* syslog levels: 0-2 fatal-ish, 3 error, 4 warning, 5-6 info. */
        if (level <= 2)
                l = KP_LOG_ERROR;
        else if (level == 3)
                l = KP_LOG_ERROR;
        else if (level == 4)
                l = KP_LOG_WARN;
        else if (level <= 6)
                l = KP_LOG_INFO;
        else
                l = KP_LOG_DEBUG;
        KP_LOG(l, "rdkafka %s [%s]: %s", fac,
               rk ? rd_kafka_name((rd_kafka_t *)rk) : "-", buf);
}
