//! The operator's dashboard: `executor ui`, and the same pages beside `/metrics` when the
//! daemon runs with `--ui` (docs/ui.md).
//!
//! It reads the store, so one dashboard shows every executor sharing it (the fleet's registry)
//! and every account's queue; it changes jobs and pauses only through what the CLI's
//! `jobs retry|cancel`, `enqueue` and `pause|resume` use. It holds no state of its own but its token: a crash
//! or a restart loses nothing, and two dashboards on one store are as safe as two CLIs.
//!
//! Pages are rendered on the server in plain Rust ([`html`]), with every store value escaped;
//! the only script is a few lines that refresh the overview in place. Security is in
//! [`security`]: loopback unless `--allow-remote-ui`, a token on every request, cross-site
//! POSTs refused, a strict Content-Security-Policy on every answer.
//!
//! - [`view`]: what the overview shows, for the page and `GET /api/overview` alike;
//! - [`pages`]: the HTML pages and the operator's actions;
//! - [`api`]: `POST /api/jobs`, the producers' door.

mod api;
mod html;
mod pages;
pub mod security;
pub mod view;

pub use security::{Token, TokenError};

use crate::settings::Settings;
use crate::store::{Store, StoreError};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// What every handler shares: the store, the token, and the settings the CLI's checks need.
#[derive(Clone)]
pub struct Dashboard(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    token: Token,
    /// The value every form of this server carries (see [`security`]).
    csrf: String,
    settings: Settings,
    text_limit: crate::jobs::TextLimit,
}

impl Dashboard {
    pub fn new(store: Arc<dyn Store>, token: Token, settings: &Settings) -> Dashboard {
        Dashboard(Arc::new(Inner {
            store,
            token,
            csrf: security::random_hex(),
            text_limit: crate::cli::enqueue::text_limit(settings),
            settings: settings.clone(),
        }))
    }

    fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    fn csrf(&self) -> &str {
        &self.0.csrf
    }

    fn settings(&self) -> &Settings {
        &self.0.settings
    }

    fn text_limit(&self) -> crate::jobs::TextLimit {
        self.0.text_limit
    }

    /// How long an executor may be silent before the overview calls it dead (as `executor fleet`).
    fn silence(&self) -> Duration {
        crate::cli::fleet::silence(&self.0.settings)
    }

    fn check_csrf(&self, given: &str) -> Result<(), Failure> {
        if security::constant_time_eq(self.0.csrf.as_bytes(), given.as_bytes()) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "this form is not from this dashboard (reload the page and try again)",
            ))
        }
    }

    /// The URL to open: the server's address with the token, which the first visit trades for
    /// a cookie. A wildcard address is shown as loopback, which reaches it.
    pub fn url(&self, bound: std::net::SocketAddr) -> String {
        let mut shown = bound;
        if shown.ip().is_unspecified() {
            shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{shown}/?token={}", self.0.token.reveal())
    }

    /// The dashboard's routes, each behind the token check.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(pages::overview))
            .route("/jobs", get(pages::jobs))
            .route("/jobs/retry-dead", post(pages::retry_dead))
            .route("/jobs/{id}", get(pages::job))
            .route("/jobs/{id}/retry", post(pages::retry))
            .route("/jobs/{id}/cancel", post(pages::cancel))
            .route("/pauses", post(pages::pause))
            .route("/pauses/resume", post(pages::resume))
            .route("/api/overview", get(api::overview))
            .route("/api/jobs", post(api::enqueue))
            // Behind the token too: an unknown path tells a stranger nothing either.
            .fallback(|| async { Failure::new(StatusCode::NOT_FOUND, "no such page") })
            .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
            .layer(axum::middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }
}

/// The CSP nonce of the answer being made; the page puts it on its style and script.
#[derive(Debug, Clone)]
pub(crate) struct Nonce(pub String);

/// The door every request passes: the token (else 401), no cross-site POST (else 403), the
/// token URL traded for a cookie, and the security headers on whatever goes out.
async fn guard(State(ui): State<Dashboard>, mut request: Request, next: Next) -> Response {
    let nonce = security::random_hex();
    let query = request.uri().query().map(str::to_string);
    let credential = security::credential(&ui.0.token, request.headers(), query.as_deref());
    let cross_site = security::cross_site(request.method(), request.headers());
    let path = request.uri().path().to_string();
    let mut response = match (credential, cross_site) {
        (None, _) => {
            let mut refused = Failure::new(
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open the URL `executor ui` printed, or send Authorization: Bearer <token>",
            )
            .into_response();
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            refused
        }
        (Some(_), Some(why)) => Failure::new(
            StatusCode::FORBIDDEN,
            format!("refused: a cross-site request may not change anything ({why})"),
        )
        .into_response(),
        (Some(security::Credential::Query), None)
            if request.method() == Method::GET && !path.starts_with("/api/") =>
        {
            let target = format!("{path}{}", security::query_without_token(query.as_deref()));
            let mut response = axum::response::Redirect::to(&target).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&security::session_cookie(&ui.0.token)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        (Some(_), None) => {
            request.extensions_mut().insert(Nonce(nonce.clone()));
            next.run(request).await
        }
    };
    security::protect(response.headers_mut(), &nonce);
    response
}

/// A request the dashboard cannot answer as asked: its status and one line saying why, as
/// `{"error": "…"}` (the API's form, which a person reads as easily).
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: crate::quote::single_line(&message.into(), crate::quote::MESSAGE_CHARS),
        }
    }

    fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The CLI's mapping: an unknown job is 404, a retry or cancel its state forbids is 409 (the
/// CLI's exit 2), anything else the store says is a 500 with its line.
impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Failure {
        let status = match err {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::Transition { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, err.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Serves the dashboard alone on `addr` until `stop` resolves (`executor ui`).
pub async fn serve(
    addr: std::net::SocketAddr,
    dashboard: &Dashboard,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = dashboard.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
    });
    Ok(bound)
}
