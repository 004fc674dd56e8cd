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
//! Several users, as a fleet needs: the login form takes a user name (default [`HANDLE`]), the
//! session cookie maps to that user, every post and reply is authored by the user of the request,
//! and every logged-in page's side bar names that user the way x.com does
//! (`a[data-testid="AppTabBar_Profile_Link"][href="/USER"]`). `/USER` is the user's profile: their
//! posts newest first, [`PAGE`] at a time, each with its `<time datetime="RFC 3339">`, and a
//! "Show more" link (`a[data-testid="ShowMoreCursor"]`, `href="/USER?cursor=ID"`) to the next
//! older page — which the page also loads by itself when scrolled to the bottom, keeping only a
//! window of items in the document as x.com does. The last page says that nothing is older
//! (`[data-testid="TimelineEnd"]`; an account with no posts shows `[data-testid="emptyState"]`),
//! and a status page shows all its replies and says so the same way.
//!
//! Texts are published as typed, less trailing white space, and shown as x.com shows them: every
//! `http(s)://` link rewritten to a `https://t.co/CODE` link whose text is the shortened address.
//!
//! It keeps everything published: `GET /api/posts` lists every post and reply (`id`, `text`,
//! `in_reply_to`, `created_at`, `author`). Faults the daemon must survive are switched at start
//! (`executor sandbox --fault NAME`) or at run time (`POST /api/fault {"fault": NAME|null}`).

pub mod address;
mod pages;

pub use pages::escape as escape_html;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The user a login without a name becomes; their posts appear on `/demo`.
pub const HANDLE: &str = "demo";

/// The session cookie the login form sets (as x.com's): its value names the session.
pub const SESSION_COOKIE: &str = "auth_token";

/// Posts per profile page, as x.com's first timeline page.
pub const PAGE: usize = 20;

/// How many items a scrolled profile keeps in the document (older ones are loaded, newer ones
/// dropped), so a reader cannot rely on the whole timeline being in the page at once.
pub const WINDOW: usize = 40;

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
    /// Profiles show their first page only: no "Show more" cursor, no end marker, and cursor
    /// pages come back empty — a timeline that cannot be paged back.
    ShortTimeline,
    /// The composer adds a character to any text containing `GARBLE`: the readback before the
    /// click does not match, so that job fails before publishing while others go through.
    Garble,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Popups,
        Fault::Slow,
        Fault::Hang,
        Fault::ScriptHang,
        Fault::RateLimit,
        Fault::LoggedOut,
        Fault::LateAnswer,
        Fault::NoAnswer,
        Fault::ShortTimeline,
        Fault::Garble,
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
            Fault::ShortTimeline => "short_timeline",
            Fault::Garble => "garble",
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

/// One page of a user's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelinePage {
    /// The user's pinned post, shown first on the first page, out of order (as on x.com).
    pub pinned: Option<Post>,
    /// Newest first.
    pub posts: Vec<Post>,
    /// The cursor of the next older page, when the site offers one.
    pub next: Option<String>,
    /// The site says there is nothing older than this page.
    pub end: bool,
}

#[derive(Default)]
struct Inner {
    posts: Vec<Post>,
    /// Session token → the user it is logged in as.
    sessions: HashMap<String, String>,
    /// User → the id of their pinned post.
    pinned: HashMap<String, String>,
    fault: Option<Fault>,
    /// Users whose posts are answered with HTTP 429 whatever the fault (a site rate-limits one
    /// account, not all of them).
    rate_limited: HashSet<String>,
    next_id: u64,
    /// How often `/home` was loaded (the session check's page): tests count navigations.
    home_loads: u64,
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

    /// How often `/home` has been loaded.
    pub fn home_loads(&self) -> u64 {
        self.with(|inner| inner.home_loads)
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        self.with(|i| i.fault = fault);
    }

    /// Answers `user`'s posts with HTTP 429 (`true`) or not, whatever the fault.
    pub fn rate_limit_user(&self, user: &str, limited: bool) {
        self.with(|i| {
            if limited {
                i.rate_limited.insert(user.to_string());
            } else {
                i.rate_limited.remove(user);
            }
        });
    }

    fn is_rate_limited(&self, user: &str) -> bool {
        self.with(|i| i.fault == Some(Fault::RateLimit) || i.rate_limited.contains(user))
    }

    pub fn fault(&self) -> Option<Fault> {
        self.with(|i| i.fault)
    }

    pub fn posts(&self) -> Vec<Post> {
        self.with(|i| i.posts.clone())
    }

    /// Publishes a post directly (another user's post to reply to, in tests and the demo).
    pub fn publish(&self, text: &str, in_reply_to: Option<String>, author: &str) -> Post {
        self.publish_at(text, in_reply_to, author, SystemTime::now())
    }

