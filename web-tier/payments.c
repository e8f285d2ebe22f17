/* payments.c: /api/v1/payments and /api/v1/currencies (docs/api.md,
 * "Payments").
 *
 * POST /api/v1/payments validates the body as the codec does
 * (kp_payment.h; amounts as decimal strings through kp_currency.h),
 * produces the Payment to kpay.payments.incoming keyed by its id with
 * web_produce() (idempotent, murmur2) and answers once the broker has it.
 * The Idempotency-Key (or the body's id, or a generated one) is the
 * payment id: kpay-inflight's dedup makes a resubmission one payment, and
 * the answer is built from what the pipeline holds for the id, so it is
 * the same.
 *
 * Where a payment is: in kpay-inflight's store `inflight` while in flight,
 * then in kpay-confirmed's store `outcomes`, both on the id's home
 * partition murmur2(id) % N (web_store_get()), whatever partitioner the
 * client used (kpay-inflight re-routes it home first).
 *
 * ?wait_ms=N: one follower of kpay.payments.complete per kpay-web process
 * (from the end, read_committed, on its own thread) hands every outcome to
 * a table of waiters, keyed by id; a waiting request blocks its own
 * connection's thread on its condition variable (the server runs one
 * thread per connection) and costs nothing until its outcome or its
 * deadline comes. The follower also keeps the latest outcomes in a small
 * direct-mapped cache, which answers GET between kpay-inflight's removal
 * and kpay-confirmed's commit. Every kpay-web instance follows every
 * partition, so any instance can answer any request. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kpay/kp_currency.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_follower.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_money.h"
#include "kpay/kp_payment.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"
#include "web.h"

/** The longest ?wait_ms honoured (the contract's cap). */
#define WAIT_MS_MAX 30000
/** A waiter re-checks w->stopping this often (shutdown), never the
 *  stores. */
#define WAIT_SLICE_MS 250
/** Slots of the recent-outcome cache (direct-mapped by murmur2(id)). */
#define CACHE_SLOTS 4096
/** Buckets of the waiter table. */
#define WAITER_BUCKETS 256

/* One request waiting for the outcome of an id. */
typedef struct waiter_s {
        const char *id;
        pthread_cond_t cond;
        char *answer; /* the outcome's API JSON once seen (kp_malloc()ed) */
        struct waiter_s *next;
} waiter_t;

/* A recent outcome. */
typedef struct cached_s {
        char *id;
        char *answer;
} cached_t;

typedef struct payments_s {
        web_t *w;
        kp_follower_t *follower; /* kpay.payments.complete, from the end */
        pthread_mutex_t lock;    /* waiters and cache */
        waiter_t *waiters[WAITER_BUCKETS];
        cached_t *cache; /* CACHE_SLOTS entries */
} payments_t;

static payments_t pay = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------------
 * The answer: a payment as the API shows it. */

static json_t *ms_json(int64_t ms) {
        return ms >= 0 ? json_integer(ms) : json_null();
}

/* The API's view of @p p: @p state is "IN_FLIGHT" for a payment found in
 * flight, else its own state (COMPLETE, REJECTED). */
static json_t *payment_answer(const kp_payment_t *p, const char *state) {
        static const char *const stages[] = {"created", "inflight", "debit",
                                             "credit", "complete"};
        const int64_t times[] = {p->created_ms, p->inflight_ms, p->debit_ms,
                                 p->credit_ms, p->complete_ms};
        json_t *timeline      = json_array();
        for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
                if (times[i] >= 0)
                        json_array_append_new(
                            timeline,
                            json_pack("{s:s, s:I}", "stage", stages[i], "ms",
                                      (json_int_t)times[i]));
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, "
            "s:o}",
            "id", p->id, "state", state, "from", p->from, "to", p->to, "amount",
            (json_int_t)p->amount, "currency", p->currency, "reason",
            p->reason[0] ? json_string(p->reason) : json_null(), "created_ms",
            ms_json(p->created_ms), "inflight_ms", ms_json(p->inflight_ms),
            "debit_ms", ms_json(p->debit_ms), "credit_ms",
            ms_json(p->credit_ms), "complete_ms", ms_json(p->complete_ms),
            "timeline", timeline);
        if (!o) {
                KP_FATAL("out of memory building JSON");
                abort();
        }
        return o;
}

