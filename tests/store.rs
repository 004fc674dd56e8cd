//! One store suite, run against SQLite and PostgreSQL (each test on its own file / schema), plus
//! the spool: no event is lost while the store cannot be written, and none is stored twice.

mod common;

use common::*;
use executor::events::{Event, Identity, Severity};
use executor::settings::DatabaseUrl;
use executor::sink::{EventSink, Spool};
use executor::store::{self, EventQuery, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn identity() -> Identity {
    Identity {
        run_id: "run-1".into(),
        executor_id: "test-executor".into(),
    }
}

async fn open(url: &DatabaseUrl) -> Arc<dyn Store> {
    store::open(url).await.expect("open store")
}

async fn sqlite_store(profile: &Profile) -> Arc<dyn Store> {
    store::open(&DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("open sqlite")
}

async fn postgres_url() -> Option<DatabaseUrl> {
    let base = postgres_base_url()?;
    Some(DatabaseUrl::Postgres(postgres_schema(&base).await))
}

/// The numbers stored under `key` in each event's data, in order.
fn numbers(events: &[Event], key: &str) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.event_data[key].as_i64().expect("a number"))
        .collect()
}

fn tick_at(data: serde_json::Value, created_at: std::time::SystemTime) -> Event {
    Event::at(
        &identity(),
        executor::events::TICK,
        Severity::Info,
        "tick",
        data,
        created_at,
    )
}

fn event_at(kind: &str, ms: u64, data: serde_json::Value) -> Event {
    Event::at(
        &identity(),
        kind,
        Severity::Info,
        "m",
        data,
        executor::clock::from_unix_ms(ms),
    )
}

/// The suite: every function here runs on both backends.
mod suite {
    use super::*;

