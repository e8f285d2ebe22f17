/* Unit tests of kp_store: the overlay, commits and checkpoints, scans, wipe
 * and the shared env, on real RocksDB instances in a temporary directory. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "kpay/kp_store.h"

#define MiB (1024u * 1024u)

/* The temporary directory of the whole run, removed at the end. */
static char tmp_root[] = "/tmp/kpay-test-store-XXXXXX";

/* Per test: the env, a path maker, and the leak baseline. */
typedef struct fixture_s {
        int64_t live_at_start;
        kp_store_env_t *env;
        char dir[300];      /* this test's directory */
        char paths[4][512]; /* store paths under it (not created) */
} fixture_t;

static int group_setup(void **state) {
        (void)state;
        return mkdtemp(tmp_root) ? 0 : -1;
}

static int group_teardown(void **state) {
        char errstr[256];
        (void)state;
        return kp_store_wipe(tmp_root, errstr, sizeof(errstr)) == KP_OK ? 0
                                                                        : -1;
}

static int setup(void **state) {
        static int seq;
        fixture_t *f = calloc(1, sizeof(*f));
        int i;

        if (!f)
                return -1;
        f->live_at_start = kp_mem_live_allocations();
        f->env           = kp_store_env_new(8 * MiB, 16 * MiB);
        seq++;
        snprintf(f->dir, sizeof(f->dir), "%s/t%d", tmp_root, seq);
        if (mkdir(f->dir, 0700) == -1)
                return -1;
        for (i = 0; i < 4; i++)
                snprintf(f->paths[i], sizeof(f->paths[i]), "%s/store%d/0",
                         f->dir, i);
        *state = f;
        return 0;
}

/* Every test closes its stores; then the env goes, and nothing made with
 * kp_malloc() may be left. */
static int teardown(void **state) {
        fixture_t *f = *state;
        kp_store_env_destroy(f->env);
        assert_int_equal(kp_mem_live_allocations(), f->live_at_start);
        free(f);
        return 0;
}

static kp_store_t *open_store(fixture_t *f, int i) {
        char errstr[512] = "";
        kp_store_t *st =
            kp_store_open(f->env, f->paths[i], errstr, sizeof(errstr));
        if (!st)
                fail_msg("open %s: %s", f->paths[i], errstr);
        return st;
}

static void commit(kp_store_t *st, int64_t checkpoint) {
        char errstr[512] = "";
        kp_err_t err = kp_store_commit(st, checkpoint, errstr, sizeof(errstr));
        if (err != KP_OK)
                fail_msg("commit: %s", errstr);
}

static void put_str(kp_store_t *st, const char *k, const char *v) {
        kp_store_put(st, k, strlen(k), v, strlen(v));
}

/* Asserts that @p key reads as exactly @p expect (with the overlay, or
 * committed state only). */
static void expect_bin(kp_store_t *st, int committed, const void *key,
                       size_t klen, const void *expect, size_t elen) {
        void *val    = (void *)1;
        size_t vlen  = 12345;
        kp_err_t err = committed
                           ? kp_store_get_committed(st, key, klen, &val, &vlen)
                           : kp_store_get(st, key, klen, &val, &vlen);
        assert_int_equal(err, KP_OK);
        assert_non_null(val);
        assert_int_equal(vlen, elen);
        if (elen)
                assert_memory_equal(val, expect, elen);
        kp_free(val);
}

static void expect_str(kp_store_t *st, int committed, const char *key,
                       const char *expect) {
        expect_bin(st, committed, key, strlen(key), expect, strlen(expect));
}

static void expect_missing(kp_store_t *st, int committed, const void *key,
                           size_t klen) {
        void *val    = (void *)1;
        size_t vlen  = 12345;
        kp_err_t err = committed
                           ? kp_store_get_committed(st, key, klen, &val, &vlen)
                           : kp_store_get(st, key, klen, &val, &vlen);
        assert_int_equal(err, KP_ERR_NOT_FOUND);
        assert_null(val);
        assert_int_equal(vlen, 0);
        /* Presence-only lookups agree. */
        err = committed ? kp_store_get_committed(st, key, klen, NULL, NULL)
                        : kp_store_get(st, key, klen, NULL, NULL);
        assert_int_equal(err, KP_ERR_NOT_FOUND);
}

