/* kp_http_client.c: a minimal blocking HTTP/1.1 client (kp_http.h). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "kpay/kp_err.h"
#include "kpay/kp_http.h"
#include "kpay/kp_mem.h"

/* Answers larger than this are refused. */
#define KP_HTTP_CLIENT_MAX ((size_t)64 * 1024 * 1024)

/* Fills errstr and returns -1. */
#define fail(errstr, size, ...)                                                \
        (kp_errstr_set(KP_ERR_IO, errstr, size, __VA_ARGS__), -1)

int kp_http_split_url(const char *url, char *hostport, size_t hp_size,
                      char *base, size_t base_size) {
        const char *p = url, *slash, *colon;
        if (!strncmp(p, "http://", 7))
                p += 7;
        else if (strstr(p, "://"))
                return -1;
        slash      = strchr(p, '/');
        size_t hpl = slash ? (size_t)(slash - p) : strlen(p);
        colon      = memchr(p, ':', hpl);
        if (!colon || colon == p || colon + 1 == p + hpl || hpl >= hp_size)
                return -1;
        memcpy(hostport, p, hpl);
        hostport[hpl] = '\0';
        const char *b = slash ? slash : "";
        size_t bl     = strlen(b);
        while (bl > 0 && b[bl - 1] == '/')
                bl--;
        if (bl >= base_size)
                return -1;
        memcpy(base, b, bl);
        base[bl] = '\0';
        return 0;
}

/* Connects to @p hostport with both socket timeouts set. */
static int dial(const char *hostport, int timeout_ms, char *errstr,
                size_t errstr_size) {
        char host[256];
        const char *colon = strrchr(hostport, ':');
        if (!colon || (size_t)(colon - hostport) >= sizeof(host))
                return fail(errstr, errstr_size, "bad address %s", hostport);
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
        struct addrinfo hints  = {.ai_family   = AF_UNSPEC,
                                  .ai_socktype = SOCK_STREAM},
                        *res, *ai;
        int rc = getaddrinfo(host, colon + 1, &hints, &res);
        if (rc)
                return fail(errstr, errstr_size, "%s: %s", hostport,
                            gai_strerror(rc));
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        int fd = -1, err = 0;
        for (ai = res; ai && fd < 0; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
                if (fd < 0)
                        continue;
                /* On Linux SO_SNDTIMEO bounds connect() too. */
                if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
                    connect(fd, ai->ai_addr, ai->ai_addrlen)) {
                        err = errno;
                        close(fd);
                        fd = -1;
                }
        }
        freeaddrinfo(res);
        if (fd < 0)
                return fail(errstr, errstr_size, "connecting to %s: %s",
                            hostport, strerror(err ? err : ECONNREFUSED));
        return fd;
}

/* Decodes a chunked body in place. @returns its length, or -1. */
static long dechunk(char *b, size_t len) {
        size_t in = 0, out = 0;
        for (;;) {
                char *end;
                unsigned long n = strtoul(b + in, &end, 16);
                char *crlf      = strstr(b + in, "\r\n");
                if (end == b + in || !crlf || (size_t)(crlf - b) >= len)
                        return -1;
                in = (size_t)(crlf - b) + 2;
                if (n == 0)
                        return (long)out;
                if (n > len - in)
                        return -1;
                memmove(b + out, b + in, n);
                out += n;
                in += n + 2;
                if (in > len)
                        return -1;
        }
}

int kp_http_request(const char *method, const char *hostport, const char *path,
                    const char *headers, const char *body, int timeout_ms,
                    char **bodyp, size_t *lenp, char *errstr,
                    size_t errstr_size) {
        int fd = dial(hostport, timeout_ms, errstr, errstr_size);
        if (fd < 0)
                return -1;
        size_t blen = body ? strlen(body) : 0;
        char *req   = kp_asprintf(
              "%s %s HTTP/1.1\r\nHost: %s\r\n"
                "Connection: close\r\n%s"
                "Content-Length: %zu\r\n\r\n",
              method, path, hostport, headers ? headers : "", blen);
        size_t rl = strlen(req);
        int ok    = send(fd, req, rl, MSG_NOSIGNAL) == (ssize_t)rl &&
                 (!blen || send(fd, body, blen, MSG_NOSIGNAL) == (ssize_t)blen);
        kp_free(req);
        if (!ok) {
                close(fd);
                return fail(errstr, errstr_size, "sending to %s: %s", hostport,
                            strerror(errno));
        }
        size_t cap = 65536, len = 0;
        char *buf = kp_malloc(cap);
        for (;;) {
                if (len + 1 >= cap) {
                        if (cap >= KP_HTTP_CLIENT_MAX) {
                                kp_free(buf);
                                close(fd);
                                return fail(errstr, errstr_size,
                                            "answer of %s too large", hostport);
                        }
                        buf = kp_realloc(buf, cap *= 2);
                }
                ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        int e = errno;
                        kp_free(buf);
                        close(fd);
                        return fail(errstr, errstr_size, "reading from %s: %s",
                                    hostport, strerror(e));
                }
                if (r == 0)
                        break;
                len += (size_t)r;
        }
        close(fd);
        buf[len]   = '\0';
        int status = -1;
        char *hend = strstr(buf, "\r\n\r\n");
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !hend) {
                kp_free(buf);
                return fail(errstr, errstr_size, "%s: not an HTTP answer",
                            hostport);
        }
        *hend       = '\0';
        char *b     = hend + 4;
        size_t bl   = len - (size_t)(b - buf);
        int chunked = 0;
        for (char *h = strstr(buf, "\r\n"); h; h = strstr(h + 2, "\r\n"))
                if (!strncasecmp(h + 2, "transfer-encoding:", 18) &&
                    strstr(h + 2, "chunked"))
                        chunked = 1;
        if (chunked) {
                long n = dechunk(b, bl);
                if (n < 0) {
                        kp_free(buf);
                        return fail(errstr, errstr_size,
                                    "%s: malformed chunked body", hostport);
                }
                bl = (size_t)n;
        }
        if (bodyp) {
                *bodyp = kp_malloc(bl + 1);
                memcpy(*bodyp, b, bl);
                (*bodyp)[bl] = '\0';
        }
        if (lenp)
                *lenp = bl;
        kp_free(buf);
        return status;
}

char *kp_http_url_encode(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s), o = 0;
        char *out = kp_malloc(n * 3 + 1);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    c == '_' || c == '~') {
                        out[o++] = (char)c;
                } else {
                        out[o++] = '%';
                        out[o++] = hex[c >> 4];
                        out[o++] = hex[c & 15];
                }
        }
        out[o] = '\0';
        return out;
}
