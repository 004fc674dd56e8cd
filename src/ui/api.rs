//! The JSON door: `GET /api/overview` (what the overview page shows) and `POST /api/jobs`, for
//! a producer on another machine.
//!
//! `POST /api/jobs` takes one job as one line of `executor enqueue bulk` takes it
//! (`{"kind":"post","text":"…","at":"…","key":"…","account":"…"}`), checked by the same
//! function, so the limits, times and idempotency keys are the CLI's. It answers what
//! `executor enqueue … --json` prints: `201` and `{"created":true,"job":{…}}` for a new job,
//! `200` and `{"created":false,"job":{…}}` (the job that has the key) for a repeated key, `400`
//! and `{"error":"…"}` (one line) for a job the CLI would refuse, `413` for a body over
//! [`BODY_LIMIT`].

use super::view;
use super::{Dashboard, Failure};
use crate::store::Enqueued;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::time::{Duration, SystemTime};

/// The largest body `POST /api/jobs` reads: a job's text is at most a few thousand characters.
pub const BODY_LIMIT: usize = 64 * 1024;

pub async fn overview(State(ui): State<Dashboard>) -> Result<Response, Failure> {
    let overview = view::overview(
        ui.store(),
        ui.silence(),
        Duration::from_secs(6 * 3600),
        SystemTime::now(),
    )
    .await?;
    Ok(Json(overview).into_response())
}

pub async fn enqueue(State(ui): State<Dashboard>, body: String) -> Result<Response, Failure> {
    let now = SystemTime::now();
    let ready = crate::cli::enqueue::check_line(ui.settings(), ui.text_limit(), body.trim(), now)
        .map_err(Failure::bad_request)?;
    let result = ui.store().job_enqueue(&ready.job, now).await?;
    let status = match result {
        Enqueued::Created(_) => StatusCode::CREATED,
        Enqueued::Exists(_) => StatusCode::OK,
    };
    let (_, value) = crate::cli::enqueue::describe(&result);
    Ok((status, Json(value)).into_response())
}
