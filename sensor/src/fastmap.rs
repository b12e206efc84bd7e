//! Hash maps for keys nobody can choose (process GUIDs, pids, rule field names): several lookups
//! per event make SipHash a visible cost; ahash is fast and still randomly seeded.

/// A `HashMap` with ahash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