/* Collects a scan into one string "k=v;k=v;" (printable keys only), with
 * an optional limit after which the callback stops the scan. */
typedef struct collect_s {
        char buf[4096];
        size_t len;
        int calls;
        int limit; /* 0: no limit */
} collect_t;

static int collect_cb(const void *key, size_t klen, const void *val,
                      size_t vlen, void *opaque) {
        collect_t *c = opaque;
        int n = snprintf(c->buf + c->len, sizeof(c->buf) - c->len, "%.*s=%.*s;",
                         (int)klen, (const char *)key, (int)vlen,
                         (const char *)val);
        c->len += (size_t)n;
        c->calls++;
        return c->limit && c->calls >= c->limit;
}

static const char *scan_str(kp_store_t *st, const char *after, int limit,
                            collect_t *c) {
        memset(c, 0, sizeof(*c));
        c->limit = limit;
        assert_int_equal(
            kp_store_scan_committed(st, after, after ? strlen(after) : 0,
                                    collect_cb, c),
            KP_OK);
        return c->buf;
}


static void test_overlay_reads_own_writes(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);

        assert_int_equal(kp_store_checkpoint(st), -1);
        assert_int_equal(kp_store_overlay_count(st), 0);
        expect_missing(st, 0, "a", 1);

        put_str(st, "a", "1");
        expect_str(st, 0, "a", "1");
        expect_missing(st, 1, "a", 1); /* not committed yet */
        put_str(st, "a", "two");
        expect_str(st, 0, "a", "two");
        assert_int_equal(kp_store_overlay_count(st), 1);

        kp_store_delete(st, "b", 1); /* a tombstone for an absent key */
        expect_missing(st, 0, "b", 1);
        assert_int_equal(kp_store_overlay_count(st), 2);

        commit(st, 10);
        assert_int_equal(kp_store_overlay_count(st), 0);
        assert_int_equal(kp_store_checkpoint(st), 10);
        expect_str(st, 1, "a", "two");
        expect_str(st, 0, "a", "two");
        expect_missing(st, 1, "b", 1);

        /* A tombstone hides a committed key from the overlay reads only. */
        kp_store_delete(st, "a", 1);
        expect_missing(st, 0, "a", 1);
        expect_str(st, 1, "a", "two");
        /* A put after the delete revives it. */
        put_str(st, "a", "three");
        expect_str(st, 0, "a", "three");
        kp_store_delete(st, "a", 1);
        assert_int_equal(kp_store_overlay_count(st), 1);
        commit(st, 11);
        expect_missing(st, 1, "a", 1);
        expect_missing(st, 0, "a", 1);

        /* Empty values are values. */
        kp_store_put(st, "e", 1, "", 0);
        expect_bin(st, 0, "e", 1, "", 0);
        commit(st, 12);
        expect_bin(st, 1, "e", 1, "", 0);

        kp_store_close(st);
}

static void test_rollback(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);

        put_str(st, "x", "1");
        put_str(st, "y", "1");
        commit(st, 5);

        put_str(st, "x", "2");
        kp_store_delete(st, "y", 1);
        put_str(st, "z", "2");
        expect_str(st, 0, "x", "2");
        expect_missing(st, 0, "y", 1);
        kp_store_rollback(st);

        assert_int_equal(kp_store_overlay_count(st), 0);
        assert_int_equal(kp_store_checkpoint(st), 5);
        expect_str(st, 0, "x", "1");
        expect_str(st, 0, "y", "1");
        expect_missing(st, 0, "z", 1);
        expect_missing(st, 1, "z", 1);

        /* The store goes on working after a rollback. */
        put_str(st, "z", "3");
        commit(st, 6);
        expect_str(st, 1, "z", "3");
        expect_str(st, 1, "x", "1");

        /* Rolling back an empty overlay is harmless. */
        kp_store_rollback(st);
        assert_int_equal(kp_store_checkpoint(st), 6);
        kp_store_close(st);
}

