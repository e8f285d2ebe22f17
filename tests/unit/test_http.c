/* Unit tests of kp_http: a real server on 127.0.0.1 with an ephemeral port,
 * spoken to by a minimal blocking HTTP/1.1 client over plain sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kpay/kp_fanout.h"
#include "kpay/kp_http.h"
#include "kpay/kp_mem.h"

/* ---------------------------------------------------------------------- */
/* The client */

typedef struct res_s {
        int status;
        char *raw;     /* the whole response, NUL-terminated */
        char *headers; /* points into raw: the header block, NUL-terminated */
        char *body;    /* points into raw */
        size_t body_len;
} res_t;

static void res_free(res_t *res) {
        free(res->raw);
        memset(res, 0, sizeof(*res));
}

/* The client functions return -1 instead of asserting so that threads
 * other than the test's can use them; the wrappers below assert. */
static int try_connect(int port) {
        struct sockaddr_in sin;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
                return -1;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family      = AF_INET;
        sin.sin_port        = htons((uint16_t)port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int try_send_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Reads until EOF, closes @p fd, and parses the status line, headers and
 * body. */
static int try_read_response(int fd, res_t *res) {
        size_t len = 0, cap = 4096;
        char *buf = malloc(cap);
        memset(res, 0, sizeof(*res));
        for (;;) {
                if (buf && len + 1 == cap) {
                        cap *= 2;
                        char *nbuf = realloc(buf, cap);
                        if (!nbuf)
                                free(buf);
                        buf = nbuf;
                }
                if (!buf)
                        break;
                ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        free(buf);
                        buf = NULL;
                }
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        close(fd);
        if (!buf)
                return -1;
        buf[len]  = '\0';
        res->raw  = buf;
        char *eoh = strstr(buf, "\r\n\r\n");
        if (sscanf(buf, "HTTP/1.%*d %d", &res->status) != 1 || !eoh) {
                res_free(res);
                return -1;
        }
        eoh[2]        = '\0'; /* keep the last header's CRLF */
        res->headers  = buf;
        res->body     = eoh + 4;
        res->body_len = len - (size_t)(res->body - buf);
        return 0;
}

/* Sends one request with Connection: close and reads the response. */
static int try_request(int port, const char *method, const char *target,
                       const char *extra_headers, const char *body,
                       size_t body_len, res_t *res) {
        char head[2048];
        int n = snprintf(head, sizeof(head),
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Connection: close\r\n%s",
                         method, target, extra_headers ? extra_headers : "");
        if (body)
                n += snprintf(head + n, sizeof(head) - (size_t)n,
                              "Content-Length: %zu\r\n", body_len);
        n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
        if ((size_t)n >= sizeof(head))
                return -1;
        int fd = try_connect(port);
        if (fd < 0)
                return -1;
        if (try_send_all(fd, head, (size_t)n) != 0 ||
            (body && try_send_all(fd, body, body_len) != 0)) {
                close(fd);
                return -1;
        }
        return try_read_response(fd, res);
}

static int connect_to(int port) {
        int fd = try_connect(port);
        assert_true(fd >= 0);
        return fd;
}

static void send_all(int fd, const char *p, size_t len) {
        assert_int_equal(try_send_all(fd, p, len), 0);
}

static void read_response(int fd, res_t *res) {
        assert_int_equal(try_read_response(fd, res), 0);
}

static void request(int port, const char *method, const char *target,
                    const char *extra_headers, const char *body,
                    size_t body_len, res_t *res) {
        assert_int_equal(try_request(port, method, target, extra_headers, body,
                                     body_len, res),
                         0);
}

/* The value of response header @p name (case-insensitive), copied into
 * @p out, or NULL when absent. */
static const char *res_header(const res_t *res, const char *name, char *out,
                              size_t size) {
        size_t nlen = strlen(name);
        for (const char *p = strstr(res->headers, "\r\n"); p && p[2];
             p             = strstr(p + 2, "\r\n")) {
                const char *h = p + 2;
                if (strncasecmp(h, name, nlen) || h[nlen] != ':')
                        continue;
                h += nlen + 1;
                while (*h == ' ')
                        h++;
                size_t vlen = strcspn(h, "\r");
                assert_true(vlen < size);
                memcpy(out, h, vlen);
                out[vlen] = '\0';
                return out;
        }
        return NULL;
}

static void get(int port, const char *target, res_t *res) {
        request(port, "GET", target, NULL, NULL, 0, res);
}

/* Parses the response body as a JSON object. */
static json_t *res_json(const res_t *res) {
        json_error_t err;
        json_t *j = json_loadb(res->body, res->body_len, 0, &err);
        if (!j)
                fail_msg("not JSON (%s): %.*s", err.text, (int)res->body_len,
                         res->body);
        assert_true(json_is_object(j));
        return j;
}

/* A string member of @p j, or NULL when it is null or absent. */
static const char *jstr(json_t *j, const char *key) {
        return json_string_value(json_object_get(j, key));
}

/* Checks a JSON error response: status, "error" code, JSON content type. */
static void assert_error(const res_t *res, int status, const char *code) {
        char ct[128];
        assert_int_equal(res->status, status);
        assert_non_null(res_header(res, "Content-Type", ct, sizeof(ct)));
        assert_string_equal(ct, "application/json");
        json_t *j = res_json(res);
        assert_string_equal(jstr(j, "error"), code);
        assert_non_null(jstr(j, "message"));
        assert_true(strlen(jstr(j, "message")) > 0);
        json_decref(j);
}

/* ---------------------------------------------------------------------- */
/* The server under test */

/* Echoes what the handler saw as JSON. */
static void echo(const kp_http_req_t *req, const char *rest,
                 kp_http_resp_t *resp, void *opaque) {
        size_t len;
        const char *body = kp_http_req_body(req, &len);
        json_t *j;
        j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:I}", "tag",
            (const char *)opaque, "method", kp_http_req_method(req), "path",
            kp_http_req_path(req), "rest", rest, "after",
            kp_http_req_query(req, "after"), "limit",
            kp_http_req_query(req, "limit"), "q", kp_http_req_query(req, "q"),
            "hdr", kp_http_req_header(req, "X-Test"), "len", (json_int_t)len);
        if (!j) { /* handlers run on server threads: no cmocka asserts */
                kp_http_resp_error(resp, 500, "test", "json_pack failed");
                return;
        }
        /* Small bodies are echoed; large ones are checked by a checksum. */
        if (body && len <= 4096)
                json_object_set_new(j, "body", json_stringn(body, len));
        uint64_t sum = 0;
        for (size_t i = 0; body && i < len; i++)
                sum = sum * 31 + (unsigned char)body[i];
        json_object_set_new(j, "sum", json_integer((json_int_t)(sum >> 1)));
        kp_http_resp_json(resp, 200, j);
}

