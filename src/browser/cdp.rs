//! A thin Chrome DevTools Protocol client: one WebSocket, request ids, flattened sessions,
//! events fanned out to subscribers.
//!
//! Why not `chromiumoxide`: measured against Chromium 156 on this kind of machine it took 2.5 min
//! to build, its generated types rejected some of Chromium 156's Network events, and after a
//! `kill -9` of the browser its handler stream never ended, so calls hung 30–40 s. This client is
//! `tokio-tungstenite` + `serde_json` (≈19 s to build, ≈3 MB idle RSS, ≈0.4 ms per evaluate) and
//! keeps CDP messages as JSON values, so a new field in a new Chromium can never break parsing.
//!
//! Guarantees:
//! - every call has its own deadline and fails with [`CdpError::Timeout`] when it passes;
//! - when the socket is lost, every waiting call fails at once with [`CdpError::Disconnected`],
//!   and later calls fail immediately, so nothing ever hangs on a dead browser;
//! - events never block the reader: subscribers that fall behind see `Lagged` and must resync.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CdpError {
    #[error("nothing is listening for CDP on {addr} ({reason}); start the browser with `executor chrome` or use RUNNER_BROWSER=launch")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{addr} answers but is not a Chrome DevTools endpoint ({reason})")]
    NotCdp { addr: SocketAddr, reason: String },
    #[error("CDP websocket {url}: {reason}")]
    Handshake { url: String, reason: String },
    #[error("CDP {method} timed out after {millis} ms")]
    Timeout { method: String, millis: u128 },
    #[error("CDP connection lost ({reason})")]
    Disconnected { reason: String },
    #[error("CDP {method} failed: {message}")]
    Protocol { method: String, message: String },
}

/// One CDP event.
#[derive(Debug, Clone)]
pub struct CdpEvent {
    pub method: String,
    pub params: Value,
    pub session_id: Option<String>,
}

type Reply = oneshot::Sender<Result<Value, CdpError>>;

struct Inner {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, (String, Reply)>>,
    outgoing: mpsc::UnboundedSender<Message>,
    events: broadcast::Sender<CdpEvent>,
    closed: CancellationToken,
    close_reason: Mutex<Option<String>>,
    /// When the browser last sent anything (milliseconds since `opened`): a browser that is
    /// busy (a tab storm) answers late but keeps talking; a frozen or dead one is silent.
    heard_ms: AtomicU64,
    opened: std::time::Instant,
}

impl Inner {
    fn fail_all(&self, reason: &str) {
        if let Ok(mut slot) = self.close_reason.lock() {
            slot.get_or_insert_with(|| reason.to_string());
        }
        self.closed.cancel();
        let drained: Vec<(String, Reply)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for (_, reply) in drained {
            let _ = reply.send(Err(CdpError::Disconnected {
                reason: reason.to_string(),
            }));
        }
    }

    fn reason(&self) -> String {
        self.close_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "closed".to_string())
    }
}

/// A CDP connection. Cheap to clone; the socket closes when the last clone is dropped or
/// [`Connection::close`] is called.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
    _owner: Arc<CloseOnDrop>,
}