static void test_persist_across_reopen(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);

        assert_int_equal(kp_store_checkpoint(st), -1);
        put_str(st, "acct-1", "100");
        put_str(st, "acct-2", "200");
        commit(st, 42);
        /* Left uncommitted: must be gone after the reopen. */
        put_str(st, "acct-3", "300");
        kp_store_delete(st, "acct-1", 6);
        kp_store_close(st);

        st = open_store(f, 0);
        assert_int_equal(kp_store_checkpoint(st), 42);
        assert_int_equal(kp_store_overlay_count(st), 0);
        expect_str(st, 0, "acct-1", "100");
        expect_str(st, 0, "acct-2", "200");
        expect_missing(st, 0, "acct-3", 6);

        /* An empty overlay still records a changed checkpoint... */
        commit(st, 43);
        assert_int_equal(kp_store_checkpoint(st), 43);
        /* ...and an unchanged one is a no-op that succeeds. */
        commit(st, 43);
        kp_store_close(st);

        st = open_store(f, 0);
        assert_int_equal(kp_store_checkpoint(st), 43);
        expect_str(st, 1, "acct-2", "200");
        /* Large offsets round-trip exactly. */
        commit(st, INT64_C(1) << 40);
        kp_store_close(st);

        st = open_store(f, 0);
        assert_int_equal(kp_store_checkpoint(st), INT64_C(1) << 40);
        kp_store_close(st);
}

static void test_scan(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);
        collect_t c;

        assert_string_equal(scan_str(st, NULL, 0, &c), "");
        assert_int_equal(c.calls, 0);

        put_str(st, "d", "4");
        put_str(st, "b", "2");
        put_str(st, "a", "1");
        put_str(st, "c", "3");
        /* A user key named like the checkpoint lives in its own namespace. */
        put_str(st, "checkpoint", "user");
        commit(st, 7);
        /* The overlay is never scanned. */
        put_str(st, "aa", "x");
        kp_store_delete(st, "d", 1);

        assert_string_equal(scan_str(st, NULL, 0, &c),
                            "a=1;b=2;c=3;checkpoint=user;d=4;");
        assert_string_equal(scan_str(st, "b", 0, &c),
                            "c=3;checkpoint=user;d=4;");
        /* An absent `after` starts at the next key. */
        assert_string_equal(scan_str(st, "bb", 0, &c),
                            "c=3;checkpoint=user;d=4;");
        assert_string_equal(scan_str(st, "", 0, &c),
                            "a=1;b=2;c=3;checkpoint=user;d=4;");
        assert_string_equal(scan_str(st, "d", 0, &c), "");
        assert_string_equal(scan_str(st, "zzz", 0, &c), "");
        /* The callback stops the scan. */
        assert_string_equal(scan_str(st, NULL, 2, &c), "a=1;b=2;");
        assert_int_equal(c.calls, 2);
        assert_string_equal(scan_str(st, "a", 1, &c), "b=2;");

        /* The store's own checkpoint is untouched by the user key. */
        assert_int_equal(kp_store_checkpoint(st), 7);
        kp_store_close(st);
        st = open_store(f, 0);
        assert_int_equal(kp_store_checkpoint(st), 7);
        expect_str(st, 1, "checkpoint", "user");
        assert_string_equal(scan_str(st, "c", 0, &c), "checkpoint=user;d=4;");
        kp_store_close(st);
}

/* Records every scanned key, for binary keys. */
typedef struct keylist_s {
        char keys[8][8];
        size_t lens[8];
        int n;
} keylist_t;

