//! The job lanes inside real ticks, against a site double that acts through the real page:
//! each job published once within its rate limits, a lost answer settled by looking the post up
//! (never clicked again), a 429 pausing posts while replies go on.

mod common;

use common::daemons::*;
use common::*;
use std::time::Duration;

/// A site double: acts through the real page, and "publishes" into a list the test can count.
#[derive(Default)]
struct FakeSite {
    published: std::sync::Mutex<Vec<(String, String)>>,
    /// Texts whose publish goes through but whose answer is lost (once each).
    lose_answer: std::sync::Mutex<Vec<String>>,
    /// Posts are answered with HTTP 429.
    posts_rate_limited: bool,
}

#[async_trait::async_trait]
impl executor::sites::Site for FakeSite {
    async fn prepare(
        &self,
        browser: &executor::browser::Browser,
        _job: &executor::jobs::Job,
    ) -> Result<(), executor::sites::ActionError> {
        browser
            .navigate(
                "data:text/html,<div contenteditable id=composer></div>",
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| executor::sites::ActionError::Failed(e.to_string()))
    }

    async fn publish(
        &self,
        _browser: &executor::browser::Browser,
        job: &executor::jobs::Job,
    ) -> Result<executor::sites::Published, executor::sites::ActionError> {
        if self.posts_rate_limited && job.kind == executor::jobs::Kind::Post {
            return Err(executor::sites::ActionError::RateLimited {
                reset: Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
            });
        }
        let mut published = self.published.lock().expect("published");
        published.push((job.kind.as_str().to_string(), job.text.clone()));
        let id = published.len().to_string();
        let mut lose = self.lose_answer.lock().expect("lose");
        if let Some(i) = lose.iter().position(|t| *t == job.text) {
            lose.remove(i);
            return Err(executor::sites::ActionError::Failed(
                "published, but the answer never came".into(),
            ));
        }
        Ok(executor::sites::Published {
            post_id: Some(id),
            url: None,
        })
    }

    async fn find(
        &self,
        _browser: &executor::browser::Browser,
        job: &executor::jobs::Job,
        _account: Option<&str>,
        _since: std::time::SystemTime,
    ) -> Result<executor::sites::Lookup, executor::sites::ActionError> {
        let published = self.published.lock().expect("published");
        Ok(
            match published.iter().position(|(_, text)| *text == job.text) {
                Some(i) => executor::sites::Lookup::Found(executor::sites::Published {
                    post_id: Some((i + 1).to_string()),
                    url: None,
                }),
                None => executor::sites::Lookup::NotFound,
            },
        )
    }
}

