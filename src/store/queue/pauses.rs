//! The operator's pauses: stored, lifted, read — and read by every claim (docs/jobs.md,
//! "Pausing"). Whether a pause stops a claim is decided by [`crate::pauses::blocking`], here and
//! in the "why is it waiting?" view alike; the SQL only reads and writes rows.

use super::{write_event, Col, Driver, Durability, Reader, Value};
use crate::events::Identity;
use crate::jobs::Kind;
use crate::pauses::{self, Inserted, Pause, Scope};
use crate::store::StoreError;
use std::time::SystemTime;

/// The pauses as the statements give them: one JSON array of rows (`scope`, `kind`, `account`,
/// `reason`, `paused_by`, `paused_at` as RFC 3339 UTC text).
pub(super) fn pauses_from(value: serde_json::Value) -> Result<Vec<Pause>, StoreError> {
    let bad = |reason: String| StoreError::Other {
        operation: "read pauses",
        reason,
    };
    let serde_json::Value::Array(rows) = value else {
        return Err(bad(format!("expected a JSON array, got {value}")));
    };
    rows.into_iter()
        .map(|row| {
            let text = |key: &str| row.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let kind = match text("kind") {
                None => None,
                Some(kind) => {
                    Some(Kind::parse(&kind).ok_or_else(|| bad(format!("unknown kind {kind:?}")))?)
                }
            };
            let at = text("paused_at").unwrap_or_default();
            Ok(Pause {
                scope: Scope {
                    kind,
                    account: text("account"),
                },
                reason: text("reason").unwrap_or_default(),
                by: text("paused_by").unwrap_or_default(),
                since: crate::clock::parse_ts(&at)
                    .ok_or_else(|| bad(format!("bad pause time {at:?}")))?,
            })
        })
        .collect()
}

/// What a claim must know before it looks at jobs: the account lane's recorded breaker, and
/// every pause. One statement, so the claim's round trips do not grow.
pub(super) async fn lane_gate<D: Driver>(
    d: &mut D,
    account: &str,
    kind: Kind,
) -> Result<(Option<SystemTime>, Vec<Pause>), StoreError> {
    let sql = d.queries().lane_gate;
    let rows = d
        .rows(
            sql,
            &[Value::Text(account.into()), super::kind_value(kind)],
            &[Col::OptTime, Col::Json],
        )
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok((None, Vec::new()));
    };
    let mut r = Reader(row.into_iter());
    let breaker = r.opt_time()?;
    Ok((breaker, pauses_from(r.json()?)?))
}

/// Every pause, oldest first.
pub(crate) async fn pause_list<D: Driver>(d: &mut D) -> Result<Vec<Pause>, StoreError> {
    let sql = d.queries().pause_list;
    let rows = d.rows(sql, &[], &[Col::Json]).await?;
    let mut list = match rows.into_iter().next() {
        Some(row) => pauses_from(Reader(row.into_iter()).json()?)?,
        None => Vec::new(),
    };
    list.sort_by_key(|pause| pause.since);
    Ok(list)
}

/// Pauses `pause.scope`, with its event; a scope already paused keeps its first pause (and
/// says whose it is).
pub(crate) async fn pause_insert<D: Driver + Send>(
    d: &mut D,
    pause: &Pause,
    identity: &Identity,
) -> Result<Inserted, StoreError> {
    let sql = d.queries().pause_insert;
    let params = [
        Value::Text(pause.scope.key()),
        Value::OptText(pause.scope.kind.map(|k| k.as_str().to_string())),
        Value::OptText(pause.scope.account.clone()),
        Value::Text(pause.reason.clone()),
        Value::Text(pause.by.clone()),
        Value::Time(pause.since),
    ];
    in_tx!(d, Durability::Full, async {
        if d.execute(sql, &params).await? == 1 {
            write_event(d, pauses::events::paused(pause, identity)).await?;
            return Ok(Inserted::New);
        }
        let existing = pause_list(d)
            .await?
            .into_iter()
            .find(|stored| stored.scope == pause.scope)
            .ok_or(StoreError::Other {
                operation: "pause",
                reason: "the scope's pause was neither stored nor found".into(),
            })?;
        Ok(Inserted::Already(existing))
    })
}

/// Lifts the pause of exactly `scope` (with its event); false when it was not paused.
pub(crate) async fn pause_delete<D: Driver + Send>(
    d: &mut D,
    scope: &Scope,
    by: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let sql = d.queries().pause_delete;
    let event = pauses::events::resumed(scope, by, identity, now);
    in_tx!(d, Durability::Full, async {
        if d.execute(sql, &[Value::Text(scope.key())]).await? == 0 {
            return Ok(false);
        }
        write_event(d, event).await?;
        Ok(true)
    })
}

/// Lifts every pause (each with its event); returns those lifted.
pub(crate) async fn pause_delete_all<D: Driver + Send>(
    d: &mut D,
    by: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<Vec<Pause>, StoreError> {
    let sql = d.queries().pause_delete_all;
    in_tx!(d, Durability::Full, async {
        let lifted = pause_list(d).await?;
        d.execute(sql, &[]).await?;
        for pause in &lifted {
            write_event(d, pauses::events::resumed(&pause.scope, by, identity, now)).await?;
        }
        Ok(lifted)
    })
}
