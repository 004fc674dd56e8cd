//! Producers on other machines enqueue through the SQL function `executor_enqueue(…)` that the
//! PostgreSQL migrations create (docs/producers.md). It must answer as `executor enqueue` does:
//! the same jobs stored, the same refusals with the same words, the same idempotency keys. Each
//! test puts the function and the real binary side by side on one PostgreSQL schema.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::Client;

const DEADLINE: Duration = Duration::from_secs(60);

/// What `executor enqueue` answered: the job (from `--json`), or its one error line.
#[derive(Debug)]
enum CliAnswer {
    Job { id: i64, created: bool },
    Refused { code: i32, line: String },
}

/// Runs `executor --database DATABASE --site SITE enqueue ARGS…` with `input` on stdin.
fn cli(profile: &Profile, database: &str, site: &str, args: &[&str], input: &str) -> CliAnswer {
    let mut all = vec!["--database", database, "--site", site, "enqueue"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run_with_stdin(command(&profile.dir, &all), input, DEADLINE);
    if code == 0 {
        let json: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("enqueue --json printed {stdout:?}: {e}"));
        return CliAnswer::Job {
            id: json["job"]["id"].as_i64().expect("job id"),
            created: json["created"].as_bool().expect("created"),
        };
    }
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: ") || l.starts_with("line 1: rejected: "))
        .unwrap_or_else(|| panic!("no error line from enqueue {args:?} (exit {code}): {stderr}"))
        .to_string();
    CliAnswer::Refused { code, line }
}

/// What the function answered: the job, or the error as SQLSTATE, message and parameter.
#[derive(Debug)]
enum SqlAnswer {
    Job {
        id: i64,
        created: bool,
    },
    Refused {
        code: String,
        message: String,
        column: Option<String>,
    },
}

/// One producer's call, in named notation as docs/producers.md shows it.
#[derive(Default)]
struct Call<'a> {
    kind: &'a str,
    text: &'a str,
    reply_to: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    length_count: Option<&'a str>,
}

async fn sql(client: &Client, call: &Call<'_>) -> SqlAnswer {
    let result = client
        .query_one(
            "SELECT id, created FROM executor_enqueue(kind => $1, text => $2, reply_to => $3,
                 idempotency_key => $4, length_count => COALESCE($5, 'weighted'))",
            &[
                &call.kind,
                &call.text,
                &call.reply_to,
                &call.idempotency_key,
                &call.length_count,
            ],
        )
        .await;
    match result {
        Ok(row) => SqlAnswer::Job {
            id: row.get(0),
            created: row.get(1),
        },
        Err(err) => {
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("not a database error: {err}"));
            SqlAnswer::Refused {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                column: db.column().map(str::to_string),
            }
        }
    }
}

/// A fresh PostgreSQL schema, migrated as every executor migrates its store (the function is
/// there); `None`, with the skip recorded, without PostgreSQL.
async fn migrated_schema() -> Option<String> {
    let db = postgres_schema(&postgres_base_url()?).await;
    executor::store::open(&executor::settings::DatabaseUrl::Postgres(db.clone()))
        .await
        .expect("migrate");
    Some(db)
}

async fn job_count(client: &Client) -> i64 {
    client
        .query_one("SELECT COUNT(*) FROM jobs", &[])
        .await
        .expect("count jobs")
        .get(0)
}