static int keylist_cb(const void *key, size_t klen, const void *val,
                      size_t vlen, void *opaque) {
        keylist_t *l = opaque;
        (void)val;
        (void)vlen;
        assert_true(l->n < 8 && klen <= 8);
        memcpy(l->keys[l->n], key, klen);
        l->lens[l->n++] = klen;
        return 0;
}

static void test_binary_keys(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);
        /* In bytewise order. */
        static const struct {
                const char *key;
                size_t klen;
                const char *val;
                size_t vlen;
        } kv[] = {
            {"", 0, "empty", 5},      {"\0", 1, "v\0one", 5},
            {"\0\0", 2, "v\0two", 5}, {"a", 1, "\0", 1},
            {"a\0b", 3, "ab", 2},     {"a\0c", 3, "ac", 2},
            {"\xff\0", 2, "high", 4},
        };
        const size_t n = sizeof(kv) / sizeof(kv[0]);
        keylist_t l;
        size_t i;

        /* Insert in reverse so order comes from the store. */
        for (i = n; i-- > 0;)
                kp_store_put(st, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
        assert_int_equal(kp_store_overlay_count(st), n);
        for (i = 0; i < n; i++)
                expect_bin(st, 0, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
        expect_missing(st, 0, "a\0", 2);
        expect_missing(st, 0, "\0\0\0", 3);
        commit(st, 1);
        for (i = 0; i < n; i++)
                expect_bin(st, 1, kv[i].key, kv[i].klen, kv[i].val, kv[i].vlen);
        expect_missing(st, 1, "a\0", 2);

        memset(&l, 0, sizeof(l));
        assert_int_equal(kp_store_scan_committed(st, NULL, 0, keylist_cb, &l),
                         KP_OK);
        assert_int_equal(l.n, n);
        for (i = 0; i < n; i++) {
                assert_int_equal(l.lens[i], kv[i].klen);
                assert_memory_equal(l.keys[i], kv[i].key, kv[i].klen);
        }

        /* `after` with an embedded NUL is compared by its full length. */
        memset(&l, 0, sizeof(l));
        assert_int_equal(kp_store_scan_committed(st, "a\0b", 3, keylist_cb, &l),
                         KP_OK);
        assert_int_equal(l.n, 2);
        assert_memory_equal(l.keys[0], "a\0c", 3);
        assert_memory_equal(l.keys[1], "\xff\0", 2);

        /* Deleting a NUL key removes that key only. */
        kp_store_delete(st, "\0", 1);
        commit(st, 2);
        expect_missing(st, 1, "\0", 1);
        expect_bin(st, 1, "\0\0", 2, "v\0two", 5);
        expect_bin(st, 1, "", 0, "empty", 5);
        kp_store_close(st);
}

static int count_cb(const void *key, size_t klen, const void *val, size_t vlen,
                    void *opaque) {
        (void)key;
        (void)klen;
        (void)val;
        (void)vlen;
        (*(size_t *)opaque)++;
        return 0;
}

#define MANY_KEYS 50000

static void test_many_keys(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);
        char key[32], val[64], hot[64];
        size_t count = 0;
        int i;

        /* One key overwritten many times, with changing value sizes. */
        for (i = 0; i < 10000; i++) {
                int vl = snprintf(val, sizeof(val), "%0*d", 1 + i % 40, i);
                kp_store_put(st, "hot", 3, val, (size_t)vl);
        }
        assert_int_equal(kp_store_overlay_count(st), 1);
        snprintf(hot, sizeof(hot), "%040d", 9999); /* the last one written */
        expect_str(st, 0, "hot", hot);

        /* Many distinct keys in one overlay. */
        for (i = 0; i < MANY_KEYS; i++) {
                int kl = snprintf(key, sizeof(key), "key-%07d", i);
                int vl = snprintf(val, sizeof(val), "value-%d-%d", i, i * 7);
                kp_store_put(st, key, (size_t)kl, val, (size_t)vl);
        }
        /* Overwrite every third, delete every fifth. */
        for (i = 0; i < MANY_KEYS; i += 3) {
                int kl = snprintf(key, sizeof(key), "key-%07d", i);
                int vl = snprintf(val, sizeof(val), "new-%d", i);
                kp_store_put(st, key, (size_t)kl, val, (size_t)vl);
        }
        for (i = 0; i < MANY_KEYS; i += 5) {
                int kl = snprintf(key, sizeof(key), "key-%07d", i);
                kp_store_delete(st, key, (size_t)kl);
        }
        assert_int_equal(kp_store_overlay_count(st), MANY_KEYS + 1);
        commit(st, MANY_KEYS);
        assert_int_equal(kp_store_overlay_count(st), 0);

        expect_str(st, 1, "hot", hot);
        for (i = 0; i < MANY_KEYS; i++) {
                int kl = snprintf(key, sizeof(key), "key-%07d", i);
                if (i % 5 == 0) {
                        expect_missing(st, 1, key, (size_t)kl);
                        continue;
                }
                if (i % 3 == 0)
                        snprintf(val, sizeof(val), "new-%d", i);
                else
                        snprintf(val, sizeof(val), "value-%d-%d", i, i * 7);
                expect_str(st, 1, key, val);
        }
        assert_int_equal(kp_store_scan_committed(st, NULL, 0, count_cb, &count),
                         KP_OK);
        assert_int_equal(count, MANY_KEYS - MANY_KEYS / 5 + 1);
        assert_true(kp_store_estimate_keys(st) > 0);

        /* A second big batch into the same store after the first. */
        for (i = 0; i < MANY_KEYS; i += 2) {
                int kl = snprintf(key, sizeof(key), "key-%07d", i);
                kp_store_put(st, key, (size_t)kl, "again", 5);
        }
        kp_store_rollback(st);
        expect_str(st, 0, "key-0000002", "value-2-14");
        kp_store_close(st);
}