static void text(const kp_http_req_t *req, const char *rest,
                 kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)rest;
        (void)opaque;
        static const char t[] = "# TYPE x counter\nx 1\n";
        kp_http_resp_text(resp, 200, "text/plain; version=0.0.4", t,
                          sizeof(t) - 1);
}

static void nothing(const kp_http_req_t *req, const char *rest,
                    kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)rest;
        (void)resp;
        (void)opaque;
}

static void conflict(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)opaque;
        kp_http_resp_error(resp, 409, "conflict", "key %s exists", rest);
}

static void add_routes(kp_http_t *http) {
        /* Registered so that neither "first wins" nor "last wins" would
         * pick the longest prefix for /v1/stores/special/... */
        kp_http_route(http, "GET", "/v1/stores/", echo, "store");
        kp_http_route(http, "GET", "/v1/stores/special/", echo, "special");
        kp_http_route(http, "POST", "/v1/stores/special/submit", echo,
                      "submit");
        kp_http_route(http, "GET", "/v1/", echo, "v1");
        kp_http_route(http, "GET", "/v1/stores", echo, "stores");
        kp_http_route(http, "GET", "/healthz", echo, "healthz");
        kp_http_route(http, "POST", "/echo", echo, "post");
        kp_http_route(http, "PUT", "/echo", echo, "put");
        kp_http_route(http, NULL, "/any", echo, "any");
        kp_http_route(http, "GET", "/text", text, NULL);
        kp_http_route(http, "GET", "/empty", nothing, NULL);
        kp_http_route(http, "PUT", "/conflict/", conflict, NULL);
}

typedef struct fixture_s {
        kp_http_t *http;
        int port;
        int64_t live;
} fixture_t;

