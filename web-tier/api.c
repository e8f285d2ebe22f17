/* api.c: kpay-web's /api/v1 endpoints but payments (docs/api.md), the glue
 * between the HTTP requests, the fan-out to the processor instances and
 * the pure merge logic of merge.c. */
#include <string.h>

#include "kpay/kp_mem.h"
#include "web.h"
#include "web_api.h"

static void h_openapi(web_req_t *r) {
        const char *doc = web_openapi_json();
        kp_http_resp_text(r->resp, 200, "application/json", doc, strlen(doc));
}

void web_api_routes(web_t *w) {
        web_route(w, "GET", "/openapi.json", WEB_ROUTE_HIDDEN, h_openapi, NULL);
}

void web_api_tick(web_t *w, int64_t now_ms) {
        (void)w;
        (void)now_ms;
}

void web_api_fini(web_t *w) {
        (void)w;
}

/* cmake/embed.cmake's copy of web-tier/openapi.json. */
extern const char web_openapi_doc[];

const char *web_openapi_json(void) {
        return web_openapi_doc;
}