static void test_wipe(void **state) {
        fixture_t *f     = *state;
        kp_store_t *st   = open_store(f, 0);
        char errstr[256] = "";
        struct stat sb;

        put_str(st, "k", "v");
        commit(st, 9);
        kp_store_close(st);

        assert_int_equal(kp_store_wipe(f->paths[0], errstr, sizeof(errstr)),
                         KP_OK);
        assert_int_equal(stat(f->paths[0], &sb), -1);
        assert_int_equal(errno, ENOENT);
        /* A missing directory is not an error. */
        assert_int_equal(kp_store_wipe(f->paths[0], errstr, sizeof(errstr)),
                         KP_OK);

        st = open_store(f, 0);
        assert_int_equal(kp_store_checkpoint(st), -1);
        expect_missing(st, 1, "k", 1);
        kp_store_close(st);
}

static void test_open_failure(void **state) {
        fixture_t *f     = *state;
        char errstr[512] = "";
        char path[600];
        FILE *fp;

        /* A regular file where a parent directory should be. */
        snprintf(path, sizeof(path), "%s/file", f->dir);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fclose(fp);
        snprintf(path, sizeof(path), "%s/file/store/0", f->dir);
        assert_null(kp_store_open(f->env, path, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "Not a directory"));
}

static void test_shared_env(void **state) {
        fixture_t *f  = *state;
        kp_store_t *a = open_store(f, 0);
        kp_store_t *b = open_store(f, 1);
        char key[32];
        size_t usage;
        int i;

        put_str(a, "k", "from-a");
        put_str(b, "k", "from-b");
        put_str(a, "only-a", "1");
        commit(a, 100);
        expect_missing(b, 1, "k", 1); /* b has not committed yet */
        commit(b, 200);
        expect_str(a, 1, "k", "from-a");
        expect_str(b, 1, "k", "from-b");
        expect_missing(b, 1, "only-a", 6);
        assert_int_equal(kp_store_checkpoint(a), 100);
        assert_int_equal(kp_store_checkpoint(b), 200);

        /* The write buffer manager charges memtable memory to the shared
         * cache in dummy entries of 256 KiB, so the cache is in use while
         * the stores hold unflushed data (no table file exists yet, so no
         * data block can be in the cache), and released when they close. */
        for (i = 0; i < 2000; i++) {
                int kl = snprintf(key, sizeof(key), "fill-%d", i);
                kp_store_put(a, key, (size_t)kl, "0123456789abcdef", 16);
                kp_store_put(b, key, (size_t)kl, "fedcba9876543210", 16);
        }
        commit(a, 101);
        commit(b, 201);
        usage = kp_store_env_cache_usage(f->env);
        assert_true(usage >= 256 * 1024);

        kp_store_close(a);
        kp_store_close(b);
        assert_true(kp_store_env_cache_usage(f->env) < usage);
        b = open_store(f, 1);
        assert_int_equal(kp_store_checkpoint(b), 201);
        expect_str(b, 0, "fill-1999", "fedcba9876543210");
        kp_store_close(b);
}