static int setup(void **state) {
        char errstr[256];
        fixture_t *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        f->live = kp_mem_live_allocations();
        f->http = kp_http_new("127.0.0.1:0", 4, errstr, sizeof(errstr));
        assert_non_null(f->http);
        add_routes(f->http);
        assert_int_equal(kp_http_port(f->http), -1);
        assert_int_equal(kp_http_start(f->http, errstr, sizeof(errstr)), KP_OK);
        f->port = kp_http_port(f->http);
        assert_true(f->port > 0 && f->port <= 65535);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        fixture_t *f = *state;
        kp_http_destroy(f->http);
        /* Everything the server allocated (requests, bodies, responses,
         * routes) is freed once it has stopped. */
        int leaked = kp_mem_live_allocations() != f->live;
        free(f);
        return leaked ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Tests */

static void test_exact_route(void **state) {
        fixture_t *f = *state;
        res_t res;
        char hv[128];
        get(f->port, "/healthz", &res);
        assert_int_equal(res.status, 200);
        assert_string_equal(res_header(&res, "content-type", hv, sizeof(hv)),
                            "application/json");
        assert_string_equal(res_header(&res, "Cache-Control", hv, sizeof(hv)),
                            "no-store");
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "healthz");
        assert_string_equal(jstr(j, "method"), "GET");
        assert_string_equal(jstr(j, "path"), "/healthz");
        assert_string_equal(jstr(j, "rest"), "");
        assert_null(jstr(j, "after"));
        json_decref(j);
        res_free(&res);

        /* An exact route matches nothing under it. */
        get(f->port, "/healthz/x", &res);
        assert_error(&res, 404, "not_found");
        res_free(&res);

        /* A route without a method takes any. */
        request(f->port, "DELETE", "/any", NULL, NULL, 0, &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "any");
        assert_string_equal(jstr(j, "method"), "DELETE");
        json_decref(j);
        res_free(&res);
}

static void test_prefix_route(void **state) {
        fixture_t *f = *state;
        res_t res;
        get(f->port, "/v1/stores/accounts/keys/k1", &res);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "store");
        assert_string_equal(jstr(j, "path"), "/v1/stores/accounts/keys/k1");
        assert_string_equal(jstr(j, "rest"), "accounts/keys/k1");
        json_decref(j);
        res_free(&res);

        /* The prefix itself: rest is empty. */
        get(f->port, "/v1/stores/", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "store");
        assert_string_equal(jstr(j, "rest"), "");
        json_decref(j);
        res_free(&res);

        /* The exact route next to the prefix. */
        get(f->port, "/v1/stores", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "stores");
        json_decref(j);
        res_free(&res);
}

static void test_longest_prefix(void **state) {
        fixture_t *f = *state;
        res_t res;
        get(f->port, "/v1/stores/special/x/y", &res);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "special");
        assert_string_equal(jstr(j, "rest"), "x/y");
        json_decref(j);
        res_free(&res);

        get(f->port, "/v1/other", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "v1");
        assert_string_equal(jstr(j, "rest"), "other");
        json_decref(j);
        res_free(&res);

        /* "/v1/stores/specialx" is not under "/v1/stores/special/". */
        get(f->port, "/v1/stores/specialx", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "store");
        assert_string_equal(jstr(j, "rest"), "specialx");
        json_decref(j);
        res_free(&res);
}

static void test_query_decoding(void **state) {
        fixture_t *f = *state;
        res_t res;
        get(f->port, "/v1/stores/acct?after=a%20b&limit=5&q=x+y%2Bz%26w", &res);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "rest"), "acct");
        assert_string_equal(jstr(j, "path"), "/v1/stores/acct");
        assert_string_equal(jstr(j, "after"), "a b");
        assert_string_equal(jstr(j, "limit"), "5");
        assert_string_equal(jstr(j, "q"), "x y+z&w");
        json_decref(j);
        res_free(&res);

        /* A parameter without a value is present and empty. */
        get(f->port, "/v1/stores/acct?after&limit=", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "after"), "");
        assert_string_equal(jstr(j, "limit"), "");
        assert_null(jstr(j, "q"));
        json_decref(j);
        res_free(&res);

        /* A parameter that decodes to NUL is refused. */
        get(f->port, "/v1/stores/acct?after=a%00b", &res);
        assert_error(&res, 400, "bad_request");
        res_free(&res);
}

static void test_path_decoding(void **state) {
        fixture_t *f = *state;
        res_t res;
        get(f->port, "/v1/stores/acc%20ts/keys/k%2Fx%C3%A9", &res);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "store");
        assert_string_equal(jstr(j, "path"),
                            "/v1/stores/acc ts/keys/k/x\xc3\xa9");
        assert_string_equal(jstr(j, "rest"), "acc ts/keys/k/x\xc3\xa9");
        json_decref(j);
        res_free(&res);

        /* Decoded exactly once; '+' in a path is not a space. */
        get(f->port, "/v1/stores/%2541+1", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "rest"), "%41+1");
        json_decref(j);
        res_free(&res);

        /* The route is chosen on the decoded path. */
        get(f->port, "/v1/stores/%73pecial/k", &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "special");
        assert_string_equal(jstr(j, "rest"), "k");
        json_decref(j);
        res_free(&res);

        /* NUL and malformed escapes are refused. */
        get(f->port, "/v1/stores/a%00b", &res);
        assert_error(&res, 400, "bad_request");
        res_free(&res);
        get(f->port, "/v1/stores/a%zz", &res);
        assert_error(&res, 400, "bad_request");
        res_free(&res);
        get(f->port, "/v1/stores/a%2", &res);
        assert_error(&res, 400, "bad_request");
        res_free(&res);
}

