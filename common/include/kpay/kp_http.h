/**
 * @file kp_http.h
 * @brief A small HTTP/1.1 server (libmicrohttpd) with prefix routes and
 *        JSON helpers, shared by every kpay daemon.
 */
#ifndef KPAY_KP_HTTP_H
#define KPAY_KP_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "kpay/kp_err.h"

typedef struct kp_http_s kp_http_t;
typedef struct kp_http_req_s kp_http_req_t;

typedef struct kp_http_hdr_s kp_http_hdr_t;

/**
 * @brief Writes the next piece of a streamed response into @p buf (at most
 *        @p max bytes), blocking until there is something to send.
 * @returns the bytes written (> 0), or -1 to end the response. It runs on
 *          the connection's thread: only a server with one thread per
 *          connection (kp_http_opts_t.thread_per_connection) may take
 *          streamed responses, since a blocked call would hold every other
 *          connection of a pooled thread.
 * @locality http threads
 */
typedef long(kp_http_stream_cb)(void *opaque, char *buf, size_t max);

/** @brief Frees a stream's opaque once the response is over (sent, the
 *         client gone, or the server stopping). */
typedef void(kp_http_stream_free_cb)(void *opaque);

/** What a handler fills in. The server frees body with kp_free().
 *  Zero-initialise the fields after content_type; set them only through
 *  kp_http_resp_header() and kp_http_resp_stream(). */
typedef struct kp_http_resp_s {
        int status; /**< default 200 */
        char *body; /**< kp_malloc()ed, or NULL */
        size_t body_len;
        const char *content_type;  /**< static string; default JSON */
        kp_http_hdr_t *headers;    /**< extra headers (kp_http_resp_header) */
        kp_http_stream_cb *stream; /**< set: a streamed response */
        kp_http_stream_free_cb *stream_free;
        void *stream_opaque;
} kp_http_resp_t;

/** Server options (kp_http_set_opts()); zero means the default. */
typedef struct kp_http_opts_s {
        /** Request bodies larger than this get 413 (default 1 MiB). */
        size_t body_max;
        /** The error code of that 413 (default "payload_too_large"). */
        const char *too_large_code;
        /** One thread per connection instead of a pool: handlers may block
         *  (a fan-out to other daemons) and responses may stream. */
        int thread_per_connection;
        /** With thread_per_connection: at most this many connections at
         *  once (default 64); more are refused by the server. */
        unsigned max_connections;
} kp_http_opts_t;

/**
 * @brief A route handler. @p rest is the part of the (decoded) path after
 *        the route's prefix ("" for an exact match).
 * @locality http threads (several may run at once)
 */
typedef void(kp_http_handler_t)(const kp_http_req_t *req, const char *rest,
                                kp_http_resp_t *resp, void *opaque);

/**
 * @brief A server that will listen on @p listen ("HOST:PORT"; port 0 picks a
 *        free port) with @p threads worker threads.
 * @returns the server (not yet listening), or NULL with a reason in errstr
 *          (a malformed address, say).
 */
kp_http_t *kp_http_new(const char *listen, int threads, char *errstr,
                       size_t errstr_size);

/**
 * @brief Adds a route before kp_http_start(). A @p path ending in '/'
 *        matches every path under it (longest prefix wins); otherwise only
 *        that exact path matches. @p method is "GET", "POST", "PUT",
 *        "DELETE" or NULL for any. A path that matches a route but not its
 *        method gets 405; a path that matches nothing gets 404; both with a
 *        JSON error body.
 */
void kp_http_route(kp_http_t *http, const char *method, const char *path,
                   kp_http_handler_t *handler, void *opaque);

/**
 * @brief Sets the server's options before kp_http_start() (copied; the
 *        code string must be static).
 */
void kp_http_set_opts(kp_http_t *http, const kp_http_opts_t *opts);

/**
 * @brief Starts listening.
 * @returns KP_OK, or KP_ERR_IO with a reason (address in use, say).
 */
kp_err_t kp_http_start(kp_http_t *http, char *errstr, size_t errstr_size);