/* Committed reads from another thread while the processing thread commits:
 * every commit rewrites all keys with its batch number, so a scan (which
 * reads one snapshot) must see a single batch number throughout. */
#define CONC_KEYS    64
#define CONC_BATCHES 200

typedef struct conc_s {
        kp_store_t *st;
        atomic_int done;
        int scans;
        int torn; /* scans that saw two batch numbers */
        int short_scans;
} conc_t;

typedef struct scan_check_s {
        long first;
        int n;
        int torn;
} scan_check_t;

static int conc_cb(const void *key, size_t klen, const void *val, size_t vlen,
                   void *opaque) {
        scan_check_t *sc = opaque;
        char buf[32];
        long v;
        (void)key;
        (void)klen;
        snprintf(buf, sizeof(buf), "%.*s", (int)vlen, (const char *)val);
        v = strtol(buf, NULL, 10);
        if (sc->n++ == 0)
                sc->first = v;
        else if (v != sc->first)
                sc->torn = 1;
        return 0;
}

static void *conc_reader(void *arg) {
        conc_t *c = arg;
        while (!atomic_load(&c->done)) {
                scan_check_t sc = {0, 0, 0};
                if (kp_store_scan_committed(c->st, NULL, 0, conc_cb, &sc) !=
                    KP_OK)
                        c->torn++;
                if (sc.torn)
                        c->torn++;
                if (sc.n != 0 && sc.n != CONC_KEYS)
                        c->short_scans++;
                (void)kp_store_get_committed(c->st, "k00", 3, NULL, NULL);
                c->scans++;
                /* Let the writer run: under valgrind threads take turns, and
                 * a reader that never yields starves it for minutes. */
                sched_yield();
        }
        return NULL;
}

static void test_concurrent_committed_reads(void **state) {
        fixture_t *f = *state;
        conc_t c;
        pthread_t thr;
        char key[16], val[16];
        int b, i;

        memset(&c, 0, sizeof(c));
        c.st = open_store(f, 0);
        atomic_init(&c.done, 0);
        assert_int_equal(pthread_create(&thr, NULL, conc_reader, &c), 0);
        for (b = 0; b < CONC_BATCHES; b++) {
                for (i = 0; i < CONC_KEYS; i++) {
                        int kl = snprintf(key, sizeof(key), "k%02d", i);
                        int vl = snprintf(val, sizeof(val), "%d", b);
                        kp_store_put(c.st, key, (size_t)kl, val, (size_t)vl);
                }
                commit(c.st, b);
        }
        atomic_store(&c.done, 1);
        assert_int_equal(pthread_join(thr, NULL), 0);
        assert_true(c.scans > 0);
        assert_int_equal(c.torn, 0);
        assert_int_equal(c.short_scans, 0);
        expect_str(c.st, 1, "k63", "199");
        kp_store_close(c.st);
}

/* What the runtime writes to the changelog at commit: the last value of
 * each key written since the last commit, NULL for a deletion. */
typedef struct visit_s {
        int n, x2, y_deleted, z3, other;
} visit_t;

