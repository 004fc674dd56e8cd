//! The README's sandbox quickstart, as a newcomer would run it (issue 14, item 4): a fresh clone
//! of the repository, `cargo install --path .`, then the README's commands in one shell, line
//! by line. The product's promise is checked as stated: the first post is on the sandbox within
//! 10 s of `executor enqueue`.
//!
//! What differs from a person's terminal, and why:
//!
//! - `cargo install` gets `--debug --offline --locked --root DIR`, and its target directory is
//!   seeded with the dependencies this test run already built: a release build of everything
//!   would cost CI minutes and prove nothing more. Only the clone's own crate is compiled.
//! - The sandbox's port (8088) and the CDP port (9222) are swapped for free ones, so that the
//!   test can run beside anything else on the machine, and the profile is a temporary one.
//!   The sandbox's port is swapped on the sandbox's line and in the `curl` URLs only: the other
//!   commands find the sandbox by themselves, as the README says.
//! - A person waits for the sandbox's banner before typing the next line; so does the test.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The promise: the post is on the site within this long after `executor enqueue` returned.
const PROMISE: Duration = Duration::from_secs(10);
/// Building the clone's crate (its dependencies come built).
const INSTALL: Duration = Duration::from_secs(1200);
/// Any other line of the quickstart.
const STEP: Duration = Duration::from_secs(90);

/// The README's heading of the quickstart; its first `bash` block is the script.
const HEADING: &str = "### A first post on the sandbox, within seconds";

/// The lines of the first ```bash block after `heading` in `readme`.
fn quickstart_lines(readme: &str, heading: &str) -> Vec<String> {
    let after = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let block = after
        .split_once("```bash\n")
        .expect("a bash block after the heading")
        .1
        .split_once("```")
        .expect("the block ends")
        .0;
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The target directory of this test run (the one that holds the binary under test).
fn shared_target() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .expect("the binary sits in <target>/debug")
        .to_path_buf()
}

/// Seeds `dest` with the dependencies built in `shared`, once (copies, not links: cargo
/// rewrites files in place). Our own crate is left out: the clone builds its own.
fn seed_target(shared: &Path, dest: &Path) {
    let debug = dest.join("debug");
    if debug.join(".fingerprint").exists() {
        return;
    }
    std::fs::create_dir_all(debug.join("deps")).expect("target dir");
    let source = shared.join("debug");
    let script = format!(
        "cp -a {s}/build {s}/.fingerprint {d}/ && \
         find {s}/deps -maxdepth 1 -type f \\( -name 'lib*' -o -name '*.d' \\) \
              ! -name 'libexecutor-*' -exec cp -a -t {d}/deps {{}} +",
        s = source.display(),
        d = debug.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .expect("run cp");
    assert!(status.success(), "seeding {} failed", dest.display());
}

/// The shell the quickstart runs in, fed one line at a time; each line is followed by a
/// marker with its exit status, awaited with a deadline.
struct Shell {
    running: Running,
    stdin: std::process::ChildStdin,
    steps: usize,
}

impl Shell {
    fn start(dir: &Path, env: &[(&str, String)]) -> Shell {
        let mut command = Command::new("bash");
        command.current_dir(dir);
        without_our_settings(&mut command);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut running = spawn_with_stdin(command, Stdio::piped());
        let stdin = running.child.stdin.take().expect("the shell's stdin");
        Shell {
            running,
            stdin,
            steps: 0,
        }
    }

    /// Runs `line`; panics unless it exits 0 within `deadline`.
    fn run(&mut self, line: &str, deadline: Duration) {
        self.steps += 1;
        let marker = format!("__quickstart_step_{}", self.steps);
        // On a line of its own even after output without a final newline (curl's JSON).
        writeln!(
            self.stdin,
            "{line}\nstatus=$?; printf '\\n%s %s\\n' {marker} \"$status\""
        )
        .expect("write to the shell");
        self.stdin.flush().expect("flush");
        let done = self
            .running
            .lines
            .wait_for(deadline, |l| l.starts_with(&format!("{marker} ")));
        assert_eq!(
            done,
            format!("{marker} 0"),
            "`{line}` failed; output so far:\n{}",
            self.running.lines.all().join("\n")
        );
    }
}

/// Ends what the quickstart started if the test stops half-way: the daemon by its STOP file,
/// the browser by `chrome --stop`, the sandbox by its recorded pid, then the shell.
struct Cleanup<'a> {
    profile: &'a Path,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(self.profile.join("STOP_EXECUTOR"), "");
        let mut stop = command(self.profile, &["chrome", "--stop"]);
        let _ = run(&mut stop, Duration::from_secs(30));
        if let Ok(text) = std::fs::read_to_string(self.profile.join("sandbox.json")) {
            let pid = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["pid"].as_i64());
            if let Some(pid) = pid {
                // SAFETY: kill(2) on the pid our own sandbox recorded.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
    }
}