    pub async fn event_insert_is_idempotent_by_id(url: DatabaseUrl) {
        let store = open(&url).await;
        let event = event_at("A", 1_000_000, json!({"pages": 1}));
        assert!(store.event_insert(&event).await.expect("insert"));
        assert!(!store.event_insert(&event).await.expect("second insert"));
        let all = store
            .event_list(&EventQuery::default())
            .await
            .expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0], event);
    }

    pub async fn event_list_filters_by_type_and_window_in_time_order(url: DatabaseUrl) {
        let store = open(&url).await;
        for (i, kind) in ["A", "B", "A", "C", "A"].iter().enumerate() {
            store
                .event_insert(&event_at(
                    kind,
                    1_000_000 + i as u64 * 1000,
                    json!({"i": i}),
                ))
                .await
                .expect("insert");
        }
        let only_a = store
            .event_list(&EventQuery {
                types: vec!["A".into()],
                ..Default::default()
            })
            .await
            .expect("list");
        let order = numbers(&only_a, "i");
        assert_eq!(order, [0, 2, 4]);
        let since = store
            .event_list(&EventQuery {
                since: Some(executor::clock::from_unix_ms(1_002_000)),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(since.len(), 3);
        let newest_two = store
            .event_list(&EventQuery {
                limit: Some(2),
                ..Default::default()
            })
            .await
            .expect("list");
        let order = numbers(&newest_two, "i");
        assert_eq!(order, [3, 4], "the newest, in time order");
    }

    pub async fn events_of_the_same_millisecond_keep_insertion_order(url: DatabaseUrl) {
        let store = open(&url).await;
        for i in 0..20 {
            store
                .event_insert(&event_at("T", 5_000_000, json!({"i": i})))
                .await
                .expect("insert");
        }
        let all = store
            .event_list(&EventQuery::default())
            .await
            .expect("list");
        let order = numbers(&all, "i");
        assert_eq!(order, (0..20).collect::<Vec<_>>());
    }

    pub async fn event_data_round_trips_exactly(url: DatabaseUrl) {
        let store = open(&url).await;
        let data = json!({
            "pages": 1, "chrome_pids": [12345, 12346], "last_error": null,
            "text": "quotes \" ' emoji 🎉 newline\n </script> שלום", "nested": {"a": [1, 2.5, true]}
        });
        let event = event_at("X", 7_000_123, data);
        store.event_insert(&event).await.expect("insert");
        let back = store
            .event_list(&EventQuery::default())
            .await
            .expect("list");
        assert_eq!(back[0].event_data, event.event_data);
        assert_eq!(
            back[0].created_at, event.created_at,
            "millisecond precision kept"
        );
        assert_eq!(back[0].event_data["run_id"], "run-1");
        assert_eq!(back[0].event_data["executor_id"], "test-executor");
    }

    pub async fn migrations_run_again_without_harm(url: DatabaseUrl) {
        let store = open(&url).await;
        store
            .event_insert(&event_at("A", 1, json!({})))
            .await
            .expect("insert");
        store.migrate().await.expect("second migrate");
        store.migrate().await.expect("third migrate");
        assert_eq!(
            store
                .event_list(&EventQuery::default())
                .await
                .expect("list")
                .len(),
            1
        );
    }
}

/// The job queue, on both backends. Time is injected: `at(s)` is a fixed instant plus s seconds.
mod job_suite {
    use super::*;
    use executor::jobs::{
        Claim, ClaimOutcome, Job, JobQuery, JobState, Kind, Limits, NewJob, Outcome,
    };
    use executor::store::{Enqueued, StoreError};
    use std::time::SystemTime;

    pub fn at(seconds: u64) -> SystemTime {
        executor::clock::from_unix_ms(1_800_000_000_000) + Duration::from_secs(seconds)
    }

    pub fn new_job(kind: Kind, text: &str) -> NewJob {
        NewJob {
            kind,
            text: text.into(),
            reply_to: (kind == Kind::Reply).then(|| "42".to_string()),
            account: String::new(),
            idempotency_key: None,
            not_before: at(0),
            max_attempts: 3,
        }
    }

    pub async fn enqueue(store: &dyn Store, job: NewJob) -> Job {
        match store.job_enqueue(&job, at(0)).await.expect("enqueue") {
            Enqueued::Created(job) => job,
            Enqueued::Exists(job) => panic!("unexpected duplicate {job:?}"),
        }
    }

    /// A claim of the default account's executor.
    pub fn claim(kind: Kind, owner: &str, now: SystemTime, limits: Limits) -> Claim {
        claim_for("", kind, owner, now, limits)
    }

    pub fn claim_for(
        account: &str,
        kind: Kind,
        owner: &str,
        now: SystemTime,
        limits: Limits,
    ) -> Claim {
        Claim {
            kind,
            account: account.into(),
            owner: owner.into(),
            lease_for: Duration::from_secs(60),
            limits,
            gap_jitter: Duration::ZERO,
            now,
        }
    }

    pub async fn claimed(store: &dyn Store, claim: &Claim) -> Job {
        match store
            .job_claim_next(claim, &identity())
            .await
            .expect("claim")
        {
            ClaimOutcome::Claimed(job) => *job,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    /// A job of `account`.
    pub fn job_for(account: &str, kind: Kind, text: &str) -> NewJob {
        NewJob {
            account: account.into(),
            ..new_job(kind, text)
        }
    }

    /// Claims the next job by `claim` and marks it `attempting` at `at` (the click is next).
    pub async fn clicked(store: &dyn Store, claim: &Claim, at: SystemTime) -> Job {
        let job = claimed(store, claim).await;
        store
            .job_mark_attempting(job.id, &token(&job), at)
            .await
            .expect("attempting");
        job
    }

    fn token(job: &Job) -> String {
        job.state.lease().expect("leased").token.clone()
    }

    async fn events_of(store: &dyn Store, kind: &str) -> Vec<Event> {
        store
            .event_list(&EventQuery {
                types: vec![kind.into()],
                ..Default::default()
            })
            .await
            .expect("events")
    }

    pub async fn same_idempotency_key_twice_gives_one_job(url: DatabaseUrl) {
        let store = open(&url).await;
        let mut job = new_job(Kind::Post, "hello");
        job.idempotency_key = Some("k-1".into());
        let first = enqueue(store.as_ref(), job.clone()).await;
        let mut again = job.clone();
        again.text = "something else".into();
        match store.job_enqueue(&again, at(5)).await.expect("enqueue") {
            Enqueued::Exists(existing) => assert_eq!(existing, first),
            other => panic!("a repeated key must not create a job: {other:?}"),
        }
        assert_eq!(
            store
                .job_list(&JobQuery::default())
                .await
                .expect("list")
                .len(),
            1
        );
    }

    pub async fn claims_take_due_jobs_oldest_first_and_counts_are_true(url: DatabaseUrl) {
        let store = open(&url).await;
        let a = enqueue(store.as_ref(), new_job(Kind::Post, "a")).await;
        let b = enqueue(store.as_ref(), new_job(Kind::Post, "b")).await;
        let mut later = new_job(Kind::Post, "later");
        later.not_before = at(100);
        enqueue(store.as_ref(), later).await;
        enqueue(store.as_ref(), new_job(Kind::Reply, "r")).await;
        assert_eq!(
            store
                .job_count_due(Kind::Post, None, at(1))
                .await
                .expect("count"),
            2
        );
        assert_eq!(
            store
                .job_count_due(Kind::Post, None, at(100))
                .await
                .expect("count"),
            3
        );
        assert_eq!(
            store
                .job_count_due(Kind::Reply, None, at(1))
                .await
                .expect("count"),
            1
        );
        let first = claimed(store.as_ref(), &claim(Kind::Post, "w", at(1), Limits::OFF)).await;
        assert_eq!(first.id, a.id);
        assert!(matches!(first.state, JobState::Claimed(_)));
        assert_eq!(first.attempts, 1);
        assert_eq!(
            claimed(store.as_ref(), &claim(Kind::Post, "w", at(1), Limits::OFF))
                .await
                .id,
            b.id
        );
        let empty = store
            .job_claim_next(&claim(Kind::Post, "w", at(1), Limits::OFF), &identity())
            .await
            .expect("claim");
        assert_eq!(empty, ClaimOutcome::Empty, "the later job is not due yet");
        assert_eq!(
            store
                .job_count_due(Kind::Post, None, at(1))
                .await
                .expect("count"),
            0
        );
    }

    pub async fn a_fenced_out_worker_cannot_mark_or_finish_the_job(url: DatabaseUrl) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        let old = claimed(store.as_ref(), &claim(Kind::Post, "A", at(1), Limits::OFF)).await;
        // A's lease (60 s) expires; B's claim sweeps it and takes the job.
        let new = claimed(store.as_ref(), &claim(Kind::Post, "B", at(70), Limits::OFF)).await;
        assert_eq!(new.id, old.id);
        let outcome = Outcome::Succeeded {
            post_id: Some("1".into()),
            url: None,
        };
        let err = store
            .job_finish(old.id, &token(&old), &outcome, &identity(), at(71), 0.0)
            .await;
        assert!(matches!(err, Err(StoreError::Fenced { .. })), "{err:?}");
        let err = store
            .job_mark_attempting(old.id, &token(&old), at(71))
            .await;
        assert!(matches!(err, Err(StoreError::Fenced { .. })), "{err:?}");
        let failed = Outcome::FailedBeforeClick { error: "x".into() };
        assert!(matches!(
            store
                .job_finish(old.id, &token(&old), &failed, &identity(), at(71), 0.0)
                .await,
            Err(StoreError::Fenced { .. })
        ));
        // B's own writes go through.
        store
            .job_mark_attempting(new.id, &token(&new), at(72))
            .await
            .expect("B attempting");
        let done = store
            .job_finish(new.id, &token(&new), &outcome, &identity(), at(73), 0.0)
            .await
            .expect("B finishes");
        assert!(matches!(done.state, JobState::Succeeded { .. }));
        assert_eq!(events_of(store.as_ref(), "POST_SUCCESS").await.len(), 1);
    }

    pub async fn an_expired_lease_does_not_allow_the_click(url: DatabaseUrl) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        let job = claimed(store.as_ref(), &claim(Kind::Post, "A", at(1), Limits::OFF)).await;
        let err = store
            .job_mark_attempting(job.id, &token(&job), at(62))
            .await;
        assert!(matches!(err, Err(StoreError::Fenced { .. })), "{err:?}");
    }

    pub async fn after_attempting_an_expired_lease_means_uncertain_never_requeued(
        url: DatabaseUrl,
    ) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        let job = clicked(
            store.as_ref(),
            &claim(Kind::Post, "A", at(1), Limits::OFF),
            at(2),
        )
        .await;
        let next = store
            .job_claim_next(&claim(Kind::Post, "B", at(120), Limits::OFF), &identity())
            .await
            .expect("claim");
        assert_eq!(
            next,
            ClaimOutcome::Empty,
            "an attempted job is never claimed again"
        );
        let swept = store.job_get(job.id).await.expect("get").expect("job");
        assert!(
            matches!(swept.state, JobState::Uncertain { .. }),
            "{swept:?}"
        );
        assert_eq!(
            events_of(store.as_ref(), "JOB_OUTCOME_UNKNOWN").await.len(),
            1
        );
    }

    pub async fn crash_after_attempting_then_found_on_the_site_succeeds_without_a_second_publish(
        url: DatabaseUrl,
    ) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        clicked(
            store.as_ref(),
            &claim(Kind::Post, "me", at(1), Limits::OFF),
            at(2),
        )
        .await;
        drop(store); // the worker dies after the mark
        let store = open(&url).await; // the restart
        let rescued = store
            .job_rescue_owner("me", &identity(), at(10))
            .await
            .expect("rescue");
        assert_eq!((rescued.uncertain, rescued.requeued), (1, 0));
        assert_eq!(
            store
                .job_claim_next(&claim(Kind::Post, "me", at(11), Limits::OFF), &identity())
                .await
                .expect("claim"),
            ClaimOutcome::Empty
        );
        let verifying = store
            .job_claim_uncertain(Kind::Post, "", "me", Duration::from_secs(60), at(11))
            .await
            .expect("claim")
            .expect("one");
        let done = store
            .job_resolve_uncertain(
                verifying.id,
                &token(&verifying),
                Some((Some("p1".into()), Some("https://x/status/p1".into()))),
                &identity(),
                at(12),
            )
            .await
            .expect("resolve");
        assert_eq!(
            done.state,
            JobState::Succeeded {
                post_id: Some("p1".into()),
                url: Some("https://x/status/p1".into())
            }
        );
        assert_eq!(done.attempts, 1, "never claimed (published) again");
        assert_eq!(events_of(store.as_ref(), "JOB_RESCUED").await.len(), 1);
        assert_eq!(events_of(store.as_ref(), "POST_SUCCESS").await.len(), 1);
    }

    pub async fn crash_after_attempting_then_not_found_is_published_exactly_once_more(
        url: DatabaseUrl,
    ) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Reply, "x")).await;
        let job = clicked(
            store.as_ref(),
            &claim(Kind::Reply, "me", at(1), Limits::OFF),
            at(2),
        )
        .await;
        let store = open(&url).await;
        store
            .job_rescue_owner("me", &identity(), at(10))
            .await
            .expect("rescue");
        let verifying = store
            .job_claim_uncertain(Kind::Reply, "", "me", Duration::from_secs(60), at(11))
            .await
            .expect("claim")
            .expect("one");
        let queued = store
            .job_resolve_uncertain(verifying.id, &token(&verifying), None, &identity(), at(12))
            .await
            .expect("resolve");
        assert_eq!(queued.state, JobState::Queued);
        let again = claimed(
            store.as_ref(),
            &claim(Kind::Reply, "me", at(13), Limits::OFF),
        )
        .await;
        assert_eq!(again.id, job.id);
        assert_eq!(again.attempts, 2, "exactly one more attempt");
        let next = store
            .job_claim_next(&claim(Kind::Reply, "me", at(14), Limits::OFF), &identity())
            .await
            .expect("claim");
        assert_eq!(next, ClaimOutcome::Empty);
    }

    pub async fn a_claimed_job_left_by_a_crash_goes_back_to_the_queue(url: DatabaseUrl) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        claimed(store.as_ref(), &claim(Kind::Post, "me", at(1), Limits::OFF)).await;
        let rescued = store
            .job_rescue_owner("me", &identity(), at(5))
            .await
            .expect("rescue");
        assert_eq!((rescued.uncertain, rescued.requeued), (0, 1));
        assert_eq!(
            store
                .job_count_due(Kind::Post, None, at(5))
                .await
                .expect("count"),
            1
        );
    }

    pub async fn failures_before_the_click_back_off_then_die(url: DatabaseUrl) {
        let store = open(&url).await;
        let job = enqueue(store.as_ref(), new_job(Kind::Post, "x")).await; // max_attempts 3
        let failure = Outcome::FailedBeforeClick {
            error: "selector not found".into(),
        };
        let mut now = 1;
        for attempt in 1..=3u32 {
            let held = claimed(
                store.as_ref(),
                &claim(Kind::Post, "w", at(now), Limits::OFF),
            )
            .await;
            assert_eq!(held.attempts, attempt);
            let after = store
                .job_finish(job.id, &token(&held), &failure, &identity(), at(now), 0.0)
                .await
                .expect("finish");
            match (attempt, &after.state) {
                (1 | 2, JobState::Failed { retry_at, .. }) => {
                    let expected = at(now) + executor::jobs::retry_delay(attempt, 0.0);
                    assert_eq!(*retry_at, expected);
                    let early = store
                        .job_claim_next(
                            &claim(Kind::Post, "w", at(now + 1), Limits::OFF),
                            &identity(),
                        )
                        .await
                        .expect("claim");
                    assert_eq!(early, ClaimOutcome::Empty, "not before its retry time");
                    now += executor::jobs::retry_delay(attempt, 0.0).as_secs();
                }
                (3, JobState::Dead { error }) => assert_eq!(error, "selector not found"),
                other => panic!("unexpected {other:?}"),
            }
        }
        let failed = events_of(store.as_ref(), "POST_FAILED").await;
        assert_eq!(failed.len(), 3);
        assert_eq!(failed[2].event_data["dead"], true);
    }

    pub async fn a_failure_reported_after_attempting_is_uncertain(url: DatabaseUrl) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        let job = clicked(
            store.as_ref(),
            &claim(Kind::Post, "w", at(1), Limits::OFF),
            at(2),
        )
        .await;
        let failure = Outcome::FailedBeforeClick {
            error: "timeout".into(),
        };
        let after = store
            .job_finish(job.id, &token(&job), &failure, &identity(), at(3), 0.0)
            .await
            .expect("finish");
        assert!(
            matches!(after.state, JobState::Uncertain { .. }),
            "{after:?}"
        );
    }

    pub async fn rate_limits_hold_across_restarts_and_never_starve_the_other_lane(
        url: DatabaseUrl,
    ) {
        let store = open(&url).await;
        for i in 0..3 {
            enqueue(store.as_ref(), new_job(Kind::Post, &format!("p{i}"))).await;
        }
        enqueue(store.as_ref(), new_job(Kind::Reply, "r")).await;
        let two_an_hour = Limits {
            per_hour: Some(2),
            min_gap: Duration::ZERO,
        };
        claimed(store.as_ref(), &claim(Kind::Post, "w", at(10), two_an_hour)).await;
        claimed(store.as_ref(), &claim(Kind::Post, "w", at(20), two_an_hour)).await;
        let third = store
            .job_claim_next(&claim(Kind::Post, "w", at(30), two_an_hour), &identity())
            .await
            .expect("claim");
        assert_eq!(
            third,
            ClaimOutcome::RateLimited {
                until: at(10 + 3600)
            }
        );
        // The reply lane keeps moving.
        claimed(
            store.as_ref(),
            &claim(Kind::Reply, "w", at(31), two_an_hour),
        )
        .await;
        // A restart does not reset the hour.
        drop(store);
        let store = open(&url).await;
        let still = store
            .job_claim_next(&claim(Kind::Post, "w", at(40), two_an_hour), &identity())
            .await
            .expect("claim");
        assert!(
            matches!(still, ClaimOutcome::RateLimited { .. }),
            "{still:?}"
        );
        claimed(
            store.as_ref(),
            &claim(Kind::Post, "w", at(3611), two_an_hour),
        )
        .await;
    }

    pub async fn the_minimum_gap_is_per_account(url: DatabaseUrl) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "a1")).await;
        enqueue(store.as_ref(), new_job(Kind::Reply, "a2")).await;
        enqueue(store.as_ref(), job_for("b", Kind::Reply, "b1")).await;
        let gap = Limits {
            per_hour: None,
            min_gap: Duration::from_secs(60),
        };
        claimed(store.as_ref(), &claim(Kind::Post, "w", at(0), gap)).await;
        // The default account must wait, in either lane; account "b" need not.
        let wait = store
            .job_claim_next(&claim(Kind::Reply, "w", at(10), gap), &identity())
            .await
            .expect("claim");
        assert_eq!(wait, ClaimOutcome::RateLimited { until: at(60) });
        let next = claimed(
            store.as_ref(),
            &claim_for("b", Kind::Reply, "wb", at(10), gap),
        )
        .await;
        assert_eq!(next.account, "b");
        claimed(store.as_ref(), &claim(Kind::Reply, "w", at(60), gap)).await;
    }

    pub async fn an_executor_claims_only_its_own_accounts_jobs(url: DatabaseUrl) {
        let store = open(&url).await;
        let bobs = enqueue(store.as_ref(), job_for("bob", Kind::Post, "bob's post")).await;
        for limits in [
            Limits::OFF,
            Limits {
                per_hour: Some(5),
                min_gap: Duration::ZERO,
            },
        ] {
            let nothing = store
                .job_claim_next(
                    &claim_for("alice", Kind::Post, "alice-1", at(1), limits),
                    &identity(),
                )
                .await
                .expect("claim");
            assert_eq!(nothing, ClaimOutcome::Empty, "alice never takes bob's job");
        }
        assert_eq!(
            store
                .job_count_due(Kind::Post, Some("alice"), at(1))
                .await
                .expect("count"),
            0
        );
        assert_eq!(
            store
                .job_count_due(Kind::Post, Some("bob"), at(1))
                .await
                .expect("count"),
            1
        );
        let taken = claimed(
            store.as_ref(),
            &claim_for("bob", Kind::Post, "bob-1", at(1), Limits::OFF),
        )
        .await;
        assert_eq!(taken.id, bobs.id);
        store
            .job_mark_attempting(taken.id, &token(&taken), at(2))
            .await
            .expect("attempting");
        // The executor dies after the click: only an executor of bob may look the post up.
        store
            .job_rescue_owner("bob-1", &identity(), at(3))
            .await
            .expect("rescue");
        assert_eq!(
            store
                .job_claim_uncertain(
                    Kind::Post,
                    "alice",
                    "alice-1",
                    Duration::from_secs(60),
                    at(4)
                )
                .await
                .expect("claim uncertain"),
            None,
            "alice's browser cannot see bob's posts"
        );
        let verifying = store
            .job_claim_uncertain(Kind::Post, "bob", "bob-2", Duration::from_secs(60), at(4))
            .await
            .expect("claim uncertain")
            .expect("bob's executor verifies it");
        assert_eq!(verifying.id, bobs.id);
    }

    /// An operator's pause: the paused lane of the paused account claims nothing (the other
    /// lane and the other accounts go on), an attempt in flight still settles and an expired
    /// lease is still swept; resuming lets the claim through. Each change is an event.
    pub async fn a_paused_lane_claims_nothing_until_resumed_yet_jobs_in_flight_settle(
        url: DatabaseUrl,
    ) {
        use executor::pauses::{Inserted, Pause, Scope};
        let store = open(&url).await;
        for (account, kind, text) in [
            ("alice", Kind::Post, "in flight"),
            ("alice", Kind::Post, "waits"),
            ("alice", Kind::Reply, "a reply"),
            ("bob", Kind::Post, "bob's post"),
        ] {
            enqueue(store.as_ref(), job_for(account, kind, text)).await;
        }
        let in_flight = clicked(
            store.as_ref(),
            &claim_for("alice", Kind::Post, "a", at(1), Limits::OFF),
            at(2),
        )
        .await;
        let scope = Scope::new(Some(Kind::Post), Some("alice".into())).expect("scope");
        let pause = Pause {
            scope: scope.clone(),
            reason: "checking".into(),
            by: "op@host".into(),
            since: at(3),
        };
        let first = store
            .pause_insert(&pause, &identity())
            .await
            .expect("pause");
        assert_eq!(first, Inserted::New);
        let again = Pause {
            by: "other@host".into(),
            since: at(4),
            ..pause.clone()
        };
        let second = store
            .pause_insert(&again, &identity())
            .await
            .expect("pause");
        assert_eq!(
            second,
            Inserted::Already(pause.clone()),
            "the first pause holds"
        );
        assert_eq!(store.pause_list().await.expect("list"), vec![pause.clone()]);

        let refused = store
            .job_claim_next(
                &claim_for("alice", Kind::Post, "a", at(5), Limits::OFF),
                &identity(),
            )
            .await
            .expect("claim");
        assert_eq!(refused, ClaimOutcome::Paused(Box::new(pause.clone())));
        // The other lane and the other account are not paused.
        claimed(
            store.as_ref(),
            &claim_for("alice", Kind::Reply, "a", at(5), Limits::OFF),
        )
        .await;
        claimed(
            store.as_ref(),
            &claim_for("bob", Kind::Post, "b", at(5), Limits::OFF),
        )
        .await;
        // The attempt in flight settles while paused.
        let done = store
            .job_finish(
                in_flight.id,
                &token(&in_flight),
                &Outcome::Succeeded {
                    post_id: Some("1".into()),
                    url: None,
                },
                &identity(),
                at(6),
                0.0,
            )
            .await
            .expect("finish while paused");
        assert_eq!(done.state.name(), "succeeded");

        assert!(store
            .pause_delete(&scope, "op@host", &identity(), at(7))
            .await
            .expect("resume"));
        assert!(!store
            .pause_delete(&scope, "op@host", &identity(), at(8))
            .await
            .expect("resume twice"));
        let waits = claimed(
            store.as_ref(),
            &claim_for("alice", Kind::Post, "a", at(9), Limits::OFF),
        )
        .await;
        assert_eq!(waits.text, "waits");
        let paused = events_of(store.as_ref(), "QUEUE_PAUSED").await;
        let resumed = events_of(store.as_ref(), "QUEUE_RESUMED").await;
        assert_eq!(
            (paused.len(), resumed.len()),
            (1, 1),
            "one event per change"
        );
        assert_eq!(paused[0].event_data["account"], "alice");
        assert_eq!(paused[0].event_data["kind"], "post");
        assert_eq!(paused[0].event_data["reason"], "checking");

        // Everything paused, then every pause lifted at once.
        let all = Pause {
            scope: Scope::ALL,
            since: at(10),
            ..pause
        };
        store
            .pause_insert(&all, &identity())
            .await
            .expect("pause all");
        let refused = store
            .job_claim_next(
                &claim_for("carol", Kind::Reply, "c", at(11), Limits::OFF),
                &identity(),
            )
            .await
            .expect("claim");
        assert!(matches!(refused, ClaimOutcome::Paused(_)), "{refused:?}");
        let lifted = store
            .pause_delete_all("op@host", &identity(), at(12))
            .await
            .expect("resume all");
        assert_eq!(lifted.len(), 1);
        assert!(store.pause_list().await.expect("list").is_empty());
    }

    pub async fn a_429_on_one_account_pauses_only_that_accounts_lane(url: DatabaseUrl) {
        let store = open(&url).await;
        for account in ["alice", "bob"] {
            let post = job_for(account, Kind::Post, &format!("{account}'s post"));
            enqueue(store.as_ref(), post).await;
        }
        store
            .lane_breaker_open("alice", Kind::Post, at(300), "HTTP 429", &identity(), at(0))
            .await
            .expect("open");
        let paused = store
            .job_claim_next(
                &claim_for("alice", Kind::Post, "a", at(1), Limits::OFF),
                &identity(),
            )
            .await
            .expect("claim");
        assert_eq!(paused, ClaimOutcome::BreakerOpen { until: at(300) });
        let bobs = claimed(
            store.as_ref(),
            &claim_for("bob", Kind::Post, "b", at(1), Limits::OFF),
        )
        .await;
        assert_eq!(bobs.account, "bob");
        assert_eq!(
            store
                .lane_breaker("bob", Kind::Post)
                .await
                .expect("breaker"),
            None
        );
        let detected = events_of(store.as_ref(), "RATE_LIMIT_DETECTED").await;
        assert_eq!(detected[0].event_data["account"], "alice");
    }

    /// The tick's first read decides whether a lane's claims run at all: every reason for a
    /// pass must show in it, or an idle tick would leave work (a sweep, a lookup, a breaker or a
    /// pause to say) undone.
    pub async fn the_ticks_first_read_sees_every_reason_for_a_lanes_pass(url: DatabaseUrl) {
        let store = open(&url).await;
        let look = |account: &'static str, now: SystemTime| {
            let store = store.clone();
            async move {
                let (look, lease) = store
                    .tick_start(account, None, &identity(), now)
                    .await
                    .expect("look");
                assert_eq!(lease, None, "no lease asked for");
                look
            }
        };
        use executor::pauses::{Pause, Scope};
        let quiet = |look: executor::kind::LaneLook| Kind::ALL.map(|kind| look.quiet(kind));
        assert_eq!(
            quiet(look("alice", at(1)).await),
            [true, true],
            "empty store"
        );

        enqueue(store.as_ref(), job_for("alice", Kind::Post, "alice's post")).await;
        let mut later = job_for("alice", Kind::Reply, "alice's later reply");
        later.reply_to = Some("1".into());
        later.not_before = at(1000);
        enqueue(store.as_ref(), later).await;
        let first = look("alice", at(1)).await;
        assert_eq!((first.due.posting, first.due.reply), (1, 0));
        assert_eq!(first.chores, [false, false]);
        assert_eq!(
            quiet(look("bob", at(1)).await),
            [true, true],
            "bob has nothing"
        );

        // Claimed and clicked: nothing to do while the lease lives (60 s from 1 s)...
        let job = clicked(
            store.as_ref(),
            &claim_for("alice", Kind::Post, "a", at(1), Limits::OFF),
            at(2),
        )
        .await;
        assert_eq!(quiet(look("alice", at(30)).await), [true, true]);
        // ...once it has run out, any executor's pass sweeps it: bob's lane is due a pass too.
        assert_eq!(quiet(look("alice", at(62)).await), [false, true]);
        assert_eq!(quiet(look("bob", at(62)).await), [false, true]);
        let swept = store
            .job_claim_next(
                &claim_for("bob", Kind::Post, "b", at(62), Limits::OFF),
                &identity(),
            )
            .await
            .expect("claim");
        assert_eq!(swept, ClaimOutcome::Empty);

        // Uncertain: only alice's executor can look it up, and until it does, its lane is due.
        assert_eq!(quiet(look("bob", at(63)).await), [true, true]);
        assert_eq!(quiet(look("alice", at(63)).await), [false, true]);
        let lookup = store
            .job_claim_uncertain(Kind::Post, "alice", "a", Duration::from_secs(60), at(63))
            .await
            .expect("claim uncertain")
            .expect("the uncertain job");
        assert_eq!(lookup.id, job.id);
        assert_eq!(
            quiet(look("alice", at(64)).await),
            [true, true],
            "being looked up"
        );
        assert_eq!(
            quiet(look("alice", at(124)).await),
            [false, true],
            "a lookup whose lease ran out is taken again"
        );
        store
            .job_defer_uncertain(
                job.id,
                &token(&lookup),
                "the search stopped short",
                at(500),
                &identity(),
                at(65),
            )
            .await
            .expect("defer");
        assert_eq!(quiet(look("alice", at(66)).await), [true, true], "deferred");
        assert_eq!(
            quiet(look("alice", at(500)).await),
            [false, true],
            "due again"
        );

        // A breaker is the lane's until a claim clears it (with its event), expired or not.
        store
            .lane_breaker_open("bob", Kind::Reply, at(300), "HTTP 429", &identity(), at(70))
            .await
            .expect("open");
        assert_eq!(quiet(look("bob", at(71)).await), [true, false]);
        assert_eq!(quiet(look("bob", at(400)).await), [true, false]);
        assert_eq!(quiet(look("alice", at(71)).await), [true, true]);

        // A pause is every lane's: each claim reads it and says it once.
        let pause = Pause {
            scope: Scope::new(Some(Kind::Post), Some("carol".into())).expect("scope"),
            reason: "checking".into(),
            by: "op@host".into(),
            since: at(80),
        };
        store
            .pause_insert(&pause, &identity())
            .await
            .expect("pause");
        assert_eq!(quiet(look("alice", at(81)).await), [false, false]);
    }

    pub async fn hourly_limits_hold_across_several_executors_of_one_account(url: DatabaseUrl) {
        let store = open(&url).await;
        for i in 0..10 {
            enqueue(store.as_ref(), new_job(Kind::Post, &format!("p{i}"))).await;
        }
        let three_an_hour = Limits {
            per_hour: Some(3),
            min_gap: Duration::ZERO,
        };
        // Four executors of the same account (a primary and standbys, or a misconfiguration)
        // race for the lane: the account's limit holds across all of them.
        // Each its own connection, as separate processes would have, all opened before any
        // claims so that their transactions overlap.
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(open(&url).await);
        }
        let start = Arc::new(tokio::sync::Barrier::new(stores.len()));
        let mut claims = Vec::new();
        for (worker, store) in stores.into_iter().enumerate() {
            let start = start.clone();
            claims.push(tokio::spawn(async move {
                start.wait().await;
                let mut mine = 0;
                for _ in 0..10 {
                    let claim = claim(Kind::Post, &format!("w{worker}"), at(10), three_an_hour);
                    loop {
                        match store.job_claim_next(&claim, &identity()).await {
                            Ok(ClaimOutcome::Claimed(_)) => mine += 1,
                            Ok(_) => {}
                            // SQLite's writers queue on the file lock; a busy answer is retried.
                            Err(StoreError::Sqlite { .. }) => continue,
                            Err(other) => panic!("claim: {other}"),
                        }
                        break;
                    }
                }
                mine
            }));
        }
        let mut total = 0;
        for claim in claims {
            total += claim.await.expect("worker");
        }
        assert_eq!(total, 3, "three an hour, whoever claims");
    }

    fn executor(id: &str, account: &str) -> executor::fleet::ExecutorInfo {
        executor::fleet::ExecutorInfo {
            id: id.into(),
            account: account.into(),
            host: "host".into(),
            pid: 42,
            version: "test".into(),
            run_id: format!("run-{id}"),
            started_at: at(0),
            pace: Default::default(),
        }
    }

    /// A store where executors `a` and `b` are registered for account `alice`.
    async fn alice_served_by_a_and_b(url: &DatabaseUrl) -> Arc<dyn Store> {
        let store = open(url).await;
        for id in ["a", "b"] {
            store
                .executor_register(&executor(id, "alice"), at(0))
                .await
                .expect("register");
        }
        store
    }

    fn hold(me: &str, ttl: Duration, held_before: bool) -> executor::fleet::TickHold {
        executor::fleet::TickHold {
            me: me.into(),
            ttl,
            interval: ttl / 3,
            held_before,
        }
    }

    /// An idle tick writes once: at its start, an executor that held its account's lease reads
    /// it (no write while it was renewed within the last tick), and the tick's event renews it.
    /// The renewal counts only for the holder and never shortens a lease. A lease renewed longer
    /// ago, a tick with work, or a lease another executor took, is dealt with at the tick's
    /// start as before.
    pub async fn an_idle_tick_reads_its_lease_and_its_event_renews_it(url: DatabaseUrl) {
        use executor::fleet::{LeaseOutcome, LeaseRenewal};
        let store = alice_served_by_a_and_b(&url).await;
        // Ticks every 10 s.
        let ttl = Duration::from_secs(30);
        let renewal = LeaseRenewal {
            account: "alice".into(),
            ttl,
        };
        let lease = || {
            let store = store.clone();
            async move {
                let fleet = store.fleet().await.expect("fleet");
                fleet[0].lease.clone().expect("a lease")
            }
        };
        let start = |me: &'static str, held_before: bool, now: SystemTime| {
            let store = store.clone();
            async move {
                let (look, held) = store
                    .tick_start("alice", Some(&hold(me, ttl, held_before)), &identity(), now)
                    .await
                    .expect("tick start");
                (held.expect("a lease answer"), look)
            }
        };
        let held = |until: SystemTime| LeaseOutcome::Held {
            until,
            took_over_from: None,
        };
        // The first tick of a process takes the lease (and says so in the registry).
        assert_eq!(start("a", false, at(1)).await.0, held(at(31)));
        // Its event renews it from the event's time.
        store
            .executor_tick("a", &tick_at(json!({"tick": 1}), at(2)), Some(&renewal))
            .await
            .expect("tick");
        assert_eq!(lease().await, ("a".into(), at(32)));
        // The next idle tick only reads it: the answer is the lease as it stands, nothing moved.
        let heartbeat = |fleet: Vec<executor::fleet::FleetMember>| {
            fleet.iter().find(|m| m.id == "a").map(|m| m.heartbeat_at)
        };
        assert_eq!(start("a", true, at(3)).await.0, held(at(32)));
        assert_eq!(lease().await, ("a".into(), at(32)));
        assert_eq!(
            heartbeat(store.fleet().await.expect("fleet")),
            Some(at(2)),
            "a read-only tick start writes nothing"
        );
        // A renewal never shortens the lease (an event stored late, after a later renewal).
        store
            .executor_tick("a", &tick_at(json!({"tick": 0}), at(1)), Some(&renewal))
            .await
            .expect("late tick");
        assert_eq!(lease().await, ("a".into(), at(32)));
        // Renewed more than a tick (and a tenth) ago: the tick's start renews it.
        assert_eq!(start("a", true, at(14)).await.0, held(at(44)));
        assert_eq!(lease().await, ("a".into(), at(44)));
        // A tick with work renews it at its start, so the work has the whole time to live.
        enqueue(store.as_ref(), job_for("alice", Kind::Post, "due")).await;
        let (answer, look) = start("a", true, at(15)).await;
        assert_eq!(answer, held(at(45)));
        assert_eq!(look.due.posting, 1);
        assert_eq!(lease().await, ("a".into(), at(45)));
        // b waits while a's lease runs; whatever b asked before, it is not the holder's read.
        assert!(matches!(
            start("b", true, at(20)).await.0,
            LeaseOutcome::Standby { .. }
        ));
        // a falls silent; b takes over once the lease lapses.
        assert_eq!(
            start("b", false, at(46)).await.0,
            LeaseOutcome::Held {
                until: at(76),
                took_over_from: Some("a".into())
            }
        );
        // a's late tick event (and a's read, as if it still held the lease) cannot win it back.
        store
            .executor_tick("a", &tick_at(json!({"tick": 9}), at(47)), Some(&renewal))
            .await
            .expect("a's late tick");
        assert_eq!(lease().await, ("b".into(), at(76)));
        assert!(matches!(
            start("a", true, at(48)).await.0,
            LeaseOutcome::Standby { .. }
        ));
    }

    pub async fn one_executor_holds_an_account_the_other_waits_then_takes_over_when_it_lapses(
        url: DatabaseUrl,
    ) {
        use executor::fleet::{ExecutorState, LeaseOutcome};
        let store = alice_served_by_a_and_b(&url).await;
        let ttl = Duration::from_secs(30);
        let held = store
            .account_lease_hold("alice", "a", ttl, &identity(), at(1))
            .await
            .expect("lease");
        assert!(
            matches!(
                held,
                LeaseOutcome::Held {
                    took_over_from: None,
                    ..
                }
            ),
            "{held:?}"
        );
        let waits = store
            .account_lease_hold("alice", "b", ttl, &identity(), at(2))
            .await
            .expect("lease");
        assert_eq!(
            waits,
            LeaseOutcome::Standby {
                holder: "a".into(),
                until: at(31)
            }
        );
        // a renews while it lives; it holds a claimed job when it dies.
        store
            .account_lease_hold("alice", "a", ttl, &identity(), at(20))
            .await
            .expect("renew");
        enqueue(store.as_ref(), job_for("alice", Kind::Post, "in flight")).await;
        let held_job = claimed(
            store.as_ref(),
            &claim_for("alice", Kind::Post, "a", at(21), Limits::OFF),
        )
        .await;
        assert!(matches!(
            store
                .account_lease_hold("alice", "b", ttl, &identity(), at(49))
                .await
                .expect("lease"),
            LeaseOutcome::Standby { .. }
        ));
        // a's lease lapses (it was renewed at 20 for 30 s): b's tick takes over, and its
        // first read, in the same transaction, already sees a's claimed job back in the queue.
        let (look, taken) = store
            .tick_start("alice", Some(&hold("b", ttl, false)), &identity(), at(51))
            .await
            .expect("lease");
        assert_eq!(
            taken,
            Some(LeaseOutcome::Held {
                until: at(81),
                took_over_from: Some("a".into())
            })
        );
        assert_eq!(look.due.posting, 1);
        let failovers = events_of(store.as_ref(), "EXECUTOR_FAILOVER").await;
        assert_eq!(failovers.len(), 1);
        assert_eq!(failovers[0].event_data["from"], "a");
        // a's claimed job is back in the queue, and a (waking up late) cannot click it.
        let back = store.job_get(held_job.id).await.expect("get").expect("job");
        assert_eq!(back.state, JobState::Queued);
        assert!(matches!(
            store
                .job_mark_attempting(held_job.id, &token(&held_job), at(52))
                .await,
            Err(StoreError::Fenced { .. })
        ));
        // b claims it and may click it.
        let again = claimed(
            store.as_ref(),
            &claim_for("alice", Kind::Post, "b", at(53), Limits::OFF),
        )
        .await;
        store
            .job_mark_attempting(again.id, &token(&again), at(54))
            .await
            .expect("the holder clicks");
        let fleet = store.fleet().await.expect("fleet");
        let state = |id: &str| fleet.iter().find(|m| m.id == id).map(|m| m.state);
        assert_eq!(
            state("a"),
            Some(ExecutorState::Active),
            "a never said otherwise"
        );
        assert_eq!(state("b"), Some(ExecutorState::Active));
        assert!(fleet.iter().all(|m| m.lease == Some(("b".into(), at(81)))));
        assert_eq!(
            fleet[0].health(at(54), Duration::from_secs(30)),
            executor::fleet::Health::Dead,
            "a has not been heard from since 20"
        );
    }

    /// A tick's event and the registry's last tick are one write: the event stored, the row
    /// showing its data and time. Stored again (a retry after a lost answer), it is not doubled.
    pub async fn a_tick_stores_its_event_and_the_registry_row_together(url: DatabaseUrl) {
        let store = open(&url).await;
        store
            .executor_register(&executor("a", "alice"), at(0))
            .await
            .expect("register");
        let tick = tick_at(json!({"tick": 3, "pages": 1}), at(5));
        assert!(store.executor_tick("a", &tick, None).await.expect("tick"));
        assert!(!store.executor_tick("a", &tick, None).await.expect("again"));
        let stored = store
            .event_list(&EventQuery {
                types: vec![executor::events::TICK.into()],
                ..EventQuery::default()
            })
            .await
            .expect("events");
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored[0].id, tick.id);
        let fleet = store.fleet().await.expect("fleet");
        assert_eq!(fleet[0].last_tick["tick"], 3);
        assert_eq!(fleet[0].last_tick_at, Some(at(5)));
        assert_eq!(fleet[0].heartbeat_at, at(5));
    }

    pub async fn an_orderly_exit_hands_the_account_over_at_once(url: DatabaseUrl) {
        use executor::fleet::{ExecutorState, LeaseOutcome};
        let store = alice_served_by_a_and_b(&url).await;
        let ttl = Duration::from_secs(30);
        store
            .account_lease_hold("alice", "a", ttl, &identity(), at(1))
            .await
            .expect("lease");
        store
            .executor_tick("a", &tick_at(json!({"pages": 1}), at(2)), None)
            .await
            .expect("tick");
        store
            .executor_stopped("a", "alice", at(3))
            .await
            .expect("stopped");
        let taken = store
            .account_lease_hold("alice", "b", ttl, &identity(), at(4))
            .await
            .expect("lease");
        assert!(
            matches!(
                taken,
                LeaseOutcome::Held {
                    took_over_from: None,
                    ..
                }
            ),
            "a handover, not a failover: {taken:?}"
        );
        assert!(events_of(store.as_ref(), "EXECUTOR_FAILOVER")
            .await
            .is_empty());
        let fleet = store.fleet().await.expect("fleet");
        let a = fleet.iter().find(|m| m.id == "a").expect("a");
        assert_eq!(a.state, ExecutorState::Stopped);
        assert_eq!(a.last_tick["pages"], 1);
        assert_eq!(a.last_tick_at, Some(at(2)));
    }

    pub async fn transition_events_are_shown_to_the_observer_after_commit(url: DatabaseUrl) {
        #[derive(Default)]
        struct Seen(std::sync::Mutex<Vec<String>>);
        impl executor::events::EventObserver for Seen {
            fn observe(&self, event: &Event) {
                self.0.lock().expect("seen").push(event.event_type.clone());
            }
        }
        let store = open(&url).await;
        let seen = Arc::new(Seen::default());
        store.set_observer(seen.clone());
        enqueue(store.as_ref(), new_job(Kind::Post, "x")).await;
        let job = claimed(store.as_ref(), &claim(Kind::Post, "w", at(1), Limits::OFF)).await;
        // A fenced-out write commits nothing and shows nothing.
        let done = Outcome::Succeeded {
            post_id: Some("1".into()),
            url: None,
        };
        assert!(store
            .job_finish(job.id, "not the token", &done, &identity(), at(2), 0.0)
            .await
            .is_err());
        store
            .job_finish(job.id, &token(&job), &done, &identity(), at(2), 0.0)
            .await
            .expect("finish");
        store
            .lane_breaker_open("", Kind::Reply, at(100), "HTTP 429", &identity(), at(3))
            .await
            .expect("breaker");
        // A plain insert is its sender's to observe.
        store
            .event_insert(&event_at("OTHER", 4_000, json!({})))
            .await
            .expect("insert");
        let seen = seen.0.lock().expect("seen").clone();
        assert_eq!(seen, ["POST_SUCCESS", "RATE_LIMIT_DETECTED"]);
        let stored = store
            .event_list(&EventQuery {
                types: seen.clone(),
                ..Default::default()
            })
            .await
            .expect("events");
        assert_eq!(stored.len(), seen.len(), "what was seen is what was stored");
    }

    pub async fn a_429_breaker_pauses_one_lane_until_reset_across_restarts(url: DatabaseUrl) {
        let store = open(&url).await;
        enqueue(store.as_ref(), new_job(Kind::Post, "p")).await;
        enqueue(store.as_ref(), new_job(Kind::Reply, "r")).await;
        store
            .lane_breaker_open("", Kind::Post, at(300), "HTTP 429", &identity(), at(0))
            .await
            .expect("open");
        let paused = store
            .job_claim_next(&claim(Kind::Post, "w", at(1), Limits::OFF), &identity())
            .await
            .expect("claim");
        assert_eq!(paused, ClaimOutcome::BreakerOpen { until: at(300) });
        claimed(store.as_ref(), &claim(Kind::Reply, "w", at(2), Limits::OFF)).await;
        drop(store);
        let store = open(&url).await;
        assert_eq!(
            store.lane_breaker("", Kind::Post).await.expect("breaker"),
            Some(at(300))
        );
        let paused = store
            .job_claim_next(&claim(Kind::Post, "w", at(299), Limits::OFF), &identity())
            .await
            .expect("claim");
        assert!(matches!(paused, ClaimOutcome::BreakerOpen { .. }));
        claimed(
            store.as_ref(),
            &claim(Kind::Post, "w", at(301), Limits::OFF),
        )
        .await;
        assert_eq!(
            store.lane_breaker("", Kind::Post).await.expect("breaker"),
            None
        );
        assert_eq!(
            events_of(store.as_ref(), "RATE_LIMIT_DETECTED").await.len(),
            1
        );
        assert_eq!(
            events_of(store.as_ref(), "RATE_LIMIT_CLEARED").await.len(),
            1
        );
    }

    pub async fn operators_retry_and_cancel_only_jobs_not_in_flight(url: DatabaseUrl) {
        let store = open(&url).await;
        let a = enqueue(store.as_ref(), new_job(Kind::Post, "a")).await;
        let cancelled = store.job_cancel(a.id, at(1)).await.expect("cancel");
        assert_eq!(cancelled.state, JobState::Cancelled);
        let retried = store.job_retry(a.id, at(2)).await.expect("retry");
        assert_eq!(retried.state, JobState::Queued);
        let held = claimed(store.as_ref(), &claim(Kind::Post, "w", at(3), Limits::OFF)).await;
        assert!(matches!(
            store.job_cancel(held.id, at(4)).await,
            Err(StoreError::Transition { .. })
        ));
        assert!(matches!(
            store.job_retry(held.id, at(4)).await,
            Err(StoreError::Transition { .. })
        ));
        assert!(matches!(
            store.job_retry(999_999, at(4)).await,
            Err(StoreError::NotFound { .. })
        ));
        let listed = store
            .job_list(&JobQuery {
                states: vec!["claimed".into()],
                kind: Some(Kind::Post),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a.id]);
    }

    /// What the dashboard reads: jobs by account and text, a job's own events, and the queue by
    /// account, lane and whether due.
    pub async fn the_dashboards_reads_filter_by_account_text_and_job(url: DatabaseUrl) {
        let store = open(&url).await;
        let mine = enqueue(store.as_ref(), new_job(Kind::Post, "Hello 100% world")).await;
        let theirs = enqueue(
            store.as_ref(),
            NewJob {
                account: "bob".into(),
                not_before: at(600),
                ..new_job(Kind::Reply, "hello bob")
            },
        )
        .await;
        let list = |account: Option<&str>, text: Option<&str>| {
            let query = JobQuery {
                account: account.map(str::to_string),
                text: text.map(str::to_string),
                ..Default::default()
            };
            let store = store.clone();
            async move {
                let jobs = store.job_list(&query).await.expect("list");
                jobs.iter().map(|j| j.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(list(Some(""), None).await, vec![mine.id]);
        assert_eq!(list(Some("bob"), None).await, vec![theirs.id]);
        assert_eq!(
            list(None, Some("100%")).await,
            vec![mine.id],
            "% is no wildcard"
        );
        assert_eq!(list(None, Some("ello")).await, vec![mine.id, theirs.id]);
        assert_eq!(
            list(None, Some("HELLO")).await,
            Vec::<i64>::new(),
            "case-sensitive"
        );

        // The job's history: only the events about it.
        let held = claimed(store.as_ref(), &claim(Kind::Post, "w", at(1), Limits::OFF)).await;
        let failure = Outcome::FailedBeforeClick {
            error: "selector not found".into(),
        };
        store
            .job_finish(held.id, &token(&held), &failure, &identity(), at(2), 0.0)
            .await
            .expect("finish");
        store
            .event_insert(&event_at(
                "POST_FAILED",
                1_800_000_003_000,
                json!({"job_id": theirs.id}),
            ))
            .await
            .expect("insert");
        let history = store
            .event_list(&EventQuery {
                job_id: Some(mine.id),
                ..Default::default()
            })
            .await
            .expect("history");
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0].event_data["job_id"], json!(mine.id));

        // The queue at 300 s: mine failed and waits for its retry, bob's reply waits for its time.
        let queue = store.job_queue_by_account(at(300)).await.expect("queue");
        let shape: Vec<(String, Kind, String, bool, u64)> = queue
            .iter()
            .map(|q| (q.account.clone(), q.kind, q.state.clone(), q.due, q.count))
            .collect();
        assert_eq!(
            shape,
            vec![
                (String::new(), Kind::Post, "failed".into(), true, 1),
                ("bob".into(), Kind::Reply, "queued".into(), false, 1),
            ],
            "{queue:?}"
        );
        assert_eq!(queue[1].earliest, at(600));
    }
}

