/* kpay-gen: the load generator (DESIGN.md §6, "kpay-gen").
 *
 * Produces Payment v1 INCOMING records to <prefix>kpay.payments.incoming,
 * keyed by payment id, with an idempotent producer (acks=all) and the
 * murmur2_random partitioner, at a target rate on a monotonic schedule,
 * for a count or a duration. Optionally funds every account from @bank
 * first, injects broken and resent records, and with --wait follows
 * <prefix>kpay.payments.complete (read_committed, no group) until every
 * payment it sent has an outcome, then reports outcomes, end-to-end
 * latency and the books: the sum of every balance per currency, read from
 * kpay-account's `balances` changelog (docs/pipeline.md, "Money per
 * currency"); unbalanced books are a warning on stderr (other clients'
 * payments may be in flight), not an exit status. The stream itself, the
 * bodies, the schedule, the outcome tracking, the books and the summary
 * are gen.c's pure functions.
 *
 * Exit status: 0 success; 1 a record failed delivery, a payment got more
 * than one outcome, or a Kafka error; 2 a bad argument; 3 the wait for
 * outcomes timed out; 130 interrupted. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "account.h"
#include "gen.h"
#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_follower.h"
#include "kpay/kp_http.h"
#include "kpay/kp_kafka.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

#define PROG "kpay-gen"

/* Exit statuses. */
#define EXIT_FAILED      1
#define EXIT_BAD_ARG     2
#define EXIT_TIMED_OUT   3
#define EXIT_INTERRUPTED 130

typedef struct gen_conf_s {
        int64_t rate;
        int64_t count;    /**< 0: not given */
        int64_t duration; /**< 0: not given */
        int64_t accounts;
        int fund;
        int64_t fund_amount;
        char *amount;
        char *seed;
        char *invalid_ratio;
        char *duplicate_ratio;
        char *id_prefix;
        int wait;
        int64_t wait_timeout;
        int json;
        int quiet;
        char *latency_file;
        char *stages_file;
        char *metrics;
} gen_conf_t;

#define GOPT(field) offsetof(gen_conf_t, field)
static const kp_conf_opt_t gen_opts[] = {
    {"rate", 0, KP_CONF_INT, GOPT(rate), "0", 0, 10000000, "PER_S",
     "Payments per second (0: as fast as possible)."},
    {"count", 0, KP_CONF_INT, GOPT(count), NULL, 1, INT64_MAX, NULL,
     "Records to send (1000 when neither --count nor --duration is given)."},
    {"duration", 0, KP_CONF_INT, GOPT(duration), NULL, 1, 31536000, "SECONDS",
     "Send for this many seconds instead of a count."},
    {"accounts", 0, KP_CONF_INT, GOPT(accounts), "100", 2, 100000000, NULL,
     "Accounts acc-0 .. acc-N-1 that the payments move money between."},
    {"fund", 0, KP_CONF_BOOL, GOPT(fund), "false", 0, 0, NULL,
     "First fund every account from @bank (extra payments, not counted in "
     "--count) and wait, up to --wait-timeout, until they are applied."},
    {"fund-amount", 0, KP_CONF_INT, GOPT(fund_amount), "1000000", 1, INT64_MAX,
     "CENTS", "What --fund gives each account, in minor units."},
    {"amount", 0, KP_CONF_STR, GOPT(amount), "100:10000", 0, 0, "MIN:MAX",
     "Payment amounts, uniform in MIN..MAX minor units (integers)."},
    {"seed", 0, KP_CONF_STR, GOPT(seed), NULL, 0, 0, "N",
     "Seed of the stream: the same seed and options give the same payments "
     "(but created_ms); default: random, printed in the summary."},
    {"invalid-ratio", 0, KP_CONF_STR, GOPT(invalid_ratio), "0", 0, 0, "R",
     "Share (0..1, up to 6 decimals) of broken records (not JSON, float or "
     "string amount, unknown version, missing field, truncated), which "
     "kpay-inflight dead-letters."},
    {"duplicate-ratio", 0, KP_CONF_STR, GOPT(duplicate_ratio), "0", 0, 0, "R",
     "Share (0..1) of records that resend an earlier payment unchanged (same "
     "id and payload)."},
    {"id-prefix", 0, KP_CONF_STR, GOPT(id_prefix), NULL, 0, 0, "STR",
     "Payment ids are <id-prefix><n> (default: gen-<unixtime>-<pid>-)."},
    {"wait", 0, KP_CONF_BOOL, GOPT(wait), "false", 0, 0, NULL,
     "After sending, wait until every payment sent has an outcome on "
     "kpay.payments.complete, report outcomes and latency, and whether the "
     "books balance (every balance, per currency, sums to 0)."},
    {"wait-timeout", 0, KP_CONF_INT, GOPT(wait_timeout), "120", 1, 86400,
     "SECONDS", "How long --wait (and --fund) wait for outcomes."},
    {"json", 0, KP_CONF_BOOL, GOPT(json), "false", 0, 0, NULL,
     "Print the summary as one JSON object on stdout."},
    {"latency-file", 0, KP_CONF_STR, GOPT(latency_file), NULL, 0, 0, "FILE",
     "With --wait: write \"complete_ms latency_ms\" for each outcome of this "
     "run's payments (not the funding) to FILE (for plots)."},
    {"stages-file", 0, KP_CONF_STR, GOPT(stages_file), NULL, 0, 0, "FILE",
     "With --wait: write \"complete_ms latency_ms intake_ms debit_ms "
     "credit_ms\" for each outcome of this run's payments (not the "
     "funding) to FILE: the stages between the events' stamps "
     "(docs/metrics.md), -1 for a stage whose stamps are missing."},
    {"metrics", 0, KP_CONF_STR, GOPT(metrics), NULL, 0, 0, "URL",
     "With --wait: also print kpay-metrics' view of the run (its 1 s "
     "windows since the stream began, e.g. http://127.0.0.1:8085) beside "
     "this tool's own."},
    {"quiet", 'q', KP_CONF_BOOL, GOPT(quiet), "false", 0, 0, NULL,
     "No progress line."},
    {NULL},
};

