//! Where `executor sandbox` listens, for the other commands of the same profile.
//!
//! The sandbox serves on any port (`--port`, 0 for a free one), but the built-in `sandbox` site
//! definition can only name the default one. So while it serves, the sandbox records its address
//! in `<profile>/sandbox.json` (with its pid and process start time), and a command given
//! `--site sandbox` without `--site-url` goes there. The file is removed when the sandbox ends;
//! one left behind by a killed sandbox names a process that is gone, and is ignored, so a stale
//! file never sends the daemon to a port where nothing, or something else, now listens.

use crate::files::Links;
use crate::settings::Settings;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file, in the profile directory.
pub const FILE: &str = "sandbox.json";

/// The name of the built-in definition whose base URL the recorded address replaces.
const SITE: &str = "sandbox";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Recorded {
    url: String,
    pid: u32,
    start_unix_ms: u64,
}

fn path_in(profile: &Path) -> PathBuf {
    profile.join(FILE)
}

/// Records that this process serves the sandbox at `url`; [`forget`] removes it again.
pub fn record(profile: &Path, url: &str) -> std::io::Result<()> {
    let pid = std::process::id();
    let recorded = Recorded {
        url: url.to_string(),
        pid,
        start_unix_ms: crate::platform::start_unix_ms(pid).unwrap_or_default(),
    };
    let text = serde_json::to_string(&recorded).map_err(std::io::Error::other)?;
    crate::files::replace_atomically(&path_in(profile), format!("{text}\n").as_bytes())
}

/// Removes this process's record (and only its own: another sandbox may have replaced it).
pub fn forget(profile: &Path) {
    if read(profile).is_some_and(|r| r.pid == std::process::id()) {
        let _ = std::fs::remove_file(path_in(profile));
    }
}

fn read(profile: &Path) -> Option<Recorded> {
    let text = crate::files::read_text_limited(&path_in(profile), 4096, Links::Refuse).ok()?;
    serde_json::from_str(&text).ok()
}

/// The URL of the sandbox serving for this profile, if one runs now.
pub fn serving(profile: &Path) -> Option<String> {
    read(profile)
        .filter(|r| crate::platform::is_same_process(r.pid, r.start_unix_ms))
        .map(|r| r.url)
}

/// The base URL for the configured site: `--site-url` if given; for the built-in sandbox, else
/// where `executor sandbox` serves for this profile; else `None` (the definition's own).
pub fn site_url(settings: &Settings) -> Option<String> {
    settings.site_url.clone().or_else(|| {
        (settings.site == SITE)
            .then(|| serving(&settings.profile))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_while_its_process_runs_and_removed_by_it() {
        let dir = std::env::temp_dir().join(format!("sandbox-address-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(serving(&dir), None);
        record(&dir, "http://127.0.0.1:4321").expect("record");
        assert_eq!(serving(&dir).as_deref(), Some("http://127.0.0.1:4321"));
        forget(&dir);
        assert!(!dir.join(FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_left_by_a_process_that_is_gone_is_ignored() {
        let dir = std::env::temp_dir().join(format!("sandbox-address-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let stale = Recorded {
            url: "http://127.0.0.1:4321".into(),
            pid: std::process::id(),
            // Our pid, but not our start: a reused pid, the process that wrote it is gone.
            start_unix_ms: 1,
        };
        let text = serde_json::to_string(&stale).expect("json");
        std::fs::write(dir.join(FILE), text).expect("write");
        assert_eq!(serving(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
