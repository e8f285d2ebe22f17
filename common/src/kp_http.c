/* kp_http.c: a small HTTP/1.1 server on libmicrohttpd with prefix routes. */
#include "kpay/kp_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

/* Request bodies larger than this get 413. */
#define KP_HTTP_BODY_MAX ((size_t)1024 * 1024)
/* Idle connections are closed after this many seconds. */
#define KP_HTTP_CONN_TIMEOUT 60
#define KP_HTTP_JSON         "application/json"
#define KP_HTTP_TEXT         "text/plain; charset=utf-8"

/* The methods a route may name, as bits for the Allow header. */
static const char *route_methods[] = {"GET", "POST", "PUT", "DELETE"};
#define KP_HTTP_METHOD_CNT (sizeof(route_methods) / sizeof(route_methods[0]))

typedef struct kp_http_route_s {
        int method; /* index into route_methods, or -1 for any */
        char *path;
        size_t path_len;
        bool prefix; /* path ends in '/' */
        kp_http_handler_t *handler;
        void *opaque;
} kp_http_route_t;

struct kp_http_hdr_s {
        char *name;
        char *value;
        struct kp_http_hdr_s *next;
};

struct kp_http_s {
        kp_http_opts_t opts; /* defaults filled in */
        char *listen;
        struct sockaddr_in addr;
        unsigned int threads;
        kp_http_route_t *routes; /* immutable once started */
        size_t route_cnt;
        struct MHD_Daemon *daemon;
        int port;
        pthread_mutex_t log_lock; /* last_log */
        char last_log[512];       /* MHD's last message, for errstr */
};

typedef struct kp_http_kv_s {
        char *key;
        char *value;
} kp_http_kv_t;

/* One request, kept in MHD's per-request context from the first call of
 * the access handler until the request completes. */
struct kp_http_req_s {
        struct MHD_Connection *conn;
        const char *method;
        char *path;          /* decoded, or NULL when malformed */
        const char *bad;     /* why the path or query is malformed */
        kp_http_kv_t *query; /* decoded, in request order */
        size_t query_cnt;
        char *body; /* NUL-terminated for convenience */
        size_t body_len;
        size_t body_cap;
        bool too_large;
};

/* Reports a misuse of the API (a bug in the caller) and aborts. */
static void misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void misuse(const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        KP_FATAL("http: %s", msg);
        abort();
}

/* ---------------------------------------------------------------------- */
/* Responses */

/* Drops a stream set on @p resp (its opaque freed). */
static void resp_unstream(kp_http_resp_t *resp) {
        if (resp->stream && resp->stream_free)
                resp->stream_free(resp->stream_opaque);
        resp->stream        = NULL;
        resp->stream_free   = NULL;
        resp->stream_opaque = NULL;
}

static void resp_free_headers(kp_http_resp_t *resp) {
        while (resp->headers) {
                kp_http_hdr_t *h = resp->headers;
                resp->headers    = h->next;
                kp_free(h->name);
                kp_free(h->value);
                kp_free(h);
        }
}

static void resp_set(kp_http_resp_t *resp, int status, char *body, size_t len,
                     const char *content_type) {
        resp_unstream(resp);
        kp_free(resp->body);
        resp->status       = status;
        resp->body         = body;
        resp->body_len     = len;
        resp->content_type = content_type;
}

typedef struct kp_http_buf_s {
        char *p;
        size_t len;
        size_t cap;
} kp_http_buf_t;

