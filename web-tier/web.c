/* web.c: kpay-web's router of web_route() templates and the helpers of
 * web.h (the daemon itself is main.c). */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "web.h"
#include "web_api.h"

/* ------------------------------------------------------------------------
 * Routing: templates with {name} and {name+} segments. */

void web_route(web_t *w, const char *method, const char *tmpl, unsigned flags,
               web_handler_t *handler, void *opaque) {
        if (!tmpl || tmpl[0] != '/' || !handler || !method) {
                KP_FATAL(
                    "web_route: a template must start with '/' and "
                    "have a method and a handler");
                abort();
        }
        w->routes =
            kp_realloc(w->routes, (w->route_cnt + 1) * sizeof(*w->routes));
        web_route_t *r = &w->routes[w->route_cnt++];
        r->method      = kp_strdup(method);
        r->tmpl        = kp_strdup(tmpl);
        r->flags       = flags;
        r->handler     = handler;
        r->opaque      = opaque;
}

void web_at_fini(web_t *w, web_fini_cb *cb, void *opaque) {
        size_t max = sizeof(w->finis) / sizeof(w->finis[0]);
        if (w->fini_cnt >= max) {
                KP_FATAL("web_at_fini: more than %zu hooks", max);
                abort();
        }
        w->finis[w->fini_cnt].cb     = cb;
        w->finis[w->fini_cnt].opaque = opaque;
        w->fini_cnt++;
}

const char *web_param(const web_req_t *r, const char *name) {
        for (size_t i = 0; i < r->param_cnt; i++)
                if (!strcmp(r->param_names[i], name))
                        return r->params[i];
        return NULL;
}

int web_route_match(const char *tmpl, const char *path, char **names,
                    char **values, size_t *cntp) {
        size_t cnt    = 0;
        const char *t = tmpl, *p = path;
        int ok = 1;
        while (ok) {
                if (*t != '/' || *p != '/') {
                        ok = *t == '\0' && *p == '\0';
                        break;
                }
                t++;
                p++;
                const char *te = strchr(t, '/');
                const char *pe = strchr(p, '/');
                size_t tl      = te ? (size_t)(te - t) : strlen(t);
                size_t pl      = pe ? (size_t)(pe - p) : strlen(p);
                if (tl >= 2 && t[0] == '{' && t[tl - 1] == '}') {
                        int rest = t[tl - 2] == '+';
                        if (cnt >= WEB_PARAMS_MAX || pl == 0) {
                                ok = 0;
                                break;
                        }
                        if (rest) {
                                pl = strlen(p);
                                if (pl == 0 || p[pl - 1] == '/') {
                                        ok = 0;
                                        break;
                                }
                        }
                        names[cnt]  = kp_strndup(t + 1, tl - 2 - (size_t)rest);
                        values[cnt] = kp_strndup(p, pl);
                        cnt++;
                        t += tl;
                        p += pl;
                        if (rest) {
                                ok = *t == '\0';
                                break;
                        }
                        continue;
                }
                if (tl != pl || strncmp(t, p, tl)) {
                        ok = 0;
                        break;
                }
                t += tl;
                p += pl;
        }
        if (!ok) {
                for (size_t i = 0; i < cnt; i++) {
                        kp_free(names[i]);
                        kp_free(values[i]);
                }
                cnt = 0;
        }
        *cntp = cnt;
        return ok;
}

char *web_route_http_path(const char *tmpl) {
        const char *brace = strchr(tmpl, '{');
        if (!brace)
                return kp_strdup(tmpl);
        /* Up to the '/' before the first parameter: a prefix route. */
        return kp_strndup(tmpl, (size_t)(brace - tmpl));
}

/* The mutations' gate: 0 to go on, else the answer is set. */
static int authorize(web_req_t *r, char *actor, size_t actor_size) {
        int code = control_authorize(
            r->w->token, kp_http_req_header(r->http, "Authorization"));
        if (code) {
                kp_http_resp_error(r->resp, code,
                                   code == 401 ? "unauthorized" : "forbidden",
                                   "%s",
                                   code == 401 ? "this call needs "
                                                 "Authorization: Bearer "
                                                 "<token>"
                                               : "wrong token");
                return -1;
        }
        control_actor(actor, actor_size,
                      kp_http_req_header(r->http, "X-KPay-Actor"),
                      r->w->token != NULL);
        return 0;
}

