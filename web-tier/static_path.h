/* static_path.h: the pure parts of kpay-web's static file serving
 * (static.c): which request paths name a file of the UI directory, and
 * the content type and caching of each kind of file. No I/O: unit-tested
 * by unit.static. */
#ifndef KPAY_WEB_STATIC_PATH_H
#define KPAY_WEB_STATIC_PATH_H

#include <stddef.h>

/** The longest relative path served (bytes). */
#define WEB_STATIC_PATH_MAX 256
/** At most this many segments ("vendor/uPlot.esm.js" has two). */
#define WEB_STATIC_SEGMENTS_MAX 4

/**
 * @brief Checks @p rel, the decoded path of a file below the UI directory
 *        ("app.js", "vendor/uPlot.esm.js"), as a request gave it.
 *
 * kp_http decodes every %XX escape once before routing, so "%2e%2e",
 * "%2f" and "%5c" arrive here as "..", "/" and "\\", and a double escape
 * ("%252e") as a '%': each is refused below. Accepted: 1 to
 * WEB_STATIC_SEGMENTS_MAX segments separated by single '/', each of
 * [A-Za-z0-9._-] only, not starting with '.' (no "..", no ".", no hidden
 * files), with a known file type (web_static_type()). Refused: empty,
 * absolute ("/etc/passwd"), a trailing or doubled '/', a backslash, '%',
 * a NUL, control or non-ASCII bytes, anything longer than
 * WEB_STATIC_PATH_MAX.
 *
 * @returns NULL when the path may be opened, else why not (a static
 *          string for the 400 answer).
 */
const char *web_static_check(const char *rel);

/**
 * @brief The Content-Type of a file by its extension (".js" ->
 *        "text/javascript; charset=utf-8"), or NULL when kpay-web does not
 *        serve that kind of file.
 */
const char *web_static_type(const char *name);

/**
 * @brief True when @p resolved (a realpath()) is @p root (a realpath()) or
 *        below it: a symlink out of the UI directory is refused.
 */
int web_static_inside(const char *root, const char *resolved);

/**
 * @brief The Cache-Control of a file: "no-cache" (revalidate with the
 *        ETag every time) for pages (.html), which name the assets;
 *        "public, max-age=300" for the assets themselves.
 */
const char *web_static_cache_control(const char *name);

/**
 * @brief Writes the ETag of a file of @p size bytes modified at
 *        @p mtime_ns (nanoseconds) with inode @p ino into @p buf
 *        ("\"<hex>-<hex>-<hex>\"").
 */
void web_static_etag(char *buf, size_t size, unsigned long long ino,
                     long long size_bytes, long long mtime_ns);

/**
 * @brief True when the If-None-Match header @p inm (may be NULL) names
 *        @p etag (a list, "*", or a weak W/ validator).
 */
int web_static_etag_match(const char *inm, const char *etag);

#endif /* KPAY_WEB_STATIC_PATH_H */