static void buf_add(kp_http_buf_t *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                b->p   = kp_realloc(b->p, cap);
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

/* json_dump_callback() sink: the JSON text goes straight into kp_ memory,
 * which the server frees with kp_free(). */
static int json_sink(const char *s, size_t n, void *opaque) {
        buf_add(opaque, s, n);
        return 0;
}

void kp_http_resp_json(kp_http_resp_t *resp, int status, json_t *json) {
        kp_http_buf_t b = {NULL, 0, 0};
        int r           = -1;
        if (json)
                r = json_dump_callback(json, json_sink, &b,
                                       JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(json);
        if (r != 0 || !b.p) {
                static const char fail[] =
                    "{\"error\":\"internal\",\"message\":"
                    "\"the response could not be encoded as JSON\"}";
                KP_ERROR("http: a response could not be encoded as JSON");
                kp_free(b.p);
                resp_set(resp, 500, kp_strdup(fail), sizeof(fail) - 1,
                         KP_HTTP_JSON);
                return;
        }
        resp_set(resp, status, b.p, b.len, KP_HTTP_JSON);
}

void kp_http_resp_error(kp_http_resp_t *resp, int status, const char *code,
                        const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_t *jmsg = json_string(msg);
        if (!jmsg) {
                /* Not UTF-8 (a raw path echoed back, say): keep the ASCII. */
                for (char *p = msg; *p; p++)
                        if ((unsigned char)*p >= 0x80)
                                *p = '?';
                jmsg = json_string(msg);
        }
        kp_http_resp_json(resp, status,
                          json_pack("{s:s, s:o*}", "error",
                                    code ? code : "error", "message", jmsg));
}

void kp_http_resp_text(kp_http_resp_t *resp, int status,
                       const char *content_type, const char *text, size_t len) {
        char *body = kp_malloc(len + 1);
        if (len > 0)
                memcpy(body, text, len);
        body[len] = '\0';
        resp_set(resp, status, body, len,
                 content_type ? content_type : KP_HTTP_TEXT);
}

void kp_http_resp_header(kp_http_resp_t *resp, const char *name,
                         const char *value) {
        if (!name || !value || !*name || strpbrk(name, "\r\n:") ||
            strpbrk(value, "\r\n")) {
                KP_ERROR("http: refusing a malformed response header");
                return;
        }
        kp_http_hdr_t *h = kp_calloc(1, sizeof(*h)), **tail = &resp->headers;
        h->name  = kp_strdup(name);
        h->value = kp_strdup(value);
        while (*tail)
                tail = &(*tail)->next;
        *tail = h;
}

void kp_http_resp_stream(kp_http_resp_t *resp, int status,
                         const char *content_type, kp_http_stream_cb *cb,
                         kp_http_stream_free_cb *free_cb, void *opaque) {
        resp_set(resp, status, NULL, 0, content_type);
        resp->stream        = cb;
        resp->stream_free   = free_cb;
        resp->stream_opaque = opaque;
}

/* A stream as MHD reads it. */
typedef struct kp_http_stream_s {
        kp_http_stream_cb *cb;
        kp_http_stream_free_cb *free_cb;
        void *opaque;
} kp_http_stream_t;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
        kp_http_stream_t *st = cls;
        (void)pos;
        long n = st->cb(st->opaque, buf, max);
        if (n <= 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        return (ssize_t)n;
}

static void stream_free(void *cls) {
        kp_http_stream_t *st = cls;
        if (st->free_cb)
                st->free_cb(st->opaque);
        kp_free(st);
}

/* Queues @p resp on @p conn (taking its body, headers and stream). @p allow
 * is the Allow header for a 405, or NULL. */
static enum MHD_Result queue(kp_http_t *http, struct MHD_Connection *conn,
                             kp_http_resp_t *resp, const char *allow) {
        struct MHD_Response *r;
        int status = resp->status ? resp->status : 200;
        if (status < 100 || status > 599) {
                KP_ERROR("http: handler returned status %d; sending 500",
                         status);
                status = 500;
        }
        if (resp->stream && !(http && http->opts.thread_per_connection)) {
                KP_ERROR("http: a streamed response on a pooled server");
                kp_http_resp_error(resp, 500, "internal",
                                   "this server cannot stream responses");
                status = 500;
        }
        if (resp->stream) {
                kp_http_stream_t *st = kp_malloc(sizeof(*st));
                st->cb               = resp->stream;
                st->free_cb          = resp->stream_free;
                st->opaque           = resp->stream_opaque;
                resp->stream         = NULL;
                r                    = MHD_create_response_from_callback(
                                       MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
                if (!r)
                        stream_free(st);
        } else if (resp->body && resp->body_len > 0) {
                r = MHD_create_response_from_buffer_with_free_callback(
                    resp->body_len, resp->body, kp_free);
                if (!r)
                        kp_free(resp->body);
        } else {
                kp_free(resp->body);
                r = MHD_create_response_from_buffer(0, NULL,
                                                    MHD_RESPMEM_PERSISTENT);
        }
        resp->body = NULL;
        if (!r) {
                KP_ERROR("http: cannot create a response");
                resp_free_headers(resp);
                return MHD_NO;
        }
        bool cache_set = false, ok = true;
        for (kp_http_hdr_t *h = resp->headers; h && ok; h = h->next) {
                if (!strcasecmp(h->name, MHD_HTTP_HEADER_CACHE_CONTROL))
                        cache_set = true;
                ok = MHD_add_response_header(r, h->name, h->value) == MHD_YES;
        }
        resp_free_headers(resp);
        if (!ok ||
            MHD_add_response_header(
                r, MHD_HTTP_HEADER_CONTENT_TYPE,
                resp->content_type ? resp->content_type : KP_HTTP_JSON) !=
                MHD_YES ||
            (!cache_set &&
             MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                     "no-store") != MHD_YES) ||
            (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                              allow) != MHD_YES)) {
                KP_ERROR("http: cannot add response headers");
                MHD_destroy_response(r);
                return MHD_NO;
        }
        enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)status, r);
        MHD_destroy_response(r);
        return ret;
}