    /// Publishes a post dated `at` (an account's older history, in tests).
    pub fn publish_at(
        &self,
        text: &str,
        in_reply_to: Option<String>,
        author: &str,
        at: SystemTime,
    ) -> Post {
        self.with(|i| {
            i.next_id += 1;
            let post = Post {
                // Long numeric ids, like x.com's.
                id: format!("{}", 1_800_000_000_000_000_000u64 + i.next_id),
                text: text.to_string(),
                in_reply_to,
                created_at: crate::clock::format_ts(at),
                author: author.to_string(),
            };
            i.posts.push(post.clone());
            post
        })
    }

    /// Pins `id` to the top of `author`'s profile.
    pub fn pin(&self, author: &str, id: &str) {
        self.with(|i| i.pinned.insert(author.to_string(), id.to_string()));
    }

    /// `author`'s posts (not replies), newest first, from after `cursor` (a post id): one page.
    pub fn timeline(&self, author: &str, cursor: Option<&str>) -> TimelinePage {
        let short = self.fault() == Some(Fault::ShortTimeline);
        let mut posts: Vec<(usize, Post)> = self
            .posts()
            .into_iter()
            .enumerate()
            .filter(|(_, p)| p.author == author && p.in_reply_to.is_none())
            .collect();
        // Newest first; same-millisecond posts in the order they were published.
        posts.sort_by(|(ia, a), (ib, b)| (&b.created_at, ib).cmp(&(&a.created_at, ia)));
        let posts: Vec<Post> = posts.into_iter().map(|(_, p)| p).collect();
        let start = match cursor {
            None => 0,
            // A flaky site: older pages come back empty.
            Some(_) if short => posts.len(),
            Some(cursor) => match posts.iter().position(|p| p.id == cursor) {
                Some(at) => at + 1,
                None => {
                    return TimelinePage {
                        pinned: None,
                        posts: Vec::new(),
                        next: None,
                        end: false,
                    }
                }
            },
        };
        let page: Vec<Post> = posts.iter().skip(start).take(PAGE).cloned().collect();
        let more = start + page.len() < posts.len();
        let pinned = self.with(|i| i.pinned.get(author).cloned());
        TimelinePage {
            pinned: pinned
                .filter(|_| cursor.is_none())
                .and_then(|id| posts.iter().find(|p| p.id == id).cloned()),
            next: page.last().filter(|_| more && !short).map(|p| p.id.clone()),
            end: !more && !short,
            posts: page,
        }
    }

    /// The user the request's session is logged in as.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let token = session_cookie(headers)?;
        self.with(|i| {
            if i.fault == Some(Fault::LoggedOut) {
                return None;
            }
            i.sessions.get(&token).cloned()
        })
    }

    /// Logs `user` in as the login form does, without a browser: the new session's token, the
    /// value of its [`SESSION_COOKIE`] (tests export it the way a desktop browser would).
    pub fn new_session(&self, user: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.with(|i| i.sessions.insert(token.clone(), user.to_string()));
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
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| value.to_string())
        })
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
        Some(Fault::Garble) => pages::GARBLE,
        _ => "",
    }
}

fn to_login() -> Response {
    Redirect::to("/i/flow/login").into_response()
}

async fn home(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    sandbox.with(|inner| inner.home_loads += 1);
    let extra = page_fault_on(&sandbox, true).await;
    let Some(user) = sandbox.user(&headers) else {
        return to_login();
    };
    Html(pages::home(&user, &sandbox.posts(), extra)).into_response()
}

async fn login_page(State(sandbox): State<Sandbox>) -> Response {
    let extra = page_fault_on(&sandbox, true).await;
    Html(pages::login(None, extra)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    username: Option<String>,
}

/// A handle as x.com allows them: 1 to 15 letters, digits or underscores.
fn valid_handle(name: &str) -> bool {
    (1..=15).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Logs in as the named user (a leading `@` is allowed; empty means [`HANDLE`]).
async fn login(State(sandbox): State<Sandbox>, Form(form): Form<LoginForm>) -> Response {
    let name = form.username.unwrap_or_default();
    let name = name.trim().trim_start_matches('@');
    let user = if name.is_empty() { HANDLE } else { name };
    if !valid_handle(user) {
        let message = format!("{user:?} is not a user name: use 1 to 15 letters, digits or _");
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::login(Some(&message), "")),
        )
            .into_response();
    }
    let token = sandbox.new_session(user);
    let mut response = Redirect::to("/home").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
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
    let Some(user) = sandbox.user(&headers) else {
        return to_login();
    };
    let posts = sandbox.posts();
    match posts.iter().find(|p| p.id == id) {
        Some(post) => {
            let replies: Vec<Post> = posts
                .iter()
                .filter(|p| p.in_reply_to.as_deref() == Some(&id))
                .cloned()
                .collect();
            Html(pages::status(&user, post, &replies, extra)).into_response()
        }
        None => (StatusCode::NOT_FOUND, Html(pages::not_found(&user))).into_response(),
    }
}