/* What a record's delivery report is about (the message opaque holds the
 * tag in its low 2 bits and the payment number above them). */
#define TAG_PAYMENT   0 /* a new payment: an outcome is expected */
#define TAG_FUND      1 /* a funding payment: an outcome is expected */
#define TAG_INVALID   2 /* a broken record */
#define TAG_DUPLICATE 3 /* a resent payment */

typedef enum phase_e {
        PHASE_FUND,
        PHASE_FUND_WAIT,
        PHASE_STREAM,
        PHASE_WAIT,
} phase_t;

/* One run. Everything is touched by the main thread only: delivery
 * reports are served from rd_kafka_poll() in the main loop. */
typedef struct gen_run_s {
        const kp_app_conf_t *c;
        const gen_conf_t *gc;
        gen_params_t gp;
        const char *prefix;
        char incoming[256];
        char complete[256];
        rd_kafka_t *rk;     /* producer */
        kp_follower_t *fol; /* outcome follower, or NULL */
        gen_tracker_t *tracker;
        FILE *latency_fp; /* --latency-file, or NULL */
        FILE *stages_fp;  /* --stages-file, or NULL */
        int64_t *created; /* created_ms of payment n, for duplicates */
        size_t created_cap;
        int64_t sent, acked, failed, dup_sent, invalid_sent, funded;
        int fatal; /* a fatal producer error: stop */
        int failure_logged;
        /* Progress. */
        int tty;
        phase_t phase;
        int64_t progress_ns; /* when the last line was written */
        int progress_open;   /* a \r line is on the terminal */
        int64_t stream_start_ns, stream_end_ns, stream_total;
        int64_t stream_start_wall_ms; /* for --metrics */
        int64_t stream_acked_base;    /* acked before the stream began */
        int64_t stream_done_ns;       /* when its last record was acked */
        int64_t wait_deadline_ns;
} gen_run_t;


/* ------------------------------------------------------------------------
 * Progress. */

/* Writes the progress line if it is time to (every 250 ms on a terminal,
 * every 5 s otherwise), or now when @p force. */
static void progress(gen_run_t *r, int force) {
        char line[256];
        int64_t now   = kp_mono_ns();
        int64_t every = r->tty ? INT64_C(250000000) : INT64_C(5000000000);
        if (r->gc->quiet || (!force && now - r->progress_ns < every))
                return;
        r->progress_ns = now;
        switch (r->phase) {
        case PHASE_FUND:
        case PHASE_FUND_WAIT:
                snprintf(line, sizeof(line),
                         "funding: sent %" PRId64 "/%" PRId64 "  acked %" PRId64
                         "  applied %" PRId64 "/%" PRId64,
                         r->funded, r->gc->accounts, r->acked,
                         r->funded - gen_tracker_pending_fund(r->tracker),
                         r->funded);
                break;
        case PHASE_STREAM: {
                int64_t stream  = r->sent - r->funded;
                int64_t elapsed = (now - r->stream_start_ns) / 1000000;
                int64_t rate    = gen_rate_x10(stream, elapsed);
                int64_t eta     = -1;
                if (r->stream_total >= 0 && stream > 0 && elapsed > 0)
                        eta = ((r->stream_total - stream) * elapsed / stream +
                               999) /
                              1000;
                else if (r->stream_end_ns > 0)
                        eta = now < r->stream_end_ns
                                  ? (r->stream_end_ns - now) / 1000000000
                                  : 0;
                gen_progress_line(line, sizeof(line), stream, r->stream_total,
                                  r->acked - r->stream_acked_base, rate, eta);
                break;
        }
        case PHASE_WAIT: {
                int64_t left = (r->wait_deadline_ns - now) / 1000000000;
                snprintf(line, sizeof(line),
                         "waiting for outcomes: %" PRId64 " of %" PRId64
                         "  (%" PRId64 " s left)",
                         gen_tracker_awaited(r->tracker) -
                             gen_tracker_pending(r->tracker),
                         gen_tracker_awaited(r->tracker), left > 0 ? left : 0);
                break;
        }
        }
        if (r->tty) {
                fprintf(stderr, "\r%s\033[K", line);
                r->progress_open = 1;
        } else {
                fprintf(stderr, PROG ": %s\n", line);
        }
        fflush(stderr);
}

