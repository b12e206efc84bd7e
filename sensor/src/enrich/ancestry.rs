//! A process's ancestry, built once and shared by every record of that process.
//!
//! The ancestors are most of a record (each one's executable and command line, up to 16 of
//! them). Cloning them into every record, encoding them again and freeing them was about a
//! fifth of the record stage's CPU on a write storm. An [`Ancestry`] holds the list and its
//! protobuf encoding; records share it through an `Arc`, and the record builder splices the
//! encoded bytes into each record's encoding (see `recordbuild`).
//!
//! A new process's ancestry is its parent followed by the parent's ancestry. That rest is not
//! copied: the new ancestry points at the parent's list (an `Arc`), and only the encoding's
//! bytes are copied. Copying the list (every ancestor's strings and command line) for every
//! new process was the largest allocation cost of an exec storm.
//!
//! The parent is listed as it is; the ancestors above it carry their command lines cut to a
//! limit (`limits.ancestor_argv_bytes`, see [`capped`]).

use std::sync::{Arc, LazyLock, OnceLock};

use prost::Message as _;
use sensor_proto::{AuditRecord, v1::Ancestor};

/// Ancestors of a process, nearest first, with their encoding as `AuditRecord.ancestors`.
#[derive(Debug, Default)]
pub struct Ancestry {
    /// The nearest ancestor (the parent), as given: its command line whole.
    parent: Option<Ancestor>,
    /// The ancestors above the parent, shared with other ancestries.
    above: Option<Arc<Chain>>,
    /// Ancestors in all.
    len: usize,
    /// The `ancestors` field entries of an `AuditRecord` holding all of them (tag, length and
    /// message of each ancestor, in order).
    encoded: Vec<u8>,
    /// Bytes of the parent's entry at the start of `encoded`.
    parent_bytes: usize,
    /// This list as its children's ancestries continue it (the parent's command line cut), made
    /// by the first child and shared by the others (see [`Self::prepend`]).
    as_rest: OnceLock<AsRest>,
}

/// An ancestry as the part of a child's ancestry above the child's parent.
#[derive(Debug)]
struct AsRest {
    /// The command-line limit it was made with.
    argv_max_bytes: usize,
    /// The ancestors, the first one cut.
    chain: Arc<Chain>,
    /// The encoding of the cut first one, followed by the rest's (as in `encoded`).
    encoded: Vec<u8>,
}

/// Ancestors above a parent: the nearest ones held here, then the rest shared with the
/// ancestry they are (a parent's). Only the lists are shared, not the encodings: a parent's
/// ancestry kept alive by its children's holds each ancestor once.
#[derive(Debug, Default)]
struct Chain {
    own: Vec<Ancestor>,
    rest: Option<Arc<Chain>>,
}

/// Equal when they list the same ancestors, however they are held.
impl PartialEq for Ancestry {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

static EMPTY: LazyLock<Arc<Ancestry>> = LazyLock::new(Arc::default);

/// Appends `ancestors` encoded as `AuditRecord.ancestors` entries.
fn encode_into(ancestors: Vec<Ancestor>, out: &mut Vec<u8>) -> Vec<Ancestor> {
    // A record with only its ancestors encodes to exactly their field entries: every other
    // field is at its default, which protobuf leaves out.
    let mut only = AuditRecord { ancestors, ..Default::default() };
    out.reserve(only.encoded_len());
    only.encode_raw(out);
    std::mem::take(&mut only.ancestors)
}

impl Ancestry {
    /// Encodes `list` once, as given.
    pub fn new(list: Vec<Ancestor>) -> Self {
        let mut list = list.into_iter();
        let Some(parent) = list.next() else {
            return Self::default();
        };
        let mut encoded = Vec::new();
        let parent = encode_into(vec![parent], &mut encoded).pop();
        let parent_bytes = encoded.len();
        let own = encode_into(list.collect(), &mut encoded);
        let len = 1 + own.len();
        let above = (!own.is_empty()).then(|| Arc::new(Chain { own, rest: None }));
        Self { parent, above, len, encoded, parent_bytes, as_rest: OnceLock::new() }
    }

    /// The shared empty ancestry (no allocation per record).
    pub fn empty() -> Arc<Self> {
        Arc::clone(&EMPTY)
    }

