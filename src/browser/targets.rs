//! The `Target.*` calls that the lifecycle, the page, the page cap and the guard share: list
//! the page targets, create one, attach to one (flattened session), close one.

use super::cdp::{CdpError, Connection};
use super::BrowserError;
use serde_json::json;
use std::time::Duration;

pub(super) async fn page_targets(
    conn: &Connection,
    deadline: Duration,
) -> Result<Vec<(String, String)>, CdpError> {
    let answer = conn
        .call("Target.getTargets", json!({}), None, deadline)
        .await?;
    Ok(answer["targetInfos"]
        .as_array()
        .map(|infos| {
            infos
                .iter()
                .filter(|info| info["type"].as_str() == Some("page"))
                .filter_map(|info| {
                    Some((
                        info["targetId"].as_str()?.to_string(),
                        info["url"].as_str().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

pub(super) async fn create_page(
    conn: &Connection,
    deadline: Duration,
) -> Result<String, BrowserError> {
    let answer = conn
        .call(
            "Target.createTarget",
            json!({ "url": "about:blank" }),
            None,
            deadline,
        )
        .await?;
    answer["targetId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BrowserError::NoPage("Target.createTarget returned no id".into()))
}

pub(super) async fn attach(
    conn: &Connection,
    target_id: &str,
    deadline: Duration,
) -> Result<String, BrowserError> {
    let answer = conn
        .call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
            None,
            deadline,
        )
        .await?;
    answer["sessionId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BrowserError::NoPage("Target.attachToTarget returned no session".into()))
}

pub(super) async fn close_target(conn: &Connection, target_id: &str, deadline: Duration) -> bool {
    conn.call(
        "Target.closeTarget",
        json!({ "targetId": target_id }),
        None,
        deadline,
    )
    .await
    .is_ok()
}
