//! The fleet: several executors on one database, at most one live executor per account
//! (docs/fleet.md).
//!
//! Every executor registers itself (`executors`: id, account, host, pid, version, heartbeat, last
//! tick). Acting for an account is a lease in `account_leases` (holder, fencing token, expiry),
//! renewed while the holder lives. A second executor started for the same account is a standby:
//! it ticks (caps, counts) but claims nothing, and takes the lease over when the holder's has
//! lapsed — a failover, recorded as such. The store refuses the irreversible step to an executor
//! whose account lease is held by another or has lapsed, so a frozen holder that wakes up late
//! cannot publish beside its successor. Nothing here is held by a database session: a lease is
//! a row, so a transaction-mode pooler in front of PostgreSQL loses nothing.

use std::time::{Duration, SystemTime};

/// Who an executor is, as it registers at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorInfo {
    pub id: String,
    pub account: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub run_id: String,
    pub started_at: SystemTime,
    /// Its limits and tick timing, for the "why is it waiting?" view of any machine.
    pub pace: Pace,
}

/// The settings of an executor that decide when its account's jobs go, as it registers them:
/// another machine's `status` or the UI reads them from the registry, not from its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pace {
    pub posts_per_hour: u32,
    pub replies_per_hour: u32,
    pub min_gap_ms: u64,
    pub tick_interval_ms: u64,
    pub tick_timeout_ms: u64,
}

impl Pace {
    /// The lane's limits, as the executor's claims apply them.
    pub fn limits(&self, kind: crate::jobs::Kind) -> crate::jobs::Limits {
        crate::jobs::Limits {
            per_hour: Some(match kind {
                crate::jobs::Kind::Post => self.posts_per_hour,
                crate::jobs::Kind::Reply => self.replies_per_hour,
            }),
            min_gap: Duration::from_millis(self.min_gap_ms),
        }
    }

    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_interval_ms)
    }
}

/// What an executor says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorState {
    /// Holds its account's lease and acts for it.
    Active,
    /// Another executor holds the account: waits to take over.
    Standby,
    /// Exited in order.
    Stopped,
}

impl ExecutorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorState::Active => "active",
            ExecutorState::Standby => "standby",
            ExecutorState::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<ExecutorState> {
        match text {
            "active" => Some(ExecutorState::Active),
            "standby" => Some(ExecutorState::Standby),
            "stopped" => Some(ExecutorState::Stopped),
            _ => None,
        }
    }
}

/// An account's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLease {
    pub account: String,
    pub holder: String,
    pub token: String,
    pub acquired_at: SystemTime,
    pub expires_at: SystemTime,
}

/// What asking for the account's lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// We hold it until `until`. `took_over_from`: the executor whose lapsed lease we took.
    Held {
        until: SystemTime,
        took_over_from: Option<String>,
    },
    /// `holder` holds it until `until`: we wait.
    Standby { holder: String, until: SystemTime },
}

/// What to do with the account's lease (the rule the store applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// It is ours: extend it.
    Renew,
    /// Nobody holds it, or the holder's time has passed: take it with a new token.
    Take { from: Option<String> },
    /// Another executor holds it.
    Wait { holder: String, until: SystemTime },
}

/// A tick's claim on its account's lease, for [`crate::store::Store::tick_start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickHold {
    /// This executor's id.
    pub me: String,
    /// The lease's time to live.
    pub ttl: Duration,
    /// The time between tick starts.
    pub interval: Duration,
    /// This process's last answer was that it holds the lease, and the tick will not navigate to
    /// check the session: if the tick is idle, a lease of its own that is still [`lease_fresh`]
    /// is only read, and the tick's event renews it.
    pub held_before: bool,
}

/// A tick's event renews the lease its tick held (see [`crate::store::Store::executor_tick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRenewal {
    pub account: String,
    pub ttl: Duration,
}

/// Whether `lease` (holder, expiry) is `hold`'s own and was renewed within the last tick
/// interval (and a tenth, for a late start): an idle tick may act on it without writing. Every
/// tick that held the lease ends by renewing it with its event, so this is the usual case; one
/// renewal missed (a slow store, a spooled event, a failed tick) and the next tick renews it at
/// its start. At least half the time to live is left either way.
pub fn lease_fresh(lease: (&str, SystemTime), hold: &TickHold, now: SystemTime) -> bool {
    let (holder, expires_at) = lease;
    let since_renewal = hold.interval + hold.interval / 10;
    let left = hold.ttl.saturating_sub(since_renewal).max(hold.ttl / 2);
    holder == hold.me && expires_at >= now + left
}

