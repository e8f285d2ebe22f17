/* static_path.c: which paths kpay-web's static files may have, their types
 * and caching (static_path.h). Pure functions. */
#include "static_path.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int seg_char_ok(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

const char *web_static_check(const char *rel) {
        if (!rel || !*rel)
                return "empty file name";
        size_t len = strlen(rel);
        if (len > WEB_STATIC_PATH_MAX)
                return "file name too long";
        if (rel[0] == '/')
                return "absolute paths are not served";
        int segments    = 0;
        const char *seg = rel;
        for (const char *p = rel;; p++) {
                unsigned char c = (unsigned char)*p;
                if (c == '/' || c == '\0') {
                        size_t sl = (size_t)(p - seg);
                        if (sl == 0)
                                return c ? "empty path segment"
                                         : "a directory is not served";
                        if (seg[0] == '.')
                                return sl <= 2 && (sl == 1 || seg[1] == '.')
                                           ? "dot segments ('.', '..') are "
                                             "not served"
                                           : "hidden files are not served";
                        if (++segments > WEB_STATIC_SEGMENTS_MAX)
                                return "too many path segments";
                        if (!c)
                                break;
                        seg = p + 1;
                        continue;
                }
                if (c == '\\')
                        return "backslashes are not served";
                if (c == '%')
                        return "escaped escapes ('%25') are not served";
                if (!seg_char_ok(c))
                        return "file names are letters, digits, '.', '_' "
                               "and '-'";
        }
        if (!web_static_type(rel))
                return "this kind of file is not served";
        return NULL;
}

static const struct {
        const char *ext;
        const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
};

const char *web_static_type(const char *name) {
        const char *base = strrchr(name, '/');
        base             = base ? base + 1 : name;
        const char *dot  = strrchr(base, '.');
        if (!dot || dot == base)
                return NULL;
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
                if (!strcasecmp(dot, types[i].ext))
                        return types[i].type;
        return NULL;
}

int web_static_inside(const char *root, const char *resolved) {
        size_t rl = strlen(root);
        while (rl > 1 && root[rl - 1] == '/')
                rl--;
        if (strncmp(root, resolved, rl))
                return 0;
        if (rl == 1 && root[0] == '/')
                return 1;
        return resolved[rl] == '\0' || resolved[rl] == '/';
}

const char *web_static_cache_control(const char *name) {
        const char *type = web_static_type(name);
        if (type && !strncmp(type, "text/html", 9))
                return "no-cache";
        return "public, max-age=300";
}

void web_static_etag(char *buf, size_t size, unsigned long long ino,
                     long long size_bytes, long long mtime_ns) {
        snprintf(buf, size, "\"%llx-%llx-%llx\"", ino,
                 (unsigned long long)size_bytes, (unsigned long long)mtime_ns);
}

int web_static_etag_match(const char *inm, const char *etag) {
        if (!inm)
                return 0;
        size_t el     = strlen(etag);
        const char *p = inm;
        while (*p) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (!*p)
                        break;
                const char *e = p;
                while (*e && *e != ',')
                        e++;
                const char *t = e;
                while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
                        t--;
                size_t tl = (size_t)(t - p);
                if (tl == 1 && *p == '*')
                        return 1;
                if (tl > 2 && p[0] == 'W' && p[1] == '/') {
                        p += 2;
                        tl -= 2;
                }
                if (tl == el && !memcmp(p, etag, el))
                        return 1;
                p = e;
        }
        return 0;
}
