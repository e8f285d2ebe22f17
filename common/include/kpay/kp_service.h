/**
 * @file kp_service.h
 * @brief What every kpay daemon has, stream processor or not: the HTTP
 *        server with /healthz, /readyz, /metrics and /v1/config, its
 *        endpoint (--listen, --advertise), the InstanceInfo announcer on
 *        kpay.metadata (heartbeat, tombstone on exit), an explicit
 *        lifecycle state, and the daemon skeleton kp_service_main().
 *
 * kp_proc (the stream processor) builds on a kp_service and adds only the
 * stream processing and /v1/stores. kpay-control and kpay-web are plain
 * kp_service daemons: their main.c is a kp_service_def_t and their routes.
 *
 * Lifecycle (kp_svc_state_t), published in InstanceInfo on every change:
 *
 *     STARTING -> RESTORING -> RUNNING -> STOPPING
 *         |           ^  |        |  ^       |
 *         |           |  +--------+  |       v
 *         +-----------+--------------+---> FAILED
 *
 * RESTORING is a processor restoring the stores of some of its partitions
 * (the others are processed meanwhile); RUNNING -> RESTORING happens when
 * new partitions arrive. /readyz answers 200 only in RUNNING with no
 * partition restoring (kp_service_set_restoring()).
 */
#ifndef KPAY_KP_SERVICE_H
#define KPAY_KP_SERVICE_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "kpay/kp_app.h"
#include "kpay/kp_conf.h"
#include "kpay/kp_discovery.h"
#include "kpay/kp_err.h"
#include "kpay/kp_http.h"
#include "kpay/kp_metrics.h"

/* X(NAME) */
#define KP_SVC_STATE_TABLE(X)                                                  \
        X(STARTING)                                                            \
        X(RESTORING)                                                           \
        X(RUNNING)                                                             \
        X(STOPPING)                                                            \
        X(FAILED)

/** The lifecycle state of a daemon instance. */
typedef enum kp_svc_state_e {
#define KP__SVC_ENUM(name) KP_SVC_##name,
        KP_SVC_STATE_TABLE(KP__SVC_ENUM)
#undef KP__SVC_ENUM
            KP_SVC__CNT
} kp_svc_state_t;

/** @brief "RUNNING" for KP_SVC_RUNNING; "UNKNOWN" outside the table. */
const char *kp_svc_state2str(kp_svc_state_t state);

/**
 * @brief 1 if the lifecycle may go from @p from to @p to (the diagram
 *        above; staying in the same state is not a transition), else 0.
 * @locality any thread (a pure function)
 */
int kp_svc_state_transition_valid(kp_svc_state_t from, kp_svc_state_t to);

/** The options of every daemon (kp_service_conf_table()). */
typedef struct kp_service_conf_s {
        int64_t heartbeat_ms;
        int64_t http_threads;
        int64_t shutdown_timeout_ms;
        int64_t stall_timeout_ms;
        int ops_log; /**< --ops-log: WARN+ lines to kpay.ops.log */
} kp_service_conf_t;

/** @brief The option table of kp_service_conf_t. */
const kp_conf_opt_t *kp_service_conf_table(void);

typedef struct kp_service_s kp_service_t;

/**
 * @brief Fills what a daemon adds to its InstanceInfo (stores,
 *        partitions, partition_count); service, instance, endpoint, state
 *        and ts are the service's. Strings and arrays it sets must stay
 *        valid until the next call. @locality the thread that announces
 *        (the main / processing thread)
 */
typedef void(kp_service_info_cb)(kp_instance_info_t *info, void *opaque);

/**
 * @brief A service named @p service ("control": InstanceInfo key
 *        "control/<instance>", client ids "kpay-control-<instance>") for
 *        @p app (which needs the KP_APP_CLIENT and KP_APP_SERVICE groups).
 *        Nothing listens or connects yet; the state is STARTING.
 * @returns the service, or NULL with a reason (a malformed --listen...).
 * @locality main thread
 */
