//! Storage behind one trait, with one implementation per dialect (SPEC §6).
//!
//! - [`sqlite`]: the embedded default (`<profile>/executor.db`), WAL, one writer at a time.
//! - [`postgres`]: production (`DATABASE_URL=postgres://…`), shared by several executors.
//!
//! Migrations live in `migrations/<dialect>/NNNN_name.sql`, numbered the same for both, embedded
//! in the binary and applied at start inside a transaction (on PostgreSQL under an advisory lock,
//! so executors starting together do not race). The same test suite (`tests/store.rs`) runs
//! against both backends so they cannot drift apart.
//!
//! Every write is idempotent by the event's unique id: writing an event twice (say, once before a
//! crash and again from the spool) stores it once.

pub mod postgres;
pub mod sqlite;

use crate::events::Event;
use crate::settings::DatabaseUrl;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("postgres {operation}: {source}")]
    Postgres {
        operation: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("store {operation} timed out after {seconds}s")]
    Timeout {
        operation: &'static str,
        seconds: u64,
    },
    #[error("store {operation}: {reason}")]
    Other {
        operation: &'static str,
        reason: String,
    },
}

/// Which events to read back.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only these types (all when empty).
    pub types: Vec<String>,
    /// Only events created at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many, newest first when set; all in time order otherwise.
    pub limit: Option<u32>,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn dialect(&self) -> &'static str;

    /// Applies every migration not yet applied.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Inserts one event; returns false when an event with that id was already stored.
    async fn event_insert(&self, event: &Event) -> Result<bool, StoreError>;

    /// Events matching `query`, oldest first.
    async fn event_list(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;
}

/// Opens (and migrates) the store named by `url`.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match url {
        DatabaseUrl::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path)?),
        DatabaseUrl::Postgres(url) => Arc::new(postgres::PostgresStore::new(url)?),
    };
    store.migrate().await?;
    Ok(store)
}