    /// `first` followed by `rest`, the ancestry of a child of the process whose ancestry is
    /// `rest`, with `rest`'s parent now a grandparent: its command line cut to
    /// `argv_max_bytes` (see [`capped`]). Built without walking, copying or encoding the rest
    /// of `rest` again (repeated fields encode as the concatenation of their entries, so the
    /// bytes are those of [`Self::new`] on the same list); the cut grandparent is made once
    /// per `rest` and shared by the ancestries of all its children.
    pub fn prepend(first: Ancestor, rest: &Self, argv_max_bytes: usize) -> Self {
        let fresh;
        let above = match rest.parent {
            None => None,
            Some(_) => match rest.as_rest.get_or_init(|| rest.make_rest(argv_max_bytes)) {
                made if made.argv_max_bytes == argv_max_bytes => Some(made),
                _ => {
                    fresh = rest.make_rest(argv_max_bytes);
                    Some(&fresh)
                }
            },
        };
        let mut encoded = Vec::with_capacity(rest.encoded.len() + 256);
        let parent = encode_into(vec![first], &mut encoded).pop();
        let parent_bytes = encoded.len();
        if let Some(a) = above {
            encoded.extend_from_slice(&a.encoded);
        }
        let above = above.map(|a| Arc::clone(&a.chain));
        Self { parent, above, len: 1 + rest.len, encoded, parent_bytes, as_rest: OnceLock::new() }
    }

    /// This (non-empty) list with its first ancestor cut to `argv_max_bytes`, as the part of a
    /// child's ancestry above the child's parent.
    fn make_rest(&self, argv_max_bytes: usize) -> AsRest {
        let mut encoded = Vec::new();
        let own = self.parent.iter().map(|p| capped(p.clone(), argv_max_bytes)).collect();
        let own = encode_into(own, &mut encoded);
        encoded.extend_from_slice(&self.encoded[self.parent_bytes..]);
        AsRest { argv_max_bytes, chain: Arc::new(Chain { own, rest: self.above.clone() }), encoded }
    }

    /// Encodes `list` once and shares it (the empty list without an allocation).
    pub fn shared(list: Vec<Ancestor>) -> Arc<Self> {
        if list.is_empty() { Self::empty() } else { Arc::new(Self::new(list)) }
    }

    /// The ancestors, nearest first.
    pub fn iter(&self) -> impl Iterator<Item = &Ancestor> {
        let above = std::iter::successors(self.above.as_deref(), |c| c.rest.as_deref());
        self.parent.iter().chain(above.flat_map(|c| c.own.iter()))
    }

    /// The nearest ancestor (without building the iterator: rules read it on every record).
    pub fn first(&self) -> Option<&Ancestor> {
        self.parent.as_ref().or_else(|| self.iter().next())
    }

    /// How many ancestors.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ancestors, copied.
    pub fn to_vec(&self) -> Vec<Ancestor> {
        self.iter().cloned().collect()
    }

    /// The protobuf bytes of the ancestors, as fields of an `AuditRecord`.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
}

/// `a` with its command line cut to `max_bytes` bytes of arguments: whole arguments while they
/// fit, then the one that crosses the limit cut at a character boundary; `argv_truncated` is
/// set when anything was cut. Every record repeats its ancestors, so one long command line
/// above the parent (a Java class path, a launcher's environment) would otherwise be copied,
/// hashed, stored and shipped with every record of every descendant; the whole command line
/// is in that process's own records, under the same GUID.
pub fn capped(mut a: Ancestor, max_bytes: usize) -> Ancestor {
    let mut left = max_bytes;
    for i in 0..a.argv.len() {
        let arg = &mut a.argv[i];
        if arg.len() <= left {
            left -= arg.len();
            continue;
        }
        let mut cut = left;
        while !arg.is_char_boundary(cut) {
            cut -= 1;
        }
        arg.truncate(cut);
        a.argv.truncate(if cut == 0 { i } else { i + 1 });
        a.argv_truncated = true;
        break;
    }
    a
}

/// Ancestors as a reader sees them, nearest first: those of a record read back (in the record)
/// or a pipeline record's shared [`Ancestry`].
#[derive(Debug, Clone, Copy)]
pub enum Ancestors<'a> {
    Listed(&'a [Ancestor]),
    Shared(&'a Ancestry),
}

impl<'a> Ancestors<'a> {
    pub fn iter(self) -> impl Iterator<Item = &'a Ancestor> {
        let (listed, shared) = match self {
            Self::Listed(l) => (Some(l.iter()), None),
            Self::Shared(a) => (None, Some(a.iter())),
        };
        listed.into_iter().flatten().chain(shared.into_iter().flatten())
    }

    /// The parent.
    pub fn first(self) -> Option<&'a Ancestor> {
        match self {
            Self::Listed(l) => l.first(),
            Self::Shared(a) => a.first(),
        }
    }