/// Every case of both suites, by name.
mod cases {
    pub use super::job_suite::*;
    pub use super::suite::*;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let profile = Profile::new("store");
                    cases::$name(DatabaseUrl::Sqlite(profile.db())).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(url) = postgres_url().await else { return };
                    cases::$name(url).await;
                }
            )*
        }
        /// The same cases through a transaction-mode pooler: no session state, no named
        /// prepared statement may be relied on across transactions.
        mod pgbouncer {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(url) = pooler_database().await else { return };
                    cases::$name(DatabaseUrl::Postgres(url)).await;
                }
            )*
        }
    };
}

both_backends!(
    event_insert_is_idempotent_by_id,
    event_list_filters_by_type_and_window_in_time_order,
    events_of_the_same_millisecond_keep_insertion_order,
    event_data_round_trips_exactly,
    migrations_run_again_without_harm,
    same_idempotency_key_twice_gives_one_job,
    claims_take_due_jobs_oldest_first_and_counts_are_true,
    a_fenced_out_worker_cannot_mark_or_finish_the_job,
    an_expired_lease_does_not_allow_the_click,
    after_attempting_an_expired_lease_means_uncertain_never_requeued,
    crash_after_attempting_then_found_on_the_site_succeeds_without_a_second_publish,
    crash_after_attempting_then_not_found_is_published_exactly_once_more,
    a_claimed_job_left_by_a_crash_goes_back_to_the_queue,
    failures_before_the_click_back_off_then_die,
    a_failure_reported_after_attempting_is_uncertain,
    rate_limits_hold_across_restarts_and_never_starve_the_other_lane,
    the_minimum_gap_is_per_account,
    a_429_breaker_pauses_one_lane_until_reset_across_restarts,
    operators_retry_and_cancel_only_jobs_not_in_flight,
    an_executor_claims_only_its_own_accounts_jobs,
    a_429_on_one_account_pauses_only_that_accounts_lane,
    the_ticks_first_read_sees_every_reason_for_a_lanes_pass,
    a_paused_lane_claims_nothing_until_resumed_yet_jobs_in_flight_settle,
    hourly_limits_hold_across_several_executors_of_one_account,
    transition_events_are_shown_to_the_observer_after_commit,
    one_executor_holds_an_account_the_other_waits_then_takes_over_when_it_lapses,
    a_tick_stores_its_event_and_the_registry_row_together,
    an_idle_tick_reads_its_lease_and_its_event_renews_it,
    an_orderly_exit_hands_the_account_over_at_once,
    the_dashboards_reads_filter_by_account_text_and_job,
);

