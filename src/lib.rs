//! `executor`: runs queued browser actions through one Chromium page over CDP, 24/7, and proves
//! with data that it is stable.
//!
//! Where things are (one module per concern):
//! - [`settings`] — flags > env > `executor.toml` > defaults, validated once;
//! - [`lock`] — the single-instance `executor.pid` lock;
//! - [`stop`] — the STOP switch, signals, and the one cancellation;
//! - [`log`] — the `[EXECUTOR_DAEMON]` lines and the rotated `executor.log`;
//! - [`events`] — the event model (ground floor); [`sink`] — events queued, stored, spooled;
//! - [`store`] — the job state machine once, over SQLite and PostgreSQL drivers;
//! - [`browser`] — the CDP connection, our one page, the page cap, the managed browser;
//! - [`cookies`] — session cookies exported from a desktop browser, for `executor login`;
//! - [`jobs`] — the job model; [`lanes`] — the posting and reply lanes of a tick;
//! - [`pauses`] — operator pauses of a lane or an account; [`waiting`] — why a due job waits;
//! - [`tick`] — one tick and its result struct; [`daemon`] — the loop and the lifecycle;
//! - [`platform`] — the only OS-specific code (process identity, memory, signals);
//! - [`proof`] — reports and the stability checklist from the stored events;
//! - [`output`] — what commands print, without panicking on a closed pipe;
//! - [`quote`] — untrusted text in logs and errors: quoted, escaped, bounded;
//! - [`files`] — every file written in the profile: no links followed, no special files, owner-only;
//! - [`cli`] — one file per subcommand.

// Commands print through `outln!`/`errln!` (see `output`): `println!` panics on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod browser;
pub mod cli;
pub mod clock;
pub mod cookies;
pub mod daemon;
pub mod events;
pub mod files;
pub mod fleet;
pub mod holding;
pub mod jobs;
pub mod kind;
pub mod lanes;
pub mod length;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod pauses;
pub mod platform;
pub mod proof;
pub mod quote;
pub mod sandbox;
pub mod settings;
pub mod sink;
pub mod sites;
pub mod stop;
pub mod store;
pub mod tick;
pub mod ui;
pub mod waiting;