/* The answer of the outcome record @p buf, or NULL when it is not an
 * outcome with a valid id. */
static char *outcome_answer(const void *buf, size_t len, kp_payment_t *pp) {
        kp_payment_t p;
        char detail[128];
        if (!buf || kp_payment_parse(buf, len, &p, detail, sizeof(detail)))
                return NULL;
        char *s = NULL;
        if ((p.state == KP_PAY_COMPLETE || p.state == KP_PAY_REJECTED) &&
            kp_payment_id_valid(p.id)) {
                json_t *a = payment_answer(&p, kp_pay_state2str(p.state));
                s         = json_dumps(a, JSON_COMPACT);
                json_decref(a);
                if (!s) {
                        KP_FATAL("out of memory building JSON");
                        abort();
                }
                char *c = kp_strdup(s);
                free(s);
                s = c;
        }
        if (s && pp)
                *pp = p;
        else
                kp_payment_clear(&p);
        return s;
}

/* ------------------------------------------------------------------------
 * The follower: every outcome wakes its waiters and enters the cache. */

static size_t id_hash(const char *id) {
        return kp_murmur2(id, strlen(id));
}

static void on_outcome(const kp_follower_record_t *rec, void *opaque) {
        payments_t *ps = opaque;
        kp_payment_t p;
        char *answer = outcome_answer(rec->value, rec->value_len, &p);
        if (!answer)
                return; /* not an outcome: kpay's processors count it */
        size_t h = id_hash(p.id);
        pthread_mutex_lock(&ps->lock);
        for (waiter_t *wt = ps->waiters[h % WAITER_BUCKETS]; wt; wt = wt->next)
                if (!strcmp(wt->id, p.id) && !wt->answer) {
                        wt->answer = kp_strdup(answer);
                        pthread_cond_signal(&wt->cond);
                }
        cached_t *c = &ps->cache[h % CACHE_SLOTS];
        kp_free(c->id);
        kp_free(c->answer);
        c->id     = kp_strdup(p.id);
        c->answer = answer;
        pthread_mutex_unlock(&ps->lock);
        kp_payment_clear(&p);
}

/* The cached answer of @p id (kp_malloc()ed), or NULL. */
static char *cache_get(payments_t *ps, const char *id) {
        char *a = NULL;
        if (!ps->cache)
                return NULL;
        pthread_mutex_lock(&ps->lock);
        cached_t *c = &ps->cache[id_hash(id) % CACHE_SLOTS];
        if (c->id && !strcmp(c->id, id))
                a = kp_strdup(c->answer);
        pthread_mutex_unlock(&ps->lock);
        return a;
}

static void waiter_add(payments_t *ps, waiter_t *wt, const char *id) {
        pthread_condattr_t attr;
        memset(wt, 0, sizeof(*wt));
        wt->id = id;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&wt->cond, &attr);
        pthread_condattr_destroy(&attr);
        pthread_mutex_lock(&ps->lock);
        waiter_t **b = &ps->waiters[id_hash(id) % WAITER_BUCKETS];
        wt->next     = *b;
        *b           = wt;
        pthread_mutex_unlock(&ps->lock);
}

/* Unlinks @p wt. @returns its answer (the caller's to free) or NULL. */
static char *waiter_remove(payments_t *ps, waiter_t *wt) {
        pthread_mutex_lock(&ps->lock);
        for (waiter_t **b = &ps->waiters[id_hash(wt->id) % WAITER_BUCKETS]; *b;
             b            = &(*b)->next)
                if (*b == wt) {
                                   *b = wt->next;
                                   break;
                }
        pthread_mutex_unlock(&ps->lock);
        pthread_cond_destroy(&wt->cond);
        return wt->answer;
}

/* Waits until @p wt has its outcome, @p deadline_ms (CLOCK_MONOTONIC)
 * passes or kpay-web stops. */