#[derive(Deserialize)]
struct ProfileQuery {
    cursor: Option<String>,
}

async fn profile(
    State(sandbox): State<Sandbox>,
    Path(handle): Path<String>,
    Query(query): Query<ProfileQuery>,
    headers: HeaderMap,
) -> Response {
    let extra = page_fault(&sandbox).await;
    let Some(user) = sandbox.user(&headers) else {
        return to_login();
    };
    let page = sandbox.timeline(&handle, query.cursor.as_deref());
    Html(pages::profile(&user, &handle, &page, extra)).into_response()
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
    let Some(user) = sandbox.user(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "errors": [{ "message": "login required" }] })),
        )
            .into_response();
    };
    if sandbox.is_rate_limited(&user) && body.in_reply_to.as_deref().is_none_or(str::is_empty) {
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
    // The site's own rule, as x.com's: trailing white space (a last empty paragraph, spaces) is
    // not published; everything else is, as typed.
    let text = body.text.trim_end();
    if text.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "errors": [{ "message": "empty" }] })),
        )
            .into_response();
    }
    let post = sandbox.publish(text, body.in_reply_to.filter(|t| !t.is_empty()), &user);
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

#[cfg(test)]
mod tests {
    //! The sandbox's HTTP API over a real socket: logins as named users, who authors a post, the
    //! profile's pages and cursor, and the fault switch.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Answer {
        status: u16,
        head: String,
        body: String,
    }

    /// One HTTP/1.1 request with `Connection: close`, read to the end.
    async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut text = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        stream.write_all(text.as_bytes()).await.expect("send");
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .expect("answered in time")
            .expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        Answer {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    async fn serve(sandbox: &Sandbox) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, _task) = sandbox
            .serve(([127, 0, 0, 1], 0).into(), async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        (addr, stop)
    }

    /// Logs in through the form; the session cookie to send back.
    async fn log_in(addr: SocketAddr, form: &str) -> String {
        let answer = request(
            addr,
            "POST",
            "/i/flow/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        let cookie = answer
            .head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie");
        cookie.to_string()
    }

    async fn post(addr: SocketAddr, cookie: &str, text: &str) -> Answer {
        request(
            addr,
            "POST",
            "/i/api/graphql/sandbox/CreateTweet",
            &[("content-type", "application/json"), ("cookie", cookie)],
            &serde_json::json!({ "text": text }).to_string(),
        )
        .await
    }

    async fn set_fault(addr: SocketAddr, body: &str) -> Answer {
        let json = [("content-type", "application/json")];
        request(addr, "POST", "/api/fault", &json, body).await
    }

    fn api_posts(body: &str) -> Vec<Post> {
        serde_json::from_str(body).expect("posts as JSON")
    }

    #[tokio::test]
    async fn each_login_is_its_user_who_authors_the_posts_and_the_side_bar_names_them() {
        let sandbox = Sandbox::new(None);
        let (addr, _stop) = serve(&sandbox).await;
        let alice = log_in(addr, "username=alice").await;
        let bob = log_in(addr, "username=%40bob").await;
        let default = log_in(addr, "username=").await;

        for (cookie, user) in [(&alice, "alice"), (&bob, "bob"), (&default, HANDLE)] {
            let home = request(addr, "GET", "/home", &[("cookie", cookie)], "").await;
            assert_eq!(home.status, 200);
            assert!(
                home.body.contains(&format!(
                    "href=\"/{user}\" aria-label=\"Profile\" role=\"link\" data-testid=\"AppTabBar_Profile_Link\""
                )),
                "{user}'s side bar: {}",
                home.body
            );
            assert_eq!(
                post(addr, cookie, &format!("hello from {user}"))
                    .await
                    .status,
                200
            );
        }
        let listed = request(addr, "GET", "/api/posts", &[], "").await;
        assert_eq!(listed.status, 200);
        let authors: Vec<(String, String)> = api_posts(&listed.body)
            .into_iter()
            .map(|p| (p.author, p.text))
            .collect();
        assert_eq!(
            authors,
            [
                ("alice".to_string(), "hello from alice".to_string()),
                ("bob".into(), "hello from bob".into()),
                (HANDLE.into(), format!("hello from {HANDLE}")),
            ]
        );

        let nobody = post(addr, "auth_token=forged", "who am I").await;
        assert_eq!(nobody.status, 401);
        let bad = request(
            addr,
            "POST",
            "/i/flow/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            "username=not+a+handle",
        )
        .await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("is not a user name"), "{}", bad.body);
        assert_eq!(
            api_posts(&request(addr, "GET", "/api/posts", &[], "").await.body).len(),
            3
        );
    }

    /// The `ShowMoreCursor` link's cursor on a profile page, if it offers one.
    fn cursor_in(page: &str) -> Option<String> {
        let at = page.find("data-testid=\"ShowMoreCursor\"")?;
        let rest = &page[at..];
        let href = rest.split("href=\"").nth(1)?.split('"').next()?;
        Some(href.to_string())
    }

    fn shown_texts(page: &str) -> Vec<String> {
        page.split("data-testid=\"tweetText\"")
            .skip(1)
            .filter_map(|s| s.split_once('>').map(|(_, text)| text))
            .filter_map(|s| s.split("</div>").next())
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn a_profile_pages_back_20_at_a_time_newest_first_and_marks_its_end() {
        let sandbox = Sandbox::new(None);
        let (addr, _stop) = serve(&sandbox).await;
        let alice = log_in(addr, "username=alice").await;
        for i in 0..45 {
            sandbox.publish(&format!("alice {i}"), None, "alice");
        }
        sandbox.publish("bob's", None, "bob");
        let target = sandbox.publish("alice's own target", None, "someone").id;
        sandbox.publish("a reply is not on the profile", Some(target), "alice");

        let mut path = "/alice".to_string();
        let mut pages = Vec::new();
        loop {
            let page = request(addr, "GET", &path, &[("cookie", &alice)], "").await;
            assert_eq!(page.status, 200);
            assert!(page.body.contains("<time datetime=\""), "times shown");
            pages.push(shown_texts(&page.body));
            match cursor_in(&page.body) {
                Some(next) => {
                    assert!(next.starts_with("/alice?cursor="), "{next}");
                    assert!(!page.body.contains("data-testid=\"TimelineEnd\""));
                    path = next;
                }
                None => {
                    assert!(
                        page.body.contains("data-testid=\"TimelineEnd\""),
                        "the end is marked"
                    );
                    break;
                }
            }
        }
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [20, 20, 5]);
        let all: Vec<String> = pages.concat();
        let expected: Vec<String> = (0..45).rev().map(|i| format!("alice {i}")).collect();
        assert_eq!(all, expected, "newest first, each once, only alice's posts");

        let empty = request(addr, "GET", "/carol", &[("cookie", &alice)], "").await;
        assert!(empty.body.contains("data-testid=\"emptyState\""));
        assert!(empty.body.contains("data-testid=\"TimelineEnd\""));
    }

    #[tokio::test]
    async fn the_short_timeline_fault_ends_the_cursor_after_the_first_page() {
        let sandbox = Sandbox::new(None);
        let (addr, _stop) = serve(&sandbox).await;
        let alice = log_in(addr, "username=alice").await;
        for i in 0..30 {
            sandbox.publish(&format!("alice {i}"), None, "alice");
        }
        let first = request(addr, "GET", "/alice", &[("cookie", &alice)], "").await;
        let cursor = cursor_in(&first.body).expect("a cursor without the fault");

        let set = set_fault(addr, r#"{"fault":"short_timeline"}"#).await;
        assert_eq!(
            (set.status, set.body.as_str()),
            (200, r#"{"fault":"short_timeline"}"#)
        );
        let shown = request(addr, "GET", "/api/fault", &[], "").await;
        assert_eq!(shown.body, r#"{"fault":"short_timeline"}"#);

        let short = request(addr, "GET", "/alice", &[("cookie", &alice)], "").await;
        assert_eq!(
            shown_texts(&short.body).len(),
            20,
            "the first page is still shown"
        );
        assert_eq!(cursor_in(&short.body), None, "no cursor");
        assert!(
            !short.body.contains("TimelineEnd"),
            "and no claim that the list is complete"
        );
        let older = request(addr, "GET", &cursor, &[("cookie", &alice)], "").await;
        assert!(shown_texts(&older.body).is_empty() && !older.body.contains("TimelineEnd"));

        let unknown = set_fault(addr, r#"{"fault":"no_such_fault"}"#).await;
        assert_eq!(unknown.status, 400);
        assert!(
            unknown.body.contains("short_timeline"),
            "lists the faults: {}",
            unknown.body
        );
        let cleared = set_fault(addr, r#"{"fault":null}"#).await;
        assert_eq!(cleared.body, r#"{"fault":null}"#);
        assert_eq!(sandbox.fault(), None);
    }
}