fn published(sandbox_url: &str) -> String {
    let output = Command::new("curl")
        .args(["-s", &format!("{sandbox_url}/api/posts")])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn the_readme_quickstart_publishes_the_first_post_within_10_seconds_on_a_fresh_clone() {
    let profile = Profile::new("quickstart");
    let work = profile.dir.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let clone = work.join("executor");
    let status = Command::new("git")
        .args(["clone", "--quiet", env!("CARGO_MANIFEST_DIR")])
        .arg(&clone)
        .status()
        .expect("git clone");
    assert!(status.success(), "git clone of the repository failed");
    let readme = std::fs::read_to_string(clone.join("README.md")).expect("the clone's README");
    let lines = quickstart_lines(&readme, HEADING);
    assert!(
        lines[0].starts_with("cargo install --path . "),
        "the quickstart installs first: {:?}",
        lines[0]
    );

    let target = shared_target().join("quickstart");
    seed_target(&shared_target(), &target);
    let root = work.join("installed");
    let sandbox_port = free_port();
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Shell::start(
        &clone,
        &[
            ("PATH", path),
            ("CARGO_TARGET_DIR", target.display().to_string()),
            ("RUNNER_PROFILE_DIR", profile.dir.display().to_string()),
            ("CDP_PORT", free_port().to_string()),
        ],
    );
    let _cleanup = Cleanup {
        profile: &profile.dir,
    };

    shell.run(
        &format!(
            "cargo install --path . --debug --offline --locked --root {}",
            root.display()
        ),
        INSTALL,
    );
    assert!(
        root.join("bin/executor").is_file(),
        "cargo install put no binary in place"
    );
    let mut enqueued = false;
    for line in &lines[1..] {
        let line = line
            .replace(
                "executor sandbox &",
                &format!("executor sandbox --port {sandbox_port} &"),
            )
            .replace("127.0.0.1:8088", &format!("127.0.0.1:{sandbox_port}"));
        shell.run(&line, STEP);
        if line.starts_with("executor sandbox") {
            shell
                .running
                .lines
                .wait_for(STEP, |l| l.starts_with("Sandbox serving on"));
        }
        if line.starts_with("executor enqueue") {
            // The promise, counted from the moment the enqueue returned.
            let since = Instant::now();
            let first = poll(PROMISE, || {
                published(&sandbox_url)
                    .contains("Hello from executor")
                    .then(Instant::now)
            });
            let Some(first) = first else {
                panic!(
                    "no post on the sandbox {PROMISE:?} after the enqueue; output:\n{}",
                    shell.running.lines.all().join("\n")
                );
            };
            eprintln!(
                "first post on the sandbox {:.1} s after `executor enqueue` returned",
                (first - since).as_secs_f64()
            );
            enqueued = true;
        }
    }
    assert!(enqueued, "the quickstart enqueues a post");
    assert!(
        shell
            .running
            .lines
            .all()
            .iter()
            .any(|l| l.contains("Hello from executor") && l.contains("\"id\"")),
        "the README's `curl …/api/posts` shows the post"
    );
    writeln!(shell.stdin, "wait; exit").expect("write to the shell");
    let status = shell.running.wait_exit(STEP);
    assert!(status.success(), "the shell ended with {status}");
    assert!(
        !profile.dir.join("sandbox.json").exists(),
        "the sandbox removed its address when it ended"
    );
}
