/* Helpers shared by the integration tests (real broker, real processes). */
#ifndef KPAY_IT_UTIL_H
#define KPAY_IT_UTIL_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_money.h"

/** The broker of the CTest fixture (KPAY_TEST_BOOTSTRAP). */
const char *it_bootstrap(void);

/** A topic prefix no other test run uses ("it-<pid>-<random>."). */
void it_unique_prefix(char *buf, size_t size, const char *test);

/** Monotonic milliseconds. */
int64_t it_now_ms(void);

/**
 * Runs argv (argv[0] is a path), waits at most timeout_ms, and returns its
 * exit status (-1 if it did not exit normally or timed out). Its stdout and
 * stderr are returned together in *outp (free() it) when outp is not NULL.
 */
int it_run(char *const argv[], int timeout_ms, char **outp);

/** A client of the fixture's broker with the given extra properties
 *  (NULL-terminated key, value list). Fails the test on error. */
rd_kafka_t *it_client(rd_kafka_type_t type, const char *const *props);

/** The configuration it_client() creates its client with (the fixture's
 *  bootstrap, a secured broker's properties, then @p props), for a test
 *  that sets callbacks before rd_kafka_new(). */
rd_kafka_conf_t *it_client_conf(const char *const *props);

#include <sys/types.h>

/**
 * Stops the fixture's broker (scripts/test-kafka.sh down, data kept): every
 * client of it then sees all broker connections down. Waits until the
 * broker process is gone; fails the test on error. A test that stops the
 * broker must start it again (it_broker_start()) before it ends, also when
 * it fails: the other tests of the run share the broker.
 */
void it_broker_stop(void);

/** Starts the fixture's broker again on the same data (test-kafka.sh up)
 *  and waits until it answers; fails the test on error. */
void it_broker_start(void);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
int it_free_port(void);

/** Creates topics (NULL-terminated names) with @p partitions each;
 *  compacted when @p compact. Fails the test on error. */
void it_create_topics(const char *const *names, int partitions, int compact);

/** Starts argv[0] with argv, stdout and stderr appended to @p logpath. */
pid_t it_spawn(char *const argv[], const char *logpath);

/** 1 (and reaped) if child @p pid has exited, else 0. */
int it_exited(pid_t pid);

/** The exit status of child @p pid if it has exited (reaped; 128+signal
 *  when killed), or -1 while it runs. Does not wait. */
int it_exit_status(pid_t pid);

/** Kills (SIGKILL) and reaps every child of it_spawn() still running; also
 *  run at exit, so a failed test leaves no process behind. */
void it_reap_all(void);

/** Waits up to timeout_ms for @p pid to exit; returns its exit status, 128+
 *  signal when killed, or -1 on timeout (the process is then killed). */
int it_wait_exit(pid_t pid, int timeout_ms);

/** Prints the last lines of a log file to stderr (for failures). */
void it_dump_log(const char *logpath, int lines);

/** HTTP GET http://<hostport><path>; returns the status (or -1 when the
 *  connection fails), the body in *bodyp (free() it) when not NULL. */
int it_http_get(const char *hostport, const char *path, char **bodyp);

/** HTTP with any method and an optional body. */
int it_http(const char *method, const char *hostport, const char *path,
            const char *body, char **bodyp);

/** it_http() with extra request headers (each line ending in "\r\n"),
 *  or NULL. */
int it_http_h(const char *method, const char *hostport, const char *path,
              const char *headers, const char *body, char **bodyp);

/** it_http_h() that also returns the value of response header @p name
 *  (case-insensitive) in @p value ("" when absent), e.g. Location. The
 *  request is sent with Connection: close and read to the end (reads time
 *  out after 60 s, longer than any ?wait_ms). */
int it_http_hv(const char *method, const char *hostport, const char *path,
               const char *headers, const char *body, const char *name,
               char *value, size_t size, char **bodyp);

/** One consumed record. */
typedef struct it_rec_s {
        char *key;
        char *value; /* NULL for a tombstone */
        int32_t partition;
        int64_t offset;
        rd_kafka_headers_t *headers; /* may be NULL */
} it_rec_t;