/* Every request that no runtime route (/healthz...) takes. */
void web_h_dispatch(const kp_http_req_t *req, const char *rest,
                    kp_http_resp_t *resp, void *opaque) {
        web_t *w           = opaque;
        const char *path   = kp_http_req_path(req);
        const char *method = kp_http_req_method(req);
        (void)rest;
        if (!strcmp(method, "HEAD"))
                method = "GET";
        const web_route_t *best = NULL;
        char *names[WEB_PARAMS_MAX], *values[WEB_PARAMS_MAX];
        size_t cnt = 0, best_cnt = (size_t)-1;
        char *bnames[WEB_PARAMS_MAX], *bvalues[WEB_PARAMS_MAX];
        char allow[64] = "";
        for (size_t i = 0; i < w->route_cnt; i++) {
                const web_route_t *r = &w->routes[i];
                if (!web_route_match(r->tmpl, path, names, values, &cnt))
                        continue;
                if (strcmp(r->method, method)) {
                        if (!strstr(allow, r->method) &&
                            strlen(allow) + strlen(r->method) + 3 <
                                sizeof(allow))
                                snprintf(allow + strlen(allow),
                                         sizeof(allow) - strlen(allow), "%s%s",
                                         allow[0] ? ", " : "", r->method);
                } else if (cnt < best_cnt) {
                        /* The most literal template wins. */
                        for (size_t j = 0; best && j < best_cnt; j++) {
                                kp_free(bnames[j]);
                                kp_free(bvalues[j]);
                        }
                        best     = r;
                        best_cnt = cnt;
                        memcpy(bnames, names, cnt * sizeof(*names));
                        memcpy(bvalues, values, cnt * sizeof(*values));
                        continue;
                }
                for (size_t j = 0; j < cnt; j++) {
                        kp_free(names[j]);
                        kp_free(values[j]);
                }
        }
        if (!best) {
                if (allow[0]) {
                        kp_http_resp_header(resp, "Allow", allow);
                        kp_http_resp_error(resp, 405, "method_not_allowed",
                                           "%s is not allowed on %s "
                                           "(allowed: %s)",
                                           kp_http_req_method(req), path,
                                           allow);
                } else {
                        kp_http_resp_error(resp, 404, "not_found",
                                           "no such resource: %s", path);
                }
                return;
        }
        char actor[128];
        web_req_t r = {
            .w = w, .http = req, .resp = resp, .opaque = best->opaque};
        r.param_cnt = best_cnt;
        for (size_t j = 0; j < best_cnt; j++) {
                r.param_names[j] = bnames[j];
                r.params[j]      = bvalues[j];
        }
        r.actor = "anonymous";
        if (!(best->flags & WEB_ROUTE_MUTATION) ||
            !authorize(&r, actor, sizeof(actor))) {
                if (best->flags & WEB_ROUTE_MUTATION)
                        r.actor = actor;
                best->handler(&r);
        }
        for (size_t j = 0; j < best_cnt; j++) {
                kp_free(bnames[j]);
                kp_free(bvalues[j]);
        }
}

/* ------------------------------------------------------------------------
 * Helpers of web.h. */

json_t *web_body_object(web_req_t *r) {
        size_t len       = 0;
        const char *body = kp_http_req_body(r->http, &len);
        json_error_t jerr;
        if (!body || !len) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "the request needs a JSON object body");
                return NULL;
        }
        json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "the body is not valid JSON: %s at "
                                   "offset %d",
                                   jerr.text, jerr.position);
                return NULL;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "the body must be a JSON object");
                return NULL;
        }
        return j;
}

void web_resp_unavailable(kp_http_resp_t *resp, const int32_t *parts,
                          size_t cnt, const char *message) {
        json_t *mp = json_array();
        for (size_t i = 0; i < cnt; i++)
                json_array_append_new(mp, json_integer(parts[i]));
        kp_http_resp_json(
            resp, 503,
            json_pack("{s:s, s:s, s:o}", "error", "unavailable", "message",
                      message, "missing_partitions", mp));
}

/* One delivery report to wait for. */
typedef struct web_delivery_s {
        int done;
        rd_kafka_resp_err_t err;
} web_delivery_t;

void web_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        web_t *w = opaque;
        (void)rk;
        web_delivery_t *d = m->_private;
        if (!d)
                return;
        web_priv_t *p = w->priv;
        pthread_mutex_lock(&p->dr_lock);
        d->err  = m->err;
        d->done = 1;
        pthread_cond_broadcast(&p->dr_cond);
        pthread_mutex_unlock(&p->dr_lock);
}

kp_err_t web_produce(web_t *w, const char *topic, const char *key,
                     const void *value, size_t len, rd_kafka_headers_t *hdrs) {
        web_priv_t *p    = w->priv;
        web_delivery_t d = {0};
        if (!w->producer) {
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                return KP_ERR_KAFKA;
        }
        rd_kafka_resp_err_t err;
        if (hdrs)
                err =
                    rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE((void *)value, len),
                                      RD_KAFKA_V_HEADERS(hdrs),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
        else
                err =
                    rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE((void *)value, len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
        if (err) {
                /* Not queued: the headers are still ours. */
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                KP_WARN("producing to %s: %s", topic, rd_kafka_err2str(err));
                return KP_ERR_KAFKA;
        }
        /* message.timeout.ms bounds the wait: every queued message gets a
         * report, delivered or failed. */
        pthread_mutex_lock(&p->dr_lock);
        while (!d.done)
                pthread_cond_wait(&p->dr_cond, &p->dr_lock);
        pthread_mutex_unlock(&p->dr_lock);
        if (d.err) {
                KP_WARN("producing to %s: %s", topic, rd_kafka_err2str(d.err));
                return d.err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT
                           ? KP_ERR_TIMED_OUT
                           : KP_ERR_KAFKA;
        }
        return KP_OK;
}

void *web_poller_main(void *arg) {
        web_t *w      = arg;
        web_priv_t *p = w->priv;
        while (!atomic_load(&p->poller_stop))
                rd_kafka_poll(w->producer, 100);
        return NULL;
}

void web_register_routes(web_t *w) {
        web_api_routes(w);
        web_payments_routes(w);
        web_static_routes(w);
}