static void test_not_found(void **state) {
        fixture_t *f = *state;
        res_t res;
        char hv[64];
        get(f->port, "/nope", &res);
        assert_error(&res, 404, "not_found");
        assert_string_equal(res_header(&res, "Cache-Control", hv, sizeof(hv)),
                            "no-store");
        res_free(&res);
        get(f->port, "/", &res);
        assert_error(&res, 404, "not_found");
        res_free(&res);
}

static void test_method_not_allowed(void **state) {
        fixture_t *f = *state;
        res_t res;
        char allow[64];
        request(f->port, "DELETE", "/echo", NULL, NULL, 0, &res);
        assert_error(&res, 405, "method_not_allowed");
        assert_non_null(res_header(&res, "Allow", allow, sizeof(allow)));
        assert_string_equal(allow, "POST, PUT");
        res_free(&res);

        request(f->port, "POST", "/healthz", NULL, "x", 1, &res);
        assert_error(&res, 405, "method_not_allowed");
        assert_non_null(res_header(&res, "Allow", allow, sizeof(allow)));
        assert_string_equal(allow, "GET, HEAD");
        res_free(&res);

        /* Prefix routes' methods are checked too (here /v1/stores/ and
         * /v1/ both match, for GET only). */
        request(f->port, "PUT", "/v1/stores/a", NULL, "x", 1, &res);
        assert_error(&res, 405, "method_not_allowed");
        assert_non_null(res_header(&res, "Allow", allow, sizeof(allow)));
        assert_string_equal(allow, "GET, HEAD");
        res_free(&res);

        /* A shorter route that takes the method wins over a longer one
         * that does not. */
        get(f->port, "/v1/stores/special/submit", &res);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "special");
        assert_string_equal(jstr(j, "rest"), "submit");
        json_decref(j);
        res_free(&res);
        request(f->port, "POST", "/v1/stores/special/submit", NULL, "x", 1,
                &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "submit");
        json_decref(j);
        res_free(&res);
}

static void test_head(void **state) {
        fixture_t *f = *state;
        res_t res;
        char hv[64];
        request(f->port, "HEAD", "/healthz", NULL, NULL, 0, &res);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.body_len, 0);
        assert_non_null(res_header(&res, "Content-Length", hv, sizeof(hv)));
        assert_true(atoi(hv) > 0);
        res_free(&res);
}

static void test_post_body(void **state) {
        fixture_t *f = *state;
        res_t res;
        const char *body = "{\"amount\":\"12.50\",\"currency\":\"EUR\"}";
        request(f->port, "POST", "/echo",
                "Content-Type: application/json\r\nx-test: hello\r\n", body,
                strlen(body), &res);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "post");
        assert_string_equal(jstr(j, "method"), "POST");
        assert_string_equal(jstr(j, "body"), body);
        assert_string_equal(jstr(j, "hdr"), "hello");
        assert_int_equal(json_integer_value(json_object_get(j, "len")),
                         strlen(body));
        json_decref(j);
        res_free(&res);

        request(f->port, "PUT", "/echo", NULL, "p", 1, &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_string_equal(jstr(j, "tag"), "put");
        assert_string_equal(jstr(j, "body"), "p");
        json_decref(j);
        res_free(&res);

        /* No body: the handler sees NULL and 0. */
        request(f->port, "POST", "/echo", NULL, "", 0, &res);
        assert_int_equal(res.status, 200);
        j = res_json(&res);
        assert_int_equal(json_integer_value(json_object_get(j, "len")), 0);
        assert_null(json_object_get(j, "body"));
        json_decref(j);
        res_free(&res);
}

/* The largest accepted body arrives whole, over many reads. */
static void test_body_at_limit(void **state) {
        fixture_t *f = *state;
        res_t res;
        size_t len = 1024 * 1024;
        char *big  = malloc(len);
        assert_non_null(big);
        uint64_t sum = 0;
        for (size_t i = 0; i < len; i++) {
                big[i] = (char)('a' + (i * 7) % 26);
                sum    = sum * 31 + (unsigned char)big[i];
        }
        request(f->port, "POST", "/echo", NULL, big, len, &res);
        free(big);
        assert_int_equal(res.status, 200);
        json_t *j = res_json(&res);
        assert_int_equal(json_integer_value(json_object_get(j, "len")), len);
        assert_int_equal(json_integer_value(json_object_get(j, "sum")),
                         (json_int_t)(sum >> 1));
        json_decref(j);
        res_free(&res);
}

