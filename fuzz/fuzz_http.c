/* Fuzz target: the HTTP request target as kp_http parses it (path
 * decoding, query parameters, routing), through a real kp_http server on
 * 127.0.0.1. The first input byte picks the method, the rest is the
 * request target. Every request gets a well-formed answer, never a 5xx;
 * a target whose path is a bad escape or decodes to a NUL is a 400; a
 * printable target under /v1/ with GET reaches the handler with the path
 * a reference decoder gives, and the route's rest is that path's tail. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "kpay/kp_http.h"
#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"

static kp_http_t *http;
static int port;

static const char *methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};

static void hex(char *out, const char *s) {
        static const char d[] = "0123456789abcdef";
        for (; *s; s++) {
                *out++ = d[(unsigned char)*s >> 4];
                *out++ = d[(unsigned char)*s & 15];
        }
        *out = '\0';
}

/* Echoes what the server made of the request, hex-encoded (a decoded path
 * may be any bytes but NUL). */
static void echo(const kp_http_req_t *req, const char *rest,
                 kp_http_resp_t *resp, void *opaque) {
        (void)opaque;
        const char *path = kp_http_req_path(req);
        size_t pl = strlen(path), rl = strlen(rest);
        FUZZ_CHECK(rl <= pl && !strcmp(path + pl - rl, rest),
                   "rest \"%s\" is not the tail of \"%s\"", rest, path);
        const char *after = kp_http_req_query(req, "after");
        const char *limit = kp_http_req_query(req, "limit");
        char *hp = kp_malloc(2 * pl + 1), *hr = kp_malloc(2 * rl + 1);
        hex(hp, path);
        hex(hr, rest);
        json_t *j = json_pack("{s:s, s:s, s:b, s:b}", "path", hp, "rest", hr,
                              "after", after != NULL, "limit", limit != NULL);
        kp_free(hp);
        kp_free(hr);
        kp_http_resp_json(resp, 200, j);
}

static void stop(void) {
        kp_http_destroy(http);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        char errstr[256];
        kp_log_set_level(KP_LOG_FATAL);
        http = kp_http_new("127.0.0.1:0", 2, errstr, sizeof(errstr));
        FUZZ_CHECK(http, "%s", errstr);
        kp_http_route(http, "GET", "/v1/", echo, NULL);
        kp_http_route(http, "POST", "/v1/control/pause", echo, NULL);
        kp_http_route(http, "DELETE", "/v1/stores/x", echo, NULL);
        kp_http_route(http, NULL, "/any", echo, NULL);
        FUZZ_CHECK(kp_http_start(http, errstr, sizeof(errstr)) == KP_OK, "%s",
                   errstr);
        port = kp_http_port(http);
        atexit(stop);
        return 0;
}

/* The reference: RFC 3986 percent-decoding of the path (no '+'), hex
 * encoded; 0 when it is not decodable (bad escape, NUL). Written apart
 * from kp_http's decoder on purpose: it is the oracle. */
static int ref_decode(const char *s, size_t n, char *hexout) {
        char *out = kp_malloc(n + 1), *o = out;
        const char *end = s + n;
        int ok          = 1;
        while (s < end && ok) {
                if (*s != '%') {
                        *o++ = *s++;
                        continue;
                }
                char two[3] = {0};
                ok          = end - s >= 3 && isxdigit((unsigned char)s[1]) &&
                     isxdigit((unsigned char)s[2]);
                if (ok) {
                        memcpy(two, s + 1, 2);
                        *o = (char)strtol(two, NULL, 16);
                        ok = *o++ != '\0';
                        s += 3;
                }
        }
        *o = '\0';
        if (ok)
                hex(hexout, out);
        kp_free(out);
        return ok;
}

/* Sends the request, returns the whole answer (NUL-terminated). */
static char *roundtrip(const char *req, size_t len, size_t *outlen) {
        int fd                = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_port           = htons((uint16_t)port);
        sa.sin_addr.s_addr    = htonl(INADDR_LOOPBACK);
        FUZZ_CHECK(fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
                   "connect");
        for (size_t of = 0; of < len;) {
                ssize_t w = send(fd, req + of, len - of, MSG_NOSIGNAL);
                if (w <= 0)
                        break; /* the server may answer and close early */
                of += (size_t)w;
        }
        size_t cap = 4096, n = 0;
        char *buf = kp_malloc(cap);
        for (;;) {
                struct pollfd pfd = {fd, POLLIN, 0};
                FUZZ_CHECK(poll(&pfd, 1, 20000) == 1,
                           "no answer within 20 s to: %s", req);
                if (n + 1024 > cap)
                        buf = kp_realloc(buf, cap *= 2);
                ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
                if (r <= 0)
                        break;
                n += (size_t)r;
        }
        close(fd);
        buf[n]  = '\0';
        *outlen = n;
        return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > 4096)
                return 0;
        const char *method = methods[data[0] % 5];
        const char *target = (const char *)data + 1;
        size_t tlen        = size - 1;
        if (memchr(target, '\0', tlen))
                return 0; /* not representable on a request line */

        size_t cap = tlen + 128, len;
        char *req  = kp_malloc(cap);
        len        = (size_t)snprintf(req, cap, "%s ", method);
        memcpy(req + len, target, tlen);
        len += tlen;
        len += (size_t)snprintf(req + len, cap - len,
                                " HTTP/1.1\r\nHost: f\r\nConnection: "
                                "close\r\n\r\n");
        size_t alen;
        char *ans  = roundtrip(req, len, &alen);
        int status = 0;
        FUZZ_CHECK(alen == 0 || sscanf(ans, "HTTP/1.%*d %d", &status) == 1,
                   "a malformed answer to %s: %s", req, ans);
        FUZZ_CHECK(alen == 0 || (status >= 200 && status < 500) ||
                       status == 501 || status == 505,
                   "%d to: %s", status, req);

        /* A printable target: the server's view must be the reference's. */
        int printable = tlen > 0 && target[0] == '/';
        for (size_t i = 0; i < tlen && printable; i++)
                printable =
                    target[i] > 0x20 && target[i] < 0x7f && target[i] != '#';
        if (printable) {
                const char *q = memchr(target, '?', tlen);
                size_t plen   = q ? (size_t)(q - target) : tlen;
                char *want    = kp_malloc(2 * plen + 1);
                int ok        = ref_decode(target, plen, want);
                if (!ok)
                        FUZZ_CHECK(status == 400, "%d, not 400, to: %s", status,
                                   req);
                else if (!strcmp(method, "GET") && plen >= 4 &&
                         !memcmp(target, "/v1/", 4) && status != 400) {
                        FUZZ_CHECK(status == 200, "%d to: %s", status, req);
                        const char *body = strstr(ans, "\r\n\r\n");
                        FUZZ_CHECK(body, "no body: %s", ans);
                        json_error_t jerr;
                        json_t *j = json_loads(body + 4, 0, &jerr);
                        FUZZ_CHECK(j, "body not JSON: %s", ans);
                        const char *got =
                            json_string_value(json_object_get(j, "path"));
                        FUZZ_CHECK(got && !strcmp(got, want),
                                   "decoded path %s, reference %s, for: %s",
                                   got ? got : "-", want, req);
                        json_decref(j);
                }
                kp_free(want);
        }
        kp_free(ans);
        kp_free(req);
        return 0;
}
