//! A process's ancestry, built once and shared by every record of that process.
//!
//! The ancestors are most of a record (each one's executable and command line, up to 16 of
//! them). Cloning them into every record, encoding them again and freeing them was about a
//! fifth of the record stage's CPU on a write storm. An [`Ancestry`] holds the list and its
//! protobuf encoding; records share it through an `Arc`, and the record builder splices the
//! encoded bytes into each record's encoding (see `recordbuild`).

use std::sync::{Arc, LazyLock};

use prost::Message as _;
use sensor_proto::{AuditRecord, v1::Ancestor};

/// Ancestors of a process, nearest first, with their encoding as `AuditRecord.ancestors`.
#[derive(Debug, Default, PartialEq)]
pub struct Ancestry {
    list: Vec<Ancestor>,
    /// The `ancestors` field entries of an `AuditRecord` holding `list` (tag, length and
    /// message of each ancestor, in order).
    encoded: Vec<u8>,
}

static EMPTY: LazyLock<Arc<Ancestry>> = LazyLock::new(Arc::default);

impl Ancestry {
    /// Encodes `list` once.
    pub fn new(list: Vec<Ancestor>) -> Self {
        // A record with only its ancestors encodes to exactly their field entries: every other
        // field is at its default, which protobuf leaves out.
        let mut only = AuditRecord { ancestors: list, ..Default::default() };
        let encoded = only.encode_to_vec();
        Self { list: std::mem::take(&mut only.ancestors), encoded }
    }

    /// The shared empty ancestry (no allocation per record).
    pub fn empty() -> Arc<Self> {
        Arc::clone(&EMPTY)
    }

    /// `first` followed by `rest`: the ancestry of a child of the process whose ancestry is
    /// `rest`, built without walking or encoding `rest` again (repeated fields encode as the
    /// concatenation of their entries, so the bytes are those of [`Self::new`]).
    pub fn prepend(first: Ancestor, rest: &Self) -> Self {
        let mut list = Vec::with_capacity(rest.list.len() + 1);
        list.push(first);
        let mut only = AuditRecord { ancestors: list, ..Default::default() };
        let mut encoded = Vec::with_capacity(only.encoded_len() + rest.encoded.len());
        only.encode_raw(&mut encoded);
        encoded.extend_from_slice(&rest.encoded);
        let mut list = std::mem::take(&mut only.ancestors);
        list.extend_from_slice(&rest.list);
        Self { list, encoded }
    }

    /// Encodes `list` once and shares it (the empty list without an allocation).
    pub fn shared(list: Vec<Ancestor>) -> Arc<Self> {
        if list.is_empty() { Self::empty() } else { Arc::new(Self::new(list)) }
    }

    pub fn list(&self) -> &[Ancestor] {
        &self.list
    }

    /// The protobuf bytes of the ancestors, as fields of an `AuditRecord`.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
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
        let a = Ancestry::new(list.clone());
        assert_eq!(a.list(), list.as_slice());
        let back = AuditRecord::decode(a.encoded()).expect("decodes");
        assert_eq!(back.ancestors, list);
        assert!(Ancestry::empty().encoded().is_empty());

        let child = Ancestor { guid: "g2".into(), pid: 9, exe: "/usr/bin/sh".into(), ..Default::default() };
        let mut whole = vec![child.clone()];
        whole.extend(list);
        assert_eq!(Ancestry::prepend(child, &a), Ancestry::new(whole));
    }
}
