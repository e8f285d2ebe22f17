/* kpay-testproc: the runtime's test processor. For each input record
 * (key K, value a decimal integer V) it adds V to the running sum of K in
 * store "sums" and emits "K:V:SUM" to test.out on the input's partition.
 * A value may carry padding after a '|' ("12|xxxx"), which is ignored: the
 * benchmark uses it for realistic record sizes.
 * With --punctuate-ms it also emits "tick" records to test.ticks from a
 * wall-clock punctuator. Records whose value is not an integer are
 * dead-lettered by the runtime (process() returns KP_ERR_PARSE).
 * Each output carries the header testproc-pid (this process's id), so that
 * tests can tell apart two processes with the same --instance-id.
 * With --hang-value V, a record whose value is V blocks process() until the
 * process is asked to stop: a wedged processing loop, for the watchdog of
 * /healthz. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_http.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_proc.h"
#include "kpay/kp_time.h"
#include "kpay/kp_topics.h"

typedef struct testproc_conf_s {
        int64_t punctuate_ms;
        char *hang_value;
} testproc_conf_t;

static testproc_conf_t tconf;

/* The test topics (outside kpay's table): ids KP_TOPIC__CNT + i. */
#define TOPIC_IN    ((kp_topic_id_t)(KP_TOPIC__CNT + 0))
#define TOPIC_OUT   ((kp_topic_id_t)(KP_TOPIC__CNT + 1))
#define TOPIC_TICKS ((kp_topic_id_t)(KP_TOPIC__CNT + 2))

static const kp_conf_opt_t testproc_opts[] = {
    {"punctuate-ms", 0, KP_CONF_INT, offsetof(testproc_conf_t, punctuate_ms),
     "0", 0, 3600000, NULL, "Emit a tick per partition this often (0: off)."},
    {"hang-value", 0, KP_CONF_STR, offsetof(testproc_conf_t, hang_value), NULL,
     0, 0, "STR",
     "A record with this value blocks processing until SIGTERM (tests)."},
    {NULL},
};

static kp_err_t process(kp_ctx_t *ctx, const kp_record_t *rec, void *opaque) {
        (void)opaque;
        char text[32], key[256];
        int64_t v, sum = 0;
        size_t tlen = 0;
        if (!rec->key || rec->key_len == 0 || rec->key_len >= sizeof(key) ||
            !rec->value || rec->value_len == 0)
                return KP_ERR_PARSE;
        if (tconf.hang_value && rec->value_len == strlen(tconf.hang_value) &&
            !memcmp(rec->value, tconf.hang_value, rec->value_len)) {
                KP_WARN("hanging on %.*s until stopped", (int)rec->value_len,
                        (const char *)rec->value);
                while (kp_app_running())
                        kp_sleep_ms(50);
                return KP_ERR_PARSE;
        }
        while (tlen < rec->value_len && ((const char *)rec->value)[tlen] != '|')
                tlen++;
        if (tlen == 0 || tlen >= sizeof(text))
                return KP_ERR_PARSE;
        memcpy(text, rec->value, tlen);
        text[tlen] = '\0';
        memcpy(key, rec->key, rec->key_len);
        key[rec->key_len] = '\0';
        if (kp_parse_int64(text, &v))
                return KP_ERR_PARSE;

        void *old;
        size_t oldlen;
        kp_err_t err =
            kp_ctx_get(ctx, 0, rec->key, rec->key_len, &old, &oldlen);
        if (err == KP_OK) {
                char buf[32];
                snprintf(buf, sizeof(buf), "%.*s", (int)oldlen,
                         (const char *)old);
                kp_free(old);
                if (kp_parse_int64(buf, &sum))
                        return KP_ERR_STORE;
        } else if (err != KP_ERR_NOT_FOUND) {
                return err;
        }
        if (__builtin_add_overflow(sum, v, &sum))
                return KP_ERR_OVERFLOW;

        char val[64];
        int vlen = snprintf(val, sizeof(val), "%" PRId64, sum);
        if ((err =
                 kp_ctx_put(ctx, 0, rec->key, rec->key_len, val, (size_t)vlen)))
                return err;
        /* The output carries the input's padding, so it is as large. */
        size_t padlen = rec->value_len - tlen;
        char *out     = kp_asprintf("%s:%s:%" PRId64 "%.*s", key, text, sum,
                                    (int)padlen, (const char *)rec->value + tlen);
        /* Made once, on the processing thread; the runtime copies it. */
        static rd_kafka_headers_t *pid_hdr;
        if (!pid_hdr) {
                char pid[32];
                snprintf(pid, sizeof(pid), "%ld", (long)getpid());
                pid_hdr = rd_kafka_headers_new(1);
                rd_kafka_header_add(pid_hdr, "testproc-pid", -1, pid, -1);
        }
        err = kp_ctx_emit(ctx, TOPIC_OUT, kp_ctx_partition(ctx), rec->key,
                          rec->key_len, out, strlen(out), pid_hdr);
        kp_free(out);
        return err;
}

