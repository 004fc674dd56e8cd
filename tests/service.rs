//! Service files that start what the daemon needs: in attach mode the browser's service too
//! (systemd: the daemon's unit requires it and starts after it), in launch mode the daemon's
//! alone, with comments that say which. The units pass `systemd-analyze verify`; the plists parse
//! as property lists with the keys launchd reads. And the browser's service itself:
//! `executor chrome --foreground` stays as long as its browser, says READY, closes it on SIGTERM.

mod common;

use common::daemons::*;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const HEADER: &str = "# ---- file: ";

/// `executor service KIND` printed: (file name, text) per file. One file is printed bare.
fn printed(profile: &Profile, args: &[&str]) -> Vec<(String, String)> {
    let (code, output) = run(&mut command(&profile.dir, args), DEADLINE);
    assert_eq!(code, 0, "{output}");
    if !output.starts_with(HEADER) {
        assert!(!output.contains(HEADER), "one file, no header:\n{output}");
        return vec![(String::new(), output)];
    }
    output
        .split(HEADER)
        .skip(1)
        .map(|part| {
            let (name, text) = part.split_once('\n').expect("a name, then the file");
            (name.to_string(), text.trim_end().to_string())
        })
        .collect()
}

/// `executor service KIND --out DIR`: the files written, by name.
fn written(profile: &Profile, args: &[&str], dir: &Path) -> BTreeMap<String, String> {
    let mut all = args.to_vec();
    let dir_arg = dir.display().to_string();
    all.extend(["--out", &dir_arg]);
    let (code, output) = run(&mut command(&profile.dir, &all), DEADLINE);
    assert_eq!(code, 0, "{output}");
    std::fs::read_dir(dir)
        .expect("the directory was made")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            assert!(
                output.contains(&format!("wrote {}", path.display())),
                "{output}"
            );
            (name, std::fs::read_to_string(&path).expect("read"))
        })
        .collect()
}

/// `Key=value` of a unit (the first one).
fn value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{unit}"))
}