#[tokio::test]
async fn spool_takes_events_while_sqlite_is_locked_and_flushes_each_exactly_once() {
    let profile = Profile::new("spool");
    let store = sqlite_store(&profile).await;
    let sink = EventSink::start(
        store.clone(),
        Spool::new(profile.path("spool/events.jsonl")),
        identity(),
    );
    sink.record("BEFORE", Severity::Info, "m", json!({"n": 0}));
    assert!(sink.flush(Duration::from_secs(5)).await);

    // Another process-like connection takes the write lock and holds it.
    let blocker = rusqlite::Connection::open(profile.db()).expect("open");
    blocker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    for n in 1..=5 {
        sink.record("DURING", Severity::Info, "m", json!({"n": n}));
    }
    assert!(
        !sink.flush(Duration::from_secs(10)).await,
        "store is locked: events are spooled"
    );
    assert!(profile.path("spool/events.jsonl").exists());
    blocker.execute_batch("COMMIT").expect("unlock");
    drop(blocker);

    sink.record("AFTER", Severity::Info, "m", json!({"n": 6}));
    assert!(
        sink.flush(Duration::from_secs(10)).await,
        "spool flushed once the store is back"
    );
    let all = store
        .event_list(&EventQuery::default())
        .await
        .expect("list");
    let order = numbers(&all, "n");
    assert_eq!(order, [0, 1, 2, 3, 4, 5, 6], "every event once, in order");
    assert!(!profile.path("spool/events.jsonl").exists());
}

