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

    /// The lane's place in a per-lane array (in the order of [`Kind::ALL`]).
    pub fn index(self) -> usize {
        match self {
            Kind::Post => 0,
            Kind::Reply => 1,
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

    /// Both lanes together.
    pub fn total(&self) -> u64 {
        self.posting + self.reply
    }

    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Post => self.posting,
            Kind::Reply => self.reply,
        }
    }
}

/// What the tick's one read of the store found in an account's lanes: the due jobs, and
/// whether anything else asks for the lane's pass — an `uncertain` job to look up, an expired
/// lease (of any account) to sweep, a breaker to obey or clear, an operator's pause. A lane with
/// neither is left alone for the tick: nothing it would claim, sweep or say exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneLook {
    pub due: LaneCounts,
    pub chores: [bool; 2],
}

impl LaneLook {
    pub fn chores(&self, kind: Kind) -> bool {
        self.chores[kind.index()]
    }

    pub fn set_chores(&mut self, kind: Kind, chores: bool) {
        self.chores[kind.index()] = chores;
    }

    /// Whether the lane has nothing at all to do this tick.
    pub fn quiet(&self, kind: Kind) -> bool {
        self.due.get(kind) == 0 && !self.chores(kind)
    }

    /// Whether neither lane has anything to do this tick.
    pub fn idle(&self) -> bool {
        Kind::ALL.into_iter().all(|kind| self.quiet(kind))
    }
}