fn comments(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `systemd-analyze --user verify` on `units` (paths): its exit status and what it said. The
/// units are user units; the user manager it simulates needs a runtime directory.
fn systemd_analyze(profile: &Profile, units: &[&Path]) -> Option<(bool, String)> {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        skipped("systemd-analyze is not installed (apt-get install systemd)");
        return None;
    }
    let runtime = profile.path("xdg-runtime");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let out = std::process::Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .args(units)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .expect("run systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

#[test]
fn in_attach_mode_systemd_gets_the_browser_unit_too_and_the_daemon_requires_it() {
    let profile = Profile::new("svc-attach");
    let args = ["--tick-interval", "30s", "service", "systemd"];
    let files = printed(&profile, &args);
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["executor.service", "executor-chrome.service"]);

    // --out writes the same two files.
    let dir = profile.path("units");
    let on_disk = written(&profile, &args, &dir);
    assert_eq!(on_disk.len(), 2, "{on_disk:?}");
    for (name, text) in &files {
        assert_eq!(
            on_disk[name].trim_end(),
            text,
            "{name}: printed and written agree"
        );
    }

    let daemon = &on_disk["executor.service"];
    assert!(value(daemon, "ExecStart").ends_with(" daemon"), "{daemon}");
    assert_eq!(value(daemon, "Type"), "notify");
    assert_eq!(value(daemon, "Requires"), "executor-chrome.service");
    assert!(
        value(daemon, "After").contains("executor-chrome.service"),
        "started after the browser: {daemon}"
    );
    assert_eq!(
        value(daemon, "Restart"),
        "on-failure",
        "a STOP exits 0 and stays down"
    );
    assert_eq!(value(daemon, "KillMode"), "control-group");
    assert!(
        value(daemon, "TimeoutStopSec")
            .parse::<u64>()
            .expect("seconds")
            > 10,
        "above the STOP bound"
    );
    let watchdog: u64 = value(daemon, "WatchdogSec").parse().expect("seconds");
    assert!(
        watchdog >= 600 + 300,
        "longer than the longest backoff plus the tick cap: {watchdog}"
    );
    assert!(daemon.contains("Environment=\"EXECUTOR_TICK_INTERVAL=30s\""));
    assert!(daemon.contains(&format!(
        "Environment=\"RUNNER_PROFILE_DIR={}\"",
        profile.dir.display()
    )));
    // The comments say what this mode does, not what launch mode does.
    let said = comments(daemon);
    assert!(
        said.contains("Attach mode") && said.contains("starts no browser"),
        "{said}"
    );
    assert!(!said.contains("managed browser included"), "{said}");

    let browser = &on_disk["executor-chrome.service"];
    assert!(
        value(browser, "ExecStart").ends_with(" chrome --foreground"),
        "{browser}"
    );
    assert_eq!(value(browser, "Type"), "notify", "READY once CDP answers");
    assert_eq!(value(browser, "Restart"), "on-failure");
    assert_eq!(
        value(browser, "KillMode"),
        "mixed",
        "SIGTERM to `executor chrome` alone, which closes the browser in order"
    );
    assert!(
        browser.contains("Environment=\"CDP_PORT=9222\""),
        "{browser}"
    );
    assert!(browser.contains(&format!(
        "Environment=\"RUNNER_PROFILE_DIR={}\"",
        profile.dir.display()
    )));
    assert!(comments(browser).contains("executor.service"), "{browser}");

    // The real check: both units together verify, with no warning; the daemon's alone does
    // not, since the unit it requires is missing.
    let both = [
        dir.join("executor.service"),
        dir.join("executor-chrome.service"),
    ];
    let Some((ok, said)) = systemd_analyze(&profile, &[&both[0], &both[1]]) else {
        return;
    };
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let alone = profile.path("alone");
    std::fs::create_dir_all(&alone).expect("dir");
    std::fs::copy(&both[0], alone.join("executor.service")).expect("copy");
    let (ok, said) =
        systemd_analyze(&profile, &[&alone.join("executor.service")]).expect("installed");
    assert!(
        !ok && said.contains("executor-chrome.service"),
        "without the browser's unit the daemon's cannot start: {said}"
    );
}

#[test]
fn in_launch_mode_systemd_gets_the_daemon_unit_alone() {
    let profile = Profile::new("svc-launch");
    let files = printed(
        &profile,
        &["--browser-mode", "launch", "service", "systemd"],
    );
    assert_eq!(files.len(), 1);
    let unit = &files[0].1;
    assert!(
        unit.starts_with("# Generated by `executor service systemd`"),
        "{unit}"
    );
    assert!(!unit.contains("Requires="), "{unit}");
    assert!(!unit.contains("chrome --foreground"), "{unit}");
    assert_eq!(value(unit, "KillMode"), "control-group");
    assert!(
        unit.contains("Environment=\"RUNNER_BROWSER=launch\""),
        "{unit}"
    );
    let said = comments(unit);
    assert!(
        said.contains("Launch mode") && said.contains("managed browser included"),
        "{said}"
    );
    assert!(!said.contains("Attach mode"), "{said}");

    let file = profile.path("executor.service");
    std::fs::write(&file, format!("{unit}\n")).expect("write");
    if let Some((ok, said)) = systemd_analyze(&profile, &[&file]) {
        assert!(
            ok && said.trim().is_empty(),
            "systemd-analyze verify: {said}"
        );
    }
}

#[test]
fn an_account_names_its_units_so_profiles_do_not_overwrite_each_other() {
    let profile = Profile::new("svc-account");
    let files = printed(&profile, &["--account", "al ice", "service", "systemd"]);
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["executor-al-ice.service", "executor-al-ice-chrome.service"]
    );
    assert_eq!(
        value(&files[0].1, "Requires"),
        "executor-al-ice-chrome.service"
    );
    let plists = printed(&profile, &["--account", "al ice", "service", "launchd"]);
    let names: Vec<&str> = plists.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "com.executor-al-ice.daemon.plist",
            "com.executor-al-ice.chrome.plist"
        ]
    );
}

