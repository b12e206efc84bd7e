//! uid → user name and gid → group name, cached (unknown ids too, so a missing name costs one
//! lookup, not one per event). Each map holds at most a bounded number of ids.

use std::collections::HashMap;

use nix::unistd::{Gid, Group, Uid, User};

/// Ids kept per map by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Cached user and group names.
#[derive(Debug)]
pub struct NameCache {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
    cap: usize,
}

impl Default for NameCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl NameCache {
    /// A cache holding at most `cap` users and `cap` groups.
    pub fn new(cap: usize) -> Self {
        Self { users: HashMap::new(), groups: HashMap::new(), cap: cap.max(1) }
    }

    /// Name of `uid`, `None` when no such user (or `uid` is the unset id 4294967295).
    pub fn user(&mut self, uid: u32) -> Option<&str> {
        let cap = self.cap;
        cached(&mut self.users, cap, uid, |id| User::from_uid(Uid::from_raw(id)).map(|u| u.map(|u| u.name)))
    }

    /// Name of `gid`, `None` when no such group.
    pub fn group(&mut self, gid: u32) -> Option<&str> {
        let cap = self.cap;
        cached(&mut self.groups, cap, gid, |id| Group::from_gid(Gid::from_raw(id)).map(|g| g.map(|g| g.name)))
    }

    /// Ids cached: (users, groups).
    pub fn len(&self) -> (usize, usize) {
        (self.users.len(), self.groups.len())
    }

    /// Nothing cached yet.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
}

/// Looks `id` up in `map`, resolving and caching it on a miss. A failed lookup (as opposed to
/// "no such id") is not cached, so it is retried next time.
fn cached(
    map: &mut HashMap<u32, Option<String>>,
    cap: usize,
    id: u32,
    resolve: impl FnOnce(u32) -> nix::Result<Option<String>>,
) -> Option<&str> {
    if id == u32::MAX {
        return None;
    }
    if !map.contains_key(&id) {
        let name = resolve(id).ok()?;
        if map.len() >= cap {
            // Bounded: drop an arbitrary entry (ids seen are few; this is a safety net).
            if let Some(old) = map.keys().next().copied() {
                map.remove(&old);
            }
        }
        map.insert(id, name);
    }
    map.get(&id)?.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_unknown_and_unset() {
        let mut c = NameCache::default();
        assert_eq!(c.user(0), Some("root"));
        assert_eq!(c.group(0), Some("root"));
        assert_eq!(c.user(4_000_000), None);
        assert_eq!(c.group(4_000_000), None);
        assert_eq!(c.user(u32::MAX), None);
        assert_eq!(c.len(), (2, 2), "negative results are cached, unset is not");
        assert_eq!(c.user(0), Some("root"));
        assert_eq!(c.len(), (2, 2));
    }

    #[test]
    fn capacity_is_bounded_and_matches_the_system() {
        let mut c = NameCache::new(2);
        let me = nix::unistd::getuid().as_raw();
        let expected = User::from_uid(Uid::from_raw(me)).expect("getpwuid").map(|u| u.name);
        for id in [4_000_001, 4_000_002, 4_000_003, me] {
            let _ = c.user(id);
            assert!(c.len().0 <= 2);
        }
        assert_eq!(c.user(me).map(str::to_owned), expected);
        assert!(c.users.contains_key(&me));
    }
}