static void waiter_wait(payments_t *ps, waiter_t *wt, int64_t deadline_ms) {
        pthread_mutex_lock(&ps->lock);
        while (!wt->answer && !atomic_load(&ps->w->stopping)) {
                int64_t now = kp_mono_ms();
                if (now >= deadline_ms)
                        break;
                int64_t until = deadline_ms;
                if (until - now > WAIT_SLICE_MS)
                        until = now + WAIT_SLICE_MS;
                struct timespec ts = {
                    .tv_sec  = (time_t)(until / 1000),
                    .tv_nsec = (long)(until % 1000) * 1000000};
                int r = pthread_cond_timedwait(&wt->cond, &ps->lock, &ts);
                if (r && r != ETIMEDOUT && r != EINTR)
                        break;
        }
        pthread_mutex_unlock(&ps->lock);
}

/* ------------------------------------------------------------------------
 * Where a payment is. */

/* The store value @p v (a Payment as JSON) parsed into @p p. */
static int value_payment(const json_t *v, kp_payment_t *p) {
        char detail[128];
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s)
                return -1;
        kp_pay_err_t e =
            kp_payment_parse(s, strlen(s), p, detail, sizeof(detail));
        free(s);
        return e == KP_PAY_E_OK ? 0 : -1;
}

/* What kpay knows about @p id. With @p fresh, an answer reflects every
 * outcome committed before the call, also when another kpay-web instance
 * answered it already: the follower is first brought up to the topic's
 * end offsets. @returns 200 with *answerp (the payment as the API shows
 * it, kp_malloc()ed) and *finalp (1: an outcome, 0: in flight), 404 when
 * no one knows it, or 503 with *partitionp the missing partition. */
static int lookup(payments_t *ps, const char *id, int fresh, char **answerp,
                  int *finalp, int32_t *partitionp) {
        json_t *v = NULL;
        kp_payment_t p;
        int32_t part = -1, part2 = -1;
        char *flight = NULL;
        int so       = 404;
        *answerp     = NULL;
        if ((*answerp = cache_get(ps, id))) {
                *finalp = 1;
                return 200;
        }
        /* In flight first: a payment moves from there to its outcome, so
         * one not in flight is either not there yet or final already. */
        int si = web_store_get(ps->w, "inflight", "inflight", id, &v, &part);
        if (si == 200) {
                int bad = value_payment(v, &p);
                json_decref(v);
                if (bad) {
                        KP_WARN("store inflight: payment %s undecodable", id);
                        si = 404;
                } else {
                        json_t *a = payment_answer(&p, "IN_FLIGHT");
                        kp_payment_clear(&p);
                        char *s = json_dumps(a, JSON_COMPACT);
                        json_decref(a);
                        flight = kp_strdup(s);
                        free(s);
                }
        }
        if (!flight) {
                v  = NULL;
                so = web_store_get(ps->w, "confirmed", "outcomes", id, &v,
                                   &part2);
                if (so == 200) {
                        char *s = json_dumps(v, JSON_COMPACT);
                        json_decref(v);
                        *answerp =
                            s ? outcome_answer(s, strlen(s), NULL) : NULL;
                        free(s);
                        if (*answerp) {
                                *finalp = 1;
                                return 200;
                        }
                        KP_WARN("store outcomes: payment %s undecodable", id);
                        so = 404;
                }
        }
        /* An outcome the stores do not show yet (kpay-inflight and
         * kpay-confirmed commit after the outcome itself) is on
         * kpay.payments.complete already. */
        if (fresh && ps->follower &&
            kp_follower_sync(ps->follower,
                             (int)ps->w->conf->request_timeout_ms) != KP_OK)
                KP_DEBUG("payment %s: the outcome follower is behind", id);
        if ((*answerp = cache_get(ps, id))) {
                kp_free(flight);
                *finalp = 1;
                return 200;
        }
        if (flight) {
                *answerp = flight;
                *finalp  = 0;
                return 200;
        }
        if (si == 503 || so == 503) {
                *partitionp = si == 503 ? part : part2;
                return 503;
        }
        return 404;
}