#[tokio::test]
async fn a_spool_left_by_a_crash_is_flushed_by_the_next_run_without_duplicates() {
    let profile = Profile::new("spool-crash");
    let store = sqlite_store(&profile).await;
    let spool = Spool::new(profile.path("spool/events.jsonl"));
    let first = event_at("LEFT", 1_000, json!({"n": 1}));
    let second = event_at("LEFT", 2_000, json!({"n": 2}));
    // The crash happened after `first` was stored but before the spool was rewritten.
    store.event_insert(&first).await.expect("insert");
    spool.append(&first).expect("append");
    spool.append(&second).expect("append");
    let sink = EventSink::start(
        store.clone(),
        Spool::new(profile.path("spool/events.jsonl")),
        identity(),
    );
    assert!(sink.flush(Duration::from_secs(10)).await);
    let all = store
        .event_list(&EventQuery::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, first.id);
    assert_eq!(all[1].id, second.id);
}

/// Runs a store call again while SQLite answers "database is locked", as the daemon does (a
/// failed tick is retried at the next one). SQLite's locks are not fair: two processes claiming
/// in a tight loop can starve each other for seconds. Any other error fails the test.
async fn unless_busy<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, store::StoreError>>,
{
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(store::StoreError::Sqlite { source, .. })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < end => {}
            Err(err) => panic!("store call failed: {err}"),
        }
    }
}