/** Reads every partition of @p topic from the start to the end offsets
 *  queried at call time (the end is reached when the position is there:
 *  transaction markers are never delivered). Returns the count. */
size_t it_read_all(const char *topic, const char *isolation, it_rec_t **recsp);

/** Frees what it_read_all() returned. */
void it_free_recs(it_rec_t *recs, size_t cnt);

/** A producer (idempotent, murmur2_random partitioner like the Java
 *  client). */
rd_kafka_t *it_producer(void);

/** Produces one record (key and value are strings) and fails the test on
 *  error. partition -1: by key. */
void it_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                const char *key, const char *value);

/** Flushes and destroys the producer, failing the test if anything was not
 *  delivered. */
void it_producer_close(rd_kafka_t *rk);

/* ------------------------------------------------------------------------
 * kpay-testproc instances on topics of their own (test_runtime, test_faults).
 */

#define IT_MAX_INST 4

/** One kpay-testproc process. */
typedef struct it_inst_s {
        pid_t pid;
        char id[32];
        char endpoint[32];
        char state[512];
        char log[600];
} it_inst_t;

/** A test's topics (prefixed), its temporary directory and its instances. */
typedef struct it_env_s {
        char prefix[64];
        char root[256];
        char in[256], out[256], ticks[256], dlq[256], changelog[256];
        int partitions;
        it_inst_t inst[IT_MAX_INST];
} it_env_t;

/** Creates the topics of kpay-testproc with a new prefix and a temporary
 *  directory for the instances' state and logs. */
void it_env_init(it_env_t *e, const char *name, int partitions);

/** Kills the instances still running and removes the directory. */
void it_env_cleanup(it_env_t *e);

/** Starts instance slot @p i with --instance-id @p id (state in
 *  <root>/<id>.<i>, log <root>/<id>.<i>.log, HTTP on a free port) and up to
 *  two extra arguments (NULL for none). */
it_inst_t *it_inst_start(it_env_t *e, int i, const char *id, const char *extra1,
                         const char *extra2);

/** it_inst_start() with any extra arguments (NULL-terminated, or NULL). */
it_inst_t *it_inst_start_v(it_env_t *e, int i, const char *id,
                           const char *const *extra);

/** Waits until /readyz answers 200; fails the test (with the log) when the
 *  instance exits or is not ready in time. */
void it_inst_wait_ready(it_inst_t *in, int timeout_ms);

/** SIGTERM, and fails the test unless the instance exits 0 within 60 s. */
void it_inst_stop(it_inst_t *in);

/** SIGKILL, and reaps the instance. */
void it_inst_kill(it_inst_t *in);

/** Produces values from..to (inclusive) for keys k0..k<keys-1>, each key's
 *  values in order. */
void it_produce_values(it_env_t *e, int keys, int from, int to);

/** Waits until test.out holds at least @p n committed records; returns the
 *  count. */
size_t it_wait_outputs(it_env_t *e, size_t n, int timeout_ms);

/** Checks that test.out holds (read_committed), for every key
 *  k0..k<keys-1>, exactly one result for each value 1..values, in order,
 *  with the exact running sum. */
void it_check_exactly_once(it_env_t *e, int keys, int values);

/** GET @p path as JSON, failing the test unless the status is
 *  @p want_status. json_decref() the result. */
json_t *it_get_json(const char *endpoint, const char *path, int want_status);

/** Every item ({"key","partition","value"}) of @p store on the instance
 *  at @p endpoint: the paginated scan GET /v1/stores/{store}, @p limit a
 *  page, following each page's "next" cursor. json_decref() it. */
json_t *it_store_scan(const char *endpoint, const char *store, int limit);

/** The value of key k<k> in store "sums" (must exist). */
int64_t it_key_value(const char *endpoint, int k);

/** A Prometheus sample's value from /metrics, or -1 when absent. */
double it_metric(const char *endpoint, const char *name);

/** Waits until metric @p name (with its labels) of @p in is at least
 *  @p min and returns it; fails the test (with the log) when the instance
 *  exits or the time is up. */
double it_wait_metric(it_inst_t *in, const char *name, double min,
                      int timeout_ms);

/** Sum of the high watermarks of every partition of @p topic, through
 *  @p rk (any client of the fixture's broker). */
