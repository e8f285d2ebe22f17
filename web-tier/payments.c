/* payments.c: /api/v1/payments and /api/v1/currencies (webpay builds it;
 * a stub that registers nothing until then). */
#include "web.h"

void web_payments_routes(web_t *w) {
        (void)w;
}
