//! The OpenAPI 3.1 document, assembled by `utoipa_actix_web` from the handlers as
//! they are registered (so it cannot miss a route), served at `/api/openapi.json`.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

/// Title, version and the bearer scheme every protected route names.
pub(super) fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("The Collective Strategist event system")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Request-response generation and consultations over Redis Streams, \
                     and the admin API. Errors are {\"error\": {\"code\", \"message\"}}.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(
                        Http::builder()
                            .scheme(HttpAuthScheme::Bearer)
                            .bearer_format("JWT")
                            .build(),
                    ),
                )
                .build(),
        ))
        .build()
}

/// The document, serialized once.
pub(super) struct Document(String);

impl Document {
    pub(super) fn new(api: OpenApi) -> Self {
        Document(
            api.to_pretty_json()
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        )
    }
}

/// `GET /api/openapi.json`
pub(super) async fn serve(doc: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
