//! The sandbox: a small social site on 127.0.0.1, shaped like x.com (SPEC §7.2), so that the
//! whole product can be tested and demonstrated on one machine with no account.
//!
//! It mirrors x.com's structure closely enough that the built-in `x` site definition works
//! against it unchanged: `/home` with a contenteditable composer (`data-testid="tweetTextarea_0"`)
//! and `tweetButtonInline`; status pages `/HANDLE/status/ID` (and `/i/status/ID`) with a `reply`
//! button opening a `role="dialog"` composer and `tweetButton`; a login wall at `/i/flow/login`
//! and a session cookie; a profile `/HANDLE` listing its posts; and a create-post request
//! (`…/CreateTweet`) whose JSON answer carries the new id at
//! `data.create_tweet.tweet_results.result.rest_id`.
//!
//! It keeps everything published: `GET /api/posts` lists every post and reply (`id`, `text`,
//! `in_reply_to`, `created_at`). Faults the daemon must survive are switched at start
//! (`executor sandbox --fault NAME`) or at run time (`POST /api/fault {"fault": NAME|null}`).

mod pages;

pub use pages::escape as escape_html;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The user the sandbox session belongs to; posts appear on `/demo`.
pub const HANDLE: &str = "demo";

/// Faults the daemon must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Every page opens three popups as it loads.
    Popups,
    /// Every page answers after 3 s.
    Slow,
    /// Pages other than `/home` and the login page never answer: the session check passes, the
    /// action's page (a post's status page, a profile) hangs.
    Hang,
    /// Pages carry a script that never returns.
    ScriptHang,
    /// Publishing a post answers HTTP 429 (with `x-rate-limit-reset`); replies go through.
    RateLimit,
    /// Every session is logged out: pages redirect to the login wall.
    LoggedOut,
    /// The post is stored at once, but the answer comes 10 s later.
    LateAnswer,
    /// The post is stored, and the answer never comes.
    NoAnswer,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Popups,
        Fault::Slow,
        Fault::Hang,
        Fault::ScriptHang,
        Fault::RateLimit,
        Fault::LoggedOut,
        Fault::LateAnswer,
        Fault::NoAnswer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Popups => "popups",
            Fault::Slow => "slow",
            Fault::Hang => "hang",
            Fault::ScriptHang => "script_hang",
            Fault::RateLimit => "rate_limit",
            Fault::LoggedOut => "logged_out",
            Fault::LateAnswer => "late_answer",
            Fault::NoAnswer => "no_answer",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == name.replace('-', "_"))
    }
}

/// One published post or reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: String,
    pub text: String,
    pub in_reply_to: Option<String>,
    pub created_at: String,
    pub author: String,
}

#[derive(Default)]
struct Inner {
    posts: Vec<Post>,
    sessions: HashSet<String>,
    fault: Option<Fault>,
    next_id: u64,
}

/// The sandbox's state; cheap to clone.
#[derive(Clone, Default)]
pub struct Sandbox {
    inner: Arc<Mutex<Inner>>,
}

impl Sandbox {
    pub fn new(fault: Option<Fault>) -> Sandbox {
        let sandbox = Sandbox::default();
        sandbox.set_fault(fault);
        sandbox
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        match self.inner.lock() {
            Ok(mut inner) => f(&mut inner),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.with(|i| i.fault = fault);
    }

    pub fn fault(&self) -> Option<Fault> {
        self.with(|i| i.fault)
    }

    pub fn posts(&self) -> Vec<Post> {
        self.with(|i| i.posts.clone())
    }

    /// Publishes a post directly (another user's post to reply to, in tests and the demo).
    pub fn publish(&self, text: &str, in_reply_to: Option<String>, author: &str) -> Post {
        self.with(|i| {
            i.next_id += 1;
            let post = Post {
                // Long numeric ids, like x.com's.
                id: format!("{}", 1_800_000_000_000_000_000u64 + i.next_id),
                text: text.to_string(),
                in_reply_to,
                created_at: crate::clock::format_ts(SystemTime::now()),
                author: author.to_string(),
            };
            i.posts.push(post.clone());
            post
        })
    }

    fn logged_in(&self, headers: &HeaderMap) -> bool {
        let token = session_cookie(headers);
        self.with(|i| {
            i.fault != Some(Fault::LoggedOut) && token.is_some_and(|t| i.sessions.contains(&t))
        })
    }

    fn new_session(&self) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.with(|i| i.sessions.insert(token.clone()));
        token
    }

    /// The router serving the site.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(|| async { Redirect::to("/home") }))
            .route("/home", get(home))
            .route("/i/flow/login", get(login_page).post(login))
            .route("/i/status/{id}", get(status_page))
            .route("/{handle}/status/{id}", get(status_page_of))
            .route("/{handle}", get(profile))
            .route("/i/api/graphql/sandbox/CreateTweet", post(create_post))
            .route("/api/posts", get(api_posts))
            .route("/api/fault", get(api_fault).post(api_set_fault))
            .route("/api/seed", post(api_seed))
            .with_state(self.clone())
    }

    /// Serves on `addr` until `stop` resolves; returns the bound address at once.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        });
        Ok((bound, task))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("auth_token=").map(str::to_string))
}

/// Applies the page faults: slow, hang. Returns the extra markup for popups / a stuck script.
async fn page_fault(sandbox: &Sandbox) -> &'static str {
    page_fault_on(sandbox, false).await
}