/* Queues a JSON error response. */
static enum MHD_Result queue_error(struct MHD_Connection *conn, int status,
                                   const char *code, const char *allow,
                                   const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result queue_error(struct MHD_Connection *conn, int status,
                                   const char *code, const char *allow,
                                   const char *fmt, ...) {
        kp_http_resp_t resp = {.status = 200};
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        kp_http_resp_error(&resp, status, code, "%s", msg);
        return queue(NULL, conn, &resp, allow);
}

/* ---------------------------------------------------------------------- */
/* Requests */

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes the %XX escapes of s[0..n) (and '+' as a space if @p plus) into
 * a new string. @returns NULL with *whyp set for a bad escape or a NUL. */
static char *url_decode(const char *s, size_t n, bool plus, const char **whyp) {
        char *out = kp_malloc(n + 1);
        size_t o  = 0;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '%') {
                        if (i + 2 >= n) {
                                *whyp = "truncated percent-escape";
                                kp_free(out);
                                return NULL;
                        }
                        int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
                        if (h < 0 || l < 0) {
                                *whyp = "invalid percent-escape";
                                kp_free(out);
                                return NULL;
                        }
                        c = (char)(h * 16 + l);
                        if (c == '\0') {
                                *whyp = "percent-escape decodes to NUL";
                                kp_free(out);
                                return NULL;
                        }
                        i += 2;
                } else if (c == '+' && plus) {
                        c = ' ';
                } else if (c == '\0') {
                        *whyp = "NUL byte";
                        kp_free(out);
                        return NULL;
                }
                out[o++] = c;
        }
        out[o] = '\0';
        return out;
}

/* MHD_get_connection_values_n() iterator: decodes one query parameter. */
static enum MHD_Result query_add(void *opaque, enum MHD_ValueKind kind,
                                 const char *key, size_t key_size,
                                 const char *value, size_t value_size) {
        kp_http_req_t *req = opaque;
        const char *why    = NULL;
        (void)kind;
        if (req->bad)
                return MHD_NO;
        char *k = url_decode(key, key_size, true, &why);
        char *v = k ? url_decode(value ? value : "", value ? value_size : 0,
                                 true, &why)
                    : NULL;
        if (!k || !v) {
                kp_free(k);
                req->bad = why;
                return MHD_NO;
        }
        req->query =
            kp_realloc(req->query, (req->query_cnt + 1) * sizeof(*req->query));
        req->query[req->query_cnt].key   = k;
        req->query[req->query_cnt].value = v;
        req->query_cnt++;
        return MHD_YES;
}

static void req_free(kp_http_req_t *req) {
        if (!req)
                return;
        for (size_t i = 0; i < req->query_cnt; i++) {
                kp_free(req->query[i].key);
                kp_free(req->query[i].value);
        }
        kp_free(req->query);
        kp_free(req->path);
        kp_free(req->body);
        kp_free(req);
}

const char *kp_http_req_method(const kp_http_req_t *req) {
        return req->method;
}

const char *kp_http_req_path(const kp_http_req_t *req) {
        return req->path;
}

const char *kp_http_req_query(const kp_http_req_t *req, const char *name) {
        for (size_t i = 0; i < req->query_cnt; i++)
                if (!strcmp(req->query[i].key, name))
                        return req->query[i].value;
        return NULL;
}

