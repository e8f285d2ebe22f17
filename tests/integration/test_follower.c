/* Integration tests of kp_follower against the fixture's real broker: the
 * compacted view from the start (puts, overwrites, tombstones), following
 * from the end, read_committed (an aborted transaction is never seen), and
 * a topic created after the follower started. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "it_util.h"
#include "kpay/kp_follower.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_time.h"

/* What on_record saw, as "key=value" ("key=-" for a tombstone). */
typedef struct seen_s {
        pthread_mutex_t lock;
        char **recs;
        size_t cnt, size;
} seen_t;

static void seen_init(seen_t *s) {
        memset(s, 0, sizeof(*s));
        pthread_mutex_init(&s->lock, NULL);
}

static void seen_clear(seen_t *s) {
        for (size_t i = 0; i < s->cnt; i++)
                kp_free(s->recs[i]);
        kp_free(s->recs);
        pthread_mutex_destroy(&s->lock);
}

static void on_record(const kp_follower_record_t *rec, void *opaque) {
        seen_t *s = opaque;
        char *r   = kp_asprintf("%.*s=%.*s", (int)rec->key_len,
                              rec->key ? (const char *)rec->key : "",
                              rec->value ? (int)rec->value_len : 1,
                              rec->value ? (const char *)rec->value : "-");
        pthread_mutex_lock(&s->lock);
        if (s->cnt == s->size) {
                s->size = s->size ? s->size * 2 : 16;
                s->recs = kp_realloc(s->recs, s->size * sizeof(*s->recs));
        }
        s->recs[s->cnt++] = r;
        pthread_mutex_unlock(&s->lock);
}

/* 1 if on_record saw @p rec ("key=value"). */
static int seen_has(seen_t *s, const char *rec) {
        int found = 0;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; !found && i < s->cnt; i++)
                found = !strcmp(s->recs[i], rec);
        pthread_mutex_unlock(&s->lock);
        return found;
}

static size_t seen_cnt(seen_t *s) {
        pthread_mutex_lock(&s->lock);
        size_t n = s->cnt;
        pthread_mutex_unlock(&s->lock);
        return n;
}

static kp_app_conf_t app_conf(void) {
        kp_app_conf_t c     = {0};
        c.bootstrap_servers = (char *)it_bootstrap();
        return c;
}

/* A follower by @p fc whose on_record fills @p seen (initialised here). */
static kp_follower_t *follower(kp_follower_conf_t fc, seen_t *seen) {
        char errstr[512];
        kp_app_conf_t c = app_conf();
        seen_init(seen);
        fc.on_record     = on_record;
        fc.opaque        = seen;
        kp_follower_t *f = kp_follower_new(&c, &fc, errstr, sizeof(errstr));
        if (!f)
                fail_msg("kp_follower_new: %s", errstr);
        return f;
}

/* This run's name for topic @p name, in @p topic; the topic is created
 * unless @p partitions is 0. */
static void new_topic(char *topic, size_t size, const char *name,
                      int partitions, int compact) {
        char prefix[128];
        it_unique_prefix(prefix, sizeof(prefix), "fol");
        snprintf(topic, size, "%s%s", prefix, name);
        if (partitions)
                it_create_topics((const char *const[]){topic, NULL}, partitions,
                                 compact);
}

static void flush(rd_kafka_t *p) {
        if (rd_kafka_flush(p, 30000))
                fail_msg("flush did not finish");
}

static void assert_value(kp_follower_t *f, const char *key, const char *want) {
        char *v      = NULL;
        size_t len   = 0;
        kp_err_t err = kp_follower_get(f, key, strlen(key), &v, &len);
        if (!want) {
                assert_int_equal(err, KP_ERR_NOT_FOUND);
                assert_null(v);
                return;
        }
        assert_int_equal(err, KP_OK);
        assert_int_equal(len, strlen(want));
        assert_string_equal(v, want);
        kp_free(v);
}

typedef struct walk_s {
        int cnt;
        int64_t max_recv_ms;
} walk_t;

static int walk(const void *key, size_t key_len, const void *value,
                size_t value_len, const void *decoded, int64_t recv_ms,
                void *opaque) {
        walk_t *w = opaque;
        (void)key, (void)key_len, (void)value, (void)value_len, (void)decoded;
        w->cnt++;
        if (recv_ms > w->max_recv_ms)
                w->max_recv_ms = recv_ms;
        return 0;
}

/* From the start with a table: the latest value per key, tombstones
 * remove, and sync sees everything written before it. */
static void test_table_from_start(void **state) {
        (void)state;
        char topic[256];
        new_topic(topic, sizeof(topic), "table", 3, 1);

        rd_kafka_t *p = it_producer();
        it_produce(p, topic, -1, "k1", "a");
        it_produce(p, topic, -1, "k2", "b");
        it_produce(p, topic, -1, "k1", "c");
        it_produce(p, topic, -1, "k3", "x");
        it_produce(p, topic, -1, "k2", NULL);
        flush(p);

        seen_t seen;
        const kp_follower_conf_t fc = {
            .topic = topic, .keep_table = 1, .threaded = 1};
        kp_follower_t *f = follower(fc, &seen);
        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_int_equal(seen_cnt(&seen), 5);
        assert_true(seen_has(&seen, "k1=a") && seen_has(&seen, "k1=c") &&
                    seen_has(&seen, "k2=-"));
        assert_value(f, "k1", "c");
        assert_value(f, "k2", NULL);
        assert_value(f, "k3", "x");
        walk_t w = {0};
        assert_int_equal(kp_follower_foreach(f, walk, &w), 2);
        assert_int_equal(w.cnt, 2);
        assert_true(w.max_recv_ms <= kp_mono_ms());

        /* Written after the start: the next sync sees it. */
        it_produce(p, topic, -1, "k3", NULL);
        it_produce(p, topic, -1, "k4", "y");
        it_producer_close(p);
        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_value(f, "k3", NULL);
        assert_value(f, "k4", "y");
        assert_int_equal(seen_cnt(&seen), 7);

        kp_follower_destroy(f);
        seen_clear(&seen);
}