/* Ends the terminal's progress line, so that what follows starts on a
 * line of its own. */
static void progress_done(gen_run_t *r) {
        if (r->progress_open) {
                fputc('\n', stderr);
                r->progress_open = 0;
        }
}

/* ------------------------------------------------------------------------
 * Kafka. */

/* Delivery report: counts the record acked or failed; a payment that was
 * not delivered is no longer waited for.
 * @locality main thread (inside rd_kafka_poll()) */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        gen_run_t *r = opaque;
        uintptr_t v  = (uintptr_t)m->_private;
        (void)rk;
        if (!m->err) {
                r->acked++;
                return;
        }
        r->failed++;
        if (!r->failure_logged) {
                progress_done(r);
                KP_ERROR(
                    "delivery failed: %s (more failures are counted in "
                    "the summary)",
                    rd_kafka_err2str(m->err));
                r->failure_logged = 1;
        }
        if (r->tracker && (v & 3) == TAG_PAYMENT)
                gen_tracker_failed(r->tracker, 0, (uint64_t)(v >> 2));
        else if (r->tracker && (v & 3) == TAG_FUND)
                gen_tracker_failed(r->tracker, 1, (uint64_t)(v >> 2));
}

/* Client errors: a fatal one (the idempotent producer's state is lost)
 * stops the run. @locality main thread (inside rd_kafka_poll()) */
static void error_cb(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
        gen_run_t *r = opaque;
        char fatal[512];
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
                KP_ERROR("fatal Kafka error: %s", fatal);
                r->fatal = 1;
                return;
        }
        KP_WARN("Kafka: %s: %s", rd_kafka_err2name(err), reason);
}