static int visit_cb(const void *key, size_t klen, const void *val, size_t vlen,
                    void *opaque) {
        visit_t *v = opaque;
        v->n++;
        if (klen == 1 && !memcmp(key, "x", 1) && val && vlen == 1 &&
            !memcmp(val, "2", 1))
                v->x2++;
        else if (klen == 1 && !memcmp(key, "y", 1) && !val && vlen == 0)
                v->y_deleted++;
        else if (klen == 1 && !memcmp(key, "z", 1) && val && vlen == 1 &&
                 !memcmp(val, "3", 1))
                v->z3++;
        else
                v->other++;
        return 0;
}

static int stop_cb(const void *key, size_t klen, const void *val, size_t vlen,
                   void *opaque) {
        (void)key;
        (void)klen;
        (void)val;
        (void)vlen;
        (*(int *)opaque)++;
        return 7;
}

static void test_overlay_foreach(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);
        visit_t v      = {0};
        int calls      = 0;

        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 0);
        put_str(st, "y", "1");
        commit(st, 1);
        /* Several writes of one key: only the last is visited. */
        put_str(st, "x", "1");
        put_str(st, "x", "2");
        kp_store_delete(st, "y", 1);
        put_str(st, "z", "1");
        kp_store_delete(st, "z", 1);
        put_str(st, "z", "3");
        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 3);
        assert_int_equal(v.x2, 1);
        assert_int_equal(v.y_deleted, 1);
        assert_int_equal(v.z3, 1);
        assert_int_equal(v.other, 0);
        /* A non-zero return stops the walk and is passed back. */
        assert_int_equal(kp_store_overlay_foreach(st, stop_cb, &calls), 7);
        assert_int_equal(calls, 1);
        /* After the commit the overlay is empty again. */
        commit(st, 2);
        memset(&v, 0, sizeof(v));
        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 0);
        /* Deleting a key RocksDB does not hold (written and deleted in one
         * transaction, or never there) needs no changelog tombstone; a
         * committed one does. */
        put_str(st, "n", "1");
        kp_store_delete(st, "n", 1);
        kp_store_delete(st, "q", 1);
        kp_store_delete(st, "x", 1);
        assert_int_equal(kp_store_overlay_count(st), 3);
        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 1);
        assert_int_equal(v.other, 1); /* x, deleted */
        commit(st, 3);
        expect_missing(st, 1, "x", 1);
        kp_store_close(st);
}

/* Local writes are committed and read like the others but never visited
 * for the changelog; a key also written the ordinary way is visited with
 * its last value. */
static void test_local_writes(void **state) {
        fixture_t *f   = *state;
        kp_store_t *st = open_store(f, 0);
        visit_t v      = {0};
        void *val;
        size_t vlen;

        put_str(st, "y", "1");
        kp_store_write_local(st, "a", 1, "9", 1);
        kp_store_write_local(st, "b", 1, "9", 1);
        assert_int_equal(kp_store_overlay_count(st), 3);
        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 1); /* y only */
        commit(st, 1);
        assert_int_equal(kp_store_get_committed(st, "a", 1, &val, &vlen),
                         KP_OK);
        assert_int_equal(vlen, 1);
        assert_memory_equal(val, "9", 1);
        kp_free(val);
        /* A local delete: gone from the store, not visited. */
        kp_store_write_local(st, "a", 1, NULL, 0);
        memset(&v, 0, sizeof(v));
        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 0);
        assert_int_equal(kp_store_get(st, "a", 1, NULL, NULL),
                         KP_ERR_NOT_FOUND);
        /* Written both ways in one transaction: not local, last value. */
        kp_store_write_local(st, "x", 1, "1", 1);
        put_str(st, "x", "5");
        kp_store_write_local(st, "x", 1, "2", 1);
        memset(&v, 0, sizeof(v));
        assert_int_equal(kp_store_overlay_foreach(st, visit_cb, &v), 0);
        assert_int_equal(v.n, 1);
        assert_int_equal(v.x2, 1);
        commit(st, 2);
        assert_int_equal(kp_store_get_committed(st, "a", 1, NULL, NULL),
                         KP_ERR_NOT_FOUND);
        assert_int_equal(kp_store_get_committed(st, "b", 1, NULL, NULL), KP_OK);
        kp_store_close(st);
}