/** @brief The port actually bound (useful with port 0), or -1. */
int kp_http_port(const kp_http_t *http);

/** @brief Stops the server (waiting for running handlers) and frees it. */
void kp_http_destroy(kp_http_t *http);

/** @brief The request method ("GET"). */
const char *kp_http_req_method(const kp_http_req_t *req);
/** @brief The decoded request path without the query string. */
const char *kp_http_req_path(const kp_http_req_t *req);
/** @brief A decoded query parameter, or NULL when absent. */
const char *kp_http_req_query(const kp_http_req_t *req, const char *name);
/** @brief A request header (case-insensitive name), or NULL. */
const char *kp_http_req_header(const kp_http_req_t *req, const char *name);
/** @brief The request body (may be NULL when empty). */
const char *kp_http_req_body(const kp_http_req_t *req, size_t *lenp);

/** @brief Sets a JSON response; takes ownership of @p json. */
void kp_http_resp_json(kp_http_resp_t *resp, int status, json_t *json);

/**
 * @brief Sets a JSON error response:
 *        {"error": code, "message": "<formatted>"}.
 */
void kp_http_resp_error(kp_http_resp_t *resp, int status, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** @brief Sets a text response (copied) with the given content type. */
void kp_http_resp_text(kp_http_resp_t *resp, int status,
                       const char *content_type, const char *text, size_t len);

/**
 * @brief Adds a response header (both strings copied): Location,
 *        Cache-Control (which replaces the default "no-store"), and the
 *        like. Content-Type is set with the body, not here. A name or value
 *        holding CR or LF is ignored (logged), never sent.
 */
void kp_http_resp_header(kp_http_resp_t *resp, const char *name,
                         const char *value);

/**
 * @brief Makes the response a stream (chunked; Server-Sent Events, say):
 *        after the handler returns, @p cb is called for each piece until it
 *        returns -1 or the client goes away, then @p free_cb(@p opaque).
 *        Only on a server with thread_per_connection (else 500 and
 *        @p free_cb at once). Replaces any body already set.
 */
void kp_http_resp_stream(kp_http_resp_t *resp, int status,
                         const char *content_type, kp_http_stream_cb *cb,
                         kp_http_stream_free_cb *free_cb, void *opaque);

/* ------------------------------------------------------------------------
 * A minimal blocking client (kp_http_client.c), for tools and tests that
 * ask a kpay daemon: HTTP/1.1, one request per connection, no TLS.
 */

/**
 * @brief Sends one request to @p hostport ("127.0.0.1:8085", a name or an
 *        address; an "http://" prefix and a trailing path are refused by
 *        kp_http_split_url(), not here) and reads the whole answer.
 * @param headers extra request header lines, each ending in "\r\n", or
 *        NULL.
 * @param body the request body or NULL.
 * @param timeout_ms bound of the connect and of each read and write.
 * @param bodyp receives the response body, kp_malloc()ed and
 *        NUL-terminated (chunked transfer decoded), or NULL to skip it.
 * @returns the HTTP status, or -1 (with a reason in @p errstr) when there
 *          is no valid answer.
 * @locality any thread
 */
int kp_http_request(const char *method, const char *hostport, const char *path,
                    const char *headers, const char *body, int timeout_ms,
                    char **bodyp, size_t *lenp, char *errstr,
                    size_t errstr_size);

/**
 * @brief Percent-encodes @p s for a path segment or a query value: every
 *        byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX.
 * @returns a kp_malloc()ed string. @locality any thread
 */
char *kp_http_url_encode(const char *s);

/**
 * @brief Splits "http://HOST:PORT[/BASE]" (or "HOST:PORT[/BASE]") into
 *        @p hostport and @p base (the path prefix without a trailing '/',
 *        "" when none).
 * @returns 0, or -1 for another scheme, no port or parts too long.
 */
int kp_http_split_url(const char *url, char *hostport, size_t hp_size,
                      char *base, size_t base_size);

#endif /* KPAY_KP_HTTP_H */