static void test_body_too_large(void **state) {
        fixture_t *f = *state;
        res_t res;

        /* Announced by Content-Length: refused before the body is sent. */
        int fd = connect_to(f->port);
        const char *announce =
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Connection: close\r\n"
            "Content-Length: 1048577\r\n"
            "Expect: 100-continue\r\n\r\n";
        send_all(fd, announce, strlen(announce));
        read_response(fd, &res);
        assert_error(&res, 413, "payload_too_large");
        res_free(&res);

        /* Chunked, so only counting tells: the body is read and dropped,
         * then refused. */
        fd = connect_to(f->port);
        const char *head =
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Connection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n";
        send_all(fd, head, strlen(head));
        char chunk[65536 + 16];
        int hl = snprintf(chunk, sizeof(chunk), "%x\r\n", 65536);
        memset(chunk + hl, 'z', 65536);
        memcpy(chunk + hl + 65536, "\r\n", 2);
        for (int i = 0; i < 17; i++) /* 17 * 64 KiB > 1 MiB */
                send_all(fd, chunk, (size_t)hl + 65536 + 2);
        send_all(fd, "0\r\n\r\n", 5);
        read_response(fd, &res);
        assert_error(&res, 413, "payload_too_large");
        res_free(&res);

        /* The server is still fine. */
        get(f->port, "/healthz", &res);
        assert_int_equal(res.status, 200);
        res_free(&res);
}

static void test_responses(void **state) {
        fixture_t *f = *state;
        res_t res;
        char hv[64];
        get(f->port, "/text", &res);
        assert_int_equal(res.status, 200);
        assert_string_equal(res_header(&res, "Content-Type", hv, sizeof(hv)),
                            "text/plain; version=0.0.4");
        assert_int_equal(res.body_len, strlen("# TYPE x counter\nx 1\n"));
        assert_memory_equal(res.body, "# TYPE x counter\nx 1\n", res.body_len);
        res_free(&res);

        /* A handler that sets nothing answers 200 with an empty body. */
        get(f->port, "/empty", &res);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.body_len, 0);
        res_free(&res);

        /* kp_http_resp_error's shape. */
        request(f->port, "PUT", "/conflict/k%22", NULL, "", 0, &res);
        assert_error(&res, 409, "conflict");
        json_t *j = res_json(&res);
        assert_string_equal(jstr(j, "message"), "key k\" exists");
        assert_int_equal(json_object_size(j), 2);
        json_decref(j);
        res_free(&res);
}

#define CLIENTS  8
#define REQUESTS 25

typedef struct client_s {
        int port;
        int id;
        int ok; /* responses that were right */
} client_t;

/* Runs in its own thread, so it counts instead of asserting. */
static void *client_main(void *arg) {
        client_t *c = arg;
        for (int i = 0; i < REQUESTS; i++) {
                res_t res;
                char target[96], rest[64];
                snprintf(rest, sizeof(rest), "c%d/keys/%d", c->id, i);
                snprintf(target, sizeof(target), "/v1/stores/%s", rest);
                if (try_request(c->port, "GET", target, NULL, NULL, 0, &res))
                        continue;
                json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
                if (res.status == 200 && j && jstr(j, "rest") &&
                    !strcmp(jstr(j, "rest"), rest))
                        c->ok++;
                json_decref(j);
                res_free(&res);
        }
        return NULL;
}

static void test_concurrent_clients(void **state) {
        fixture_t *f = *state;
        pthread_t tids[CLIENTS];
        client_t clients[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
                clients[i] = (client_t){f->port, i, 0};
                assert_int_equal(
                    pthread_create(&tids[i], NULL, client_main, &clients[i]),
                    0);
        }
        for (int i = 0; i < CLIENTS; i++) {
                assert_int_equal(pthread_join(tids[i], NULL), 0);
                assert_int_equal(clients[i].ok, REQUESTS);
        }
}