static void test_null_noops(void **state) {
        (void)state;
        kp_store_close(NULL);
        kp_store_env_destroy(NULL);
}

/* RocksDB's info log goes to kpay's log (its INFO lines at debug) and no
 * store writes a LOG file of its own. */
typedef struct log_seen_s {
        /* RocksDB's background threads log too. */
        atomic_int rocksdb_debug, rocksdb_other, named;
} log_seen_t;

static void log_sink(kp_log_level_t level, int64_t ts_ms, const char *msg,
                     void *opaque) {
        log_seen_t *seen = opaque;
        (void)ts_ms;
        if (!strncmp(msg, "rocksdb: store1/0: ", 19))
                atomic_fetch_add(&seen->named, 1);
        if (!strncmp(msg, "rocksdb: ", 9)) {
                if (level == KP_LOG_DEBUG)
                        atomic_fetch_add(&seen->rocksdb_debug, 1);
                else
                        atomic_fetch_add(&seen->rocksdb_other, 1);
        }
}

static void test_info_log(void **state) {
        fixture_t *f = *state;
        char path[600];
        struct stat sb;
        int saved = kp_log_level_current;
        /* Static: a failed assert must not leave the sink pointing into a
         * dead frame. */
        static log_seen_t seen;
        atomic_init(&seen.rocksdb_debug, 0);
        atomic_init(&seen.rocksdb_other, 0);
        atomic_init(&seen.named, 0);

        /* Above debug, RocksDB's open reports are not written. */
        kp_log_set_level(KP_LOG_INFO);
        kp_log_set_sink(log_sink, KP_LOG_DEBUG, &seen);
        kp_store_t *st = open_store(f, 0);
        put_str(st, "k", "v");
        commit(st, 1);
        kp_store_close(st);
        assert_int_equal(
            atomic_load(&seen.rocksdb_debug) + atomic_load(&seen.rocksdb_other),
            0);

        /* At debug they are kpay log lines naming the store. */
        kp_log_set_level(KP_LOG_DEBUG);
        st = open_store(f, 1);
        kp_store_close(st);
        kp_log_set_sink(NULL, KP_LOG_DEBUG, NULL);
        kp_log_set_level((kp_log_level_t)saved);
        assert_true(atomic_load(&seen.rocksdb_debug) > 0);
        assert_int_equal(atomic_load(&seen.named),
                         atomic_load(&seen.rocksdb_debug));
        assert_int_equal(atomic_load(&seen.rocksdb_other), 0);

        for (int i = 0; i < 2; i++) {
                snprintf(path, sizeof(path), "%s/LOG", f->paths[i]);
                assert_int_equal(stat(path, &sb), -1);
                assert_int_equal(errno, ENOENT);
                /* The store itself is there. */
                snprintf(path, sizeof(path), "%s/CURRENT", f->paths[i]);
                assert_int_equal(stat(path, &sb), 0);
        }
}

int main(void) {
        /* KPAY_TEST_FILTER=test_name runs one test (while developing). */
        if (getenv("KPAY_TEST_FILTER"))
                cmocka_set_test_filter(getenv("KPAY_TEST_FILTER"));
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_overlay_reads_own_writes,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
            cmocka_unit_test_setup_teardown(test_persist_across_reopen, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
            cmocka_unit_test_setup_teardown(test_binary_keys, setup, teardown),
            cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
            cmocka_unit_test_setup_teardown(test_wipe, setup, teardown),
            cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
            cmocka_unit_test_setup_teardown(test_shared_env, setup, teardown),
            cmocka_unit_test_setup_teardown(test_concurrent_committed_reads,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_local_writes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_overlay_foreach, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_info_log, setup, teardown),
            cmocka_unit_test(test_null_noops),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
