/* static.c: the UI at /, its files under /assets/ and Swagger UI at /docs
 * (webui builds it; a stub that registers nothing until then). */
#include "web.h"

void web_static_routes(web_t *w) {
        (void)w;
}
