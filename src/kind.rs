//! The two kinds of action, post and reply, which are also the names of the tick's two lanes.
//!
//! A leaf of its own (it imports nothing of ours), so that rules which name a lane — the
//! operator's pauses, which the job queue's claim obeys — need not import the queue's model,
//! and the queue's model can carry them. `crate::jobs::Kind` is the same type.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Post,
    Reply,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Post, Kind::Reply];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Reply => "reply",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "post" => Some(Kind::Post),
            "reply" => Some(Kind::Reply),
            _ => None,
        }
    }
}

/// A number per lane: due jobs at the start of the tick, or actions started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCounts {
    pub posting: u64,
    pub reply: u64,
}

impl LaneCounts {
    pub fn add(&mut self, kind: Kind, n: u64) {
        match kind {
            Kind::Post => self.posting += n,
            Kind::Reply => self.reply += n,
        }
    }
}
