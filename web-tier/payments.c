/* payments.c: /api/v1/payments and /api/v1/currencies (webpay builds it).
 * Until then the routes exist, as openapi.json names them, and answer 503:
 * the branch webpay works on replaces this file. */
#include "web.h"

static void h_not_yet(web_req_t *r) {
        kp_http_resp_error(r->resp, 503, "unavailable",
                           "payments are not served by this build yet");
}

void web_payments_routes(web_t *w) {
        web_route(w, "POST", "/api/v1/payments", WEB_ROUTE_MUTATION, h_not_yet,
                  NULL);
        web_route(w, "GET", "/api/v1/payments/{id}", 0, h_not_yet, NULL);
        web_route(w, "GET", "/api/v1/currencies", 0, h_not_yet, NULL);
}