struct CloseOnDrop(CancellationToken);
impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Connection {
    /// Connects to a `ws://` DevTools URL.
    pub async fn connect(ws_url: &str, deadline: Duration) -> Result<Connection, CdpError> {
        // Each read first zero-fills the buffer's free room: the default 128 KiB made every
        // wake-up of an idle connection clear 128 KiB (twice: the frame, then WouldBlock).
        // CDP's answers are mostly far smaller; a long one takes a few more reads.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(16 * 1024);
        let connecting = tokio_tungstenite::connect_async_with_config(ws_url, Some(config), false);
        let handshake = tokio::time::timeout(deadline, connecting)
            .await
            .map_err(|_| CdpError::Handshake {
                url: ws_url.to_string(),
                reason: format!("no answer within {} ms", deadline.as_millis()),
            })?;
        let (socket, _) = handshake.map_err(|err| CdpError::Handshake {
            url: ws_url.to_string(),
            reason: err.to_string(),
        })?;
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<Message>();
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            outgoing,
            events,
            closed: CancellationToken::new(),
            close_reason: Mutex::new(None),
            heard_ms: AtomicU64::new(0),
            opened: std::time::Instant::now(),
        });
        let task_inner = inner.clone();
        tokio::spawn(async move {
            let (mut sink, mut stream) = socket.split();
            let inner = task_inner;
            let reason = loop {
                tokio::select! {
                    _ = inner.closed.cancelled() => {
                        let _ = sink.send(Message::Close(None)).await;
                        break "closed by us".to_string();
                    }
                    message = outgoing_rx.recv() => match message {
                        Some(message) => {
                            if let Err(err) = sink.send(message).await {
                                break format!("send failed: {err}");
                            }
                        }
                        None => break "closed by us".to_string(),
                    },
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(text))) => dispatch(&inner, text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => {
                            if let Ok(text) = std::str::from_utf8(&bytes) { dispatch(&inner, text) }
                        }
                        Some(Ok(Message::Close(_))) | None => break "the browser closed the socket".to_string(),
                        Some(Ok(_)) => {}
                        Some(Err(err)) => break format!("socket error: {err}"),
                    },
                }
            };
            inner.fail_all(&reason);
        });
        let owner = Arc::new(CloseOnDrop(inner.closed.clone()));
        Ok(Connection {
            inner,
            _owner: owner,
        })
    }

    /// Sends one command and waits for its answer, at most `deadline`.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        session_id: Option<&str>,
        deadline: Duration,
    ) -> Result<Value, CdpError> {
        if self.inner.closed.is_cancelled() {
            return Err(CdpError::Disconnected {
                reason: self.inner.reason(),
            });
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session_id {
            message["sessionId"] = Value::String(session.to_string());
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.insert(id, (method.to_string(), reply_tx));
        }
        // The reader may have failed everything between our check and the insert.
        if self.inner.closed.is_cancelled() {
            self.forget(id);
            return Err(CdpError::Disconnected {
                reason: self.inner.reason(),
            });
        }
        if self
            .inner
            .outgoing
            .send(Message::text(message.to_string()))
            .is_err()
        {
            self.forget(id);
            return Err(CdpError::Disconnected {
                reason: self.inner.reason(),
            });
        }
        tokio::select! {
            reply = reply_rx => match reply {
                Ok(result) => result,
                Err(_) => Err(CdpError::Disconnected { reason: self.inner.reason() }),
            },
            _ = tokio::time::sleep(deadline) => {
                self.forget(id);
                Err(CdpError::Timeout { method: method.to_string(), millis: deadline.as_millis() })
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut pending) = self.inner.pending.lock() {
            pending.remove(&id);
        }
    }

    /// The connection's events from now on. The stream ends the moment the connection is
    /// known to be lost, so no wait on an event outlives the browser.
    pub fn subscribe(&self) -> Events {
        Events {
            receiver: self.inner.events.subscribe(),
            closed: self.inner.closed.clone(),
        }
    }

    /// How long since the browser last sent anything on this connection.
    pub fn quiet_for(&self) -> Duration {
        let heard = Duration::from_millis(self.inner.heard_ms.load(Ordering::Relaxed));
        self.inner.opened.elapsed().saturating_sub(heard)
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    pub fn close_reason(&self) -> String {
        self.inner.reason()
    }

    /// Closes the socket; every waiting call fails with `reason`.
    pub fn close(&self, reason: &str) {
        self.inner.fail_all(reason);
    }
}

fn dispatch(inner: &Inner, text: &str) {
    inner
        .heard_ms
        .store(inner.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    let Ok(mut message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let Some(id) = message.get("id").and_then(Value::as_u64) {
        let waiting = inner.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some((method, reply)) = waiting {
            let result = match message.get_mut("error") {
                Some(error) => Err(CdpError::Protocol {
                    method,
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                        .to_string(),
                }),
                None => Ok(message
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or(Value::Null)),
            };
            let _ = reply.send(result);
        }
        return;
    }
    if let Some(method) = message.get("method").and_then(Value::as_str) {
        let event = CdpEvent {
            method: method.to_string(),
            session_id: message
                .get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_string),
            params: message
                .get_mut("params")
                .map(Value::take)
                .unwrap_or(Value::Null),
        };
        // No subscribers is fine; a lagging one learns of it on its next recv.
        let _ = inner.events.send(event);
    }
}

/// One HTTP request to the DevTools HTTP endpoint, read by Content-Length (Chromium ignores
/// `Connection: close`, so reading to EOF would hang).
pub async fn http_request(
    host: IpAddr,
    port: u16,
    method: &str,
    path: &str,
    deadline: Duration,
) -> Result<(u16, String), CdpError> {
    let addr = SocketAddr::new(host, port);
    let work = async {
        let mut stream =
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|err| CdpError::Unreachable {
                    addr,
                    reason: err.to_string(),
                })?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        let not_cdp = |reason: String| CdpError::NotCdp { addr, reason };
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|err| not_cdp(err.to_string()))?;
        let mut buffer = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|err| not_cdp(err.to_string()))?;
            if n == 0 {
                return Err(not_cdp(
                    "connection closed before a full HTTP answer".into(),
                ));
            }
            buffer.extend_from_slice(&chunk[..n]);
            if buffer.len() > 1 << 20 {
                return Err(not_cdp("answer too large".into()));
            }
            let Some(header_end) = find(&buffer, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .filter(|_| head.starts_with("HTTP/1."))
                .ok_or_else(|| not_cdp("not an HTTP answer".into()))?;
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| not_cdp("HTTP answer without Content-Length".into()))?;
            if buffer.len() >= header_end + 4 + length {
                let body = &buffer[header_end + 4..header_end + 4 + length];
                return Ok((status, String::from_utf8_lossy(body).to_string()));
            }
        }
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| CdpError::NotCdp {
            addr,
            reason: format!("no HTTP answer within {} ms", deadline.as_millis()),
        })?
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `/json/version`: the browser's WebSocket URL, checked to be a DevTools endpoint.
pub async fn browser_ws_url(
    host: IpAddr,
    port: u16,
    deadline: Duration,
) -> Result<String, CdpError> {
    let addr = SocketAddr::new(host, port);
    let (status, body) = http_request(host, port, "GET", "/json/version", deadline).await?;
    if status != 200 {
        return Err(CdpError::NotCdp {
            addr,
            reason: format!("/json/version answered HTTP {status}"),
        });
    }
    let version: Value = serde_json::from_str(&body).map_err(|_| CdpError::NotCdp {
        addr,
        reason: "/json/version is not JSON".into(),
    })?;
    let url = version
        .get("webSocketDebuggerUrl")
        .and_then(Value::as_str)
        .ok_or_else(|| CdpError::NotCdp {
            addr,
            reason: "/json/version has no webSocketDebuggerUrl".into(),
        })?;
    ws_url_at(url, addr).ok_or_else(|| CdpError::NotCdp {
        addr,
        reason: format!(
            "/json/version points to {}, not to the address asked; refused",
            crate::quote::quoted(url)
        ),
    })
}

