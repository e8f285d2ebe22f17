/* kp_log.c: logfmt lines on stderr, repeated lines rate-limited. */
#include "kpay/kp_log.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kpay/kp_time.h"

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

/* The sink (kp_log_set_sink()); read and set under repeat_lock. */
static kp_log_sink_cb *sink_cb;
static void *sink_opaque;
static kp_log_level_t sink_level;
_Thread_local int kp_log_sink_off;

/* Writes one logfmt line with message @p msg (and hands it to the sink).
 * @locality with repeat_lock */
static void emit(kp_log_level_t level, const char *msg) {
        char line[4608];
        struct timespec ts;
        struct tm tm;
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
        if (sink_cb && level <= sink_level && !kp_log_sink_off)
                sink_cb(level, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                        msg, sink_opaque);
}

/* ------------------------------------------------------------------------
 * The repeat limit: one slot per distinct (level, message) seen lately. */

#define REPEAT_SLOTS 64
/* The summary line quotes this much of the suppressed message. */
#define REPEAT_QUOTE 200

typedef struct repeat_s {
        uint64_t hash; /* of level and message; 0: free slot */
        kp_log_level_t level;
        int64_t window_start, last_ms;
        int64_t written, suppressed; /* in the current window */
        char msg[REPEAT_QUOTE + 1];
} repeat_t;

static pthread_mutex_t repeat_lock = PTHREAD_MUTEX_INITIALIZER;
static repeat_t repeats[REPEAT_SLOTS];
static int repeat_burst              = 5;
static int64_t repeat_window_ms      = 10000;
static int64_t (*repeat_clock)(void) = kp_mono_ms;

char *kp_log_fmt_count(char *buf, size_t size, int64_t n) {
        char digits[32];
        int len   = snprintf(digits, sizeof(digits), "%" PRId64, n);
        size_t of = 0;
        for (int i = 0; i < len && of + 1 < size; i++) {
                buf[of++] = digits[i];
                int left  = len - i - 1;
                if (left > 0 && left % 3 == 0 && digits[i] != '-' &&
                    of + 1 < size)
                        buf[of++] = ',';
        }
        if (size)
                buf[of < size ? of : size - 1] = '\0';
        return buf;
}

/* Writes slot @p r's suppressed count, if any, and clears it.
 * @locality with repeat_lock */
static void repeat_report(repeat_t *r) {
        if (!r->suppressed)
                return;
        char count[32], msg[REPEAT_QUOTE + 96];
        snprintf(msg, sizeof(msg), "... %s identical lines suppressed: %s",
                 kp_log_fmt_count(count, sizeof(count), r->suppressed), r->msg);
        r->suppressed = 0;
        emit(r->level, msg);
}

/* Reports every window that is over (all when @p all) at @p now.
 * @locality with repeat_lock */
static void repeat_sweep(int64_t now, int all) {
        for (int i = 0; i < REPEAT_SLOTS; i++) {
                repeat_t *r = &repeats[i];
                if (r->hash && r->suppressed &&
                    (all || now - r->window_start >= repeat_window_ms))
                        repeat_report(r);
        }
}

static uint64_t repeat_hash(kp_log_level_t level, const char *msg) {
        uint64_t h = 1469598103934665603ull ^ (uint64_t)level;
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
                h = (h ^ *p) * 1099511628211ull;
        return h ? h : 1;
}

/* @returns 1 when the line is to be written, 0 when it is suppressed.
 * @locality with repeat_lock */
static int repeat_admit(kp_log_level_t level, const char *msg, int64_t now) {
        uint64_t h  = repeat_hash(level, msg);
        repeat_t *r = NULL, *lru = &repeats[0];
        for (int i = 0; i < REPEAT_SLOTS && !r; i++) {
                if (repeats[i].hash == h && repeats[i].level == level &&
                    !strncmp(repeats[i].msg, msg, REPEAT_QUOTE))
                        r = &repeats[i];
                else if (!repeats[i].hash ||
                         (lru->hash && repeats[i].last_ms < lru->last_ms))
                        lru = &repeats[i];
        }
        if (!r) {
                /* A new line: take a free slot, or the least recently used
                 * (its count is written first). */
                r = lru;
                repeat_report(r);
                r->hash         = h;
                r->level        = level;
                r->window_start = now;
                r->written      = 0;
                size_t len      = strnlen(msg, REPEAT_QUOTE);
                memcpy(r->msg, msg, len);
                r->msg[len] = '\0';
        } else if (now - r->window_start >= repeat_window_ms) {
                repeat_report(r);
                r->window_start = now;
                r->written      = 0;
        }
        r->last_ms = now;
        if (r->written < repeat_burst) {
                r->written++;
                return 1;
        }
        r->suppressed++;
        return 0;
}

void kp_log_set_repeat_limit(int burst, int64_t window_ms) {
        pthread_mutex_lock(&repeat_lock);
        repeat_sweep(0, 1);
        memset(repeats, 0, sizeof(repeats));
        repeat_burst     = burst;
        repeat_window_ms = window_ms > 0 ? window_ms : 1;
        pthread_mutex_unlock(&repeat_lock);
}

void kp_log_set_sink(kp_log_sink_cb *cb, kp_log_level_t max_level,
                     void *opaque) {
        pthread_mutex_lock(&repeat_lock);
        sink_cb     = cb;
        sink_opaque = opaque;
        sink_level  = max_level;
        pthread_mutex_unlock(&repeat_lock);
}

void kp_log_set_clock(int64_t (*now_ms)(void)) {
        pthread_mutex_lock(&repeat_lock);
        repeat_clock = now_ms ? now_ms : kp_mono_ms;
        pthread_mutex_unlock(&repeat_lock);
}

void kp_log_flush(int all) {
        pthread_mutex_lock(&repeat_lock);
        repeat_sweep(repeat_clock(), all);
        pthread_mutex_unlock(&repeat_lock);
}

void kp_log_write(kp_log_level_t level, const char *fmt, ...) {
        char msg[2048];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        pthread_mutex_lock(&repeat_lock);
        int64_t now = repeat_clock();
        repeat_sweep(now, 0);
        int write_it = repeat_burst <= 0 || repeat_admit(level, msg, now);
        if (write_it)
                emit(level, msg);
        pthread_mutex_unlock(&repeat_lock);
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
