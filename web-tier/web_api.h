/* web_api.h: main.c's and api.c's functions that the other parts of
 * kpay-web do not use (their interface is web.h). */
#ifndef KPAY_WEB_API_H
#define KPAY_WEB_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "web.h"

/** main.c's own state (web_t.priv). */
typedef struct web_priv_s {
        pthread_mutex_t dr_lock; /**< delivery reports */
        pthread_cond_t dr_cond;
        pthread_t poller; /**< serves the producer's callbacks */
        int poller_started;
        atomic_int poller_stop;
} web_priv_t;

/** @brief The producer's delivery report callback (opaque: the web_t). */
void web_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/** @brief The producer's poller thread (arg: the web_t). */
void *web_poller_main(void *arg);

/** @brief The kp_http handler of every path that is not the runtime's:
 *         matches the templates (opaque: the web_t). */
void web_h_dispatch(const kp_http_req_t *req, const char *rest,
                    kp_http_resp_t *resp, void *opaque);

/** @brief Registers every route of every part (api.c's, payments.c's,
 *         static.c's); main.c's init and the OpenAPI test call it. */
void web_register_routes(web_t *w);

/** @brief api.c's routes: /api/v1 but payments, /openapi.json. */
void web_api_routes(web_t *w);

/** @brief api.c's periodic work (about every 100 ms, main thread). */
void web_api_tick(web_t *w, int64_t now_ms);

/** @brief Frees api.c's state (after the HTTP server stopped). */
void web_api_fini(web_t *w);

/**
 * @brief The kp_http route that carries @p tmpl's requests to the router:
 *        the template itself when it has no parameter (an exact route),
 *        else its part before the first parameter (a prefix route ending
 *        in '/'). @returns a kp_malloc()ed string.
 */
char *web_route_http_path(const char *tmpl);

/**
 * @brief Matches a request path against a web_route() template.
 * @param names, values receive kp_malloc()ed copies of the parameters
 *        (WEB_PARAMS_MAX room each), for the caller to free.
 * @returns 1 on a match (*cntp parameters), else 0 (nothing allocated).
 */
int web_route_match(const char *tmpl, const char *path, char **names,
                    char **values, size_t *cntp);

#endif /* KPAY_WEB_API_H */