pub fn decide_lease(current: Option<&AccountLease>, me: &str, now: SystemTime) -> LeaseDecision {
    match current {
        None => LeaseDecision::Take { from: None },
        Some(lease) if lease.holder == me => LeaseDecision::Renew,
        Some(lease) if lease.expires_at <= now => LeaseDecision::Take {
            from: Some(lease.holder.clone()),
        },
        Some(lease) => LeaseDecision::Wait {
            holder: lease.holder.clone(),
            until: lease.expires_at,
        },
    }
}

/// One row of `executor fleet`: the registry joined with the account's lease.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetMember {
    pub id: String,
    pub account: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub run_id: String,
    pub started_at: SystemTime,
    pub heartbeat_at: SystemTime,
    pub last_tick_at: Option<SystemTime>,
    pub state: ExecutorState,
    /// The last tick's event data (pages, backoff, last error, …).
    pub last_tick: serde_json::Value,
    /// The account lease's holder and expiry, if any.
    pub lease: Option<(String, SystemTime)>,
    /// As it registered it; `None` for an executor of a version that did not.
    pub pace: Option<Pace>,
}

/// How the fleet view names an executor's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Active,
    Standby,
    Stopped,
    /// Says it is running, but has not been heard from within `silence` (a crash, kill -9, a
    /// lost machine).
    Dead,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Active => "active",
            Health::Standby => "standby",
            Health::Stopped => "stopped",
            Health::Dead => "dead",
        }
    }
}

impl FleetMember {
    pub fn health(&self, now: SystemTime, silence: Duration) -> Health {
        match self.state {
            ExecutorState::Stopped => Health::Stopped,
            _ if now.duration_since(self.heartbeat_at).unwrap_or_default() > silence => {
                Health::Dead
            }
            ExecutorState::Active => Health::Active,
            ExecutorState::Standby => Health::Standby,
        }
    }
}

/// The host name, as the registry and the default executor id (`settings`) show it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_tick_only_reads_a_lease_renewed_within_the_last_tick() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hold = TickHold {
            me: "a".into(),
            ttl: Duration::from_secs(180),
            interval: Duration::from_secs(60),
            held_before: true,
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Renewed at 0 by the last tick's event: fresh at the next tick (60 s) and a late one
        // (66 s), not after that (the tick's start renews it).
        assert!(lease_fresh(("a", at(180)), &hold, at(60)));
        assert!(lease_fresh(("a", at(180)), &hold, at(66)));
        assert!(!lease_fresh(("a", at(180)), &hold, at(67)));
        assert!(!lease_fresh(("b", at(180)), &hold, at(60)), "not ours");
        // A tick longer than the time to live: at least half of it must be left.
        let long = TickHold {
            interval: Duration::from_secs(3600),
            ttl: Duration::from_secs(600),
            ..hold
        };
        assert!(lease_fresh(("a", at(300)), &long, at(0)));
        assert!(!lease_fresh(("a", at(299)), &long, at(0)));
    }

    fn lease(holder: &str, expires_at: u64) -> AccountLease {
        AccountLease {
            account: "alice".into(),
            holder: holder.into(),
            token: "t".into(),
            acquired_at: SystemTime::UNIX_EPOCH,
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(expires_at),
        }
    }

    #[test]
    fn a_lease_is_renewed_by_its_holder_taken_when_lapsed_and_waited_for_otherwise() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(
            decide_lease(None, "a", now),
            LeaseDecision::Take { from: None }
        );
        assert_eq!(
            decide_lease(Some(&lease("a", 50)), "a", now),
            LeaseDecision::Renew
        );
        assert_eq!(
            decide_lease(Some(&lease("b", 100)), "a", now),
            LeaseDecision::Take {
                from: Some("b".into())
            }
        );
        assert_eq!(
            decide_lease(Some(&lease("b", 101)), "a", now),
            LeaseDecision::Wait {
                holder: "b".into(),
                until: SystemTime::UNIX_EPOCH + Duration::from_secs(101)
            }
        );
    }
}