/* Sets 200 with @p answer (taken over). */
static void resp_answer(kp_http_resp_t *resp, int status, char *answer) {
        json_error_t jerr;
        json_t *j = json_loads(answer, 0, &jerr);
        kp_free(answer);
        if (!j) {
                kp_http_resp_error(resp, 503, "unavailable",
                                   "an answer could not be read");
                return;
        }
        kp_http_resp_json(resp, status, j);
}

static void resp_missing(kp_http_resp_t *resp, int32_t partition) {
        web_resp_unavailable(resp, &partition, partition >= 0 ? 1 : 0,
                             "the instance that owns the payment's partition "
                             "did not answer");
}

/* ------------------------------------------------------------------------
 * POST /api/v1/payments */

/* A string member @p name of @p body, or NULL with 400 set (when
 * @p required, or present and not a string). */
static const char *str_member(web_req_t *r, json_t *body, const char *name,
                              int required, int *failed) {
        json_t *v = json_object_get(body, name);
        if (!v || json_is_null(v)) {
                if (required) {
                        kp_http_resp_error(r->resp, 400, "bad_request",
                                           "\"%s\" is required", name);
                        *failed = 1;
                }
                return NULL;
        }
        if (!json_is_string(v)) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "\"%s\" must be a string", name);
                *failed = 1;
                return NULL;
        }
        return json_string_value(v);
}

/* Reads the amount of @p body in @p currency's minor units into @p p.
 * @returns 0, or -1 with the answer set. */
static int read_amount(web_req_t *r, json_t *body, kp_payment_t *p) {
        json_t *v = json_object_get(body, "amount");
        int exp   = kp_currency_exponent(p->currency);
        if (!kp_currency_valid(p->currency) || exp < 0) {
                kp_http_resp_error(r->resp, 400, "invalid_currency",
                                   "\"%s\" is not an ISO 4217 currency code "
                                   "with a minor unit (GET /api/v1/"
                                   "currencies lists them)",
                                   p->currency);
                return -1;
        }
        if (json_is_integer(v)) {
                p->amount = json_integer_value(v);
                return 0;
        }
        if (json_is_string(v)) {
                kp_err_t err =
                    kp_amount_parse(json_string_value(v), json_string_length(v),
                                    exp, &p->amount);
                if (!err)
                        return 0;
                if (err == KP_ERR_OVERFLOW)
                        kp_http_resp_error(r->resp, 400, "invalid_amount",
                                           "\"%s\" %s is more than an int64 "
                                           "of minor units",
                                           json_string_value(v), p->currency);
                else
                        kp_http_resp_error(
                            r->resp, 400, "invalid_amount",
                            "\"%s\" is not an exact %s amount: digits, and "
                            "at most one '.' followed by up to %d digits "
                            "(never rounded)",
                            json_string_value(v), p->currency, exp);
                return -1;
        }
        kp_http_resp_error(r->resp, 400, "invalid_amount",
                           v ? "\"amount\" must be an integer of minor units "
                               "or a decimal string"
                             : "\"amount\" is required");
        return -1;
}

/* A new payment id: "web-" and 32 random hex digits. */
static int generate_id(char *buf, size_t size) {
        unsigned char rnd[16];
        size_t got = 0;
        while (got < sizeof(rnd)) {
                ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                got += (size_t)n;
        }
        int n = snprintf(buf, size, "web-");
        for (size_t i = 0; i < sizeof(rnd); i++)
                n += snprintf(buf + n, size - (size_t)n, "%02x", rnd[i]);
        return 0;
}

/* The body as a Payment (state INCOMING, created now). @returns 0, or -1
 * with the answer set. */