static rd_kafka_t *new_producer(gen_run_t *r, char *errstr,
                                size_t errstr_size) {
        /* Defaults only: kpay-gen is a client like any other, so -X may
         * change all of them (another partitioner, say, to see what kpay
         * does with it). */
        static const kp_kafka_prop_t props[] = {
            {"enable.idempotence", "true", KP_PROP_DEFAULT},
            {"acks", "all", KP_PROP_DEFAULT},
            {"partitioner", "murmur2_random", KP_PROP_DEFAULT},
            /* A missing topic is an error, not something to create with
             * the broker's defaults. */
            {"allow.auto.create.topics", "false", KP_PROP_DEFAULT},
            /* Report an undeliverable record within a minute, not five. */
            {"message.timeout.ms", "60000", KP_PROP_DEFAULT},
            {NULL},
        };
        rd_kafka_conf_t *conf =
            kp_kafka_conf_build(r->c, PROG, props, errstr, errstr_size);
        if (!conf)
                return NULL;
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_error_cb(conf, error_cb);
        rd_kafka_conf_set_opaque(conf, r);
        char rderr[512];
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
        if (!rk) {
                snprintf(errstr, errstr_size,
                         "cannot create a producer: %.400s", rderr);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

/* The partition count of @p topic: > 0, or 0 with a reason in errstr. */
static int32_t partition_count(rd_kafka_t *rk, const char *topic, char *errstr,
                               size_t errstr_size) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int32_t cnt           = 0;
        if (!rkt) {
                snprintf(errstr, errstr_size, "topic %s: %s", topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
                return 0;
        }
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (err) {
                snprintf(errstr, errstr_size, "metadata of %s: %s", topic,
                         rd_kafka_err2str(err));
                return 0;
        }
        snprintf(errstr, errstr_size,
                 "topic %s does not exist (create the topics with "
                 "kpay-admin topics)",
                 topic);
        for (int i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];
                if (strcmp(t->topic, topic))
                        continue;
                if (!t->err && t->partition_cnt > 0)
                        cnt = t->partition_cnt;
                else if (t->err &&
                         t->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        snprintf(errstr, errstr_size, "metadata of %s: %s",
                                 topic, rd_kafka_err2str(t->err));
        }
        rd_kafka_metadata_destroy(md);
        return cnt;
}

/* How long the outcome follower may take to reach the end of the complete
 * topic before the first send (a topic just created has no leader yet). */
#define FOLLOWER_SYNC_MS 15000

/* on_record of the outcome follower: accounts for the outcomes of this run.
 * @locality main thread (inside kp_follower_poll() and kp_follower_sync()) */
/* The time from stamp @p from to stamp @p to, or -1 when either is missing
 * or they are out of order. */
static int64_t stage_ms(int64_t from, int64_t to) {
        return from >= 0 && to >= from ? to - from : -1;
}

static void on_outcome(const kp_follower_record_t *rec, void *opaque) {
        gen_run_t *r = opaque;
        size_t plen  = strlen(r->prefix);
        /* Outcomes are keyed by payment id: other runs' are skipped
         * without parsing. */
        if (!rec->value || (rec->key && rec->key_len >= plen &&
                            memcmp(rec->key, r->prefix, plen)))
                return;
        kp_payment_t p;
        char detail[256];
        if (kp_payment_parse(rec->value, rec->value_len, &p, detail,
                             sizeof(detail)) != KP_PAY_E_OK)
                return;
        if (gen_tracker_outcome(r->tracker, &p) && p.complete_ms >= 0 &&
            strncmp(p.id + plen, GEN_FUND_TAG, strlen(GEN_FUND_TAG))) {
                if (r->latency_fp)
                        fprintf(r->latency_fp, "%" PRId64 " %" PRId64 "\n",
                                p.complete_ms, p.complete_ms - p.created_ms);
                if (r->stages_fp)
                        fprintf(r->stages_fp,
                                "%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                                " %" PRId64 "\n",
                                p.complete_ms, p.complete_ms - p.created_ms,
                                stage_ms(p.created_ms, p.inflight_ms),
                                stage_ms(p.inflight_ms, p.debit_ms),
                                stage_ms(p.debit_ms, p.credit_ms));
        }
        kp_payment_clear(&p);
}

/* The outcome follower: every record of the complete topic written after
 * this call (read_committed, no group, driven from the main loop).
 * @returns 0, or -1 with a reason in errstr. */
static int new_follower(gen_run_t *r, char *errstr, size_t errstr_size) {
        const kp_follower_conf_t fc = {
            .topic     = r->complete,
            .client_id = PROG,
            .log_name  = "outcomes",
            .from_end  = 1,
            .quiet     = 1, /* its output is the summary */
            .on_record = on_outcome,
            .opaque    = r,
        };
        if (partition_count(r->rk, r->complete, errstr, errstr_size) <= 0)
                return -1;
        if (!(r->fol = kp_follower_new(r->c, &fc, errstr, errstr_size)))
                return -1;
        /* Assigned at the end before the first send: only this run's
         * outcomes are read. */
        if (kp_follower_sync(r->fol, FOLLOWER_SYNC_MS) != KP_OK) {
                snprintf(errstr, errstr_size,
                         "could not read to the end of %s within %d s",
                         r->complete, FOLLOWER_SYNC_MS / 1000);
                return -1;
        }
        return 0;
}

/* Reads what the follower has, waiting up to @p timeout_ms for the first
 * record, and accounts for the outcomes of this run. */
static void poll_outcomes(gen_run_t *r, int timeout_ms) {
        if (r->fol)
                kp_follower_poll(r->fol, timeout_ms);
}

/* Hands one record to the producer, waiting while its queue is full.
 * @returns 0, or -1 when the run must stop (fatal error or a signal while
 *          the queue is full). */
static int produce(gen_run_t *r, const char *id, const char *trace,
                   const void *val, size_t len, uintptr_t opaque) {
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    r->rk, RD_KAFKA_V_TOPIC(r->incoming),
                    RD_KAFKA_V_KEY(id, strlen(id)),
                    RD_KAFKA_V_VALUE((void *)val, len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADER("kpay-trace", trace, -1),
                    RD_KAFKA_V_HEADER("kpay-hop", "gen", -1),
                    RD_KAFKA_V_OPAQUE((void *)opaque), RD_KAFKA_V_END);
                if (!err) {
                        r->sent++;
                        return 0;
                }
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        progress_done(r);
                        KP_ERROR("producing to %s: %s", r->incoming,
                                 rd_kafka_err2str(err));
                        r->fatal = 1;
                        return -1;
                }
                /* Wait for deliveries to make room. */
                rd_kafka_poll(r->rk, 10);
                progress(r, 0);
                if (!kp_app_running() || r->fatal)
                        return -1;
        }
}

/* Waits until every record handed to the producer has its delivery
 * report. After a signal, what has not been sent yet is purged (and
 * counted as failed). */
static void flush_all(gen_run_t *r) {
        int purged = 0;
        while (rd_kafka_outq_len(r->rk) > 0) {
                if (!purged && (!kp_app_running() || r->fatal)) {
                        rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE);
                        purged = 1;
                }
                rd_kafka_poll(r->rk, 100);
                poll_outcomes(r, 0);
                progress(r, 0);
        }
        rd_kafka_poll(r->rk, 0);
}

/* Follows the outcomes until none is pending (or, when @p fund_only, no
 * funding payment), the deadline passes or a signal arrives.
 * @returns 1 when none is pending, 0 otherwise. */
static int wait_outcomes(gen_run_t *r, int fund_only) {
        while (fund_only ? gen_tracker_pending_fund(r->tracker) > 0
                         : gen_tracker_pending(r->tracker) > 0) {
                if (!kp_app_running() || kp_mono_ns() >= r->wait_deadline_ns)
                        return 0;
                poll_outcomes(r, 100);
                rd_kafka_poll(r->rk, 0);
                progress(r, 0);
        }
        return 1;
}

/* ------------------------------------------------------------------------
 * The phases. */

/* Sends one funding payment per account, waits for their delivery and
 * then for their outcomes. @returns 0, or the exit status to stop with. */
