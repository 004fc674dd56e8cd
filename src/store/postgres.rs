//! PostgreSQL backend: production, shared by several executors.
//!
//! One client connection, made lazily and remade after it is lost, so a database restart costs
//! failed calls (which the event sink spools) rather than a dead daemon. Every connect has a short
//! timeout. `event_data` is `jsonb`, so the seed's `event_data->>'pages'` SQL runs verbatim.

use super::{EventQuery, Store, StoreError};
use crate::events::{Event, Severity};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Config, NoTls};

const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "system_events",
    include_str!("../../migrations/postgres/0001_system_events.sql"),
)];

/// Any constant: the advisory lock key that serialises migrations across executors.
const MIGRATION_LOCK_KEY: i64 = 0x6578_6563_7574_6f72; // "executor"

pub struct PostgresStore {
    config: Config,
    client: Mutex<Option<Client>>,
}

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { operation, source }
}

impl PostgresStore {
    pub fn new(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url.parse().map_err(pg("parse url"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(3));
        }
        if config.get_application_name().is_none() {
            config.application_name("executor");
        }
        Ok(PostgresStore {
            config,
            client: Mutex::new(None),
        })
    }

    /// The live client, connecting first when there is none or it was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, connection) = self.config.connect(NoTls).await.map_err(pg("connect"))?;
            tokio::spawn(async move {
                // Ends when the socket closes; the client then reports is_closed().
                let _ = connection.await;
            });
            *guard = Some(client);
        }
        Ok(guard)
    }
}

fn row_to_event(row: &tokio_postgres::Row) -> Result<Event, StoreError> {
    let severity: String = row.get(2);
    Ok(Event {
        id: row.get(0),
        event_type: row.get(1),
        severity: Severity::parse(&severity).ok_or(StoreError::Other {
            operation: "read event",
            reason: format!("unknown severity {severity:?}"),
        })?,
        message: row.get(3),
        event_data: row.get(4),
        created_at: row.get(5),
    })
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn dialect(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut guard = self.client().await?;
        let Some(client) = guard.as_mut() else {
            return Err(StoreError::Other {
                operation: "migrate",
                reason: "no connection".into(),
            });
        };
        let tx = client.transaction().await.map_err(pg("migrate"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .map_err(pg("migrate lock"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg("migrate"))?;
        for (version, name, sql) in MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(pg("migrate"))?;
            if applied.is_none() {
                tx.batch_execute(sql).await.map_err(pg("migrate"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(pg("migrate"))?;
            }
        }
        tx.commit().await.map_err(pg("migrate commit"))
    }

    async fn event_insert(&self, event: &Event) -> Result<bool, StoreError> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else {
            return Err(StoreError::Other {
                operation: "event insert",
                reason: "no connection".into(),
            });
        };
        let changed = client
            .execute(
                "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &event.id,
                    &event.event_type,
                    &event.severity.as_str(),
                    &event.message,
                    &event.event_data,
                    &event.created_at,
                ],
            )
            .await
            .map_err(pg("event insert"))?;
        Ok(changed == 1)
    }

    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let guard = self.client().await?;
        let Some(client) = guard.as_ref() else {
            return Err(StoreError::Other {
                operation: "event list",
                reason: "no connection".into(),
            });
        };
        let since = query.since.unwrap_or(std::time::UNIX_EPOCH);
        let types: Vec<String> = query.types.clone();
        let limit: i64 = query.limit.map(i64::from).unwrap_or(i64::MAX);
        let mut rows = client
            .query(
                "SELECT id, event_type, severity, message, event_data, created_at FROM system_events
                 WHERE (cardinality($1::text[]) = 0 OR event_type = ANY($1)) AND created_at >= $2
                 ORDER BY created_at DESC, seq DESC LIMIT $3",
                &[&types, &since, &limit],
            )
            .await
            .map_err(pg("event list"))?;
        rows.reverse();
        rows.iter().map(row_to_event).collect()
    }
}
