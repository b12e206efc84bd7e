//! The hash chain's SHA-256 without hashing the same bytes again for every record.
//!
//! A record is encoded with the fields records share first (see `encode_spliced`): the host,
//! then the ancestors (the same for a process's records and for its siblings'), then the
//! process (the same for a process's records in a row). The hash state after each of the two
//! is kept; the next record that starts with the same bytes continues from it and hashes only
//! the rest. Hashing was the largest cost of building a record: these shared fields are most of
//! its bytes.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::enrich::ancestry::Ancestry;

/// Where a record's shared fields end in its encoding.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shared {
    /// Whether the host field is in (it is the builder's own, the same bytes in every record).
    pub host: bool,
    /// End of the host and ancestors fields.
    pub ancestry_end: usize,
    /// End of the process field (`ancestry_end` when the record has no process).
    pub process_end: usize,
    /// The generation of the builder's kept process field when the record's process field is
    /// that one (a kept field's bytes never change), `None` otherwise.
    pub process: Option<u64>,
}

/// Hash states after the shared fields of the records hashed last.
#[derive(Debug, Default)]
pub(super) struct PrefixHasher {
    ancestry: Option<AncestryState>,
    process: Option<ProcessState>,
    /// Numbers the successive `ancestry` states.
    epoch: u64,
    /// Records that continued from a kept state: (after the ancestors, after the process).
    #[cfg(test)]
    pub hits: (usize, usize),
}

/// The state after the host and ancestors fields.
#[derive(Debug)]
struct AncestryState {
    host: bool,
    /// The ancestry those bytes encode (an ancestry never changes: while it is held here, an
    /// `Arc` at the same address is the same ancestry).
    ancestry: Arc<Ancestry>,
    state: Sha256,
    epoch: u64,
}

/// The state after the process field, continuing the ancestry state of `key.0`.
#[derive(Debug)]
struct ProcessState {
    /// (ancestry state epoch, process field generation)
    key: (u64, u64),
    state: Sha256,
}

impl PrefixHasher {
    /// The SHA-256 of `bytes`, a record encoded with its shared fields first as `shared` says,
    /// the ancestors being `ancestry`'s encoding.
    pub fn digest(&mut self, bytes: &[u8], shared: Shared, ancestry: &Arc<Ancestry>) -> [u8; 32] {
        let kept = self.ancestry.as_mut().filter(|a| {
            a.host == shared.host
                && (Arc::ptr_eq(&a.ancestry, ancestry) || a.ancestry.encoded() == ancestry.encoded())
        });
        let after_ancestry = match kept {
            Some(a) => {
                // Equal bytes at another address (a sibling's ancestry): the next records are
                // this one's.
                if !Arc::ptr_eq(&a.ancestry, ancestry) {
                    a.ancestry = Arc::clone(ancestry);
                }
                #[cfg(test)]
                {
                    self.hits.0 += 1;
                }
                a
            }
            None => {
                self.epoch += 1;
                let mut state = Sha256::new();
                state.update(&bytes[..shared.ancestry_end]);
                self.ancestry.insert(AncestryState {
                    host: shared.host,
                    ancestry: Arc::clone(ancestry),
                    state,
                    epoch: self.epoch,
                })
            }
        };
        let key = shared.process.map(|generation| (after_ancestry.epoch, generation));
        let mut state = match &self.process {
            Some(p) if key == Some(p.key) => {
                #[cfg(test)]
                {
                    self.hits.1 += 1;
                }
                p.state.clone()
            }
            _ => {
                let mut state = after_ancestry.state.clone();
                state.update(&bytes[shared.ancestry_end..shared.process_end]);
                if let Some(key) = key {
                    self.process = Some(ProcessState { key, state: state.clone() });
                }
                state
            }
        };
        state.update(&bytes[shared.process_end..]);
        state.finalize().into()
    }
}