static int run_funding(gen_run_t *r) {
        char trace[KP_PAYMENT_ID_MAX + 8];
        kp_payment_t p;
        size_t len;
        r->phase = PHASE_FUND;
        for (int64_t i = 0; i < r->gc->accounts; i++) {
                if (!kp_app_running() || r->fatal)
                        break;
                gen_fund_payment(r->prefix, i, r->gc->fund_amount, kp_wall_ms(),
                                 &p);
                char *body = gen_body(&p, GEN_VALID, GEN_INV_NOT_JSON, &len);
                snprintf(trace, sizeof(trace), "%s", p.id);
                gen_tracker_expect_fund(r->tracker, i);
                int rc = produce(r, p.id, trace, body, len,
                                 ((uintptr_t)i << 2) | TAG_FUND);
                kp_free(body);
                if (rc) {
                        gen_tracker_failed(r->tracker, 1, (uint64_t)i);
                        break;
                }
                r->funded++;
                rd_kafka_poll(r->rk, 0);
                progress(r, 0);
        }
        flush_all(r);
        if (!kp_app_running())
                return EXIT_INTERRUPTED;
        if (r->fatal)
                return EXIT_FAILED;
        r->phase            = PHASE_FUND_WAIT;
        r->wait_deadline_ns = kp_mono_ns() + r->gc->wait_timeout * 1000000000;
        int done            = wait_outcomes(r, 1);
        progress(r, 1);
        progress_done(r);
        if (!kp_app_running())
                return EXIT_INTERRUPTED;
        if (!done) {
                fprintf(stderr,
                        PROG
                        ": %" PRId64 " of %" PRId64
                        " funding payments got no outcome within %" PRId64
                        " s: are kpay-inflight and kpay-account running?\n",
                        gen_tracker_pending_fund(r->tracker), r->funded,
                        r->gc->wait_timeout);
                return EXIT_TIMED_OUT;
        }
        return 0;
}

/* Remembers when payment @p n was created, for its duplicates. */
static void remember_created(gen_run_t *r, uint64_t n, int64_t created_ms) {
        if (n >= r->created_cap) {
                size_t cap = r->created_cap ? r->created_cap : 4096;
                while (cap <= n)
                        cap *= 2;
                r->created = kp_realloc(r->created, cap * sizeof(*r->created));
                r->created_cap = cap;
        }
        r->created[n] = created_ms;
}

/* Sleeps until @p due_ns (or @p end_ns, when not 0), serving delivery
 * reports and outcomes and keeping the progress line current. */
static void wait_until(gen_run_t *r, int64_t due_ns, int64_t end_ns) {
        if (end_ns > 0 && end_ns < due_ns)
                due_ns = end_ns;
        for (;;) {
                int64_t left = due_ns - kp_mono_ns();
                if (left <= 0 || !kp_app_running() || r->fatal)
                        return;
                progress(r, 0);
                poll_outcomes(r, 0);
                if (left >= 2000000) {
                        int ms = (int)(left / 1000000) - 1;
                        rd_kafka_poll(r->rk, ms > 100 ? 100 : ms);
                } else {
                        struct timespec ts = {0, (long)left};
                        rd_kafka_poll(r->rk, 0);
                        nanosleep(&ts, NULL);
                }
        }
}

/* Sends the stream: record k is due at start + k / rate, until --count
 * records or --duration seconds. @returns 0 or the exit status. */
static int run_stream(gen_run_t *r) {
        const gen_conf_t *gc = r->gc;
        char id[KP_PAYMENT_ID_MAX + 8];
        gen_record_t rec;
        kp_payment_t p;
        size_t len;

        r->phase                = PHASE_STREAM;
        r->stream_total         = gc->duration ? -1 : gc->count;
        r->stream_start_ns      = kp_mono_ns();
        r->stream_start_wall_ms = kp_wall_ms();
        r->stream_acked_base    = r->acked;
        r->stream_end_ns =
            gc->duration ? r->stream_start_ns + gc->duration * 1000000000 : 0;
        for (uint64_t k = 0;; k++) {
                if (r->stream_total >= 0 && k >= (uint64_t)r->stream_total)
                        break;
                int64_t due = gen_due_ns(r->stream_start_ns, k, gc->rate);
                if (r->stream_end_ns && due >= r->stream_end_ns)
                        break;
                wait_until(r, due, r->stream_end_ns);
                if (!kp_app_running() || r->fatal)
                        break;
                if (r->stream_end_ns && kp_mono_ns() >= r->stream_end_ns)
                        break;

                gen_record(&r->gp, k, &rec);
                int64_t created = kp_wall_ms();
                if (rec.kind == GEN_DUPLICATE)
                        created = r->created[rec.payment];
                else if (rec.kind == GEN_VALID && r->gp.duplicate_ppm)
                        remember_created(r, k, created);
                gen_payment(r->prefix, &rec, created, &p);
                char *body    = gen_body(&p, rec.kind, rec.invalid, &len);
                uintptr_t tag = rec.kind == GEN_VALID     ? TAG_PAYMENT
                                : rec.kind == GEN_INVALID ? TAG_INVALID
                                                          : TAG_DUPLICATE;
                if (rec.kind == GEN_VALID && r->tracker)
                        gen_tracker_expect(r->tracker, k);
                gen_payment_id(id, sizeof(id), r->prefix, k);
                /* The key is the payment id (a duplicate's is the
                 * original's); the trace is this record's own. */
                int rc = produce(r, p.id, id, body, len,
                                 ((uintptr_t)rec.payment << 2) | tag);
                kp_free(body);
                if (rc) {
                        if (rec.kind == GEN_VALID && r->tracker)
                                gen_tracker_failed(r->tracker, 0, k);
                        break;
                }
                if (rec.kind == GEN_DUPLICATE)
                        r->dup_sent++;
                else if (rec.kind == GEN_INVALID)
                        r->invalid_sent++;
                if ((k & 255) == 0) {
                        rd_kafka_poll(r->rk, 0);
                        poll_outcomes(r, 0);
                }
                progress(r, 0);
        }
        flush_all(r);
        r->stream_done_ns = kp_mono_ns();
        progress(r, 1);
        progress_done(r);
        if (!kp_app_running())
                return EXIT_INTERRUPTED;
        return r->fatal ? EXIT_FAILED : 0;
}