/// The stored columns that a producer decides, or that enqueue sets, of one job.
async fn stored(client: &Client, id: i64) -> Value {
    let row = client
        .query_one(
            "SELECT kind, text, reply_to, account, idempotency_key, state, attempts, max_attempts,
                    not_before <= now() AS due, created_at = updated_at AS untouched
             FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("read the job");
    serde_json::json!({
        "kind": row.get::<_, String>(0),
        "text": row.get::<_, String>(1),
        "reply_to": row.get::<_, Option<String>>(2),
        "account": row.get::<_, String>(3),
        "key": row.get::<_, Option<String>>(4),
        "state": row.get::<_, String>(5),
        "attempts": row.get::<_, i32>(6),
        "max_attempts": row.get::<_, i32>(7),
        "due": row.get::<_, bool>(8),
        "untouched": row.get::<_, bool>(9),
    })
}

/// Both refused the same input, in the same words: the CLI's line is the function's message
/// with the CLI's frame around it.
fn same_refusal(what: &str, cli: &CliAnswer, sql: &SqlAnswer, parameter: &str) {
    let (
        CliAnswer::Refused { code, line },
        SqlAnswer::Refused {
            code: state,
            message,
            column,
        },
    ) = (cli, sql)
    else {
        panic!("{what}: both must refuse; CLI: {cli:?}; SQL: {sql:?}");
    };
    assert_eq!(*code, 2, "{what}: the CLI's exit code for bad input");
    assert_eq!(state, "22023", "{what}: SQLSTATE invalid_parameter_value");
    assert_eq!(
        column.as_deref(),
        Some(parameter),
        "{what}: the parameter at fault"
    );
    let framed = [
        format!("error: {message}; nothing was queued"),
        format!("line 1: rejected: {message}"),
    ];
    assert!(
        framed.contains(line),
        "{what}: the CLI said {line:?}, the function {message:?}"
    );
}

/// One input both doors must refuse: what it is, the CLI's `--site`, its arguments after
/// `enqueue` and its stdin, the producer's call, and the parameter at fault.
type Refusal<'a> = (&'a str, &'a str, Vec<&'a str>, &'a str, Call<'a>, &'a str);

fn created(answer: &CliAnswer) -> i64 {
    match answer {
        CliAnswer::Job { id, created: true } => *id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

fn sql_created(answer: &SqlAnswer) -> i64 {
    match answer {
        SqlAnswer::Job { id, created: true } => *id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_function_stores_and_refuses_as_executor_enqueue_does() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let profile = Profile::new("producers");
    let db = postgres_schema(&base).await;
    // The binary migrates the schema: the function exists once any command has opened it.
    let first = cli(
        &profile,
        &db,
        "x",
        &["post", "--json", "hello from the CLI"],
        "",
    );
    let client = postgres_client(&db).await;

    // A post, and a reply to a post given by its URL: the same rows.
    let by_cli = created(&first);
    let by_sql = sql_created(
        &sql(
            &client,
            &Call {
                kind: "post",
                text: "hello from the CLI",
                ..Call::default()
            },
        )
        .await,
    );
    assert_eq!(stored(&client, by_cli).await, stored(&client, by_sql).await);
    let target = " https://x.com/someone/status/1234567890?s=20 ";
    let by_cli = created(&cli(
        &profile,
        &db,
        "x",
        &["reply", "--json", "--to", target, "thanks!"],
        "",
    ));
    let by_sql = sql_created(
        &sql(
            &client,
            &Call {
                kind: "reply",
                text: "thanks!",
                reply_to: Some(target),
                ..Call::default()
            },
        )
        .await,
    );
    let reply = stored(&client, by_sql).await;
    assert_eq!(
        reply["reply_to"], "1234567890",
        "the target is stored as its id"
    );
    assert_eq!(stored(&client, by_cli).await, reply);

    // A repeated key returns the job that has it, whichever door made it.
    let keyed = created(&cli(
        &profile,
        &db,
        "x",
        &["post", "--json", "--key", "planner-1", "first"],
        "",
    ));
    let before = job_count(&client).await;
    let again = sql(
        &client,
        &Call {
            kind: "post",
            text: "second",
            idempotency_key: Some("planner-1"),
            ..Call::default()
        },
    )
    .await;
    assert!(
        matches!(again, SqlAnswer::Job { id, created: false } if id == keyed),
        "the CLI's key through SQL: {again:?}"
    );
    let keyed = sql_created(
        &sql(
            &client,
            &Call {
                kind: "post",
                text: "third",
                idempotency_key: Some("planner-2"),
                ..Call::default()
            },
        )
        .await,
    );
    let again = cli(
        &profile,
        &db,
        "x",
        &["post", "--json", "--key", "planner-2", "fourth"],
        "",
    );
    assert!(
        matches!(again, CliAnswer::Job { id, created: false } if id == keyed),
        "the function's key through the CLI: {again:?}"
    );
    assert_eq!(job_count(&client).await, before + 1, "one job per key");
    assert_eq!(stored(&client, keyed).await["text"], "third");

    // Refusals: the same words, nothing stored.
    let before = job_count(&client).await;
    let cjk = "字".repeat(141); // 141 characters, 282 as x.com counts
    let long = "a".repeat(281);
    let key = "k".repeat(201);
    let refusals: Vec<Refusal> = vec![
        (
            "too long as x.com counts",
            "x",
            vec!["post", &cjk],
            "",
            Call {
                kind: "post",
                text: &cjk,
                ..Call::default()
            },
            "text",
        ),
        (
            "too long in characters (the sandbox counts characters)",
            "sandbox",
            vec!["post", &long],
            "",
            Call {
                kind: "post",
                text: &long,
                length_count: Some("chars"),
                ..Call::default()
            },
            "text",
        ),
        (
            "a bad reply target",
            "x",
            vec!["reply", "--to", "not a post", "hi"],
            "",
            Call {
                kind: "reply",
                text: "hi",
                reply_to: Some("not a post"),
                ..Call::default()
            },
            "reply_to",
        ),
        (
            "a bad kind (the CLI's bulk lines name the kind)",
            "x",
            vec!["bulk"],
            "{\"kind\":\"repost\",\"text\":\"hi\"}\n",
            Call {
                kind: "repost",
                text: "hi",
                ..Call::default()
            },
            "kind",
        ),
        (
            "an invisible text",
            "x",
            vec!["post", " \u{200B}\n"],
            "",
            Call {
                kind: "post",
                text: " \u{200B}\n",
                ..Call::default()
            },
            "text",
        ),
        (
            "a post with a target",
            "x",
            vec!["bulk"],
            "{\"kind\":\"post\",\"to\":\"12\",\"text\":\"hi\"}\n",
            Call {
                kind: "post",
                text: "hi",
                reply_to: Some("12"),
                ..Call::default()
            },
            "reply_to",
        ),
        (
            "a key too long",
            "x",
            vec!["post", "--key", &key, "hi"],
            "",
            Call {
                kind: "post",
                text: "hi",
                idempotency_key: Some(&key),
                ..Call::default()
            },
            "idempotency_key",
        ),
    ];
    for (what, site, args, input, call, parameter) in &refusals {
        same_refusal(
            what,
            &cli(&profile, &db, site, args, input),
            &sql(&client, call).await,
            parameter,
        );
    }
    assert_eq!(
        job_count(&client).await,
        before,
        "a refused job stores nothing"
    );

    // The count is the site's: 141 CJK characters are too long for x.com and fine for the
    // sandbox, through both doors.
    let by_cli = created(&cli(
        &profile,
        &db,
        "sandbox",
        &["post", "--json", &cjk],
        "",
    ));
    let by_sql = sql_created(
        &sql(
            &client,
            &Call {
                kind: "post",
                text: &cjk,
                length_count: Some("chars"),
                ..Call::default()
            },
        )
        .await,
    );
    assert_eq!(stored(&client, by_cli).await, stored(&client, by_sql).await);
}

/// The function's twins of the Rust rules (length, blankness, reply target) give the Rust
/// answers, on the texts that make those rules hard and on random mixes of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_length_and_target_rules_are_the_rust_ones() {
    use executor::length::{is_blank, length, Count};
    let Some(db) = migrated_schema().await else {
        return;
    };
    let client = postgres_client(&db).await;

    let pieces = [
        "a",
        "Z",
        " ",
        "\n",
        "\t",
        "é",
        "字",
        "😀",
        "🏽",
        "\u{200D}",
        "\u{FE0F}",
        "\u{FE0E}",
        "🇫",
        "🇷",
        "\u{20E3}",
        "\u{3000}",
        "\u{1680}",
        "\u{2028}",
        "\u{00A0}",
        "\u{0085}",
        "\u{200B}",
        "\u{2060}",
        "\u{E0020}",
        "\u{E0067}",
        "\u{2010}",
        "\u{2032}",
        "\u{2019}",
        "\u{1100}",
        "\u{10FF}",
        "https://",
        "HTTP://",
        "www.",
        "WWW.x",
        "http://a.co/",
        "x.com",
        "👨",
        "👩",
        "❤",
        "1",
        "#",
        "\u{00AD}",
        "\u{180E}",
        "\u{FFA0}",
    ];
    let mut rng = fastrand::Rng::with_seed(14);
    let mut texts: Vec<String> = vec![
        String::new(),
        "hello world".into(),
        "see https://example.com/a/very/long/path?with=query".into(),
        "👨\u{200D}👩\u{200D}👧".into(),
        "🇫🇷🇫".into(),
        "https://".into(),
        "https://x".into(),
        "http://ab".into(),
        "www.ab".into(),
        "www.abc".into(),
    ];
    for _ in 0..600 {
        let n = rng.usize(0..14);
        texts.push((0..n).map(|_| pieces[rng.usize(..pieces.len())]).collect());
    }
    let rows = client
        .query(
            "SELECT t, executor_text_length(t, 'weighted'), executor_text_length(t, 'chars'),
                    executor_text_is_blank(t)
             FROM unnest($1::text[]) AS t",
            &[&texts],
        )
        .await
        .expect("lengths");
    assert_eq!(rows.len(), texts.len());
    for row in rows {
        let text: String = row.get(0);
        let (weighted, chars, blank): (i32, i32, bool) = (row.get(1), row.get(2), row.get(3));
        assert_eq!(
            weighted as usize,
            length(&text, Count::Weighted),
            "weighted length of {text:?}"
        );
        assert_eq!(
            chars as usize,
            length(&text, Count::Chars),
            "characters of {text:?}"
        );
        assert_eq!(blank, is_blank(&text), "blankness of {text:?}");
    }

    let targets: Vec<String> = [
        "123",
        " 123 ",
        "\u{3000}123\n",
        "https://x.com/a/status/123",
        "https://x.com/a/status/123/",
        "https://x.com/a/status/123?s=1#top",
        "http://127.0.0.1:8080/status/7",
        "https://x.com/i/status/abc_DEF-9",
        "https://x.com/a/123",
        "https://x.com/a/status/",
        "https://x.com/a/status/12 3",
        "https://x.com/a/status/ü",
        "https://",
        "HTTPS://x.com/a/status/1",
        "ftp://x/status/1",
        "not a url",
        "",
        "ünicode",
        &"a".repeat(64),
        &"a".repeat(65),
        &format!("https://x.com/a/status/{}", "9".repeat(65)),
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let rows = client
        .query(
            "SELECT t, executor_reply_target(t) FROM unnest($1::text[]) AS t",
            &[&targets],
        )
        .await
        .expect("targets");
    for row in rows {
        let target: String = row.get(0);
        let id: Option<String> = row.get(1);
        assert_eq!(
            id,
            executor::jobs::parse_target(&target).ok(),
            "reply target {target:?}"
        );
    }
}

/// Producers racing with one key make one job, and every one of them is answered with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_racing_with_one_key_make_one_job() {
    let Some(db) = migrated_schema().await else {
        return;
    };
    let mut calls = Vec::new();
    for n in 0..8 {
        let db = db.clone();
        calls.push(tokio::spawn(async move {
            let client = postgres_client(&db).await;
            let text = format!("race {n}");
            sql(
                &client,
                &Call {
                    kind: "post",
                    text: &text,
                    idempotency_key: Some("the-one-key"),
                    ..Call::default()
                },
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    let mut new = 0;
    for call in calls {
        match call.await.expect("producer task") {
            SqlAnswer::Job { id, created } => {
                ids.push(id);
                new += usize::from(created);
            }
            refused => panic!("refused: {refused:?}"),
        }
    }
    assert_eq!(new, 1, "exactly one producer made the job");
    ids.dedup();
    assert_eq!(ids.len(), 1, "every producer got the same job: {ids:?}");
    assert_eq!(job_count(&postgres_client(&db).await).await, 1);
}

/// A producer's role needs EXECUTE on the function and nothing else: with it, it enqueues and
/// still cannot read or change `jobs`; without it, it cannot enqueue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_role_enqueues_through_the_function_and_cannot_touch_jobs() {
    let Some(db) = migrated_schema().await else {
        return;
    };
    let admin = postgres_client(&db).await;
    let schema: String = admin
        .query_one("SELECT current_schema()", &[])
        .await
        .expect("schema")
        .get(0);
    let role = format!("p_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {role};"
        ))
        .await
        .expect("create the producer's role");
    // The same server and schema, as the producer's role (the test server trusts local users).
    let as_producer = {
        let (head, tail) = db.split_once("://").expect("a URL");
        let host = tail.split_once('@').map_or(tail, |(_, host)| host);
        format!("{head}://{role}@{host}")
    };
    let producer = postgres_client(&as_producer).await;
    let call = Call {
        kind: "post",
        text: "from the planner",
        ..Call::default()
    };
    let refused = sql(&producer, &call).await;
    assert!(
        matches!(&refused, SqlAnswer::Refused { code, .. } if code == "42501"),
        "without EXECUTE: {refused:?}"
    );
    admin
        .batch_execute(&format!(
            "GRANT EXECUTE ON FUNCTION {schema}.executor_enqueue(text, text, text, text, timestamptz, text, integer, text) TO {role}"
        ))
        .await
        .expect("grant");
    let id = sql_created(&sql(&producer, &call).await);
    assert_eq!(stored(&admin, id).await["text"], "from the planner");
    for statement in ["SELECT COUNT(*) FROM jobs", "DELETE FROM jobs"] {
        let err = producer
            .batch_execute(statement)
            .await
            .expect_err("the producer's role has no rights on jobs");
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("42501"),
            "{statement}: {err}"
        );
    }
    drop(producer);
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await
        .expect("drop the producer's role");
}

/// A producer may give the function a larger limit than the site's (docs/producers.md), and a
/// job may come from anywhere else that did not check it (an older version, a hand-written row):
/// the daemon refuses the text before it touches the page. The job fails before the click
/// (retried, then dead), never becomes uncertain, is never published, and holds up no other job.
/// On PostgreSQL the job comes through the function; on SQLite straight through the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_longer_than_the_site_takes_fails_before_the_click() {
    let sqlite_profile = Profile::new("producer-too-long-sqlite");
    let sqlite = format!("sqlite://{}", sqlite_profile.db().display());
    too_long_fails_before_the_click(&sqlite_profile, &sqlite).await;
    if let Some(db) = migrated_schema().await {
        too_long_fails_before_the_click(&Profile::new("producer-too-long-pg"), &db).await;
    }
}

async fn too_long_fails_before_the_click(profile: &Profile, database: &str) {
    use common::rig::*;
    use executor::jobs::{JobState, Kind};
    let url = match database.strip_prefix("sqlite://") {
        Some(path) => executor::settings::DatabaseUrl::Sqlite(path.into()),
        None => executor::settings::DatabaseUrl::Postgres(database.to_string()),
    };
    let store = executor::store::open(&url).await.expect("store");
    let long = format!("LONG {}", "x".repeat(295));
    let long_id: i64 = match url {
        executor::settings::DatabaseUrl::Postgres(_) => postgres_client(database)
            .await
            .query_one(
                "SELECT id FROM executor_enqueue(kind => 'post', text => $1, max_length => 1000,
                     length_count => 'chars')",
                &[&long],
            )
            .await
            .expect("the function takes it with a limit of 1000")
            .get(0),
        // Unchecked: the store takes what it is given.
        executor::settings::DatabaseUrl::Sqlite(_) => {
            let job = executor::jobs::NewJob {
                kind: Kind::Post,
                text: long.clone(),
                reply_to: None,
                account: String::new(),
                idempotency_key: None,
                not_before: std::time::SystemTime::now(),
                max_attempts: 5,
            };
            match store.job_enqueue(&job, std::time::SystemTime::now()).await {
                Ok(executor::store::Enqueued::Created(job)) => job.id,
                other => panic!("enqueue: {other:?}"),
            }
        }
    };
    enqueue_now(store.as_ref(), Kind::Post, "a good post behind it", None).await;

    let site = sandbox_rig().await;
    let chrome = logged_in_chrome(profile, &site.url).await;
    let mut daemon = site_daemon(profile, &chrome, &site.url, database, &[]);
    let job = |id: i64| {
        let store = &store;
        async move { store.job_get(id).await.expect("read").expect("the job") }
    };
    eventually("the good post is published", DEADLINE, || async {
        site.sandbox
            .posts()
            .iter()
            .any(|p| p.text == "a good post behind it")
    })
    .await;
    eventually(
        "the long one has failed before the click",
        DEADLINE,
        || async {
            matches!(
                job(long_id).await.state,
                JobState::Failed { .. } | JobState::Dead { .. }
            )
        },
    )
    .await;
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));

    let refused = job(long_id).await;
    assert_eq!(refused.text, long);
    let (JobState::Failed { error, .. } | JobState::Dead { error }) = refused.state else {
        panic!("{database}: the long job is {:?}", refused.state);
    };
    assert_eq!(
        error,
        "not published: the text is 300 long as the site counts (characters); it allows at most 280",
        "{database}"
    );
    let unknown = store
        .event_list(&executor::store::EventQuery {
            types: vec!["JOB_OUTCOME_UNKNOWN".into()],
            ..Default::default()
        })
        .await
        .expect("events");
    assert!(
        unknown.is_empty(),
        "{database}: no outcome was ever unknown, nothing was clicked: {unknown:?}"
    );
    assert!(
        !site
            .sandbox
            .posts()
            .iter()
            .any(|p| p.text.starts_with("LONG ")),
        "{database}: the long text was never published"
    );
}