async fn enqueue_jobs(profile: &Profile, posts: usize, replies: usize) {
    use executor::jobs::{Kind, NewJob};
    let store = executor::store::open(&executor::settings::DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("store");
    for (kind, n) in [(Kind::Post, posts), (Kind::Reply, replies)] {
        for i in 0..n {
            let job = NewJob {
                kind,
                text: format!("{} {i}", kind.as_str()),
                reply_to: (kind == Kind::Reply).then(|| "1".to_string()),
                account: String::new(),
                idempotency_key: None,
                not_before: std::time::SystemTime::now(),
                max_attempts: 5,
            };
            store
                .job_enqueue(&job, std::time::SystemTime::now())
                .await
                .expect("enqueue");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_publish_each_job_once_within_limits_and_tick_lines_count_the_true_backlog() {
    let profile = Profile::new("lanes");
    enqueue_jobs(&profile, 5, 3).await;
    let site = std::sync::Arc::new(FakeSite::default());
    let limits = [
        ("posts_per_hour", "2"),
        ("replies_per_hour", "100"),
        ("min_gap", "0s"),
    ];
    let (daemon, shutdown) = in_process_daemon_with(&profile, &limits, Some(site.clone()), None);
    let exit = stop_after_ticks(&profile, 5, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    let ticks = tick_lines(&profile.path("executor.log"));
    let first = &ticks[0];
    assert_eq!(field(first, "posting_ready"), Some("5"), "{first}");
    assert_eq!(field(first, "reply_ready"), Some("3"), "{first}");
    assert_eq!(field(first, "posting_attempts"), Some("1"));
    assert_eq!(field(first, "reply_attempts"), Some("1"));
    assert!(
        ticks
            .iter()
            .all(|l| field(l, "last_error").is_none() && field(l, "pages") == Some("1")),
        "{ticks:#?}"
    );
    let published = site.published.lock().expect("published").clone();
    let posts = published.iter().filter(|(k, _)| k == "post").count();
    let replies = published.iter().filter(|(k, _)| k == "reply").count();
    assert_eq!(posts, 2, "2 posts per hour");
    assert_eq!(
        replies, 3,
        "the reply lane is not held back by the posting lane's limit"
    );
    let mut texts: Vec<&String> = published.iter().map(|(_, t)| t).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), published.len(), "nothing published twice");
    let last = ticks.last().expect("ticks");
    assert_eq!(
        field(last, "posting_ready"),
        Some("3"),
        "still due, waiting for the hour: {last}"
    );
    assert_eq!(sqlite_events(&profile.db(), "POST_SUCCESS").len(), 2);
    assert_eq!(sqlite_events(&profile.db(), "REPLY_SUCCESS").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_answer_is_lost_is_verified_on_the_site_never_clicked_again() {
    let profile = Profile::new("lost-answer");
    enqueue_jobs(&profile, 1, 0).await;
    let site = std::sync::Arc::new(FakeSite::default());
    site.lose_answer.lock().expect("lose").push("post 0".into());
    let limits = [
        ("posts_per_hour", "100"),
        ("min_gap", "0s"),
        ("backoff", "100ms"),
    ];
    let (daemon, shutdown) = in_process_daemon_with(&profile, &limits, Some(site.clone()), None);
    let exit = stop_after_ticks(&profile, 3, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    assert_eq!(
        site.published.lock().expect("published").len(),
        1,
        "published exactly once"
    );
    let ticks = tick_lines(&profile.path("executor.log"));
    assert!(
        field(&ticks[0], "last_error").is_some_and(|e| e.contains("answer never came")),
        "{}",
        ticks[0]
    );
    assert_eq!(sqlite_events(&profile.db(), "JOB_OUTCOME_UNKNOWN").len(), 1);
    let rescued = sqlite_events(&profile.db(), "JOB_RESCUED");
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0]["found"], true);
    assert_eq!(sqlite_events(&profile.db(), "POST_SUCCESS").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_posting_lane_while_replies_go_on() {
    let profile = Profile::new("lane-429");
    enqueue_jobs(&profile, 2, 3).await;
    let site = std::sync::Arc::new(FakeSite {
        posts_rate_limited: true,
        ..Default::default()
    });
    let limits = [
        ("posts_per_hour", "100"),
        ("replies_per_hour", "100"),
        ("min_gap", "0s"),
        ("backoff", "100ms"),
    ];
    let (daemon, shutdown) = in_process_daemon_with(&profile, &limits, Some(site.clone()), None);
    let exit = stop_after_ticks(&profile, 5, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    let published = site.published.lock().expect("published").clone();
    assert_eq!(published.iter().filter(|(k, _)| k == "reply").count(), 3);
    assert_eq!(published.iter().filter(|(k, _)| k == "post").count(), 0);
    assert_eq!(
        sqlite_events(&profile.db(), "RATE_LIMIT_DETECTED").len(),
        1,
        "one 429, then the lane is paused"
    );
    let ticks = tick_lines(&profile.path("executor.log"));
    let post_attempts: u32 = ticks
        .iter()
        .filter_map(|l| field(l, "posting_attempts")?.parse::<u32>().ok())
        .sum();
    assert_eq!(
        post_attempts, 1,
        "no more post attempts while the breaker is open"
    );
}