#[test]
fn launchd_gets_a_plist_per_process_each_keeping_a_stop_down() {
    let profile = Profile::new("svc-launchd");
    let files = printed(&profile, &["service", "launchd"]);
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["com.executor.daemon.plist", "com.executor.chrome.plist"]
    );
    let profile_dir = profile.dir.display().to_string();
    for (name, text) in &files {
        let plist = plist::parse(text).unwrap_or_else(|err| panic!("{name}: {err}\n{text}"));
        let label = name.strip_suffix(".plist").expect("named by label");
        assert_eq!(plist.get("Label").string(), label);
        assert_eq!(
            plist.get("KeepAlive").get("SuccessfulExit"),
            &plist::Value::Bool(false),
            "{name}: a clean exit stays down"
        );
        assert_eq!(plist.get("RunAtLoad"), &plist::Value::Bool(true));
        assert_eq!(plist.get("ThrottleInterval"), &plist::Value::Integer(30));
        assert_eq!(plist.get("ExitTimeOut"), &plist::Value::Integer(30));
        assert_eq!(plist.get("WorkingDirectory").string(), profile_dir);
        let env = plist.get("EnvironmentVariables");
        assert_eq!(env.get("RUNNER_PROFILE_DIR").string(), profile_dir);
        assert_eq!(env.get("RUNNER_BROWSER").string(), "cdp");
        assert!(plist
            .get("StandardErrorPath")
            .string()
            .starts_with(&profile_dir));
    }
    let args = |index: usize| -> Vec<String> {
        let plist = plist::parse(&files[index].1).expect("parsed above");
        match plist.get("ProgramArguments") {
            plist::Value::Array(items) => items.iter().map(|i| i.string().to_string()).collect(),
            other => panic!("ProgramArguments is not an array: {other:?}"),
        }
    };
    assert_eq!(args(0)[0], BIN);
    assert_eq!(args(0)[1..], ["daemon"]);
    assert_eq!(args(1)[1..], ["chrome", "--foreground"]);
    assert!(files[0].1.contains("Attach mode"), "{}", files[0].1);
    // Each process logs to its own files.
    let log = |index: usize| {
        plist::parse(&files[index].1)
            .expect("parsed")
            .get("StandardOutPath")
            .string()
            .to_string()
    };
    assert_ne!(log(0), log(1));

    let launch = printed(
        &profile,
        &["--browser-mode", "launch", "service", "launchd"],
    );
    assert_eq!(launch.len(), 1, "launch mode: the daemon alone");
    let plist = plist::parse(&launch[0].1).expect("a plist");
    assert_eq!(plist.get("Label").string(), "com.executor.daemon");
    assert!(launch[0].1.contains("Launch mode"), "{}", launch[0].1);
    assert!(!launch[0].1.contains("Attach mode"));
}