/* The client (kp_http_request) against the server. */
static void test_client(void **state) {
        fixture_t *f = *state;
        char hp[64], base[64], err[256], *body = NULL;
        size_t len = 0;
        snprintf(hp, sizeof(hp), "127.0.0.1:%d", f->port);
        int st = kp_http_request("GET", hp, "/healthz", NULL, NULL, 5000, &body,
                                 &len, err, sizeof(err));
        assert_int_equal(st, 200);
        assert_int_equal(len, strlen(body));
        json_t *j = json_loads(body, 0, NULL);
        assert_string_equal(jstr(j, "tag"), "healthz");
        json_decref(j);
        kp_free(body);
        st = kp_http_request("POST", hp, "/nothing", "X-A: b\r\n", "{}", 5000,
                             NULL, NULL, err, sizeof(err));
        assert_int_equal(st, 404);
        /* Nobody listening: -1 with a reason. */
        snprintf(hp, sizeof(hp), "127.0.0.1:1");
        st = kp_http_request("GET", hp, "/", NULL, NULL, 2000, &body, NULL, err,
                             sizeof(err));
        assert_int_equal(st, -1);
        assert_non_null(strstr(err, "127.0.0.1:1"));
        /* URLs. */
        assert_int_equal(kp_http_split_url("http://h:80/a/b/", hp, sizeof(hp),
                                           base, sizeof(base)),
                         0);
        assert_string_equal(hp, "h:80");
        assert_string_equal(base, "/a/b");
        assert_int_equal(
            kp_http_split_url("h:8085", hp, sizeof(hp), base, sizeof(base)), 0);
        assert_string_equal(base, "");
        assert_int_equal(kp_http_split_url("https://h:1", hp, sizeof(hp), base,
                                           sizeof(base)),
                         -1);
        assert_int_equal(
            kp_http_split_url("http://h/x", hp, sizeof(hp), base, sizeof(base)),
            -1);
        assert_int_equal(
            kp_http_split_url("h:", hp, sizeof(hp), base, sizeof(base)), -1);
}

static void test_bad_listen(void **state) {
        (void)state;
        static const char *bad[] = {
            "127.0.0.1",
            "127.0.0.1:",
            ":8080",
            "127.0.0.1:65536",
            "127.0.0.1:-1",
            "127.0.0.1:80x",
            "127.0.0.1: 80",
            "256.1.1.1:80",
            "example.com:80",
            "[::1]:80",
            "",
            "127.0.0.1:99999999999999999999",
        };
        int64_t live = kp_mem_live_allocations();
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char errstr[256] = "";
                kp_http_t *http =
                    kp_http_new(bad[i], 2, errstr, sizeof(errstr));
                if (http)
                        fail_msg("accepted \"%s\"", bad[i]);
                assert_non_null(strstr(errstr, "listen address"));
        }
        char errstr[256] = "";
        assert_null(kp_http_new(NULL, 2, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "listen address"));
        assert_null(kp_http_new("127.0.0.1:0", 0, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "threads"));

        /* The edges of the valid range, and localhost. */
        static const char *good[] = {"127.0.0.1:65535", "0.0.0.0:0",
                                     "localhost:8080"};
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                kp_http_t *http =
                    kp_http_new(good[i], 1, errstr, sizeof(errstr));
                if (!http)
                        fail_msg("refused \"%s\": %s", good[i], errstr);
                kp_http_destroy(http);
        }
        kp_http_destroy(NULL);
        assert_int_equal(kp_mem_live_allocations(), live);
}

static void test_port_in_use(void **state) {
        fixture_t *f = *state;
        char listen[64], errstr[256] = "";
        int64_t live = kp_mem_live_allocations();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
        kp_http_t *http = kp_http_new(listen, 1, errstr, sizeof(errstr));
        assert_non_null(http);
        assert_int_equal(kp_http_start(http, errstr, sizeof(errstr)),
                         KP_ERR_IO);
        assert_non_null(strstr(errstr, listen));
        assert_non_null(strstr(errstr, "in use"));
        assert_int_equal(kp_http_port(http), -1);
        kp_http_destroy(http);
        assert_int_equal(kp_mem_live_allocations(), live);
}

/* A whole life: start on localhost, serve, stop, nothing left over. */
static void test_lifecycle_no_leaks(void **state) {
        (void)state;
        char errstr[256];
        res_t res;
        int64_t live    = kp_mem_live_allocations();
        kp_http_t *http = kp_http_new("localhost:0", 2, errstr, sizeof(errstr));
        assert_non_null(http);
        add_routes(http);
        assert_int_equal(kp_http_start(http, errstr, sizeof(errstr)), KP_OK);
        int port = kp_http_port(http);
        assert_true(port > 0);
        assert_int_equal(kp_http_start(http, errstr, sizeof(errstr)),
                         KP_ERR_STATE);

        get(port, "/v1/stores/a?after=x", &res);
        assert_int_equal(res.status, 200);
        res_free(&res);
        request(port, "POST", "/echo", NULL, "body", 4, &res);
        assert_int_equal(res.status, 200);
        res_free(&res);
        get(port, "/missing", &res);
        assert_int_equal(res.status, 404);
        res_free(&res);
        get(port, "/v1/stores/%00", &res);
        assert_int_equal(res.status, 400);
        res_free(&res);

        /* A connection left open with a half-sent request is cleaned up
         * by destroy. */
        int fd = connect_to(port);
        const char *half =
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Length: 10\r\n\r\nab";
        send_all(fd, half, strlen(half));
        kp_http_destroy(http);
        close(fd);
        assert_int_equal(kp_mem_live_allocations(), live);
}

