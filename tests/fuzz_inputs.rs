//! Random hostile input (issue 11): settings through every source, durations and times,
//! `executor.toml`, site files, lock-file contents and bulk lines. Whatever comes in, nothing
//! panics, an error is one bounded line, and the binary answers bad input with exit 2.
//!
//! The inputs come from a small seeded generator (no dependency): values people mistype or
//! attackers craft — huge numbers, units, newlines and control characters, forged log lines,
//! invalid UTF-8 stand-ins, very long values, TOML and JSON fragments. A failure prints the
//! seed and the input, so it can be replayed.

mod common;

use common::*;
use executor::settings::{self, Layer, SETTINGS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// xorshift64*: deterministic, seeded per target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "18446744073709551615",
    "99999999999999999999999",
    "9223372036854775808",
    "1e400",
    "NaN",
    "inf",
    "0.5",
    "h",
    "ms",
    "s",
    "m",
    "d",
    "99999999h",
    "366d",
    "367d",
    "1m30s",
    "2GiB",
    "1.5",
    "true",
    "yes",
    "off",
    "launch",
    "attach",
    "x",
    "sandbox",
    "none",
    "\n",
    "\r\n",
    "\t",
    "\u{0}",
    "\u{1b}[31m",
    "\u{200B}",
    "\u{FEFF}",
    "é",
    "字",
    "😀",
    "\u{202E}",
    "[EXECUTOR_DAEMON] ts=2026-01-01T00:00:00.000Z pages=7",
    "postgres://",
    "postgres://u@127.0.0.1:1/db?pgbouncer=true",
    "sqlite://",
    "sqlite:///dev/zero",
    "/dev/zero",
    "/etc/passwd",
    "0.0.0.0:9464",
    "127.0.0.1:0",
    "[::]:1",
    "10.0.0.1",
    "::1",
    "\"",
    "'",
    "=",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "#",
    "\\",
    "${HOME}",
    "%s%n",
    "1:2",
    "4294967296:1",
];

/// A value: a few pieces, sometimes one repeated into a long value.
fn value(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..1 + rng.below(4) {
        out.push_str(rng.pick(PIECES));
    }
    if rng.below(20) == 0 {
        out = out.repeat(1 + rng.below(5000));
    }
    out
}

/// Runs `f`, failing the test with the input if it panics.
fn no_panic<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(_) => panic!("{what} panicked on {}", shown(input)),
    }
}

/// The start of an input, for a failure message.
fn shown(input: &str) -> String {
    let cut: String = input.chars().take(300).collect();
    if cut.len() < input.len() {
        format!("{cut:?}… ({} bytes)", input.len())
    } else {
        format!("{cut:?}")
    }
}

/// An error shown to the operator: one line, bounded, and not one that starts like a tick line
/// (inside a quoted value a forged line is harmless; at the start of a line it would be counted).
fn one_line(what: &str, input: &str, message: &str) {
    let input = shown(input);
    let input = input.as_str();
    assert_eq!(
        message.lines().count(),
        1,
        "{what} on {input:?}: not one line: {message:?}"
    );
    assert!(
        message.len() < 8192,
        "{what} on {input:?}: {} bytes",
        message.len()
    );
    assert!(
        !message.starts_with("[EXECUTOR_DAEMON] ts="),
        "{what} on {input:?}: a forged line survives: {message:?}"
    );
}

#[test]
fn settings_from_flags_variables_and_the_file_never_panic_and_fail_in_one_line() {
    let profile = Profile::new("fuzz-settings");
    let mut rng = Rng(0x5EED_0001);
    for round in 0..3000 {
        let info = SETTINGS[rng.below(SETTINGS.len())];
        let raw = value(&mut rng);
        let what = format!("round {round}: {}", info.key);
        // As a flag.
        let mut flags = Layer::default();
        flags.flag(info.key, Some(raw.clone()));
        let result = no_panic(&what, &raw, || {
            settings::resolve(Some(profile.dir.clone()), &flags, &|_| None)
        });
        if let Err(err) = result {
            one_line(&what, &raw, &err.to_string());
        }
        // As its environment variable.
        let env = info.env;
        let result = no_panic(&what, &raw, || {
            settings::resolve(Some(profile.dir.clone()), &Layer::default(), &|name| {
                (name == env).then(|| raw.clone())
            })
        });
        if let Err(err) = result {
            one_line(&what, &raw, &err.to_string());
        }
        // As a line of executor.toml, or the whole file.
        if round % 3 == 0 {
            let text = match rng.below(3) {
                0 => format!("{} = \"{}\"\n", info.key, raw.replace('"', "\\\"")),
                1 => format!("{} = {raw}\n", info.key),
                _ => raw.clone(),
            };
            let path = profile.path("executor.toml");
            std::fs::write(&path, &text).expect("write executor.toml");
            let result = no_panic(&what, &text, || Layer::from_file(&path));
            if let Err(err) = result {
                one_line(&what, &text, &err.to_string());
            }
        }
    }
}