static int read_payment(web_req_t *r, json_t *body, kp_payment_t *p) {
        static const char *const known[] = {"id", "from", "to", "amount",
                                            "currency"};
        const char *k;
        json_t *v;
        int failed = 0;
        json_object_foreach(body, k, v) {
                size_t i = 0;
                while (i < sizeof(known) / sizeof(known[0]) &&
                       strcmp(k, known[i]))
                        i++;
                if (i == sizeof(known) / sizeof(known[0])) {
                        kp_http_resp_error(r->resp, 400, "bad_request",
                                           "unknown field \"%s\" (fields: id, "
                                           "from, to, amount, currency)",
                                           k);
                        return -1;
                }
        }
        const char *id = str_member(r, body, "id", 0, &failed);
        const char *from =
            failed ? NULL : str_member(r, body, "from", 1, &failed);
        const char *to = failed ? NULL : str_member(r, body, "to", 1, &failed);
        const char *cur =
            failed ? NULL : str_member(r, body, "currency", 0, &failed);
        if (failed)
                return -1;
        const char *key = kp_http_req_header(r->http, "Idempotency-Key");
        if (key && id && strcmp(key, id)) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "the Idempotency-Key header and \"id\" "
                                   "differ; give one, or the same in both");
                return -1;
        }
        if (!id)
                id = key;

        memset(p, 0, sizeof(*p));
        p->v           = KP_PAYMENT_VERSION;
        p->state       = KP_PAY_INCOMING;
        p->created_ms  = kp_wall_ms();
        p->inflight_ms = p->complete_ms = p->debit_ms = p->credit_ms = -1;
        p->origin_partition                                          = -1;
        /* The codec's own rules, checked on the whole strings before they
         * go into the Payment's fixed fields. */
        if (id && !kp_payment_id_valid(id)) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "invalid_id: a payment id (Idempotency-Key "
                                   "or \"id\") is 1-128 printable ASCII "
                                   "characters");
                return -1;
        }
        if (!kp_account_id_valid(from) || !kp_account_id_valid(to)) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "invalid_account: \"from\" and \"to\" are "
                                   "1-64 of [A-Za-z0-9._:-], optionally after "
                                   "one '@'");
                return -1;
        }
        if (id)
                snprintf(p->id, sizeof(p->id), "%s", id);
        else if (generate_id(p->id, sizeof(p->id))) {
                kp_http_resp_error(r->resp, 503, "unavailable",
                                   "no random bytes for a payment id");
                return -1;
        }
        snprintf(p->from, sizeof(p->from), "%s", from);
        snprintf(p->to, sizeof(p->to), "%s", to);
        if (cur && strlen(cur) >= sizeof(p->currency)) {
                kp_http_resp_error(r->resp, 400, "invalid_currency",
                                   "\"currency\" is 3 upper-case letters");
                return -1;
        }
        snprintf(p->currency, sizeof(p->currency), "%s", cur ? cur : "USD");
        if (read_amount(r, body, p))
                return -1;
        kp_reason_t why = kp_payment_validate(p);
        switch (why) {
        case KP_REASON_NONE:
                return 0;
        case KP_REASON_INVALID_AMOUNT:
                kp_http_resp_error(r->resp, 400, "invalid_amount",
                                   "the amount must be more than 0");
                return -1;
        case KP_REASON_INVALID_CURRENCY:
                kp_http_resp_error(r->resp, 400, "invalid_currency",
                                   "\"currency\" is 3 upper-case letters");
                return -1;
        default:
                kp_http_resp_error(r->resp, 400, "bad_request", "%s",
                                   kp_reason2str(why));
                return -1;
        }
}

/* 1 if the known payment @p answer is not what @p p asks for (the same
 * key reused for another payment). */
static int conflicts(const char *answer, const kp_payment_t *p) {
        json_error_t jerr;
        json_t *a = json_loads(answer, 0, &jerr);
        int c     = 1;
        if (a) {
                const char *from =
                    json_string_value(json_object_get(a, "from"));
                const char *to = json_string_value(json_object_get(a, "to"));
                const char *cur =
                    json_string_value(json_object_get(a, "currency"));
                json_t *amt = json_object_get(a, "amount");
                c           = !from || !to || !cur || !json_is_integer(amt) ||
                    strcmp(from, p->from) || strcmp(to, p->to) ||
                    strcmp(cur, p->currency) ||
                    json_integer_value(amt) != p->amount;
                json_decref(a);
        }
        return c;
}

