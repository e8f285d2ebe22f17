// Swagger UI for kpay-web: the document is this server's /openapi.json and
// "Try it out" calls this same origin, whatever the document's servers say.
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    requestInterceptor: function (req) {
      try {
        var u = new URL(req.url, window.location.href);
        if (u.origin !== window.location.origin) {
          req.url = window.location.origin + u.pathname + u.search;
        }
      } catch (e) {
        /* a relative URL: already this origin */
      }
      return req;
    },
  });
});