/* Response headers, streams and the server options (kp_http_set_opts). */
typedef struct stream_state_s {
        int step;
        int *freed;
} stream_state_t;

static long stream_piece(void *opaque, char *buf, size_t max) {
        stream_state_t *st                = opaque;
        static const char *const pieces[] = {"event: a\n\n", "event: b\n\n"};
        if (st->step >= 2)
                return -1;
        size_t n = strlen(pieces[st->step]);
        assert_true(n <= max);
        memcpy(buf, pieces[st->step++], n);
        return (long)n;
}

static void stream_done(void *opaque) {
        stream_state_t *st = opaque;
        (*st->freed)++;
        kp_free(st);
}

static void streamed(const kp_http_req_t *req, const char *rest,
                     kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)rest;
        stream_state_t *st = kp_calloc(1, sizeof(*st));
        st->freed          = opaque;
        kp_http_resp_header(resp, "Cache-Control", "no-cache");
        kp_http_resp_stream(resp, 200, "text/event-stream", stream_piece,
                            stream_done, st);
}

static void located(const kp_http_req_t *req, const char *rest,
                    kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)rest;
        (void)opaque;
        kp_http_resp_header(resp, "Location", "/api/v1/payments/p-1");
        kp_http_resp_header(resp, "Bad\r\nName", "x");         /* refused */
        kp_http_resp_header(resp, "X-Ok", "a\r\nInjected: 1"); /* refused */
        kp_http_resp_json(resp, 202, json_pack("{s:s}", "id", "p-1"));
}

static void test_headers_stream_opts(void **state) {
        (void)state;
        char errstr[256], hv[128];
        res_t res;
        int freed       = 0;
        int64_t live    = kp_mem_live_allocations();
        kp_http_t *http = kp_http_new("127.0.0.1:0", 1, errstr, sizeof(errstr));
        assert_non_null(http);
        kp_http_opts_t o = {.body_max              = 100,
                            .too_large_code        = "too_large",
                            .thread_per_connection = 1,
                            .max_connections       = 8};
        kp_http_set_opts(http, &o);
        kp_http_route(http, "GET", "/stream", streamed, &freed);
        kp_http_route(http, "POST", "/located", located, NULL);
        assert_int_equal(kp_http_start(http, errstr, sizeof(errstr)), KP_OK);
        int port = kp_http_port(http);

        request(port, "POST", "/located", NULL, "{}", 2, &res);
        assert_int_equal(res.status, 202);
        assert_string_equal(res_header(&res, "Location", hv, sizeof(hv)),
                            "/api/v1/payments/p-1");
        assert_string_equal(res_header(&res, "Cache-Control", hv, sizeof(hv)),
                            "no-store");
        assert_null(res_header(&res, "X-Ok", hv, sizeof(hv)));
        assert_null(res_header(&res, "Injected", hv, sizeof(hv)));
        res_free(&res);

        /* The body limit and its code are the server's. */
        char big[101];
        memset(big, 'x', sizeof(big));
        request(port, "POST", "/located", NULL, big, 100, &res);
        assert_int_equal(res.status, 202);
        res_free(&res);
        request(port, "POST", "/located", NULL, big, 101, &res);
        assert_error(&res, 413, "too_large");
        res_free(&res);

        /* A stream: both pieces, chunked, then the end; its state freed. */
        get(port, "/stream", &res);
        assert_int_equal(res.status, 200);
        assert_string_equal(res_header(&res, "Content-Type", hv, sizeof(hv)),
                            "text/event-stream");
        assert_string_equal(res_header(&res, "Cache-Control", hv, sizeof(hv)),
                            "no-cache");
        assert_non_null(strstr(res.body, "event: a\n\n"));
        assert_non_null(strstr(res.body, "event: b\n\n"));
        assert_true(strstr(res.body, "event: a") <
                    strstr(res.body, "event: b"));
        res_free(&res);
        kp_http_destroy(http);
        assert_int_equal(freed, 1);

        /* A pooled server cannot stream: 500, and the state is freed. */
        http = kp_http_new("127.0.0.1:0", 2, errstr, sizeof(errstr));
        kp_http_route(http, "GET", "/stream", streamed, &freed);
        assert_int_equal(kp_http_start(http, errstr, sizeof(errstr)), KP_OK);
        get(kp_http_port(http), "/stream", &res);
        assert_error(&res, 500, "internal");
        res_free(&res);
        kp_http_destroy(http);
        assert_int_equal(freed, 2);
        assert_int_equal(kp_mem_live_allocations(), live);
}

