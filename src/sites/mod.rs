//! Sites as data (SPEC §7): a TOML file says how to detect a logged-in session and the login
//! walls, how to post and reply, where the new post's id is in the site's own create-post answer,
//! how to check whether a post exists, and the text limit. One engine ([`engine::SiteEngine`])
//! interprets any definition through the single page. Built in: `x` and `sandbox`
//! (`sites/*.toml`, embedded); `--site FILE` loads another without recompiling.

pub mod engine;

use serde::Deserialize;
use std::path::Path;

const BUILT_IN: &[(&str, &str)] = &[
    ("x", include_str!("../../sites/x.toml")),
    ("sandbox", include_str!("../../sites/sandbox.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDefinition {
    pub name: String,
    pub base_url: String,
    pub max_chars: usize,
    #[serde(default)]
    pub default_account: String,
    pub session: SessionDef,
    pub post: ComposeDef,
    pub reply: ReplyDef,
    pub result: ResultDef,
    pub find: FindDef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDef {
    pub check_url: String,
    pub logged_in: String,
    pub login_walls: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeDef {
    pub url: String,
    pub composer: String,
    pub submit: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyDef {
    pub url: String,
    pub open: String,
    pub composer: String,
    pub submit: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultDef {
    pub response_url: String,
    pub id_path: String,
    pub post_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindDef {
    pub posts_url: String,
    pub replies_url: String,
    pub item: String,
    pub text: String,
    pub link: String,
    #[serde(default)]
    pub empty_means_absent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(
        "--site / EXECUTOR_SITE {0:?}: neither a built-in site (x, sandbox) nor a readable file"
    )]
    Unknown(String),
    #[error("site file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl SiteDefinition {
    /// A built-in name, or a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<SiteDefinition, SiteError> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
            return Self::parse(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path)
            .map_err(|_| SiteError::Unknown(name_or_path.to_string()))?;
        Self::parse(&path.display().to_string(), &text)
    }

    fn parse(source: &str, text: &str) -> Result<SiteDefinition, SiteError> {
        let invalid = |reason: String| SiteError::Invalid {
            path: source.to_string(),
            reason,
        };
        let def: SiteDefinition =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if def.max_chars == 0 {
            return Err(invalid("max_chars must be at least 1".into()));
        }
        if def.post.submit.is_empty() || def.reply.submit.is_empty() {
            return Err(invalid(
                "post.submit and reply.submit need at least one selector".into(),
            ));
        }
        if !def.base_url.starts_with("http://") && !def.base_url.starts_with("https://") {
            return Err(invalid(format!(
                "base_url {:?} is not an http(s) URL",
                def.base_url
            )));
        }
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_load_and_carry_the_spec_selectors() {
        let x = SiteDefinition::load("x").expect("x");
        assert_eq!(x.max_chars, 280);
        assert_eq!(x.post.composer, "[data-testid=\"tweetTextarea_0\"]");
        assert!(x
            .post
            .submit
            .contains(&"[data-testid=\"tweetButtonInline\"]".to_string()));
        assert!(x
            .post
            .submit
            .contains(&"[data-testid=\"tweetButton\"]".to_string()));
        assert_eq!(
            x.result.id_path,
            "data.create_tweet.tweet_results.result.rest_id"
        );
        for wall in ["/i/flow/login", "/account/access", "/i/flow/challenge"] {
            assert!(x.session.login_walls.contains(&wall.to_string()));
        }
        assert!(SiteDefinition::load("sandbox").is_ok());
    }

    #[test]
    fn unknown_names_and_bad_files_are_clear_errors() {
        assert!(matches!(
            SiteDefinition::load("myspace"),
            Err(SiteError::Unknown(_))
        ));
        let dir = std::env::temp_dir().join(format!("executor-site-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "name = \"bad\"\n").expect("write");
        let err = SiteDefinition::load(file.to_str().expect("utf8")).expect_err("invalid");
        assert!(err.to_string().contains("bad.toml"), "{err}");
    }
}
