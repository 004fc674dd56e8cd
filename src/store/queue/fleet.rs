//! The fleet's steps: the registry and the account leases (docs/fleet.md).

use super::{lease_token, write_event, Col, Driver, Durability, Reader, Value};
use crate::events::{Event, Identity, Severity};
use crate::fleet::{
    decide_lease, lease_fresh, AccountLease, ExecutorInfo, ExecutorState, FleetMember,
    LeaseDecision, LeaseOutcome, LeaseRenewal, Pace, TickHold,
};
use crate::kind::LaneLook;
use crate::store::StoreError;
use std::time::{Duration, SystemTime};

// ---- the fleet ------------------------------------------------------------------------------

/// At start: the executor is in the registry, as a standby until it holds its account.
pub(crate) async fn executor_register<D: Driver + Send>(
    d: &mut D,
    info: &ExecutorInfo,
    now: SystemTime,
) -> Result<(), StoreError> {
    let sql = d.queries().executor_upsert;
    let params = [
        Value::Text(info.id.clone()),
        Value::Text(info.account.clone()),
        Value::Text(info.host.clone()),
        Value::Int(i64::from(info.pid)),
        Value::Text(info.version.clone()),
        Value::Text(info.run_id.clone()),
        Value::Time(info.started_at),
        Value::Time(now),
        Value::Json(serde_json::to_value(info.pace).unwrap_or_default()),
    ];
    in_tx!(d, Durability::Relaxed, async {
        d.execute(sql, &params).await.map(|_| ())
    })
}

/// The tick's first call: the account's lanes, and with `hold` the account's lease held as
/// [`account_lease_hold`] does, in the same transaction. An idle tick (nothing in either lane)
/// of an executor that held the lease at its last answer only reads a lease that is still
/// [`lease_fresh`], and writes once, with its event ([`executor_tick`] renews the lease). A tick
/// with work renews it at its start, so that its work has the whole time to live.
pub(crate) async fn tick_start<D: Driver + Send>(
    d: &mut D,
    account: &str,
    hold: Option<&TickHold>,
    identity: &Identity,
    now: SystemTime,
) -> Result<(LaneLook, Option<LeaseOutcome>), StoreError> {
    let Some(hold) = hold else {
        return Ok((super::lane_look(d, account, now).await?, None));
    };
    if hold.held_before {
        let q = d.queries();
        let lease = d
            .rows(
                q.lease_peek,
                &[Value::Text(account.into())],
                &[Col::Text, Col::Time],
            )
            .await?
            .into_iter()
            .next()
            .map(|row| {
                let mut r = Reader(row.into_iter());
                Ok::<_, StoreError>((r.text()?, r.time()?))
            })
            .transpose()?;
        if let Some((_, until)) =
            lease.filter(|(holder, until)| lease_fresh((holder, *until), hold, now))
        {
            let look = super::lane_look(d, account, now).await?;
            if look.idle() {
                let held = LeaseOutcome::Held {
                    until,
                    took_over_from: None,
                };
                return Ok((look, Some(held)));
            }
        }
    }
    in_tx!(d, Durability::Relaxed, async {
        let lease = lease_hold_in(d, account, &hold.me, hold.ttl, identity, now).await?;
        Ok((super::lane_look(d, account, now).await?, Some(lease)))
    })
}

/// Holds (takes, renews) the account's lease for `me`, or says who holds it. Taking over a
/// lapsed lease of another executor writes the failover event; the executors it took over from
/// lose their `claimed` jobs to the queue at once (they can no longer mark them `attempting`);
/// their `attempting` ones become uncertain when those jobs' own leases run out.
pub(crate) async fn account_lease_hold<D: Driver + Send>(
    d: &mut D,
    account: &str,
    me: &str,
    ttl: Duration,
    identity: &Identity,
    now: SystemTime,
) -> Result<LeaseOutcome, StoreError> {
    in_tx!(
        d,
        Durability::Relaxed,
        lease_hold_in(d, account, me, ttl, identity, now)
    )
}

