//! uid → user name and gid → group name, cached, and looked up **off the record thread**: the
//! name service may be LDAP or SSSD on a hospital's machines, and a hanging lookup must never
//! hold records back. A lookup runs on a resolver thread; the record stage waits for it at most
//! [`FIRST_WAIT`] the first time an id is seen (local files answer in microseconds), and never
//! again for that id while it is pending: the record goes out with the id and an empty name,
//! and the name appears in later records once known. Answers expire ([`KNOWN_TTL`],
//! [`UNKNOWN_TTL`]) and are then looked up again in the background (the old name is used
//! meanwhile). Each map holds a bounded number of ids.

use std::{
    sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel},
    time::{Duration, Instant},
};

use nix::unistd::{Gid, Group, Uid, User};

use crate::fastmap::FastMap;

/// Ids kept per map by default.
pub const DEFAULT_CAPACITY: usize = 4096;
/// How long the record stage waits for the first lookup of an id.
pub const FIRST_WAIT: Duration = Duration::from_millis(20);
/// A known name is looked up again after this long.
pub const KNOWN_TTL: Duration = Duration::from_secs(600);
/// "No such id" (or a failed lookup) is looked up again after this long.
pub const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// Lookups waiting for the resolver thread at most.
const QUEUE: usize = 1024;

/// What to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Query {
    User(u32),
    Group(u32),
}

/// Resolves one id: `Ok(None)` when there is no such id, `Err` when the lookup failed.
pub type Resolver = Box<dyn FnMut(Query) -> Result<Option<String>, String> + Send>;

/// The system's name service (`getpwuid_r`, `getgrgid_r`).
fn system(q: Query) -> Result<Option<String>, String> {
    match q {
        Query::User(id) => User::from_uid(Uid::from_raw(id)).map(|u| u.map(|u| u.name)),
        Query::Group(id) => Group::from_gid(Gid::from_raw(id)).map(|g| g.map(|g| g.name)),
    }
    .map_err(|e| e.to_string())
}

/// Lookups for one record (see [`NameCache::for_record`]).
pub struct RecordNames<'a> {
    now: Instant,
    cache: &'a mut NameCache,
}

impl RecordNames<'_> {
    /// Name of `uid`, as [`NameCache::user`].
    pub fn user(&mut self, uid: u32) -> Option<&str> {
        self.cache.lookup(Query::User(uid), self.now)
    }

    /// Name of `gid`, as [`NameCache::group`].
    pub fn group(&mut self, gid: u32) -> Option<&str> {
        self.cache.lookup(Query::Group(gid), self.now)
    }
}

#[derive(Debug, Clone)]
enum Slot {
    /// An answer (the name, or none) and when it expires; `refreshing` when a new lookup is out.
    Known { name: Option<String>, until: Instant, refreshing: bool },
    /// Asked, no answer yet.
    Pending,
}

/// Cached user and group names.
pub struct NameCache {
    /// Up to three lookups per record: a fast hash of the id, not SipHash.
    slots: FastMap<Query, Slot>,
    cap: usize,
    wait: Duration,
    queries: Option<SyncSender<Query>>,
    answers: Receiver<(Query, Result<Option<String>, String>)>,
}

impl std::fmt::Debug for NameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameCache").field("ids", &self.slots.len()).finish_non_exhaustive()
    }
}

impl Default for NameCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl NameCache {
    /// A cache holding at most `cap` users and `cap` groups, using the system's name service.
    pub fn new(cap: usize) -> Self {
        Self::with_resolver(cap, FIRST_WAIT, Box::new(system))
    }

    /// A cache with its own resolver (tests: a name service that hangs) and first-lookup wait.
    pub fn with_resolver(cap: usize, wait: Duration, mut resolve: Resolver) -> Self {
        let (qtx, qrx) = sync_channel::<Query>(QUEUE);
        let (atx, arx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new().name("name-lookup".into()).spawn(move || {
            // Ends when the cache is dropped (after the lookup in progress, if one hangs).
            for q in qrx {
                if atx.send((q, resolve(q))).is_err() {
                    return;
                }
            }
        });
        if let Err(e) = &spawned {
            tracing::warn!(error = %e, "cannot start the name lookup thread: records carry ids without names");
        }
        Self {
            slots: FastMap::default(),
            cap: cap.max(1) * 2,
            wait,
            queries: spawned.ok().map(|_| qtx),
            answers: arx,
        }
    }

    /// Name of `uid`, `None` when unknown (yet) or when `uid` is the unset id 4294967295.
    pub fn user(&mut self, uid: u32) -> Option<&str> {
        self.name(Query::User(uid))
    }

    /// Name of `gid`, `None` when unknown (yet).
    pub fn group(&mut self, gid: u32) -> Option<&str> {
        self.name(Query::Group(gid))
    }

    /// Ids cached or pending: (users, groups).
    pub fn len(&self) -> (usize, usize) {
        let users = self.slots.keys().filter(|q| matches!(q, Query::User(_))).count();
        (users, self.slots.len() - users)
    }

    /// Nothing cached yet.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The names of one record's ids: answers that arrived are taken and the clock is read
    /// once for all of them (a record asks up to three; each was a channel poll and a clock
    /// read of its own).
    pub fn for_record(&mut self) -> RecordNames<'_> {
        self.take_answers();
        RecordNames { now: Instant::now(), cache: self }
    }

