//! systemd's notify protocol (`NOTIFY_SOCKET`): READY after the first tick, WATCHDOG after each
//! completed tick, STOPPING on the way out. Without the variable every call is a no-op, so the
//! daemon need not know whether it runs under systemd.

/// systemd's notify protocol (`NOTIFY_SOCKET`): READY, WATCHDOG, STOPPING. A no-op without it.
pub struct Notifier {
    socket: Option<(std::os::unix::net::UnixDatagram, String)>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|p| !p.is_empty())
            .and_then(|path| Some((std::os::unix::net::UnixDatagram::unbound().ok()?, path)));
        Notifier { socket }
    }

    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    pub fn send(&self, message: &str) {
        let Some((socket, path)) = &self.socket else {
            return;
        };
        #[cfg(target_os = "linux")]
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
                let _ = socket.send_to_addr(message.as_bytes(), &addr);
            }
            return;
        }
        let _ = socket.send_to(message.as_bytes(), path);
    }
}