static void test_url_encode(void **state) {
        (void)state;
        char *e = kp_http_url_encode("0:acc-1 /?&=%~._\x01");
        assert_string_equal(e, "0%3Aacc-1%20%2F%3F%26%3D%25~._%01");
        kp_free(e);
}

/* kp_fanout: answers that come in, and one that does not by the deadline
 * is reported as timed out without being waited for. */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond  = PTHREAD_COND_INITIALIZER;
static int hold_released;

static void held(const kp_http_req_t *req, const char *rest,
                 kp_http_resp_t *resp, void *opaque) {
        (void)req;
        (void)rest;
        (void)opaque;
        pthread_mutex_lock(&hold_lock);
        while (!hold_released)
                pthread_cond_wait(&hold_cond, &hold_lock);
        pthread_mutex_unlock(&hold_lock);
        kp_http_resp_json(resp, 200, json_pack("{s:s}", "late", "yes"));
}

static void test_fanout(void **state) {
        (void)state;
        char errstr[256], hp[64], dead[64];
        int64_t live    = kp_mem_live_allocations();
        kp_http_t *http = kp_http_new("127.0.0.1:0", 1, errstr, sizeof(errstr));
        kp_http_opts_t o = {.thread_per_connection = 1};
        kp_http_set_opts(http, &o);
        kp_http_route(http, "GET", "/fast", echo, "fast");
        kp_http_route(http, "GET", "/held", held, NULL);
        assert_int_equal(kp_http_start(http, errstr, sizeof(errstr)), KP_OK);
        snprintf(hp, sizeof(hp), "127.0.0.1:%d", kp_http_port(http));
        /* A port nobody listens on (this server's, once it is gone, is
         * not: take one from a socket closed at once). */
        int fd                = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr    = htonl(INADDR_LOOPBACK);
        socklen_t sl          = sizeof(sa);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
        close(fd);
        snprintf(dead, sizeof(dead), "127.0.0.1:%d", ntohs(sa.sin_port));

        kp_fanout_req_t q[3] = {{.hostport = hp, .path = "/fast?x=1"},
                                {.hostport = hp, .path = "/held"},
                                {.hostport = dead, .path = "/fast"}};
        /* The held one never answers by the deadline, however long it is;
         * the others answer well within it. Generous: under TSan on a
         * busy machine 3 s was once not enough for the fast one (CI). */
        size_t answered = kp_fanout_run(q, 3, NULL, 15000);
        assert_int_equal(answered, 1);
        assert_int_equal(q[0].status, 200);
        assert_non_null(strstr(q[0].resp, "\"fast\""));
        assert_int_equal(q[0].timed_out, 0);
        assert_int_equal(q[1].status, -1);
        assert_int_equal(q[1].timed_out, 1);
        assert_null(q[1].resp);
        assert_int_equal(q[2].status, -1);
        assert_true(strlen(q[2].errstr) > 0);
        kp_fanout_clear(q, 3);

        /* The held request ends on its own once released, and frees
         * everything it held. */
        pthread_mutex_lock(&hold_lock);
        hold_released = 1;
        pthread_cond_broadcast(&hold_cond);
        pthread_mutex_unlock(&hold_lock);
        kp_http_destroy(http);
        for (int i = 0; i < 600 && kp_mem_live_allocations() != live; i++) {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
        }
        assert_int_equal(kp_mem_live_allocations(), live);
}

int main(void) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exact_route),
            cmocka_unit_test(test_prefix_route),
            cmocka_unit_test(test_longest_prefix),
            cmocka_unit_test(test_query_decoding),
            cmocka_unit_test(test_path_decoding),
            cmocka_unit_test(test_not_found),
            cmocka_unit_test(test_method_not_allowed),
            cmocka_unit_test(test_head),
            cmocka_unit_test(test_post_body),
            cmocka_unit_test(test_body_at_limit),
            cmocka_unit_test(test_body_too_large),
            cmocka_unit_test(test_responses),
            cmocka_unit_test(test_concurrent_clients),
            cmocka_unit_test(test_client),
            cmocka_unit_test(test_port_in_use),
        };
        const struct CMUnitTest standalone[] = {
            cmocka_unit_test(test_bad_listen),
            cmocka_unit_test(test_lifecycle_no_leaks),
            cmocka_unit_test(test_headers_stream_opts),
            cmocka_unit_test(test_url_encode),
            cmocka_unit_test(test_fanout),
        };
        int failed =
            cmocka_run_group_tests_name("server", tests, setup, teardown);
        failed +=
            cmocka_run_group_tests_name("standalone", standalone, NULL, NULL);
        return failed;
}