/* ------------------------------------------------------------------------
 * main. */

/* Checks the options that the table cannot and fills @p r's parameters.
 * @returns 0, or -1 after printing one line on stderr. */
static int check_args(const gen_conf_t *gc, gen_run_t *r, char **prefixp,
                      int nargs, char **args) {
        char errstr[512];
        int64_t seed;
        if (nargs > 0) {
                fprintf(stderr,
                        PROG ": unexpected argument \"%s\" (see --help)\n",
                        args[0]);
                return -1;
        }
        if (gc->count && gc->duration) {
                fprintf(stderr, PROG
                        ": give --count or --duration, not "
                        "both\n");
                return -1;
        }
        if (gen_parse_amount_range(gc->amount, &r->gp.amount_min,
                                   &r->gp.amount_max, errstr, sizeof(errstr))) {
                fprintf(stderr, PROG ": %s\n", errstr);
                return -1;
        }
        if (gen_parse_ratio_ppm(gc->invalid_ratio, &r->gp.invalid_ppm, errstr,
                                sizeof(errstr))) {
                fprintf(stderr, PROG ": --invalid-ratio: %s\n", errstr);
                return -1;
        }
        if (gen_parse_ratio_ppm(gc->duplicate_ratio, &r->gp.duplicate_ppm,
                                errstr, sizeof(errstr))) {
                fprintf(stderr, PROG ": --duplicate-ratio: %s\n", errstr);
                return -1;
        }
        if (gc->seed) {
                if (kp_parse_int64(gc->seed, &seed) || seed < 0) {
                        fprintf(stderr,
                                PROG
                                ": --seed expects an integer from 0 to "
                                "%" PRId64 ", not \"%s\"\n",
                                INT64_MAX, gc->seed);
                        return -1;
                }
                r->gp.seed = (uint64_t)seed;
        } else {
                r->gp.seed = gen_mix64((uint64_t)kp_mono_ns() ^
                                       ((uint64_t)kp_wall_ms() << 20) ^
                                       (uint64_t)getpid()) &
                             INT64_MAX;
        }
        r->gp.accounts = gc->accounts;
        if (gen_params_check(&r->gp, errstr, sizeof(errstr))) {
                fprintf(stderr, PROG ": %s\n", errstr);
                return -1;
        }
        if (gc->metrics) {
                char hp[256], base[256];
                if (!gc->wait) {
                        fprintf(stderr, PROG ": --metrics needs --wait\n");
                        return -1;
                }
                if (kp_http_split_url(gc->metrics, hp, sizeof(hp), base,
                                      sizeof(base))) {
                        fprintf(stderr,
                                PROG ": --metrics %s: not http://HOST:PORT\n",
                                gc->metrics);
                        return -1;
                }
        }
        if (gc->id_prefix)
                *prefixp = kp_strdup(gc->id_prefix);
        else
                *prefixp = kp_asprintf("gen-%lld-%ld-", (long long)time(NULL),
                                       (long)getpid());
        if (gen_check_id_prefix(*prefixp, errstr, sizeof(errstr))) {
                fprintf(stderr, PROG ": %s\n", errstr);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * The books. */

/* How long the books may take to read, and to settle: payments of other
 * clients still in flight leave a payer debited and its payee not yet
 * credited, so unbalanced books are read again until this passes. */
#define BOOKS_READ_MS   30000
#define BOOKS_SETTLE_MS 10000

static int books_entry(const void *key, size_t key_len, const void *value,
                       size_t value_len, const void *decoded, int64_t recv_ms,
                       void *opaque) {
        (void)decoded;
        (void)recv_ms;
        gen_books_add(opaque, key, key_len, value, value_len);
        return 0;
}

/* Reads the books from kpay-account's `balances` changelog (read_committed:
 * every balance change of an outcome already seen is there) into @p b.
 * @returns 0, or -1 with a reason in errstr. */
static int read_books(gen_run_t *r, gen_books_t *b, char *errstr,
                      size_t errstr_size) {
        char topic[300];
        kp_changelog_name(topic, sizeof(topic), r->c->topic_prefix,
                          account_layout.service,
                          account_layout.stores[ACCT_ST_BALANCES]);
        const kp_follower_conf_t fc = {
            .topic      = topic,
            .client_id  = PROG,
            .log_name   = "books",
            .keep_table = 1,
            .quiet      = 1,
        };
        kp_follower_t *f = kp_follower_new(r->c, &fc, errstr, errstr_size);
        if (!f)
                return -1;
        int64_t settle = kp_mono_ns() + (int64_t)BOOKS_SETTLE_MS * 1000000;
        int rc         = 0;
        for (;;) {
                if (kp_follower_sync(f, BOOKS_READ_MS) != KP_OK) {
                        snprintf(errstr, errstr_size,
                                 "could not read %s within %d s", topic,
                                 BOOKS_READ_MS / 1000);
                        rc = -1;
                        break;
                }
                gen_books_clear(b);
                kp_follower_foreach(f, books_entry, b);
                if (gen_books_balanced(b) || kp_mono_ns() >= settle ||
                    !kp_app_running())
                        break;
                struct timespec ts = {0, 500 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        kp_follower_destroy(f);
        return rc;
}

/* How long --metrics waits for kpay-metrics' windows of the run to be
 * final after the outcomes arrived (its grace period is 2 s by default). */
#define GEN_SERVER_WAIT_MS 15000

/* kpay-metrics' view of the run (--metrics): its 1 s windows since the
 * stream began, asked again until they count at least the @p outcomes this
 * tool saw (kpay-metrics may lag behind) and every one is final, or the
 * wait is over. */
static void fetch_server(gen_run_t *r, int64_t outcomes, gen_server_t *v) {
        char hostport[256], base[256], path[600], errstr[256];
        memset(v, 0, sizeof(*v));
        v->url     = r->gc->metrics;
        v->from_ms = r->stream_start_wall_ms - r->stream_start_wall_ms % 1000;
        if (kp_http_split_url(v->url, hostport, sizeof(hostport), base,
                              sizeof(base))) {
                snprintf(v->error, sizeof(v->error), "not http://HOST:PORT");
                return;
        }
        int64_t deadline = kp_mono_ms() + GEN_SERVER_WAIT_MS;
        for (;;) {
                char *body = NULL;
                size_t len = 0;
                snprintf(path, sizeof(path),
                         "%s/v1/metrics/windows?size=1s&from=%" PRId64
                         "&to=%" PRId64,
                         base, v->from_ms, kp_wall_ms() + 1000);
                int st =
                    kp_http_request("GET", hostport, path, NULL, NULL, 5000,
                                    &body, &len, errstr, sizeof(errstr));
                if (st != 200) {
                        if (st < 0)
                                snprintf(v->error, sizeof(v->error), "%s",
                                         errstr);
                        else
                                snprintf(v->error, sizeof(v->error),
                                         "HTTP %d: %.200s", st,
                                         body ? body : "");
                        kp_free(body);
                        return;
                }
                kp_err_t err = gen_server_view(body, len, v);
                kp_free(body);
                if (err ||
                    (v->all_final &&
                     v->complete + v->rejected + v->invalid >= outcomes) ||
                    kp_mono_ms() > deadline || !kp_app_running())
                        return;
                kp_sleep_ms(250);
        }
}

/* The run after the arguments are checked. @returns the exit status. */
static int run(gen_run_t *r) {
        char errstr[512];
        int rc = 0, need_follower = r->gc->fund || r->gc->wait;
        int waited = 0, timed_out = 0, have_books = 0;
        int64_t wait_ms = 0;
        gen_books_t books;
        gen_books_init(&books);

        if (!(r->rk = new_producer(r, errstr, sizeof(errstr)))) {
                fprintf(stderr, PROG ": %s\n", errstr);
                return EXIT_FAILED;
        }
        if (kp_kafka_wait_ready_reason(r->rk, r->c->bootstrap_servers, 15000,
                                       errstr, sizeof(errstr)) != KP_OK) {
                fprintf(stderr, PROG ": %s\n", errstr);
                return EXIT_FAILED;
        }
        if (partition_count(r->rk, r->incoming, errstr, sizeof(errstr)) <= 0) {
                fprintf(stderr, PROG ": %s\n", errstr);
                return EXIT_FAILED;
        }
        if (need_follower) {
                /* Before the first send: only this run's outcomes count. */
                r->tracker = gen_tracker_new(r->prefix,
                                             r->gc->fund ? r->gc->accounts : 0);
                if (new_follower(r, errstr, sizeof(errstr))) {
                        fprintf(stderr, PROG ": %s\n", errstr);
                        return EXIT_FAILED;
                }
                if (r->gc->latency_file &&
                    !(r->latency_fp = fopen(r->gc->latency_file, "w"))) {
                        fprintf(stderr, PROG ": cannot write %s: %s\n",
                                r->gc->latency_file, strerror(errno));
                        return EXIT_FAILED;
                }
                if (r->gc->stages_file &&
                    !(r->stages_fp = fopen(r->gc->stages_file, "w"))) {
                        fprintf(stderr, PROG ": cannot write %s: %s\n",
                                r->gc->stages_file, strerror(errno));
                        return EXIT_FAILED;
                }
        }

        if (r->gc->fund)
                rc = run_funding(r);
        if (!rc)
                rc = run_stream(r);
        if (!rc && r->gc->wait) {
                int64_t t0          = kp_mono_ns();
                r->phase            = PHASE_WAIT;
                r->wait_deadline_ns = t0 + r->gc->wait_timeout * 1000000000;
                waited              = 1;
                timed_out           = !wait_outcomes(r, 0);
                wait_ms             = (kp_mono_ns() - t0) / 1000000;
                progress(r, 1);
                progress_done(r);
                if (!kp_app_running())
                        rc = EXIT_INTERRUPTED;
                /* Every outcome is in: do the books balance? */
                if (!rc && !timed_out) {
                        if (read_books(r, &books, errstr, sizeof(errstr)))
                                fprintf(stderr, PROG ": books: %s\n", errstr);
                        else
                                have_books = 1;
                }
        }

        gen_summary_t s = {
            .topic           = r->incoming,
            .id_prefix       = r->prefix,
            .seed            = r->gp.seed,
            .sent            = r->sent,
            .acked           = r->acked,
            .failed          = r->failed,
            .duplicates_sent = r->dup_sent,
            .invalid_sent    = r->invalid_sent,
            .funded          = r->funded,
            .interrupted     = rc == EXIT_INTERRUPTED,
            .waited          = waited,
            .timed_out       = timed_out,
            .wait_ms         = wait_ms,
            .books           = have_books ? &books : NULL,
        };
        if (r->stream_start_ns)
                s.elapsed_ms =
                    (r->stream_done_ns - r->stream_start_ns) / 1000000;
        if (waited)
                gen_tracker_outcomes(r->tracker, &s.outcomes);
        gen_server_t server;
        if (waited && r->gc->metrics) {
                fetch_server(r, s.outcomes.latency_cnt, &server);
                s.server = &server;
        }
        if (r->gc->json) {
                char *json = gen_summary_json(&s);
                printf("%s\n", json);
                kp_free(json);
        } else {
                gen_summary_print(&s, stdout);
        }
        fflush(stdout);
        if (have_books && !gen_books_balanced(&books))
                fprintf(stderr, PROG
                        ": the books do not balance (payments of other "
                        "clients in flight, or money lost: see "
                        "\"books\")\n");
        gen_books_clear(&books);

        if (rc)
                return rc;
        if (r->failed)
                return EXIT_FAILED;
        if (timed_out) {
                fprintf(stderr,
                        PROG ": %" PRId64
                             " payments got no outcome within "
                             "%" PRId64 " s\n",
                        s.outcomes.missing, r->gc->wait_timeout);
                return EXIT_TIMED_OUT;
        }
        if (waited && s.outcomes.multiple_outcomes) {
                fprintf(stderr,
                        PROG ": %" PRId64
                             " payments got more than one "
                             "outcome\n",
                        s.outcomes.multiple_outcomes);
                return EXIT_FAILED;
        }
        return 0;
}

int main(int argc, char **argv) {
        static gen_conf_t gc;
        gen_run_t r;
        char *prefix = NULL;
        int rc, nargs;

        const kp_app_def_t def = {
            .name    = PROG,
            .summary = "Load generator: produces payments at a target rate.",
            .groups  = KP_APP_CLIENT,
            .sections =
                (const kp_conf_section_t[]){{gen_opts, &gc}, {NULL, NULL}},
        };
        kp_app_t *app = kp_app_new(&def, argc, argv, &rc);
        if (!app)
                return rc;

        memset(&r, 0, sizeof(r));
        r.c   = kp_app_conf(app);
        r.gc  = &gc;
        r.tty = isatty(STDERR_FILENO);
        /* Off a terminal, the first line comes after 5 s, not at once. */
        r.progress_ns = r.tty ? 0 : kp_mono_ns();
        char **args   = kp_conf_args(kp_app_kp_conf(app), &nargs);
        if (check_args(&gc, &r, &prefix, nargs, args)) {
                kp_free(prefix);
                kp_app_destroy(app);
                return EXIT_BAD_ARG;
        }
        if (!gc.count && !gc.duration)
                gc.count = 1000;
        r.prefix = prefix;
        kp_topic_name(r.incoming, sizeof(r.incoming), r.c->topic_prefix,
                      KP_TOPIC_INCOMING);
        kp_topic_name(r.complete, sizeof(r.complete), r.c->topic_prefix,
                      KP_TOPIC_COMPLETE);

        rc = run(&r);

        kp_follower_destroy(r.fol);
        if (r.rk) {
                flush_all(&r);
                rd_kafka_destroy(r.rk);
        }
        gen_tracker_destroy(r.tracker);
        if (r.latency_fp && fclose(r.latency_fp) != 0) {
                fprintf(stderr, PROG ": writing %s: %s\n", r.gc->latency_file,
                        strerror(errno));
                rc = rc ? rc : EXIT_FAILED;
        }
        if (r.stages_fp && fclose(r.stages_fp) != 0) {
                fprintf(stderr, PROG ": writing %s: %s\n", r.gc->stages_file,
                        strerror(errno));
                rc = rc ? rc : EXIT_FAILED;
        }
        kp_free(r.created);
        kp_free(prefix);
        kp_app_destroy(app);
        return rc;
}