/// `url` if it is a DevTools browser endpoint on `addr` itself (`ws://HOST:PORT/devtools/…`,
/// HOST the address asked or `localhost` for a loopback one); `None` if it points elsewhere.
/// A fake endpoint must not send us to another host.
fn ws_url_at(url: &str, addr: SocketAddr) -> Option<String> {
    let rest = url.strip_prefix("ws://")?;
    let (authority, path) = rest.split_once('/')?;
    if !path.starts_with("devtools/") || path.contains(['@', '\\']) {
        return None;
    }
    let (host, port) = authority.rsplit_once(':')?;
    if port.parse::<u16>().ok()? != addr.port() {
        return None;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let same = match host.parse::<IpAddr>() {
        Ok(ip) => ip == addr.ip(),
        Err(_) => host.eq_ignore_ascii_case("localhost") && addr.ip().is_loopback(),
    };
    same.then(|| format!("ws://{addr}/{path}"))
}

/// A subscription to a connection's events ([`Connection::subscribe`]).
pub struct Events {
    receiver: broadcast::Receiver<CdpEvent>,
    closed: CancellationToken,
}

/// Why [`Events::recv`] gave no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsEnded {
    /// Events were missed (the subscriber fell behind): the stream goes on.
    Lagged(u64),
    /// The connection is lost or closed: no event will come.
    Closed,
}

impl Events {
    /// The next event; ends at once when the connection is lost (events already received
    /// are still given first).
    pub async fn recv(&mut self) -> Result<CdpEvent, EventsEnded> {
        if self.closed.is_cancelled() {
            // What arrived before the loss is still true; after it, nothing waits.
            return match self.receiver.try_recv() {
                Ok(event) => Ok(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => Err(EventsEnded::Lagged(n)),
                Err(_) => Err(EventsEnded::Closed),
            };
        }
        tokio::select! {
            biased;
            event = self.receiver.recv() => event.map_err(|err| match err {
                broadcast::error::RecvError::Lagged(n) => EventsEnded::Lagged(n),
                broadcast::error::RecvError::Closed => EventsEnded::Closed,
            }),
            _ = self.closed.cancelled() => Err(EventsEnded::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ws_url_at;
    use std::net::SocketAddr;

    #[test]
    fn the_websocket_url_must_point_at_the_address_asked() {
        let addr: SocketAddr = "127.0.0.1:9222".parse().expect("addr");
        let ok = "ws://127.0.0.1:9222/devtools/browser/abc";
        assert_eq!(ws_url_at(ok, addr).as_deref(), Some(ok));
        assert_eq!(
            ws_url_at("ws://localhost:9222/devtools/browser/abc", addr).as_deref(),
            Some(ok)
        );
        for elsewhere in [
            "ws://10.0.0.7:9222/devtools/browser/abc",
            "ws://127.0.0.1:9223/devtools/browser/abc",
            "ws://evil.example:9222/devtools/browser/abc",
            "wss://127.0.0.1:9222/devtools/browser/abc",
            "ws://127.0.0.1:9222/other",
            "ws://user@10.0.0.7:9222/devtools/browser/abc",
            "ws://127.0.0.1:9222",
            "",
        ] {
            assert_eq!(ws_url_at(elsewhere, addr), None, "{elsewhere}");
        }
        let v6: SocketAddr = "[::1]:9222".parse().expect("addr");
        assert_eq!(
            ws_url_at("ws://[::1]:9222/devtools/browser/x", v6).as_deref(),
            Some("ws://[::1]:9222/devtools/browser/x")
        );
    }
}