    fn name(&mut self, q: Query) -> Option<&str> {
        self.take_answers();
        self.lookup(q, Instant::now())
    }

    /// `q`'s name as cached at `now`, asking for it (and waiting a little) the first time.
    fn lookup(&mut self, q: Query, now: Instant) -> Option<&str> {
        if matches!(q, Query::User(u32::MAX) | Query::Group(u32::MAX)) {
            return None;
        }
        let first = match self.slots.get_mut(&q) {
            None => true,
            Some(Slot::Pending) => false,
            Some(Slot::Known { until, refreshing, .. }) => {
                if *until <= now && !*refreshing {
                    // Expired: look it up again in the background; the old answer serves meanwhile.
                    *refreshing = self.queries.as_ref().is_some_and(|tx| tx.try_send(q).is_ok());
                }
                false
            }
        };
        if first {
            self.ask(q);
        }
        match self.slots.get(&q) {
            Some(Slot::Known { name, .. }) => name.as_deref(),
            _ => None,
        }
    }

    /// Sends a first lookup and waits a little for it.
    fn ask(&mut self, q: Query) {
        if self.slots.len() >= self.cap {
            // Bounded: forget answers (ids seen are few; this is a safety net). Pending ones stay.
            self.slots.retain(|_, s| matches!(s, Slot::Pending));
        }
        let Some(tx) = &self.queries else { return };
        if tx.try_send(q).is_err() {
            return; // The resolver is stuck behind a full queue: try again next time.
        }
        self.slots.insert(q, Slot::Pending);
        let deadline = Instant::now() + self.wait;
        while matches!(self.slots.get(&q), Some(Slot::Pending)) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return };
            match self.answers.recv_timeout(left) {
                Ok((aq, res)) => self.store(aq, res),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn take_answers(&mut self) {
        loop {
            match self.answers.try_recv() {
                Ok((q, res)) => self.store(q, res),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn store(&mut self, q: Query, res: Result<Option<String>, String>) {
        let now = Instant::now();
        let slot = match res {
            Ok(Some(name)) => Slot::Known { name: Some(name), until: now + KNOWN_TTL, refreshing: false },
            Ok(None) => Slot::Known { name: None, until: now + UNKNOWN_TTL, refreshing: false },
            Err(e) => {
                tracing::debug!(?q, error = %e, "name lookup failed");
                // Keep a name known before; try again later.
                let old = match self.slots.remove(&q) {
                    Some(Slot::Known { name, .. }) => name,
                    _ => None,
                };
                Slot::Known { name: old, until: now + UNKNOWN_TTL, refreshing: false }
            }
        };
        self.slots.insert(q, slot);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    };

    use super::*;

    #[test]
    fn root_unknown_and_unset() {
        let mut c = NameCache::with_resolver(DEFAULT_CAPACITY, Duration::from_secs(5), Box::new(system));
        assert_eq!(c.user(0), Some("root"));
        assert_eq!(c.group(0), Some("root"));
        assert_eq!(c.user(4_000_000), None);
        assert_eq!(c.group(4_000_000), None);
        assert_eq!(c.user(u32::MAX), None);
        assert_eq!(c.len(), (2, 2), "negative results are cached, unset is not");
        assert_eq!(c.user(0), Some("root"));
        assert_eq!(c.len(), (2, 2));
        let mut r = c.for_record();
        assert_eq!(r.user(0), Some("root"));
        assert_eq!(r.group(0), Some("root"));
        assert_eq!(r.user(u32::MAX), None);
        assert_eq!(r.user(4_000_000), None);
    }

    #[test]
    fn a_hanging_name_service_never_holds_records_back() {
        let hang = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(AtomicU32::new(0));
        let (h, n) = (hang.clone(), calls.clone());
        let resolver: Resolver = Box::new(move |q| {
            n.fetch_add(1, Ordering::Relaxed);
            while h.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(Some(format!("{q:?}")))
        });
        let mut c = NameCache::with_resolver(16, Duration::from_millis(20), resolver);
        let t = Instant::now();
        assert_eq!(c.user(1000), None, "the first lookup times out");
        for _ in 0..1000 {
            assert_eq!(c.user(1000), None);
            assert_eq!(c.group(1000), None);
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "pending ids are not waited for again: {:?}",
            t.elapsed()
        );
        hang.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.user(1000).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.user(1000), Some("User(1000)"), "the name follows once known");
        while c.group(1000).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.group(1000), Some("Group(1000)"));
        assert_eq!(calls.load(Ordering::Relaxed), 2, "one lookup per id");
    }

    #[test]
    fn capacity_is_bounded_and_matches_the_system() {
        let mut c = NameCache::with_resolver(2, Duration::from_secs(5), Box::new(system));
        let me = nix::unistd::getuid().as_raw();
        let expected = User::from_uid(Uid::from_raw(me)).expect("getpwuid").map(|u| u.name);
        for id in [4_000_001, 4_000_002, 4_000_003, 4_000_004, 4_000_005, me] {
            let _ = c.user(id);
            assert!(c.slots.len() <= 4);
        }
        assert_eq!(c.user(me).map(str::to_owned), expected);
    }
}