/* The ?wait_ms of the request: 0 when absent, capped. @returns 0, or -1
 * with 400 set. */
static int read_wait_ms(web_req_t *r, int64_t *msp) {
        const char *s = kp_http_req_query(r->http, "wait_ms");
        int64_t v     = 0;
        *msp          = 0;
        if (!s)
                return 0;
        if (!*s || strlen(s) > 9)
                goto bad;
        for (const char *c = s; *c; c++) {
                if (*c < '0' || *c > '9')
                        goto bad;
                v = v * 10 + (*c - '0');
        }
        *msp = v > WAIT_MS_MAX ? WAIT_MS_MAX : v;
        return 0;
bad:
        kp_http_resp_error(r->resp, 400, "bad_request",
                           "wait_ms is a number of milliseconds (0-%d)",
                           WAIT_MS_MAX);
        return -1;
}

static void resp_submitted(kp_http_resp_t *resp, const char *id) {
        char *enc = kp_http_url_encode(id);
        char *loc = kp_asprintf("/api/v1/payments/%s", enc);
        kp_free(enc);
        kp_http_resp_header(resp, "Location", loc);
        kp_http_resp_json(resp, 202,
                          json_pack("{s:s, s:s, s:s}", "id", id, "state",
                                    "SUBMITTED", "location", loc));
        kp_free(loc);
}

static void h_post(web_req_t *r) {
        payments_t *ps = &pay;
        kp_payment_t p;
        int64_t wait_ms;
        char *answer = NULL;
        int final    = 0;
        int32_t part = -1;
        waiter_t wt;
        int waiting = 0;

        if (read_wait_ms(r, &wait_ms))
                return;
        json_t *body = web_body_object(r);
        if (!body)
                return;
        int bad = read_payment(r, body, &p);
        json_decref(body);
        if (bad)
                return;
        int64_t deadline = kp_mono_ms() + wait_ms;
        /* Waiting from before the record exists: no outcome slips by. */
        if (wait_ms > 0 && ps->follower) {
                waiter_add(ps, &wt, p.id);
                waiting = 1;
        }
        /* A payment the pipeline already has is not sent again (kpay-
         * inflight would drop the copy anyway): the answer is what it
         * holds, and a different payment under the same key is refused. */
        int known = lookup(ps, p.id, 0, &answer, &final, &part);
        if (known == 200 && conflicts(answer, &p)) {
                kp_free(answer);
                if (waiting)
                        kp_free(waiter_remove(ps, &wt));
                kp_http_resp_error(r->resp, 409, "conflict",
                                   "payment %s exists with another from, to, "
                                   "amount or currency",
                                   p.id);
                kp_payment_clear(&p);
                return;
        }
        if (known != 200) {
                size_t len;
                char *val                = kp_payment_serialize(&p, &len);
                rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
                rd_kafka_header_add(hdrs, "kpay-trace", -1, p.id, -1);
                rd_kafka_header_add(hdrs, "kpay-hop", -1, "web", -1);
                kp_err_t err = web_produce(r->w, r->w->topic_incoming, p.id,
                                           val, len, hdrs);
                kp_free(val);
                if (err) {
                        if (waiting)
                                kp_free(waiter_remove(ps, &wt));
                        kp_http_resp_error(
                            r->resp, err == KP_ERR_TIMED_OUT ? 504 : 503,
                            err == KP_ERR_TIMED_OUT ? "timeout" : "unavailable",
                            "payment %s was not accepted by Kafka (%s); "
                            "retry with the same Idempotency-Key",
                            p.id, kp_err2str(err));
                        kp_payment_clear(&p);
                        return;
                }
        }
        if (waiting && !final) {
                kp_free(answer);
                answer = NULL;
                waiter_wait(ps, &wt, deadline);
                answer  = waiter_remove(ps, &wt);
                waiting = 0;
                /* Missed by the follower (it started after the outcome):
                 * the stores have it. */
                if (!answer &&
                    lookup(ps, p.id, 1, &answer, &final, &part) == 200 &&
                    !final) {
                        kp_free(answer);
                        answer = NULL;
                }
                final = answer != NULL;
        }
        if (waiting)
                kp_free(waiter_remove(ps, &wt));
        /* The outcome found after producing may be another payment's under
         * the same key (the first lookup missed it, or a concurrent POST
         * with another body won): never answer 200 with it. */
        if (wait_ms > 0 && final && answer && conflicts(answer, &p)) {
                kp_free(answer);
                kp_http_resp_error(r->resp, 409, "conflict",
                                   "payment %s exists with another from, to, "
                                   "amount or currency",
                                   p.id);
        } else if (wait_ms > 0 && final && answer)
                resp_answer(r->resp, 200, answer);
        else {
                kp_free(answer);
                resp_submitted(r->resp, p.id);
        }
        kp_payment_clear(&p);
}