#[test]
fn durations_times_and_lock_contents_never_panic() {
    let mut rng = Rng(0x5EED_0002);
    let now = std::time::SystemTime::now();
    for round in 0..20_000 {
        let raw = value(&mut rng);
        let what = format!("round {round}");
        if let Ok(duration) = no_panic(&what, &raw, || settings::parse_duration(&raw)) {
            assert!(duration <= settings::LONGEST_DURATION, "{raw:?}");
            // What the daemon does with a duration must not overflow either.
            no_panic(&what, &raw, || {
                let _ = std::time::Instant::now() + duration;
                executor::clock::format_ts(now + duration)
            });
        }
        no_panic(&what, &raw, || executor::lock::LockOwner::parse(&raw));
        no_panic(&what, &raw, || executor::clock::parse_ts(&raw));
        let _ = no_panic(&what, &raw, || settings::parse_bytes(&raw));
    }
}

#[test]
fn site_files_never_panic_and_fail_in_one_line() {
    let profile = Profile::new("fuzz-sites");
    let x = include_str!("../sites/x.toml");
    let lines: Vec<&str> = x.lines().collect();
    let mut rng = Rng(0x5EED_0003);
    for round in 0..400 {
        // The built-in definition with a few lines replaced, cut or mangled.
        let mut mangled: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(mangled.len());
            mangled[at] = match rng.below(4) {
                0 => value(&mut rng),
                1 => match mangled[at].split_once(" = ") {
                    Some((key, _)) => format!("{key} = {}", value(&mut rng)),
                    None => value(&mut rng),
                },
                2 => match mangled[at].split_once(" = ") {
                    Some((key, _)) => format!("{key} = '{}'", value(&mut rng).replace('\'', "")),
                    None => String::new(),
                },
                _ => String::new(),
            };
        }
        let text = mangled.join("\n");
        let path = profile.path("site.toml");
        std::fs::write(&path, &text).expect("write site file");
        let what = format!("round {round}");
        let loaded = no_panic(&what, &text, || {
            executor::sites::SiteDefinition::load(path.to_str().expect("utf-8"))
        });
        if let Err(err) = loaded {
            one_line(&what, &text, &err.to_string());
        }
    }
}

/// Through the binary: random values for a few settings and arguments, and random bulk lines.
/// Bad input is exit 2 with one line on stderr, never 101 (a panic).
#[test]
fn the_binary_answers_random_bad_input_with_exit_2_and_one_line() {
    let profile = Profile::new("fuzz-binary");
    let mut rng = Rng(0x5EED_0004);
    let deadline = Duration::from_secs(20);
    for round in 0..120 {
        // An argument or variable holds at most 128 KiB (the kernel's limit), and no NUL.
        let raw: String = value(&mut rng)
            .replace('\u{0}', "")
            .chars()
            .take(30_000)
            .collect();
        let (mut cmd, what) = match rng.below(4) {
            0 => {
                let info = SETTINGS[rng.below(SETTINGS.len())];
                let mut cmd = command(&profile.dir, &["jobs"]);
                cmd.env(info.env, &raw);
                (cmd, format!("round {round}: {}={raw:?} jobs", info.env))
            }
            1 => (
                command(&profile.dir, &["enqueue", "post", "hello", "--at", &raw]),
                format!("round {round}: enqueue --at {raw:?}"),
            ),
            2 => (
                command(&profile.dir, &["enqueue", "reply", "--to", &raw, "hi"]),
                format!("round {round}: enqueue reply --to {raw:?}"),
            ),
            _ => (
                command(&profile.dir, &["events", "--since", &raw]),
                format!("round {round}: events --since {raw:?}"),
            ),
        };
        cmd.env_remove("EXECUTOR_TEST_SKIP_LOG");
        let (code, stdout, stderr) = run_with_stdin(cmd, "", deadline);
        assert_ne!(code, 101, "{what}: panicked: {stderr}");
        if code != 0 {
            assert_eq!(code, 2, "{what}: {stdout}{stderr}");
            one_line(&what, &raw, stderr.trim());
        }
    }
    for round in 0..40 {
        let mut input = String::new();
        for _ in 0..1 + rng.below(5) {
            let line = match rng.below(4) {
                0 => format!(
                    "{{\"kind\":\"post\",\"text\":{}}}",
                    serde_json::Value::String(value(&mut rng))
                ),
                1 => format!(
                    "{{\"kind\":{},\"text\":\"hi\",\"at\":{}}}",
                    serde_json::Value::String(value(&mut rng)),
                    serde_json::Value::String(value(&mut rng))
                ),
                2 => value(&mut rng),
                _ => "{\"kind\":\"post\",\"text\":\"fine\"}".to_string(),
            };
            input.push_str(&line.replace('\n', " "));
            input.push('\n');
        }
        let what = format!("bulk round {round}");
        let (code, stdout, stderr) = run_with_stdin(
            command(&profile.dir, &["enqueue", "bulk"]),
            &input,
            deadline,
        );
        assert_ne!(code, 101, "{what}: panicked on {}: {stderr}", shown(&input));
        assert!(
            code == 0 || code == 2,
            "{what} on {}: {stdout}{stderr}",
            shown(&input)
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
}