const char *kp_http_req_header(const kp_http_req_t *req, const char *name) {
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *kp_http_req_body(const kp_http_req_t *req, size_t *lenp) {
        if (lenp)
                *lenp = req->body_len;
        return req->body_len > 0 ? req->body : NULL;
}

/* ---------------------------------------------------------------------- */
/* Routing */

static int method_index(const char *method) {
        for (size_t i = 0; i < KP_HTTP_METHOD_CNT; i++)
                if (!strcmp(method, route_methods[i]))
                        return (int)i;
        return -1;
}

static bool route_path_matches(const kp_http_route_t *r, const char *path) {
        if (r->prefix)
                return !strncmp(path, r->path, r->path_len);
        return !strcmp(path, r->path);
}

static bool route_method_matches(const kp_http_route_t *r, const char *method) {
        if (r->method < 0)
                return true;
        if (!strcmp(method, route_methods[r->method]))
                return true;
        /* HEAD is GET without the body, which MHD drops for us. */
        return !strcmp(method, "HEAD") &&
               !strcmp(route_methods[r->method], "GET");
}

/* The route for (method, path): the longest matching path among the routes
 * that accept the method. When routes match the path but none accepts the
 * method, returns NULL with their methods in @p allow ("" when no route
 * matches the path at all). */
static const kp_http_route_t *route_find(const kp_http_t *http,
                                         const char *method, const char *path,
                                         char *allow, size_t allow_size) {
        const kp_http_route_t *best = NULL;
        unsigned int allowed        = 0;
        for (size_t i = 0; i < http->route_cnt; i++) {
                const kp_http_route_t *r = &http->routes[i];
                if (!route_path_matches(r, path))
                        continue;
                if (!route_method_matches(r, method)) {
                        allowed |= 1u << r->method;
                        continue;
                }
                if (!best || r->path_len > best->path_len)
                        best = r;
        }
        allow[0] = '\0';
        if (best)
                return best;
        size_t of = 0;
        for (size_t i = 0; i < KP_HTTP_METHOD_CNT; i++) {
                if (!(allowed & (1u << i)))
                        continue;
                of += (size_t)snprintf(allow + of, allow_size - of, "%s%s",
                                       of ? ", " : "", route_methods[i]);
                if (!strcmp(route_methods[i], "GET"))
                        of += (size_t)snprintf(allow + of, allow_size - of,
                                               ", HEAD");
        }
        return NULL;
}

/* Runs the handler for a fully received request. */
static enum MHD_Result dispatch(kp_http_t *http, kp_http_req_t *req) {
        char allow[64];
        if (req->bad)
                return queue_error(req->conn, 400, "bad_request", NULL,
                                   "malformed request target: %s", req->bad);
        if (req->too_large)
                return queue_error(req->conn, 413, http->opts.too_large_code,
                                   NULL, "the request body exceeds %zu bytes",
                                   http->opts.body_max);
        const kp_http_route_t *r =
            route_find(http, req->method, req->path, allow, sizeof(allow));
        if (!r && allow[0])
                return queue_error(req->conn, 405, "method_not_allowed", allow,
                                   "%s is not allowed on %s (allowed: %s)",
                                   req->method, req->path, allow);
        if (!r)
                return queue_error(req->conn, 404, "not_found", NULL,
                                   "no such resource: %s", req->path);
        kp_http_resp_t resp = {.status = 200};
        r->handler(req, r->prefix ? req->path + r->path_len : "", &resp,
                   r->opaque);
        return queue(http, req->conn, &resp, NULL);
}

/* The first call for a request: decodes the target. @returns the request,
 * or NULL when a response (413) was queued already via *retp. */
static kp_http_req_t *req_new(kp_http_t *http, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              enum MHD_Result *retp) {
        kp_http_req_t *req = kp_calloc(1, sizeof(*req));
        const char *why    = NULL;
        req->conn          = conn;
        req->method        = method;
        /* MHD was told not to unescape (unescape_none), so url is the raw
         * path: decode it exactly once here. */
        req->path = url_decode(url, strlen(url), false, &why);
        if (!req->path)
                req->bad = why;
        else
                MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND,
                                            query_add, req);

        /* Refuse a body announced as too large before it is sent: a client
         * waiting for "100 Continue" then never sends it. (One that sends
         * it anyway may see the connection reset once the 413 is out.) */
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
                errno                = 0;
                unsigned long long n = strtoull(cl, NULL, 10);
                if (errno == ERANGE || n > http->opts.body_max) {
                        req_free(req);
                        *retp = queue_error(
                            conn, 413, http->opts.too_large_code, NULL,
                            "the request body exceeds %zu bytes",
                            http->opts.body_max);
                        return NULL;
                }
        }
        return req;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
        kp_http_t *http    = cls;
        kp_http_req_t *req = *con_cls;
        (void)version;

        if (!req) {
                enum MHD_Result ret = MHD_NO;
                req                 = req_new(http, conn, url, method, &ret);
                if (!req)
                        return ret;
                *con_cls = req;
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                size_t n          = *upload_data_size;
                *upload_data_size = 0;
                if (req->too_large)
                        return MHD_YES; /* drain; 413 at the end */
                if (req->body_len + n > http->opts.body_max) {
                        req->too_large = true;
                        kp_free(req->body);
                        req->body     = NULL;
                        req->body_len = req->body_cap = 0;
                        return MHD_YES;
                }
                if (req->body_len + n + 1 > req->body_cap) {
                        size_t cap = req->body_cap ? req->body_cap : 4096;
                        while (cap < req->body_len + n + 1)
                                cap *= 2;
                        req->body     = kp_realloc(req->body, cap);
                        req->body_cap = cap;
                }
                memcpy(req->body + req->body_len, upload_data, n);
                req->body_len += n;
                req->body[req->body_len] = '\0';
                return MHD_YES;
        }

        return dispatch(http, req);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        (void)cls;
        (void)conn;
        (void)toe;
        req_free(*con_cls);
        *con_cls = NULL;
}