/// `home`: the home and login pages do not hang (see [`Fault::Hang`]).
async fn page_fault_on(sandbox: &Sandbox, home: bool) -> &'static str {
    match sandbox.fault() {
        Some(Fault::Slow) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ""
        }
        Some(Fault::Hang) if !home => std::future::pending().await,
        Some(Fault::Popups) => pages::POPUPS,
        Some(Fault::ScriptHang) => pages::SCRIPT_HANG,
        _ => "",
    }
}

fn to_login() -> Response {
    Redirect::to("/i/flow/login").into_response()
}

async fn home(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    let extra = page_fault_on(&sandbox, true).await;
    if !sandbox.logged_in(&headers) {
        return to_login();
    }
    Html(pages::home(&sandbox.posts(), extra)).into_response()
}

async fn login_page(State(sandbox): State<Sandbox>) -> Response {
    let extra = page_fault_on(&sandbox, true).await;
    Html(pages::login(extra)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[allow(dead_code)]
    username: Option<String>,
}

async fn login(State(sandbox): State<Sandbox>, Form(_form): Form<LoginForm>) -> Response {
    let token = sandbox.new_session();
    let mut response = Redirect::to("/home").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "auth_token={token}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn status_page(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    show_status(sandbox, id, headers).await
}

async fn status_page_of(
    State(sandbox): State<Sandbox>,
    Path((_handle, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    show_status(sandbox, id, headers).await
}

async fn show_status(sandbox: Sandbox, id: String, headers: HeaderMap) -> Response {
    let extra = page_fault(&sandbox).await;
    if !sandbox.logged_in(&headers) {
        return to_login();
    }
    let posts = sandbox.posts();
    match posts.iter().find(|p| p.id == id) {
        Some(post) => {
            let replies: Vec<Post> = posts
                .iter()
                .filter(|p| p.in_reply_to.as_deref() == Some(&id))
                .cloned()
                .collect();
            Html(pages::status(post, &replies, extra)).into_response()
        }
        None => (StatusCode::NOT_FOUND, Html(pages::not_found())).into_response(),
    }
}

async fn profile(
    State(sandbox): State<Sandbox>,
    Path(handle): Path<String>,
    headers: HeaderMap,
) -> Response {
    let extra = page_fault(&sandbox).await;
    if !sandbox.logged_in(&headers) {
        return to_login();
    }
    let posts: Vec<Post> = sandbox
        .posts()
        .into_iter()
        .filter(|p| p.author == handle)
        .collect();
    Html(pages::profile(&handle, &posts, extra)).into_response()
}

#[derive(Deserialize)]
struct CreatePost {
    text: String,
    #[serde(default)]
    in_reply_to: Option<String>,
}

async fn create_post(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Json(body): Json<CreatePost>,
) -> Response {
    if !sandbox.logged_in(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "errors": [{ "message": "login required" }] })),
        )
            .into_response();
    }
    if sandbox.fault() == Some(Fault::RateLimit)
        && body.in_reply_to.as_deref().is_none_or(str::is_empty)
    {
        let reset = crate::clock::now_unix_ms() / 1000 + 900;
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(
                serde_json::json!({ "errors": [{ "code": 88, "message": "Rate limit exceeded" }] }),
            ),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&reset.to_string()) {
            response.headers_mut().insert("x-rate-limit-reset", value);
        }
        return response;
    }
    if body.text.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "errors": [{ "message": "empty" }] })),
        )
            .into_response();
    }
    let post = sandbox.publish(
        &body.text,
        body.in_reply_to.filter(|t| !t.is_empty()),
        HANDLE,
    );
    match sandbox.fault() {
        Some(Fault::LateAnswer) => tokio::time::sleep(Duration::from_secs(10)).await,
        Some(Fault::NoAnswer) => std::future::pending::<()>().await,
        _ => {}
    }
    Json(serde_json::json!({
        "data": { "create_tweet": { "tweet_results": { "result": {
            "rest_id": post.id,
            "legacy": { "full_text": post.text, "in_reply_to_status_id_str": post.in_reply_to }
        } } } }
    }))
    .into_response()
}

async fn api_posts(State(sandbox): State<Sandbox>) -> Json<Vec<Post>> {
    Json(sandbox.posts())
}

async fn api_fault(State(sandbox): State<Sandbox>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "fault": sandbox.fault().map(Fault::name) }))
}

#[derive(Deserialize)]
struct SetFault {
    fault: Option<String>,
}

async fn api_set_fault(State(sandbox): State<Sandbox>, Json(body): Json<SetFault>) -> Response {
    match body.fault.as_deref().map(|name| Fault::parse(name).ok_or(name)) {
        Some(Err(name)) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("unknown fault {name:?}"), "faults": Fault::ALL.map(Fault::name) })),
        )
            .into_response(),
        Some(Ok(fault)) => {
            sandbox.set_fault(Some(fault));
            Json(serde_json::json!({ "fault": fault.name() })).into_response()
        }
        None => {
            sandbox.set_fault(None);
            Json(serde_json::json!({ "fault": null })).into_response()
        }
    }
}

#[derive(Deserialize)]
struct Seed {
    text: String,
    #[serde(default)]
    author: Option<String>,
}

async fn api_seed(State(sandbox): State<Sandbox>, Json(body): Json<Seed>) -> Json<Post> {
    Json(sandbox.publish(
        &body.text,
        None,
        body.author.as_deref().unwrap_or("someone"),
    ))
}