kp_service_t *kp_service_new(kp_app_t *app, const kp_service_conf_t *sconf,
                             const char *service, char *errstr,
                             size_t errstr_size);

/** @brief Frees the service (stops HTTP first). NULL is a no-op. */
void kp_service_destroy(kp_service_t *svc);

/**
 * @brief Adds an HTTP route (kp_http_route()) before kp_service_start().
 * @locality main thread
 */
void kp_service_route(kp_service_t *svc, const char *method, const char *path,
                      kp_http_handler_t *handler, void *opaque);

/**
 * @brief The service's HTTP server, for kp_http_set_opts() before
 *        kp_service_start() (kpay-web: one thread per connection, its own
 *        body limit). @locality main thread
 */
kp_http_t *kp_service_http(kp_service_t *svc);

/** @brief Sets the InstanceInfo callback (before kp_service_start()). */
void kp_service_set_info_cb(kp_service_t *svc, kp_service_info_cb *cb,
                            void *opaque);

/**
 * @brief Lists a Kafka client on /v1/config under @p role ("producer"),
 *        with its effective configuration (secrets masked). The service
 *        does not own it; call again with NULL before destroying it.
 * @locality main thread
 */
void kp_service_add_client(kp_service_t *svc, const char *role, rd_kafka_t *rk);

/**
 * @brief Starts listening, resolves the endpoint (--advertise, or the
 *        --listen host with the port bound) and creates the announcer.
 * @returns KP_OK, KP_ERR_IO (address in use...) or KP_ERR_CONFIG, with a
 *          reason in errstr.
 * @locality main thread
 */
kp_err_t kp_service_start(kp_service_t *svc, char *errstr, size_t errstr_size);

/**
 * @brief Moves the lifecycle to @p to and publishes InstanceInfo. An
 *        illegal transition (kp_svc_state_transition_valid()) is refused
 *        and logged as an error.
 * @returns KP_OK (also when already in @p to) or KP_ERR_STATE.
 * @locality the main / processing thread
 */
kp_err_t kp_service_set_state(kp_service_t *svc, kp_svc_state_t to);

/** @brief The current state. @locality any thread */
kp_svc_state_t kp_service_state(const kp_service_t *svc);

/**
 * @brief Sets what the daemon reports in its InstanceInfo as "status" (a
 *        JSON object, copied; NULL removes it), published with the next
 *        announcement: kpay-inflight's applied control version and
 *        in-flight totals, say. Call kp_service_announce() (processing
 *        thread) to publish it at once rather than with the heartbeat.
 * @locality any thread
 */
void kp_service_set_status(kp_service_t *svc, const char *json_object);

/**
 * @brief Sets the partitions that are still restoring their stores
 *        (copied; @p cnt 0: none): /readyz answers 503 and lists them
 *        while there are any, InstanceInfo lists them as "restoring"
 *        (from the next announcement).
 * @locality any thread
 */
void kp_service_set_restoring(kp_service_t *svc, const int32_t *partitions,
                              size_t cnt);

/**
 * @brief Publishes InstanceInfo now (an assignment changed, say), and
 *        schedules the next heartbeat from now.
 * @locality the main / processing thread
 */
void kp_service_announce(kp_service_t *svc);

/**
 * @brief Periodic work: serves the announcer's callbacks and publishes the
 *        heartbeat when due. Call at least every few hundred ms.
 * @locality the main / processing thread
 */
void kp_service_poll(kp_service_t *svc);

/**
 * @brief Clean exit: STOPPING, the InstanceInfo tombstone, flushed within
 *        what is left of the shutdown bound; nothing is announced after
 *        it. Begins the shutdown (kp_service_begin_shutdown()) if that was
 *        not done. @locality the main / processing thread
 */
void kp_service_stop(kp_service_t *svc);

/**
 * @brief Starts the shutdown clock: from the stop request (as the exit
 *        guard saw it) or from now, every step of the exit shares
 *        --shutdown-timeout-ms (kp_service_shutdown_left_ms()). Only the
 *        first call counts. @locality the main thread
 */