/* ------------------------------------------------------------------------
 * GET /api/v1/payments/{id}, GET /api/v1/currencies */

static void h_get(web_req_t *r) {
        const char *id = web_param(r, "id");
        char *answer   = NULL;
        int final      = 0;
        int32_t part   = -1;
        if (!id || !kp_payment_id_valid(id)) {
                kp_http_resp_error(r->resp, 404, "not_found",
                                   "no such payment (an id is 1-128 "
                                   "printable ASCII characters)");
                return;
        }
        switch (lookup(&pay, id, 1, &answer, &final, &part)) {
        case 200:
                resp_answer(r->resp, 200, answer);
                break;
        case 503:
                resp_missing(r->resp, part);
                break;
        default:
                kp_http_resp_error(r->resp, 404, "not_found",
                                   "no payment %s in flight or among the "
                                   "outcomes kept",
                                   id);
        }
}

static void h_currencies(web_req_t *r) {
        kp_http_resp_json(
            r->resp, 200,
            json_pack("{s:o}", "currencies", kp_currency_table_json()));
}

static void fini(web_t *w, void *opaque) {
        payments_t *ps = opaque;
        (void)w;
        kp_follower_destroy(ps->follower);
        ps->follower = NULL;
        for (size_t i = 0; ps->cache && i < CACHE_SLOTS; i++) {
                kp_free(ps->cache[i].id);
                kp_free(ps->cache[i].answer);
        }
        kp_free(ps->cache);
        ps->cache = NULL;
}

void web_payments_routes(web_t *w) {
        payments_t *ps = &pay;
        char topic[256], errstr[512];
        ps->w = w;
        web_route(w, "POST", "/api/v1/payments", WEB_ROUTE_MUTATION, h_post,
                  ps);
        web_route(w, "GET", "/api/v1/payments/{id}", 0, h_get, ps);
        /* An id may hold '/' (printable ASCII): its %2F is decoded before
         * routing, so it arrives as several segments. The same operation
         * as above for OpenAPI, whose {id} is the encoded id. */
        web_route(w, "GET", "/api/v1/payments/{id+}", WEB_ROUTE_HIDDEN, h_get,
                  ps);
        web_route(w, "GET", "/api/v1/currencies", 0, h_currencies, ps);
        if (!w->svc)
                return; /* unit tests: routes only */
        ps->cache             = kp_calloc(CACHE_SLOTS, sizeof(*ps->cache));
        kp_follower_conf_t fc = {
            .topic     = kp_topic_name(topic, sizeof(topic), w->prefix,
                                       KP_TOPIC_COMPLETE),
            .client_id = "kpay-web-outcomes",
            .log_name  = "outcomes",
            .from_end  = 1,
            .threaded  = 1,
            .on_record = on_outcome,
            .opaque    = ps,
        };
        ps->follower = kp_follower_new(kp_service_app_conf(w->svc), &fc, errstr,
                                       sizeof(errstr));
        if (!ps->follower)
                KP_ERROR(
                    "following %s: %s (?wait_ms answers 202 at its "
                    "deadline)",
                    topic, errstr);
        web_at_fini(w, fini, ps);
}
