//! `executor enqueue bulk` is all or nothing while storing too, not only while checking: the
//! batch is one transaction, so SIGTERM or a full disk in the middle of it leaves no job at all,
//! and idempotency keys answer per line as single enqueues do. On SQLite and PostgreSQL.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// The stores to run against: the profile's SQLite file, and a PostgreSQL schema when configured.
async fn databases(profile: &Profile) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}", profile.db().display())];
    if let Some(base) = postgres_base_url() {
        urls.push(postgres_schema(&base).await);
    }
    urls
}

fn executor(profile: &Profile, database: &str, args: &[&str]) -> Command {
    let mut all = vec!["--database", database];
    all.extend_from_slice(args);
    command(&profile.dir, &all)
}

/// A batch file of `lines` posts, each text `text_chars` long (and distinct).
fn batch_file(dir: &Path, lines: usize, text_chars: usize) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(format!("batch-{lines}.jsonl"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("batch file"));
    for n in 0..lines {
        let text = format!("{n:08} {}", "x".repeat(text_chars.saturating_sub(9)));
        writeln!(file, r#"{{"kind":"post","text":"{text}"}}"#).expect("write batch");
    }
    file.flush().expect("flush batch");
    path
}

/// How many jobs the store holds, read directly (not through the binary under test).
async fn job_count(database: &str) -> i64 {
    match database.strip_prefix("sqlite://") {
        Some(path) => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open the SQLite store");
            conn.query_row("SELECT COUNT(*) FROM jobs", [], |row| row.get(0))
                .expect("count jobs")
        }
        None => postgres_client(database)
            .await
            .query_one("SELECT COUNT(*) FROM jobs", &[])
            .await
            .expect("count jobs")
            .get(0),
    }
}

/// Lines of the output that are the command's `error:` line.
fn error_lines(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("error: ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_the_middle_of_a_large_batch_leaves_no_job() {
    let profile = Profile::new("bulk-sigterm");
    const LINES: usize = 200_000;
    let batch = batch_file(&profile.dir, LINES, 60);
    for db in databases(&profile).await {
        let input = std::fs::File::open(&batch).expect("open batch");
        let mut running = spawn_with_stdin(
            executor(&profile, &db, &["enqueue", "bulk"]),
            Stdio::from(input),
        );
        // The progress line says jobs were written and the batch is not done: the process is
        // inside the transaction.
        let progress = tokio::task::spawn_blocking({
            let lines = running.lines.clone();
            move || lines.wait_for(DEADLINE, |l| l.starts_with("storing: "))
        })
        .await
        .expect("join");
        running.signal(libc::SIGTERM);
        let status = tokio::task::spawn_blocking(move || {
            let status = running.wait_exit(DEADLINE);
            (status, running.lines.all())
        })
        .await
        .expect("join");
        let (status, lines) = status;
        assert_eq!(status.code(), Some(1), "{db}: {lines:#?}");
        let errors = error_lines(&lines);
        assert_eq!(errors.len(), 1, "{db}: one error line: {lines:#?}");
        assert!(
            errors[0].contains("interrupted by SIGTERM")
                && errors[0].contains("nothing was queued"),
            "{db}: {}",
            errors[0]
        );
        assert!(
            !lines.iter().any(|l| l.contains("Queued job")),
            "{db}: nothing may be said queued: {progress}"
        );
        assert_eq!(
            job_count(&db).await,
            0,
            "{db}: no job stored after SIGTERM during `{progress}`"
        );
    }
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// `None` (with the skip recorded) where a tmpfs cannot be mounted (not root, no mount).
    fn mount(dir: std::path::PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&dir).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                skipped(&format!(
                    "cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                None
            }
            Err(err) => {
                skipped(&format!("cannot run mount: {err}"));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_in_the_middle_of_a_batch_leaves_no_job_and_says_so() {
    let profile = Profile::new("bulk-full-disk");
    let Some(disk) = Tmpfs::mount(profile.path("small-disk"), "2m") else {
        return;
    };
    // About 5 MB of jobs for a 2 MiB disk: it fills up well after the first chunks were written.
    let batch = batch_file(&profile.dir, 20_000, 250);
    let db = format!("sqlite://{}", disk.dir.join("executor.db").display());
    let input = std::fs::File::open(&batch).expect("open batch");
    let mut running = spawn_with_stdin(
        executor(&profile, &db, &["enqueue", "bulk"]),
        Stdio::from(input),
    );
    let status = running.wait_exit(DEADLINE);
    let lines = running.lines.all();
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    let errors = error_lines(&lines);
    assert_eq!(errors.len(), 1, "one error line: {lines:#?}");
    assert!(
        errors[0].starts_with("error: the disk is full")
            && errors[0].contains("nothing was queued"),
        "{}",
        errors[0]
    );
    assert!(
        !lines.iter().any(|l| l.contains("Queued job")),
        "{lines:#?}"
    );
    assert_eq!(job_count(&db).await, 0, "no job stored on a full disk");
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_keys_in_a_batch_answer_per_line_as_single_enqueues_do() {
    let profile = Profile::new("bulk-keys");
    for db in databases(&profile).await {
        let (code, output) = run(
            &mut executor(&profile, &db, &["enqueue", "post", "before", "--key", "k2"]),
            DEADLINE,
        );
        assert_eq!(code, 0, "{output}");
        let input = [
            r#"{"kind":"post","text":"first","key":"k1"}"#,
            r#"{"kind":"post","text":"no key"}"#,
            "",
            r#"{"kind":"post","text":"again","key":"k1"}"#,
            r#"{"kind":"reply","to":"77","text":"taken earlier","key":"k2"}"#,
        ]
        .join("\n");
        let (code, stdout, stderr) = run_with_stdin(
            executor(&profile, &db, &["enqueue", "bulk"]),
            &input,
            DEADLINE,
        );
        assert_eq!(code, 0, "{db}: {stdout}{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 4, "{db}: one line per job: {stdout}");
        assert!(lines[0].starts_with("line 1: Queued job "), "{stdout}");
        assert!(lines[1].starts_with("line 2: Queued job "), "{stdout}");
        // The repeat within the batch names the job of line 1.
        let first_id = lines[0]
            .trim_start_matches("line 1: Queued job ")
            .split(' ')
            .next()
            .expect("an id");
        assert_eq!(
            lines[2],
            format!("line 4: Job {first_id} already has key \"k1\" (queued); nothing was added"),
            "{db}"
        );
        assert!(
            lines[3].starts_with("line 5: Job ") && lines[3].contains("key \"k2\""),
            "{db}: {stdout}"
        );
        assert_eq!(job_count(&db).await, 3, "{db}: before, first, no key");

        // Run again: every keyed line is a no-op, the unkeyed one is a new job.
        let (code, stdout, stderr) = run_with_stdin(
            executor(&profile, &db, &["enqueue", "bulk"]),
            &input,
            DEADLINE,
        );
        assert_eq!(code, 0, "{db}: {stdout}{stderr}");
        assert_eq!(
            stdout.matches("nothing was added").count(),
            3,
            "{db}: {stdout}"
        );
        assert_eq!(job_count(&db).await, 4, "{db}");
    }
}