/* From the end, driven by the caller: what was there before is not read,
 * what comes after is. */
static void test_from_end(void **state) {
        (void)state;
        char topic[256];
        new_topic(topic, sizeof(topic), "end", 2, 0);

        rd_kafka_t *p = it_producer();
        for (int i = 0; i < 10; i++)
                it_produce(p, topic, i % 2, "old", "1");
        flush(p);

        seen_t seen;
        const kp_follower_conf_t fc = {.topic = topic, .from_end = 1};
        kp_follower_t *f            = follower(fc, &seen);
        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_int_equal(seen_cnt(&seen), 0);

        it_produce(p, topic, 0, "new", "2");
        it_produce(p, topic, 1, "new", "3");
        it_producer_close(p);
        int64_t deadline = kp_mono_ms() + 30000;
        while (seen_cnt(&seen) < 2 && kp_mono_ms() < deadline)
                assert_true(kp_follower_poll(f, 100) >= 0);
        assert_true(seen_has(&seen, "new=2"));
        assert_true(seen_has(&seen, "new=3"));
        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_int_equal(seen_cnt(&seen), 2);
        assert_false(seen_has(&seen, "old=1"));

        kp_follower_destroy(f);
        seen_clear(&seen);
}

static void check_txn(rd_kafka_error_t *e, const char *what) {
        if (e) {
                const char *msg = rd_kafka_error_string(e);
                rd_kafka_error_destroy(e);
                fail_msg("%s: %s", what, msg);
        }
}

/* read_committed: a record of an aborted transaction is never handed on,
 * one of a committed transaction is. */
static void test_aborted_never_seen(void **state) {
        (void)state;
        char topic[256], txid[300];
        new_topic(topic, sizeof(topic), "txn", 1, 0);
        snprintf(txid, sizeof(txid), "%s.tx", topic);

        seen_t seen;
        const kp_follower_conf_t fc = {
            .topic = topic, .keep_table = 1, .threaded = 1};
        kp_follower_t *f = follower(fc, &seen);

        rd_kafka_t *p =
            it_client(RD_KAFKA_PRODUCER,
                      (const char *const[]){"transactional.id", txid, NULL});
        check_txn(rd_kafka_init_transactions(p, 30000), "init");
        check_txn(rd_kafka_begin_transaction(p), "begin");
        it_produce(p, topic, 0, "k", "aborted");
        flush(p);
        check_txn(rd_kafka_abort_transaction(p, 30000), "abort");
        check_txn(rd_kafka_begin_transaction(p), "begin");
        it_produce(p, topic, 0, "k2", "committed");
        check_txn(rd_kafka_commit_transaction(p, 30000), "commit");
        rd_kafka_destroy(p);

        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_true(seen_has(&seen, "k2=committed"));
        assert_false(seen_has(&seen, "k=aborted"));
        assert_int_equal(seen_cnt(&seen), 1);
        assert_value(f, "k", NULL);
        assert_value(f, "k2", "committed");

        kp_follower_destroy(f);
        seen_clear(&seen);
}

/* A topic that does not exist yet: sync has nothing to wait for, and once
 * the topic is created, both a threaded follower from the start and a
 * driven one from the end read all of it. */
static void test_topic_created_later(void **state) {
        (void)state;
        char topic[256];
        new_topic(topic, sizeof(topic), "later", 0, 0);

        seen_t seen, seen_end;
        const kp_follower_conf_t fc = {
            .topic = topic, .keep_table = 1, .threaded = 1};
        const kp_follower_conf_t fc_end = {.topic = topic, .from_end = 1};
        kp_follower_t *f                = follower(fc, &seen);
        kp_follower_t *f_end            = follower(fc_end, &seen_end);
        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_int_equal(kp_follower_sync(f_end, 30000), KP_OK);

        it_create_topics((const char *const[]){topic, NULL}, 2, 1);
        rd_kafka_t *p = it_producer();
        it_produce(p, topic, 0, "a", "1");
        it_produce(p, topic, 1, "b", "2");
        it_producer_close(p);

        int64_t deadline = kp_mono_ms() + 60000;
        while ((seen_cnt(&seen) < 2 || seen_cnt(&seen_end) < 2) &&
               kp_mono_ms() < deadline) {
                kp_follower_sync(f, 100);
                kp_follower_poll(f_end, 100);
        }
        assert_value(f, "a", "1");
        assert_value(f, "b", "2");
        assert_true(seen_has(&seen_end, "a=1"));
        assert_true(seen_has(&seen_end, "b=2"));
        assert_int_equal(kp_follower_sync(f, 30000), KP_OK);
        assert_int_equal(kp_follower_sync(f_end, 30000), KP_OK);
        assert_int_equal(seen_cnt(&seen), 2);
        assert_int_equal(seen_cnt(&seen_end), 2);

        kp_follower_destroy(f);
        kp_follower_destroy(f_end);
        seen_clear(&seen);
        seen_clear(&seen_end);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table_from_start),
            cmocka_unit_test(test_from_end),
            cmocka_unit_test(test_aborted_never_seen),
            cmocka_unit_test(test_topic_created_later),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