/* Leaves URIs and query strings escaped: req_new() and query_add() decode
 * them once, and can see (and refuse) an escaped NUL. */
static size_t unescape_none(void *cls, struct MHD_Connection *conn, char *s) {
        (void)cls;
        (void)conn;
        return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
        kp_http_t *http = cls;
        char msg[512];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        size_t len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
                msg[--len] = '\0';
        pthread_mutex_lock(&http->log_lock);
        snprintf(http->last_log, sizeof(http->last_log), "%s", msg);
        pthread_mutex_unlock(&http->log_lock);
        KP_WARN("http: %s", msg);
}

/* ---------------------------------------------------------------------- */
/* The server */

/* Parses "HOST:PORT" (HOST an IPv4 literal or "localhost"). */
static kp_err_t parse_listen(const char *listen, struct sockaddr_in *addr,
                             char *errstr, size_t errstr_size) {
        char host[64];
        const char *colon = listen ? strrchr(listen, ':') : NULL;
        if (!colon || colon == listen || !colon[1]) {
                snprintf(errstr, errstr_size,
                         "malformed listen address \"%s\": expected HOST:PORT",
                         listen ? listen : "");
                return KP_ERR_INVALID_ARG;
        }
        size_t host_len = (size_t)(colon - listen);
        if (host_len >= sizeof(host)) {
                snprintf(errstr, errstr_size,
                         "malformed listen address \"%s\": host too long",
                         listen);
                return KP_ERR_INVALID_ARG;
        }
        memcpy(host, listen, host_len);
        host[host_len] = '\0';

        unsigned long port = 0;
        const char *p;
        for (p = colon + 1; *p >= '0' && *p <= '9' && port <= 65535; p++)
                port = port * 10 + (unsigned long)(*p - '0');
        if (*p || port > 65535) {
                snprintf(errstr, errstr_size,
                         "malformed listen address \"%s\": port must be a "
                         "number in 0..65535",
                         listen);
                return KP_ERR_INVALID_ARG;
        }

        memset(addr, 0, sizeof(*addr));
        addr->sin_family = AF_INET;
        addr->sin_port   = htons((uint16_t)port);
        if (!strcmp(host, "localhost"))
                addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
                snprintf(errstr, errstr_size,
                         "malformed listen address \"%s\": host must be an "
                         "IPv4 address or \"localhost\"",
                         listen);
                return KP_ERR_INVALID_ARG;
        }
        return KP_OK;
}

kp_http_t *kp_http_new(const char *listen, int threads, char *errstr,
                       size_t errstr_size) {
        struct sockaddr_in addr;
        if (parse_listen(listen, &addr, errstr, errstr_size) != KP_OK)
                return NULL;
        if (threads < 1 || threads > 1024) {
                snprintf(errstr, errstr_size,
                         "HTTP threads must be in 1..1024, not %d", threads);
                return NULL;
        }
        kp_http_t *http = kp_calloc(1, sizeof(*http));
        int r           = pthread_mutex_init(&http->log_lock, NULL);
        if (r != 0) {
                snprintf(errstr, errstr_size, "pthread_mutex_init: %s",
                         strerror(r));
                kp_free(http);
                return NULL;
        }
        kp_http_set_opts(http, NULL);
        http->listen  = kp_strdup(listen);
        http->addr    = addr;
        http->threads = (unsigned int)threads;
        http->port    = -1;
        return http;
}