async fn lease_hold_in<D: Driver>(
    d: &mut D,
    account: &str,
    me: &str,
    ttl: Duration,
    identity: &Identity,
    now: SystemTime,
) -> Result<LeaseOutcome, StoreError> {
    let q = d.queries();
    let account_value = Value::Text(account.into());
    d.execute(q.account_lock, std::slice::from_ref(&account_value))
        .await?;
    let current = d
        .rows(
            q.lease_get,
            std::slice::from_ref(&account_value),
            &[Col::Text, Col::Text, Col::Text, Col::Time, Col::Time],
        )
        .await?
        .into_iter()
        .next()
        .map(|row| {
            let mut r = Reader(row.into_iter());
            Ok::<_, StoreError>(AccountLease {
                account: r.text()?,
                holder: r.text()?,
                token: r.text()?,
                acquired_at: r.time()?,
                expires_at: r.time()?,
            })
        })
        .transpose()?;
    let until = now + ttl;
    let outcome = match decide_lease(current.as_ref(), me, now) {
        LeaseDecision::Renew => {
            d.execute(
                q.lease_renew,
                &[account_value, Value::Text(me.into()), Value::Time(until)],
            )
            .await?;
            LeaseOutcome::Held {
                until,
                took_over_from: None,
            }
        }
        LeaseDecision::Take { from } => {
            d.execute(
                q.lease_upsert,
                &[
                    account_value,
                    Value::Text(me.into()),
                    lease_token(),
                    Value::Time(now),
                    Value::Time(until),
                ],
            )
            .await?;
            if let Some(previous) = &from {
                d.execute(
                    q.rescue_claimed,
                    &[Value::Text(previous.clone()), Value::Time(now)],
                )
                .await?;
                write_event(
                    d,
                    Event::at(
                        identity,
                        crate::events::FAILOVER,
                        Severity::Warning,
                        format!(
                            "took over account {account:?} from {previous} (its lease had lapsed)"
                        ),
                        serde_json::json!({ "account": account, "from": previous, "to": me }),
                        now,
                    ),
                )
                .await?;
            }
            LeaseOutcome::Held {
                until,
                took_over_from: from,
            }
        }
        LeaseDecision::Wait { holder, until } => LeaseOutcome::Standby { holder, until },
    };
    let state = match outcome {
        LeaseOutcome::Held { .. } => ExecutorState::Active,
        LeaseOutcome::Standby { .. } => ExecutorState::Standby,
    };
    d.execute(
        q.executor_state,
        &[
            Value::Text(me.into()),
            Value::Text(state.as_str().into()),
            Value::Time(now),
        ],
    )
    .await?;
    Ok(outcome)
}

/// After each tick: its event, and the registry shows it (and that the executor lives), and
/// with `renew` the account's lease its tick held renewed from the event's time — one
/// transaction, so an idle tick costs the store one commit. The lease is extended only while
/// `id` holds it, and never shortened: a renewal that arrives late can neither take the account
/// back from an executor that took it over nor cut a longer renewal short.
pub(crate) async fn executor_tick<D: Driver + Send>(
    d: &mut D,
    id: &str,
    tick: &Event,
    renew: Option<&LeaseRenewal>,
) -> Result<bool, StoreError> {
    let q = d.queries();
    let params = [
        Value::Text(id.into()),
        Value::Json(tick.event_data.clone()),
        Value::Time(tick.created_at),
    ];
    // The lease row before the executor's, the order every step that takes both follows.
    in_tx!(d, Durability::Relaxed, async {
        if let Some(renew) = renew {
            d.execute(
                q.lease_extend,
                &[
                    Value::Text(renew.account.clone()),
                    Value::Text(id.into()),
                    Value::Time(tick.created_at + renew.ttl),
                ],
            )
            .await?;
        }
        let inserted = super::event_insert(d, tick).await?;
        d.execute(q.executor_tick, &params).await?;
        Ok(inserted)
    })
}

/// At an orderly exit: stopped in the registry, and the account's lease ended at once, so a
/// standby takes over without waiting for it to lapse.
pub(crate) async fn executor_stopped<D: Driver + Send>(
    d: &mut D,
    id: &str,
    account: &str,
    now: SystemTime,
) -> Result<(), StoreError> {
    let q = d.queries();
    in_tx!(d, Durability::Relaxed, async {
        d.execute(
            q.lease_release,
            &[Value::Text(account.into()), Value::Text(id.into())],
        )
        .await?;
        d.execute(
            q.executor_state,
            &[
                Value::Text(id.into()),
                Value::Text(ExecutorState::Stopped.as_str().into()),
                Value::Time(now),
            ],
        )
        .await
        .map(|_| ())
    })
}

/// Every registered executor with its account's lease, by account.
pub(crate) async fn fleet<D: Driver>(d: &mut D) -> Result<Vec<FleetMember>, StoreError> {
    let sql = d.queries().fleet_list;
    let shape = &[
        Col::Text,
        Col::Text,
        Col::Text,
        Col::Int,
        Col::Text,
        Col::Text,
        Col::Time,
        Col::Time,
        Col::OptTime,
        Col::Text,
        Col::Json,
        Col::OptText,
        Col::OptTime,
        Col::Json,
    ];
    let rows = d.rows(sql, &[], shape).await?;
    rows.into_iter()
        .map(|row| {
            let mut r = Reader(row.into_iter());
            let (id, account, host, pid) = (r.text()?, r.text()?, r.text()?, r.int()?);
            let (version, run_id, started_at, heartbeat_at) =
                (r.text()?, r.text()?, r.time()?, r.time()?);
            let last_tick_at = r.opt_time()?;
            let state = r.text()?;
            let last_tick = r.json()?;
            let lease = match (r.opt_text()?, r.opt_time()?) {
                (Some(holder), Some(until)) => Some((holder, until)),
                _ => None,
            };
            // '{}' from a version that registered no pace.
            let pace = serde_json::from_value::<Pace>(r.json()?).ok();
            Ok(FleetMember {
                id,
                account,
                host,
                pid: u32::try_from(pid).unwrap_or_default(),
                version,
                run_id,
                started_at,
                heartbeat_at,
                last_tick_at,
                state: ExecutorState::parse(&state).ok_or(StoreError::Other {
                    operation: "read fleet",
                    reason: format!("unknown executor state {state:?}"),
                })?,
                last_tick,
                lease,
                pace,
            })
        })
        .collect()
}