/// Claims until the lane is empty, finishing each job; returns the ids it claimed.
async fn drain(store: Arc<dyn Store>, owner: String) -> Vec<i64> {
    use executor::jobs::{Claim, ClaimOutcome, Kind, Limits, Outcome};
    let mut mine = Vec::new();
    let identity = identity();
    loop {
        let claim = Claim {
            kind: Kind::Post,
            account: String::new(),
            owner: owner.clone(),
            lease_for: Duration::from_secs(300),
            limits: Limits::OFF,
            gap_jitter: Duration::ZERO,
            now: std::time::SystemTime::now(),
        };
        match unless_busy(|| store.job_claim_next(&claim, &identity)).await {
            ClaimOutcome::Claimed(job) => {
                let token = job.state.lease().expect("lease").token.clone();
                let now = std::time::SystemTime::now();
                unless_busy(|| store.job_mark_attempting(job.id, &token, now)).await;
                let done = Outcome::Succeeded {
                    post_id: Some(job.id.to_string()),
                    url: None,
                };
                unless_busy(|| store.job_finish(job.id, &token, &done, &identity, now, 0.0)).await;
                mine.push(job.id);
            }
            ClaimOutcome::Empty => return mine,
            other => panic!("no limits are set: {other:?}"),
        }
    }
}