static void punctuate(kp_ctx_t *ctx, int64_t now_ms, void *opaque) {
        (void)opaque;
        char key[32], val[64];
        int klen = snprintf(key, sizeof(key), "%d", (int)kp_ctx_partition(ctx));
        int vlen = snprintf(val, sizeof(val), "%" PRId64, now_ms);
        /* A failed emit aborts the transaction in the runtime; say so. */
        if (kp_ctx_emit(ctx, TOPIC_TICKS, kp_ctx_partition(ctx), key,
                        (size_t)klen, val, (size_t)vlen, NULL))
                KP_WARN("tick for partition %s not emitted", key);
}

/* POST /test/flow?pause=0|1&rate=N: the runtime's flow-control hooks
 * (kp_proc_pause_input, kp_proc_rate_limit_input) on test.in, for the
 * integration tests. */
static void h_flow(const kp_http_req_t *req, const char *rest,
                   kp_http_resp_t *resp, void *opaque) {
        kp_proc_t *proc   = opaque;
        const char *pause = kp_http_req_query(req, "pause");
        const char *rate  = kp_http_req_query(req, "rate");
        int64_t n;
        (void)rest;
        if (pause && (kp_parse_int64(pause, &n) || n < 0 || n > 1 ||
                      kp_proc_pause_input(proc, TOPIC_IN, (int)n))) {
                kp_http_resp_error(resp, 400, "bad_request", "pause=0|1");
                return;
        }
        if (rate && (kp_parse_int64(rate, &n) || n < 0 ||
                     kp_proc_rate_limit_input(proc, TOPIC_IN, (double)n))) {
                kp_http_resp_error(resp, 400, "bad_request", "rate=N");
                return;
        }
        kp_http_resp_json(
            resp, 200,
            json_pack("{s:b}", "paused", kp_proc_input_paused(proc, TOPIC_IN)));
}

static kp_err_t init(kp_proc_t *proc, void *opaque) {
        (void)opaque;
        kp_service_route(kp_proc_service(proc), "POST", "/test/flow", h_flow,
                         proc);
        return KP_OK;
}

/* --punctuate-ms decides whether punctuate() runs. */
static kp_err_t configure(kp_proc_def_t *def, void *opaque) {
        (void)opaque;
        if (tconf.punctuate_ms > 0) {
                def->punctuate             = punctuate;
                def->punctuate_interval_ms = tconf.punctuate_ms;
        }
        return KP_OK;
}

int main(int argc, char **argv) {
        static const char *const topics[]    = {"test.in", "test.out",
                                                "test.ticks", NULL};
        static const kp_topic_id_t inputs[]  = {TOPIC_IN, KP_TOPIC_NONE};
        static const char *const stores[]    = {"sums", NULL};
        static const kp_proc_layout_t layout = {"testproc", inputs, stores};
        static const kp_conf_section_t sections[] = {{testproc_opts, &tconf},
                                                     {NULL, NULL}};
        static const kp_proc_def_t def            = {
                       .name         = "kpay-testproc",
                       .summary      = "Test processor of the kpay runtime: running sums.",
                       .layout       = &layout,
                       .extra_topics = topics,
                       .sections     = sections,
                       .process      = process,
                       .configure    = configure,
                       .init         = init,
        };
        return kp_proc_main(&def, argc, argv);
}
