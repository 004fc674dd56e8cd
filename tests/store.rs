//! One store suite, run against SQLite and PostgreSQL (each test on its own file / schema), plus
//! the spool: no event is lost while the store cannot be written, and none is stored twice.

mod common;

use common::*;
use executor::events::{Event, EventSink, Identity, Severity, Spool};
use executor::settings::DatabaseUrl;
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

async fn sqlite_store(profile: &Profile) -> Arc<dyn Store> {
    store::open(&DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("open sqlite")
}

async fn postgres_store() -> Option<Arc<dyn Store>> {
    let base = postgres_base_url()?;
    let url = postgres_schema(&base).await;
    Some(
        store::open(&DatabaseUrl::Postgres(url))
            .await
            .expect("open postgres"),
    )
}

/// The numbers stored under `key` in each event's data, in order.
fn numbers(events: &[Event], key: &str) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.event_data[key].as_i64().expect("a number"))
        .collect()
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

    pub async fn event_insert_is_idempotent_by_id(store: Arc<dyn Store>) {
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

    pub async fn event_list_filters_by_type_and_window_in_time_order(store: Arc<dyn Store>) {
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

    pub async fn events_of_the_same_millisecond_keep_insertion_order(store: Arc<dyn Store>) {
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

    pub async fn event_data_round_trips_exactly(store: Arc<dyn Store>) {
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

    pub async fn migrations_run_again_without_harm(store: Arc<dyn Store>) {
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

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let profile = Profile::new("store");
                    suite::$name(sqlite_store(&profile).await).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = postgres_store().await else { return };
                    suite::$name(store).await;
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