async fn enqueue_many(store: &dyn Store, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut job = job_suite::new_job(executor::jobs::Kind::Post, &format!("job {i}"));
        job.not_before = std::time::SystemTime::now();
        match store
            .job_enqueue(&job, std::time::SystemTime::now())
            .await
            .expect("enqueue")
        {
            store::Enqueued::Created(job) => ids.push(job.id),
            store::Enqueued::Exists(_) => panic!("no keys given"),
        }
    }
    ids
}

fn assert_each_claimed_once(mut all: Vec<i64>, per_worker: &[Vec<i64>]) {
    let mut claimed: Vec<i64> = per_worker.iter().flatten().copied().collect();
    claimed.sort_unstable();
    all.sort_unstable();
    let mut unique = claimed.clone();
    unique.dedup();
    assert_eq!(unique.len(), claimed.len(), "a job was claimed twice");
    assert_eq!(claimed, all, "every job claimed, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_workers_on_postgres_claim_each_of_1000_jobs_exactly_once() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let all = enqueue_many(open(&url).await.as_ref(), 1000).await;
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = open(&url).await; // one connection per worker
        workers.push(tokio::spawn(drain(store, format!("worker-{w}"))));
    }
    let mut per_worker = Vec::new();
    for worker in workers {
        per_worker.push(worker.await.expect("join"));
    }
    assert!(
        per_worker.iter().filter(|ids| !ids.is_empty()).count() > 1,
        "work was shared"
    );
    assert_each_claimed_once(all, &per_worker);
    let store = open(&url).await;
    let jobs = store
        .job_list(&executor::jobs::JobQuery::default())
        .await
        .expect("list");
    assert!(jobs
        .iter()
        .all(|j| j.attempts == 1 && j.state.name() == "succeeded"));
}

