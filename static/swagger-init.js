// Swagger UI for /api/docs from the vendored bundle: an external script, not an inline one, so
// the page runs under the same strict CSP as every other page (script-src 'self').
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null, // the default asks validator.swagger.io, an external host
    presets: [SwaggerUIBundle.presets.apis],
  });
});