#[test]
fn chrome_in_the_foreground_says_ready_and_closes_its_browser_on_sigterm() {
    let profile = Profile::new("chrome-foreground");
    let socket_path = profile.path("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    socket.set_read_timeout(Some(START)).expect("timeout");
    let port = free_port().to_string();
    let mut cmd = command(
        &profile.dir,
        &["--cdp-port", &port, "chrome", "--foreground"],
    );
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let mut chrome = spawn(cmd);
    let mut buffer = [0u8; 64];
    let n = socket.recv(&mut buffer).expect("READY within the deadline");
    assert_eq!(&buffer[..n], b"READY=1");
    // READY means the DevTools port answers, and the browser is recorded.
    let identity = executor::browser::managed::Identity::read(&profile.path("chrome.json"))
        .expect("chrome.json");
    assert!(identity.is_alive());
    assert_eq!(identity.port.to_string(), port);
    let (status, _) = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(http_get(identity.port, "/json/version"));
    assert_eq!(status, 200, "CDP answers");
    assert!(
        exited(&mut chrome.child, Duration::from_millis(500)).is_none(),
        "it stays in the foreground"
    );

    chrome.signal(libc::SIGTERM);
    let n = socket.recv(&mut buffer).expect("STOPPING");
    assert_eq!(&buffer[..n], b"STOPPING=1");
    assert_eq!(chrome.wait_exit(STOP_BOUND).code(), Some(0));
    assert!(!identity.is_alive(), "the browser went with it");
    assert!(!profile.path("chrome.json").exists());
    assert!(
        chrome
            .lines
            .all()
            .iter()
            .any(|l| l.starts_with("SIGTERM: managed browser")),
        "{:?}",
        chrome.lines.all()
    );
}

#[test]
fn chrome_in_the_foreground_exits_non_zero_when_its_browser_dies() {
    let profile = Profile::new("chrome-foreground-dies");
    let port = free_port().to_string();
    let mut chrome = spawn(command(
        &profile.dir,
        &["--cdp-port", &port, "chrome", "--foreground"],
    ));
    chrome
        .lines
        .wait_for(START, |l| l.starts_with("Managed browser started"));
    let identity = executor::browser::managed::Identity::read(&profile.path("chrome.json"))
        .expect("chrome.json");
    // SAFETY: kill(2) on the browser this test's child started (verified alive and ours above).
    unsafe {
        libc::kill(identity.pid as i32, libc::SIGKILL);
    }
    assert_eq!(
        chrome.wait_exit(STOP_BOUND).code(),
        Some(1),
        "a service manager restarts it on failure"
    );
    assert!(
        chrome
            .lines
            .all()
            .iter()
            .any(|l| l.contains("exited by itself")),
        "{:?}",
        chrome.lines.all()
    );
    assert!(!profile.path("chrome.json").exists());
}

/// Just enough of an XML property-list reader to hold the generated plists to the format: the
/// prolog, comments (which may not contain `--`), and the elements launchd's plists use. Anything
/// else, or anything left over, is an error.
mod plist {
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Dict(BTreeMap<String, Value>),
        Array(Vec<Value>),
        String(String),
        Integer(i64),
        Bool(bool),
    }

    impl Value {
        pub fn get(&self, key: &str) -> &Value {
            match self {
                Value::Dict(map) => map
                    .get(key)
                    .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
                other => panic!("not a dict: {other:?}"),
            }
        }
        pub fn string(&self) -> &str {
            match self {
                Value::String(s) => s,
                other => panic!("not a string: {other:?}"),
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut xml = Xml { rest: text };
        xml.skip("<?xml", "?>")?;
        xml.space_and_comments()?;
        xml.skip("<!DOCTYPE plist", ">")?;
        xml.space_and_comments()?;
        let open = xml.tag()?;
        if open != (Tag::Open("plist".into())) {
            return Err(format!("expected <plist>, found {open:?}"));
        }
        let value = xml.value()?;
        xml.close("plist")?;
        xml.space_and_comments()?;
        if !xml.rest.is_empty() {
            return Err(format!("left over: {:?}", xml.rest));
        }
        Ok(value)
    }

    #[derive(Debug, PartialEq)]
    enum Tag {
        Open(String),
        Close(String),
        Empty(String),
    }

    struct Xml<'a> {
        rest: &'a str,
    }

    impl Xml<'_> {
        fn skip(&mut self, start: &str, end: &str) -> Result<(), String> {
            let after = self
                .rest
                .strip_prefix(start)
                .ok_or_else(|| format!("expected {start:?} at {:?}", head(self.rest)))?;
            let at = after.find(end).ok_or(format!("{start:?} not closed"))?;
            self.rest = &after[at + end.len()..];
            Ok(())
        }

        fn space_and_comments(&mut self) -> Result<(), String> {
            loop {
                self.rest = self.rest.trim_start();
                let Some(after) = self.rest.strip_prefix("<!--") else {
                    return Ok(());
                };
                let end = after.find("-->").ok_or("a comment not closed")?;
                if after[..end].contains("--") {
                    return Err(format!("`--` inside a comment: {:?}", &after[..end]));
                }
                self.rest = &after[end + 3..];
            }
        }

        fn tag(&mut self) -> Result<Tag, String> {
            self.space_and_comments()?;
            let after = self
                .rest
                .strip_prefix('<')
                .ok_or_else(|| format!("expected a tag at {:?}", head(self.rest)))?;
            let end = after.find('>').ok_or("a tag not closed")?;
            let inner = &after[..end];
            self.rest = &after[end + 1..];
            let name = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
            Ok(if let Some(closing) = inner.strip_prefix('/') {
                Tag::Close(name(closing))
            } else if let Some(empty) = inner.strip_suffix('/') {
                Tag::Empty(name(empty))
            } else {
                Tag::Open(name(inner))
            })
        }

        fn close(&mut self, name: &str) -> Result<(), String> {
            match self.tag()? {
                Tag::Close(found) if found == name => Ok(()),
                other => Err(format!("expected </{name}>, found {other:?}")),
            }
        }

        /// The text up to the next tag, which must close `name`.
        fn text(&mut self, name: &str) -> Result<String, String> {
            let end = self.rest.find('<').ok_or("text not closed")?;
            let raw = &self.rest[..end];
            self.rest = &self.rest[end..];
            self.close(name)?;
            let mut text = String::new();
            let mut rest = raw;
            while let Some(at) = rest.find('&') {
                text.push_str(&rest[..at]);
                let semi = rest[at..].find(';').ok_or("an entity not closed")?;
                text.push_str(match &rest[at..at + semi + 1] {
                    "&amp;" => "&",
                    "&lt;" => "<",
                    "&gt;" => ">",
                    "&quot;" => "\"",
                    "&#39;" | "&apos;" => "'",
                    other => return Err(format!("unknown entity {other}")),
                });
                rest = &rest[at + semi + 1..];
            }
            text.push_str(rest);
            Ok(text)
        }

        fn closes(&mut self, name: &str) -> Result<bool, String> {
            self.space_and_comments()?;
            let close = format!("</{name}>");
            Ok(match self.rest.strip_prefix(close.as_str()) {
                Some(after) => {
                    self.rest = after;
                    true
                }
                None => false,
            })
        }

        fn value(&mut self) -> Result<Value, String> {
            Ok(match self.tag()? {
                Tag::Empty(name) if name == "true" => Value::Bool(true),
                Tag::Empty(name) if name == "false" => Value::Bool(false),
                Tag::Open(name) if name == "string" => Value::String(self.text("string")?),
                Tag::Open(name) if name == "integer" => Value::Integer(
                    self.text("integer")?
                        .parse()
                        .map_err(|e| format!("integer: {e}"))?,
                ),
                Tag::Open(name) if name == "array" => {
                    let mut items = Vec::new();
                    while !self.closes("array")? {
                        items.push(self.value()?);
                    }
                    Value::Array(items)
                }
                Tag::Open(name) if name == "dict" => {
                    let mut map = BTreeMap::new();
                    while !self.closes("dict")? {
                        match self.tag()? {
                            Tag::Open(key) if key == "key" => {
                                let key = self.text("key")?;
                                let value = self.value()?;
                                if map.insert(key.clone(), value).is_some() {
                                    return Err(format!("key {key:?} twice"));
                                }
                            }
                            other => return Err(format!("expected <key>, found {other:?}")),
                        }
                    }
                    Value::Dict(map)
                }
                other => return Err(format!("not a plist value: {other:?}")),
            })
        }
    }

    fn head(text: &str) -> String {
        text.chars().take(40).collect()
    }

    #[test]
    fn the_reader_refuses_what_is_not_a_plist() {
        let good = "<?xml version=\"1.0\"?>\n<!DOCTYPE plist PUBLIC \"x\" \"y\">\n<!-- ok -->\n\
                    <plist version=\"1.0\"><dict><key>A</key><string>a &amp; b</string></dict></plist>\n";
        assert_eq!(
            parse(good).expect("good").get("A"),
            &Value::String("a & b".into())
        );
        for bad in [
            good.replace("<!-- ok -->", "<!-- a --flag -->"),
            good.replace("</dict>", ""),
            good.replace("<key>A</key>", ""),
            good.replace("&amp;", "&nbsp;"),
            good.replace("</plist>", "</plist><extra/>"),
            good.replace("<string>a &amp; b</string>", "<date>now</date>"),
        ] {
            assert!(parse(&bad).is_err(), "accepted:\n{bad}");
        }
    }
}