    /// The `i`-th ancestor (0: the parent).
    pub fn get(self, i: usize) -> Option<&'a Ancestor> {
        self.iter().nth(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_bytes_are_the_records_ancestor_fields() {
        let list = vec![
            Ancestor {
                guid: "g1".into(),
                pid: 7,
                exe: "/usr/bin/bash".into(),
                argv: vec!["bash".into()],
                ..Default::default()
            },
            Ancestor { guid: "g0".into(), pid: 1, exe: "/sbin/init".into(), ..Default::default() },
        ];
        let a = Arc::new(Ancestry::new(list.clone()));
        assert_eq!(a.to_vec(), list);
        assert_eq!(a.len(), 2);
        let back = AuditRecord::decode(a.encoded()).expect("decodes");
        assert_eq!(back.ancestors, list);
        assert!(Ancestry::empty().encoded().is_empty());

        let child = Ancestor { guid: "g2".into(), pid: 9, exe: "/usr/bin/sh".into(), ..Default::default() };
        let mut whole = vec![child.clone()];
        whole.extend(list);
        let built = Ancestry::prepend(child, &a, usize::MAX);
        assert_eq!(built, Ancestry::new(whole.clone()));
        assert_eq!(built.encoded(), Ancestry::new(whole.clone()).encoded());
        assert_eq!(built.len(), 3);
        // A chain of prepends lists and encodes what one flat list does.
        let grandchild = Ancestor { guid: "g3".into(), pid: 10, ..Default::default() };
        let deeper = Ancestry::prepend(grandchild.clone(), &Arc::new(built), usize::MAX);
        whole.insert(0, grandchild);
        assert_eq!(deeper.to_vec(), whole);
        assert_eq!(deeper.encoded(), Ancestry::new(whole.clone()).encoded());
        assert_eq!(Ancestors::Shared(&deeper).get(1), whole.get(1));
        assert_eq!(Ancestors::Shared(&deeper).first(), whole.first());
        assert!(Ancestors::Shared(&deeper).iter().eq(Ancestors::Listed(&whole).iter()));
        // Onto the empty ancestry: nothing shared.
        let only = Ancestry::prepend(whole[0].clone(), &Ancestry::empty(), usize::MAX);
        assert_eq!(only.to_vec(), vec![whole[0].clone()]);
        assert!(only.above.is_none());
    }

    fn with_argv(guid: &str, argv: &[&str]) -> Ancestor {
        Ancestor { guid: guid.into(), argv: argv.iter().map(|&a| a.into()).collect(), ..Default::default() }
    }

    #[test]
    fn command_lines_are_cut_at_the_limit_on_a_character_boundary() {
        let a = with_argv("g", &["java", "-cp", "/opt/a.jar:/opt/b.jar", "Main"]);
        assert_eq!(capped(a.clone(), 1000), a, "fits: unchanged, not flagged");
        assert_eq!(capped(a.clone(), 32), a, "exactly the limit fits");
        let cut = capped(a.clone(), 12);
        assert_eq!(cut.argv, ["java", "-cp", "/opt/"]);
        assert!(cut.argv_truncated);
        // Cut between two arguments: no empty argument left behind.
        assert_eq!(capped(a.clone(), 7).argv, ["java", "-cp"]);
        assert_eq!(capped(a, 0).argv, Vec::<String>::new());
        // Never inside a character: "é" is two bytes.
        let e = capped(with_argv("g", &["été"]), 2);
        assert_eq!(e.argv, ["é"]);
        assert!(e.argv_truncated);
        assert_eq!(capped(with_argv("g", &["été"]), 1).argv, Vec::<String>::new());
        // Capping is idempotent: a cut command line stays as it is.
        assert_eq!(capped(capped(with_argv("g", &["a", "bcdef"]), 3), 3).argv, ["a", "bc"]);
    }

    #[test]
    fn a_childs_ancestry_cuts_the_grandparents_command_line_not_the_parents() {
        let long = "x".repeat(100);
        let grandparent = with_argv("g0", &["launcher", &long]);
        let parent = with_argv("g1", &["server", &long]);
        let child_of_gp = Ancestry::new(vec![grandparent.clone()]);
        assert_eq!(child_of_gp.to_vec(), std::slice::from_ref(&grandparent), "the parent is whole");
        let built = Ancestry::prepend(parent.clone(), &child_of_gp, 20);
        let expected = vec![parent, capped(grandparent, 20)];
        assert_eq!(expected[1].argv, ["launcher", "x".repeat(12).as_str()]);
        assert_eq!(built.to_vec(), expected);
        assert_eq!(built.encoded(), Ancestry::new(expected.clone()).encoded());
        assert_eq!(AuditRecord::decode(built.encoded()).expect("decodes").ancestors, expected);
        // A sibling shares the cut grandparent (made once), not a copy of its own.
        let sibling = Ancestry::prepend(with_argv("g2", &["worker"]), &child_of_gp, 20);
        let (a, b) = (built.above.as_ref().expect("above"), sibling.above.as_ref().expect("above"));
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(sibling.encoded()[sibling.parent_bytes..], built.encoded()[built.parent_bytes..]);
        // Another limit is honoured (not the one the shared part was made with).
        let wider = Ancestry::prepend(expected[0].clone(), &child_of_gp, 1000);
        assert_eq!(wider.to_vec()[1], child_of_gp.to_vec()[0]);
        assert_eq!(wider.encoded(), Ancestry::new(wider.to_vec()).encoded());
    }
}