int64_t it_topic_end(rd_kafka_t *rk, const char *topic, int partitions);

/** A thread producing values 1, 2, ... for keys k0..k<keys-1> (each value
 *  for every key, then the next) to test.in at about 100 values a second,
 *  until stopped or max_values. */
typedef struct it_feeder_s {
        it_env_t *e;
        int keys, max_values;
        atomic_int produced; /* values completed for every key */
        atomic_int stop;
        int failed;
        pthread_t thread;
} it_feeder_t;

/** Starts the feeder thread. */
void it_feeder_start(it_feeder_t *f, it_env_t *e, int keys, int max_values);

/** Stops and joins it, fails the test if anything was not delivered, and
 *  returns the number of values produced for every key. */
int it_feeder_stop(it_feeder_t *f);

/* ------------------------------------------------------------------------
 * kpay daemons as real processes (test_pipeline, test_control).
 */

/** One daemon process: its binary, id, HTTP endpoint, state and log. */
typedef struct it_daemon_s {
        const char *bin;
        pid_t pid;
        char id[32];
        char endpoint[32];
        char state[300];
        char log[300];
} it_daemon_t;

/** The path in environment variable @p name (set by ctest), or fails. */
const char *it_env_bin(const char *name);

/** Fills @p d for binary $@p bin_env with id @p id: state <root>/<id>, log
 *  <root>/<id>.log, HTTP on a free port. Starts nothing. */
void it_daemon_init(it_daemon_t *d, const char *bin_env, const char *root,
                    const char *id);

/** Starts @p d with -b, --topic-prefix @p prefix, --instance-id,
 *  --listen, --heartbeat-ms 1000 and @p extra (NULL-terminated, or NULL). */
void it_daemon_spawn(it_daemon_t *d, const char *prefix,
                     const char *const *extra);

/** it_daemon_init() and it_daemon_spawn() with --state-dir <its state>
 *  before @p extra: one instance of a processor, as the pipeline tests
 *  start them. */
void it_daemon_start(it_daemon_t *d, const char *bin_env, const char *root,
                     const char *id, const char *prefix,
                     const char *const *extra);

/** Waits until /readyz answers 200; fails the test (with the log) when the
 *  daemon exits or is not ready within @p timeout_ms. */
void it_daemon_wait_ready(it_daemon_t *d, int timeout_ms);

/** SIGTERM, and fails the test unless it exits 0 within 60 s. */
void it_daemon_stop(it_daemon_t *d);

/** Teardown: SIGTERM to every daemon still running, waits, reports (on
 *  stderr) those that do not exit 0, and removes @p root. */
void it_daemons_teardown(it_daemon_t *const *all, size_t cnt, const char *root);

/** Runs `kpay-admin topics` with @p prefix and @p partitions; returns its
 *  exit status, its output in *outp (free() it). */
int it_admin_run_topics(const char *prefix, int partitions, char **outp);

/** Creates every kpay topic with @p prefix as kpay-admin does; 0 or -1
 *  (the output printed). */
int it_admin_topics(const char *prefix, int partitions);

/* ------------------------------------------------------------------------
 * Stores and money (test_pipeline, test_control, test_money).
 */

/** Every item {key, partition, value} of store @p store on one instance:
 *  it_store_scan() with pages of 1000; fails the test on an error.
 *  json_decref() the array. */
json_t *it_store_items(const char *endpoint, const char *store);

/** Adds the per-currency money object @p obj (currency -> decimal string,
 *  as kpay writes balances and totals) into @p sum, currency by currency;
 *  fails the test (naming @p what) when @p obj is not one. */
void it_money_add(kp_money_t *sum, const json_t *obj, const char *what);

/** The balance in @p currency of the `balances` value @p value (0 when it
 *  has none); fails the test when the value has no balances object. */
kp_i128_t it_balance(const json_t *value, const char *currency);

/** Adds every account's balances in @p items (what it_store_items()
 *  returned for store `balances`) into @p sum, per currency, and fails the
 *  test when a regular account (not `@...`) is below 0 in a currency. */
void it_books_add(kp_money_t *sum, const json_t *items);

#endif