void kp_service_begin_shutdown(kp_service_t *svc);

/**
 * @brief Arms the exit guard of the process (once): a thread that, from the
 *        moment kp_app_running() turns 0 (SIGTERM/SIGINT, kp_app_stop()),
 *        ends the process with status 1 if it is still running after
 *        --shutdown-timeout-ms, even when the main thread is blocked
 *        inside a library call. The daemon skeletons arm it.
 *        @locality the main thread
 */
void kp_service_arm_exit_guard(const kp_service_t *svc);

/**
 * @brief Milliseconds left of the shutdown bound: the whole bound before
 *        kp_service_begin_shutdown(), then what remains (0 when over).
 *        Pass it as the timeout of each blocking call on the way out.
 *        @locality any thread
 */
int64_t kp_service_shutdown_left_ms(const kp_service_t *svc);

/**
 * @brief The progress watchdog of /healthz: the processing loop reports
 *        progress (records processed or restored, or an input paused on
 *        purpose). @locality any thread
 */
void kp_service_progress(kp_service_t *svc);

/**
 * @brief How many records are waiting for the processing loop, as last
 *        seen (consumer lag, records left to restore); 0 when none.
 *        /healthz answers 503 "stalled" when records are waiting and no
 *        progress was reported for --stall-timeout-ms. @locality any thread
 */
void kp_service_set_waiting(kp_service_t *svc, int64_t records);

/**
 * @brief Stops the HTTP server, waiting for running handlers: nothing
 *        served after this (call it before freeing what routes use).
 *        kp_service_destroy() does it too; calling it twice is fine.
 * @locality main thread
 */
void kp_service_halt_http(kp_service_t *svc);

/** @brief The metrics registry (/metrics). @locality any thread */
kp_metrics_t *kp_service_metrics(kp_service_t *svc);

/** @brief The common options of the app. */
const kp_app_conf_t *kp_service_app_conf(const kp_service_t *svc);

/** @brief The service name ("control"). */
const char *kp_service_name(const kp_service_t *svc);

/** @brief The instance id (--instance-id). */
const char *kp_service_instance(const kp_service_t *svc);

/** @brief The topic prefix ("" when none). */
const char *kp_service_prefix(const kp_service_t *svc);

/** @brief The published HTTP endpoint, NULL before kp_service_start(). */
const char *kp_service_endpoint(const kp_service_t *svc);

/** @brief The shutdown bound (--shutdown-timeout-ms). */
int64_t kp_service_shutdown_timeout_ms(const kp_service_t *svc);

/** A daemon that is a service and not a stream processor. */
typedef struct kp_service_def_s {
        const char *name;    /**< binary: "kpay-control" */
        const char *service; /**< service: "control" */
        const char *summary; /**< one line for --help */
        /** The daemon's own option sections ({NULL}-terminated) or NULL. */
        const kp_conf_section_t *sections;
        /** After construction, before start: metrics, routes, followers.
         *  An error stops the daemon (exit status 1). Optional. */
        kp_err_t (*init)(kp_service_t *svc, void *opaque);
        /** Called about every 100 ms while RUNNING. Optional. */
        void (*tick)(kp_service_t *svc, int64_t now_ms, void *opaque);
        /** Before the service is destroyed (stop followers...). Optional. */
        void (*fini)(kp_service_t *svc, void *opaque);
        void *opaque;
} kp_service_def_t;

/**
 * @brief The whole main() of a service daemon: options (--help), the
 *        service, init(), start, RUNNING until SIGTERM/SIGINT (tick()),
 *        stop, fini(), destroy; an error is printed as one line.
 * @returns the exit status: 0 after a clean stop (or --help), 1 after a
 *          failure, 2 after a configuration error.
 * @locality main thread
 */
int kp_service_main(const kp_service_def_t *def, int argc, char **argv);

#endif /* KPAY_KP_SERVICE_H */
