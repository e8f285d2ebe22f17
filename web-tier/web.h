/* web.h: what the parts of kpay-web share (main.c: the daemon, routing,
 * the fan-out glue and the /api/v1 endpoints but payments; payments.c:
 * /api/v1/payments and /api/v1/currencies; static.c: the UI, /assets and
 * /docs). The contract of the API is docs/api.md and web-tier/openapi.json.
 *
 * Every part registers its routes with web_route() from its hook
 * (web_payments_routes(), web_static_routes()), which main.c calls during
 * start-up; the handlers then run on the HTTP server's threads, one per
 * connection, so they may block (bounded by --request-timeout-ms). */
#ifndef KPAY_WEB_H
#define KPAY_WEB_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kpay/kp_discovery.h"
#include "kpay/kp_err.h"
#include "kpay/kp_http.h"
#include "kpay/kp_service.h"

/** kpay-web's own options (main.c's table; docs/options.md). */
typedef struct web_conf_s {
        char *ui_dir;                /**< --ui-dir: the UI files, or NULL */
        int64_t request_timeout_ms;  /**< --request-timeout-ms (1000) */
        int64_t max_body_bytes;      /**< --max-body-bytes (65536) */
        char *token_file;            /**< --token-file, or NULL */
        char *control_url;           /**< --control-url, or NULL: discovery */
        int64_t instance_timeout_ms; /**< --instance-timeout-ms: dead after */
} web_conf_t;

typedef struct web_s web_t;
typedef struct web_req_s web_req_t;

/** A route handler: fills in r->resp. @locality http threads */
typedef void(web_handler_t)(web_req_t *r);

/** Route flags. */
#define WEB_ROUTE_MUTATION 0x1 /**< needs the bearer token when configured */
#define WEB_ROUTE_HIDDEN                                                       \
        0x2 /**< not part of the API (UI, assets, docs):                       \
             *   not in openapi.json */

/** At most this many {parameters} in a route template. */
#define WEB_PARAMS_MAX 4

/** One call of a route. */
struct web_req_s {
        web_t *w;
        const kp_http_req_t *http; /**< method, query, headers, body */
        kp_http_resp_t *resp;      /**< what the handler fills in */
        void *opaque;              /**< web_route()'s opaque */
        /** The decoded path parameters, in template order. */
        const char *param_names[WEB_PARAMS_MAX];
        const char *params[WEB_PARAMS_MAX];
        size_t param_cnt;
        /** Who calls (the audit's "actor"): "token" when a token is
         *  configured and was presented, else "anonymous". */
        const char *actor;
};

/** A route as registered (for the OpenAPI check). */
typedef struct web_route_s {
        char *method;
        char *tmpl; /**< "/api/v1/accounts/{id}" */
        unsigned flags;
        web_handler_t *handler;
        void *opaque;
} web_route_t;

/** Called once when kpay-web stops, before the clients are freed. */
typedef void(web_fini_cb)(web_t *w, void *opaque);

/** The kpay-web context, shared by every part. Filled in by main.c before
 *  the route hooks run; read-only afterwards (but for the atomics). */
struct web_s {
        kp_service_t *svc; /**< NULL in unit tests */
        const web_conf_t *conf;
        char *token;          /**< NULL: mutations are open */
        kp_discovery_t *disc; /**< kpay.metadata: every live instance */
        /** Idempotent producer (acks=all, murmur2_random partitioner as
         *  the Java client's) for kpay.payments.incoming and
         *  kpay.payments.inflight; use web_produce(). */
        rd_kafka_t *producer;
        char topic_incoming[256]; /**< <prefix>kpay.payments.incoming */
        char topic_inflight[256]; /**< <prefix>kpay.payments.inflight */
        char topic_dlq[256];      /**< <prefix>kpay.dlq */
        const char *prefix;       /**< topic prefix ("" when none) */
        atomic_int stopping;      /**< set when shutdown begins */

        web_route_t *routes;
        size_t route_cnt;
        struct {
                web_fini_cb *cb;
                void *opaque;
        } finis[8];
        size_t fini_cnt;
        void *priv; /**< main.c's own state */
};

/**
 * @brief Registers a route: @p method ("GET", "POST", "PUT", "DELETE") and
 *        a path template whose segments are literal or a {name} parameter
 *        (one non-empty segment); a last segment {name+} takes the rest of
 *        the path (one or more segments). Requests that match a template's
 *        path but not its method get 405, paths that match none 404, both
 *        as JSON errors. A WEB_ROUTE_MUTATION route answers 401/403 itself
 *        when the token is missing or wrong.
 * @locality main thread, from the route hooks
 */
void web_route(web_t *w, const char *method, const char *tmpl, unsigned flags,
               web_handler_t *handler, void *opaque);

/** @brief Runs @p cb when kpay-web stops (up to 8). @locality main thread */
void web_at_fini(web_t *w, web_fini_cb *cb, void *opaque);

/** @brief The route hook of payments.c (webpay): /api/v1/payments... */
void web_payments_routes(web_t *w);

/** @brief The route hook of static.c (webui): /, /assets/..., /docs. */
void web_static_routes(web_t *w);

/** @brief The decoded path parameter @p name, or NULL. */
const char *web_param(const web_req_t *r, const char *name);

/**
 * @brief The request body as a JSON object, parsed strictly (duplicate
 *        keys refused). On failure sets 400 bad_request on r->resp and
 *        returns NULL. @returns a new reference.
 */
json_t *web_body_object(web_req_t *r);

/**
 * @brief Produces one record and waits (up to --request-timeout-ms plus
 *        the producer's delivery timeout) for its delivery report.
 * @param hdrs headers, taken over (freed) in every case; may be NULL.
 * @returns KP_OK, KP_ERR_TIMED_OUT or KP_ERR_KAFKA.
 * @locality http threads
 */
kp_err_t web_produce(web_t *w, const char *topic, const char *key,
                     const void *value, size_t len, rd_kafka_headers_t *hdrs);

/**
 * @brief Looks up @p key in store @p store of the live instance of
 *        @p service that owns the key's partition (murmur2(key) % N),
 *        within --request-timeout-ms.
 * @param valuep receives the store value (the "value" member of the
 *        instance's answer; a new reference) on 200.
 * @param partitionp receives the key's partition, or -1 when unknown (no
 *        live instance of the service at all).
 * @returns 200, 404 (no such key), or 503 (no live owner, or it did not
 *          answer in time: the partition is missing).
 * @locality http threads
 */
int web_store_get(web_t *w, const char *service, const char *store,
                  const char *key, json_t **valuep, int32_t *partitionp);

/**
 * @brief Sets 503 {"error":"unavailable","message":...,
 *        "missing_partitions":[...]} on @p resp.
 */
void web_resp_unavailable(kp_http_resp_t *resp, const int32_t *parts,
                          size_t cnt, const char *message);

/** @brief The OpenAPI document (openapi.json, compiled in). */
const char *web_openapi_json(void);

#endif /* KPAY_WEB_H */
