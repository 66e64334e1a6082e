// Swagger UI over the gateway's OpenAPI document (nginx/static/docs/index.html).
//
// "Authorize" runs OAuth2's client-credentials grant at /oauth2/token with the client id and
// secret typed in; the token stays in this page's memory (persistAuthorization off: nothing in
// localStorage) and is gone on reload. validatorUrl null: Swagger UI would otherwise send the
// document to validator.swagger.io, which an offline gateway cannot reach (and should not).
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: false,
    validatorUrl: null,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
  });
});