/// Not a test by itself: the second process of the SQLite test below runs this.
#[tokio::test]
#[ignore = "run as a child process by two_processes_on_one_sqlite_file_claim_each_job_exactly_once"]
async fn sqlite_claim_worker_process() {
    let Ok(path) = std::env::var("EXECUTOR_TEST_CLAIM_DB") else {
        return;
    };
    let store = open(&DatabaseUrl::Sqlite(path.into())).await;
    for id in drain(store, format!("process-{}", std::process::id())).await {
        println!("CLAIMED {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_claim_each_job_exactly_once() {
    let profile = Profile::new("sqlite-2proc");
    let all = enqueue_many(sqlite_store(&profile).await.as_ref(), 1000).await;
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "sqlite_claim_worker_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("EXECUTOR_TEST_CLAIM_DB", profile.db())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn worker process")
        })
        .collect();
    let mut per_worker = Vec::new();
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("worker output");
        assert!(
            output.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let ids: Vec<i64> = String::from_utf8_lossy(&output.stdout)
            .lines()
            // libtest's "test … ... " has no newline, so the first id may share its line.
            .filter_map(|l| l.split("CLAIMED ").nth(1)?.trim().parse().ok())
            .collect();
        per_worker.push(ids);
    }
    assert!(
        per_worker.iter().all(|ids| !ids.is_empty()),
        "both processes worked: {:?}",
        per_worker.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_each_claimed_once(all, &per_worker);
}
