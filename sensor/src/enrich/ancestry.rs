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

use std::sync::{Arc, LazyLock};

use prost::Message as _;
use sensor_proto::{AuditRecord, v1::Ancestor};

/// Ancestors of a process, nearest first, with their encoding as `AuditRecord.ancestors`.
#[derive(Debug, Default)]
pub struct Ancestry {
    list: Arc<Chain>,
    /// Ancestors in all.
    len: usize,
    /// The `ancestors` field entries of an `AuditRecord` holding all of them (tag, length and
    /// message of each ancestor, in order).
    encoded: Vec<u8>,
}

/// The ancestors: the nearest ones held here, then the rest shared with the ancestry they are
/// (a parent's). Only the lists are shared, not the encodings: a parent's ancestry kept alive
/// by its children's holds each ancestor once.
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

impl Ancestry {
    /// Encodes `list` once.
    pub fn new(list: Vec<Ancestor>) -> Self {
        // A record with only its ancestors encodes to exactly their field entries: every other
        // field is at its default, which protobuf leaves out.
        let mut only = AuditRecord { ancestors: list, ..Default::default() };
        let encoded = only.encode_to_vec();
        let own = std::mem::take(&mut only.ancestors);
        Self { len: own.len(), list: Arc::new(Chain { own, rest: None }), encoded }
    }

    /// The shared empty ancestry (no allocation per record).
    pub fn empty() -> Arc<Self> {
        Arc::clone(&EMPTY)
    }

    /// `first` followed by `rest`: the ancestry of a child of the process whose ancestry is
    /// `rest`, built without walking, copying or encoding `rest` again (repeated fields encode
    /// as the concatenation of their entries, so the bytes are those of [`Self::new`]).
    pub fn prepend(first: Ancestor, rest: &Self) -> Self {
        let mut only = AuditRecord { ancestors: vec![first], ..Default::default() };
        let mut encoded = Vec::with_capacity(only.encoded_len() + rest.encoded.len());
        only.encode_raw(&mut encoded);
        encoded.extend_from_slice(&rest.encoded);
        let own = std::mem::take(&mut only.ancestors);
        let shared = (rest.len > 0).then(|| Arc::clone(&rest.list));
        Self { len: own.len() + rest.len, list: Arc::new(Chain { own, rest: shared }), encoded }
    }

    /// Encodes `list` once and shares it (the empty list without an allocation).
    pub fn shared(list: Vec<Ancestor>) -> Arc<Self> {
        if list.is_empty() { Self::empty() } else { Arc::new(Self::new(list)) }
    }

    /// The ancestors, nearest first.
    pub fn iter(&self) -> impl Iterator<Item = &Ancestor> {
        std::iter::successors(Some(&*self.list), |c| c.rest.as_deref()).flat_map(|c| c.own.iter())
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
        self.iter().next()
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
        let built = Ancestry::prepend(child, &a);
        assert_eq!(built, Ancestry::new(whole.clone()));
        assert_eq!(built.encoded(), Ancestry::new(whole.clone()).encoded());
        assert_eq!(built.len(), 3);
        // A chain of prepends lists and encodes what one flat list does.
        let grandchild = Ancestor { guid: "g3".into(), pid: 10, ..Default::default() };
        let deeper = Ancestry::prepend(grandchild.clone(), &Arc::new(built));
        whole.insert(0, grandchild);
        assert_eq!(deeper.to_vec(), whole);
        assert_eq!(deeper.encoded(), Ancestry::new(whole.clone()).encoded());
        assert_eq!(Ancestors::Shared(&deeper).get(1), whole.get(1));
        assert_eq!(Ancestors::Shared(&deeper).first(), whole.first());
        assert!(Ancestors::Shared(&deeper).iter().eq(Ancestors::Listed(&whole).iter()));
        // Onto the empty ancestry: nothing shared.
        let only = Ancestry::prepend(whole[0].clone(), &Ancestry::empty());
        assert_eq!(only.to_vec(), vec![whole[0].clone()]);
        assert!(only.list.rest.is_none());
    }
}
