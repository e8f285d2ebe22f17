/* static.c: kpay-web's UI at /, its files under /assets/ and Swagger UI at
 * /docs (docs/ui.md), served from the UI directory: --ui-dir, else
 * <dir of the kpay-web binary>/../ui (the build lays it out there:
 * web-tier/ui/ui.cmake), else <dir of the binary>/../share/kpay/ui.
 *
 * Every path is checked before it is opened (static_path.h: no dot
 * segments, no escapes, a small character set, known types only), then
 * resolved with realpath() and refused unless it is still inside the UI
 * directory (a symlink out of it), and opened with O_NOFOLLOW. Refusals
 * are JSON errors like every other kpay-web answer. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kpay/kp_log.h"
#include "kpay/kp_mem.h"
#include "static_path.h"
#include "web.h"

/* The largest file served (the Swagger UI bundle is about 1.5 MB). */
#define STATIC_FILE_MAX ((off_t)32 * 1024 * 1024)

typedef struct web_static_s {
        char root[PATH_MAX];  /* realpath of the UI directory, or "" */
        char given[PATH_MAX]; /* what was asked for (for the messages) */
} web_static_t;

static web_static_t ui;

/* <dir of this binary>/<rel>, resolved; 0 on success. */
static int beside_binary(const char *rel, char *out, size_t size) {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return -1;
        exe[n]      = '\0';
        char *slash = strrchr(exe, '/');
        if (!slash)
                return -1;
        *slash = '\0';
        char cand[PATH_MAX];
        if (snprintf(cand, sizeof(cand), "%s/%s", exe, rel) >=
            (int)sizeof(cand))
                return -1;
        snprintf(out, size, "%s", cand);
        char real[PATH_MAX];
        if (!realpath(cand, real))
                return -1;
        struct stat st;
        if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
                return -1;
        snprintf(out, size, "%s", real);
        return 0;
}

static void ui_resolve(web_static_t *s, const char *dir) {
        s->root[0] = '\0';
        if (dir && *dir) {
                snprintf(s->given, sizeof(s->given), "%s", dir);
                struct stat st;
                if (!realpath(dir, s->root) || stat(s->root, &st) != 0 ||
                    !S_ISDIR(st.st_mode)) {
                        KP_ERROR("web: --ui-dir %s: %s", dir,
                                 errno ? strerror(errno) : "not a directory");
                        s->root[0] = '\0';
                }
        } else if (beside_binary("../ui", s->root, sizeof(s->root)) != 0 &&
                   beside_binary("../share/kpay/ui", s->root,
                                 sizeof(s->root)) != 0) {
                snprintf(s->given, sizeof(s->given),
                         "<kpay-web's directory>/../ui");
                s->root[0] = '\0';
                KP_WARN(
                    "web: no UI directory beside the binary (../ui or "
                    "../share/kpay/ui) and no --ui-dir: / and /docs "
                    "answer 404");
        } else {
                snprintf(s->given, sizeof(s->given), "%s", s->root);
        }
        if (s->root[0])
                KP_INFO("web: serving the UI from %s", s->root);
}

/* Serves @p rel (checked) from the UI directory. */
static void serve(web_req_t *r, const char *rel) {
        web_static_t *s      = &ui;
        kp_http_resp_t *resp = r->resp;
        const char *why      = web_static_check(rel);
        if (why) {
                kp_http_resp_error(resp, 400, "bad_request", "%s", why);
                return;
        }
        if (!s->root[0]) {
                kp_http_resp_error(resp, 404, "not_found",
                                   "the UI directory %s is missing (build "
                                   "target kpay_ui, or --ui-dir)",
                                   s->given);
                return;
        }
        char path[PATH_MAX + WEB_STATIC_PATH_MAX + 2], real[PATH_MAX];
        int pl = snprintf(path, sizeof(path), "%s/%s", s->root, rel);
        if (pl < 0 || (size_t)pl >= sizeof(path)) {
                kp_http_resp_error(resp, 400, "bad_request",
                                   "file name too long");
                return;
        }
        if (!realpath(path, real)) {
                if (errno == ENOENT || errno == ENOTDIR)
                        kp_http_resp_error(resp, 404, "not_found",
                                           "no such file: %s", rel);
                else
                        kp_http_resp_error(resp, 404, "not_found",
                                           "%s cannot be read: %s", rel,
                                           strerror(errno));
                return;
        }
        if (!web_static_inside(s->root, real)) {
                KP_WARN("web: %s resolves outside the UI directory; refused",
                        rel);
                kp_http_resp_error(resp, 403, "forbidden",
                                   "%s is outside the UI directory", rel);
                return;
        }
        int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
                if (fd >= 0)
                        close(fd);
                kp_http_resp_error(resp, 404, "not_found", "no such file: %s",
                                   rel);
                return;
        }
        if (st.st_size > STATIC_FILE_MAX) {
                close(fd);
                kp_http_resp_error(resp, 403, "forbidden",
                                   "%s is larger than kpay-web serves", rel);
                return;
        }
        char etag[80];
        web_static_etag(
            etag, sizeof(etag), (unsigned long long)st.st_ino,
            (long long)st.st_size,
            (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
        kp_http_resp_header(resp, "ETag", etag);
        kp_http_resp_header(resp, "Cache-Control",
                            web_static_cache_control(rel));
        kp_http_resp_header(resp, "X-Content-Type-Options", "nosniff");
        if (web_static_etag_match(kp_http_req_header(r->http, "If-None-Match"),
                                  etag)) {
                close(fd);
                kp_free(resp->body);
                resp->body         = NULL;
                resp->body_len     = 0;
                resp->status       = 304;
                resp->content_type = web_static_type(rel);
                return;
        }
        size_t len = (size_t)st.st_size, got = 0;
        char *buf = kp_malloc(len + 1);
        while (got < len) {
                ssize_t n = read(fd, buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        if (got != len) {
                kp_free(buf);
                KP_ERROR("web: reading %s failed", real);
                kp_http_resp_error(resp, 500, "internal",
                                   "%s could not be read", rel);
                return;
        }
        kp_free(resp->body);
        resp->status       = 200;
        resp->body         = buf;
        resp->body_len     = len;
        resp->content_type = web_static_type(rel);
}

static void h_index(web_req_t *r) {
        serve(r, "index.html");
}

static void h_docs(web_req_t *r) {
        serve(r, "docs.html");
}

static void h_asset(web_req_t *r) {
        const char *file = web_param(r, "file");
        char rel[WEB_STATIC_PATH_MAX + 16];
        if (!file || strlen(file) > WEB_STATIC_PATH_MAX) {
                kp_http_resp_error(r->resp, 400, "bad_request",
                                   "file name too long");
                return;
        }
        /* A check of the name as given first: "assets/" must not make an
         * absolute or dotted name acceptable. */
        const char *why = web_static_check(file);
        if (why) {
                kp_http_resp_error(r->resp, 400, "bad_request", "%s", why);
                return;
        }
        snprintf(rel, sizeof(rel), "assets/%s", file);
        serve(r, rel);
}

void web_static_routes(web_t *w) {
        ui_resolve(&ui, w->conf ? w->conf->ui_dir : NULL);
        web_route(w, "GET", "/", WEB_ROUTE_HIDDEN, h_index, NULL);
        web_route(w, "GET", "/docs", WEB_ROUTE_HIDDEN, h_docs, NULL);
        web_route(w, "GET", "/assets/{file+}", WEB_ROUTE_HIDDEN, h_asset, NULL);
}