void kp_http_route(kp_http_t *http, const char *method, const char *path,
                   kp_http_handler_t *handler, void *opaque) {
        int m = method ? method_index(method) : -1;
        if (http->daemon)
                misuse("kp_http_route(%s) after kp_http_start()",
                       path ? path : "(null)");
        if (method && m < 0)
                misuse("kp_http_route: unsupported method \"%s\"", method);
        if (!path || path[0] != '/' || !handler)
                misuse(
                    "kp_http_route: a path must start with '/' and have a "
                    "handler");
        http->routes = kp_realloc(
            http->routes, (http->route_cnt + 1) * sizeof(*http->routes));
        kp_http_route_t *r = &http->routes[http->route_cnt++];
        r->method          = m;
        r->path            = kp_strdup(path);
        r->path_len        = strlen(path);
        r->prefix          = path[r->path_len - 1] == '/';
        r->handler         = handler;
        r->opaque          = opaque;
}

void kp_http_set_opts(kp_http_t *http, const kp_http_opts_t *opts) {
        static const kp_http_opts_t none = {0};
        if (http->daemon)
                misuse("kp_http_set_opts() after kp_http_start()");
        http->opts = opts ? *opts : none;
        if (!http->opts.body_max)
                http->opts.body_max = KP_HTTP_BODY_MAX;
        if (!http->opts.too_large_code)
                http->opts.too_large_code = "payload_too_large";
        if (!http->opts.max_connections)
                http->opts.max_connections = 64;
}

kp_err_t kp_http_start(kp_http_t *http, char *errstr, size_t errstr_size) {
        if (http->daemon) {
                snprintf(errstr, errstr_size, "HTTP server already started");
                return KP_ERR_STATE;
        }
        pthread_mutex_lock(&http->log_lock);
        http->last_log[0] = '\0';
        pthread_mutex_unlock(&http->log_lock);
        /* MHD warns about a pool of one thread, so ask for a pool only
         * when there is one. */
        struct MHD_OptionItem pool[] = {
            {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)http->threads, NULL},
            {MHD_OPTION_END, 0, NULL},
        };
        struct MHD_OptionItem per_conn[] = {
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)http->opts.max_connections,
             NULL},
            {MHD_OPTION_END, 0, NULL},
        };
        unsigned int flags =
            MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        struct MHD_OptionItem *extra = http->threads > 1 ? pool : pool + 1;
        if (http->opts.thread_per_connection) {
                flags |= MHD_USE_THREAD_PER_CONNECTION;
                extra = per_conn;
        }
        errno        = 0;
        http->daemon = MHD_start_daemon(
            flags, ntohs(http->addr.sin_port), NULL, NULL, access_cb, http,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, http, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&http->addr, MHD_OPTION_ARRAY, extra,
            MHD_OPTION_NOTIFY_COMPLETED, completed_cb, http,
            MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, http,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)KP_HTTP_CONN_TIMEOUT,
            MHD_OPTION_END);
        if (!http->daemon) {
                /* MHD reports why (bind: address in use, say) only to its
                 * logger; errno is a fallback. */
                int err = errno;
                pthread_mutex_lock(&http->log_lock);
                snprintf(errstr, errstr_size, "cannot listen on %s: %s",
                         http->listen,
                         http->last_log[0] ? http->last_log
                         : err             ? strerror(err)
                                           : "unknown error");
                pthread_mutex_unlock(&http->log_lock);
                return KP_ERR_IO;
        }

        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
        if (info && info->port)
                http->port = info->port;
        else
                http->port = ntohs(http->addr.sin_port);
        KP_DEBUG("http: listening on %s (port %d, %u threads)", http->listen,
                 http->port, http->threads);
        return KP_OK;
}

int kp_http_port(const kp_http_t *http) {
        return http && http->daemon ? http->port : -1;
}

void kp_http_destroy(kp_http_t *http) {
        if (!http)
                return;
        if (http->daemon)
                MHD_stop_daemon(http->daemon);
        for (size_t i = 0; i < http->route_cnt; i++)
                kp_free(http->routes[i].path);
        kp_free(http->routes);
        kp_free(http->listen);
        pthread_mutex_destroy(&http->log_lock);
        kp_free(http);
}
