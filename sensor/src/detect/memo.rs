//! Detection results remembered per category, for records that repeat what an earlier record
//! showed the rules.
//!
//! A rule engine's verdict on a record is a function of the field values the evaluation read
//! (the candidate index, every rule it tried, keyword scans), and of nothing else. The memo
//! records those reads ([`Reads`]) along with the results; a later record of the same category
//! whose values of *every* field in that list are equal gets the same results without an
//! evaluation. That is exact, not a heuristic: a rule can only see a difference through a field
//! it reads, and the list holds each field the first evaluation read. Records that read the
//! record's identity (`to_json`) are never remembered.
//!
//! Records repeat more than one would think: a cron job, a monitoring script or a shell loop
//! starts the same command line with the same ancestors again and again, and a process connects
//! to the same server many times. The fork+exec storm of `cargo xtask bench` is such a stream.
//!
//! Lookup: each category keeps a direct-mapped table of [`SLOTS`] entries, indexed by a hash of
//! the fields every recorded evaluation of the category read (learned, so the hash covers what
//! the rules look at and not, say, a port no rule reads); an entry is used only after all its
//! reads compare equal. Recording costs a copy of the values read, so a category whose records
//! rarely repeat records only one evaluation in [`SAMPLE_EVERY`] until repeats show up again.
//! Entries are bounded in size ([`MAX_ENTRY_BYTES`]) and number, so the memo stays under
//! a few MiB whatever the stream.

use std::{
    borrow::Cow,
    hash::{BuildHasher, Hash, Hasher},
};

use rsigma_eval::{Engine, EvaluationResult, EventValue};

use super::{
    category::Category,
    fields::{Field, Read, RecordView},
};

/// Entries per category.
const SLOTS: usize = 128;
/// Entries whose values take more text than this are not kept (long command lines rarely repeat).
const MAX_ENTRY_BYTES: usize = 2048;
/// While a category's records rarely repeat, one evaluation in this many is recorded.
const SAMPLE_EVERY: u32 = 16;
/// Hit and miss counts are halved this often, so the sampling follows the stream.
const DECAY_EVERY: u32 = 1024;

/// Memo hits and misses, for the stop log and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
}

/// See the module documentation.
pub struct Memo {
    cats: Vec<CategoryMemo>,
    hasher: ahash::RandomState,
    stats: MemoStats,
}

#[derive(Default)]
struct CategoryMemo {
    /// Allocated on the first recording.
    slots: Vec<Option<Entry>>,
    /// Fields every recorded evaluation read, in the first one's order: the lookup hash.
    key_fields: Option<Vec<&'static Field>>,
    recent_hits: u32,
    recent_misses: u32,
    evaluations: u32,
}

struct Entry {
    key: u64,
    reads: Vec<Read>,
    results: Vec<EvaluationResult>,
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            cats: Category::ALL.iter().map(|_| CategoryMemo::default()).collect(),
            hasher: ahash::RandomState::new(),
            stats: MemoStats::default(),
        }
    }
}

impl Memo {
    pub fn stats(&self) -> MemoStats {
        self.stats
    }

    /// `engine.evaluate(view)`, or the results of an earlier record that read the same values
    /// (borrowed: the caller clones only what it keeps).
    pub fn evaluate(&mut self, engine: &Engine, view: &RecordView<'_>) -> Cow<'_, [EvaluationResult]> {
        let cat = view.category.index();
        let m = &mut self.cats[cat];
        m.tick();
        let key = m.key_fields.as_deref().map(|fields| key_of(&self.hasher, fields, view));
        if let Some(key) = key
            && m.slots.get(slot_of(key)).and_then(Option::as_ref).is_some_and(|e| {
                e.key == key && e.reads.iter().all(|(f, v)| same(view.value_of(f).as_ref(), v.as_ref()))
            })
        {
            m.recent_hits += 1;
            self.stats.hits += 1;
            // The slot was just checked; a fresh evaluation stands in if that ever changes.
            return self.cats[cat].slots[slot_of(key)]
                .as_ref()
                .map_or_else(|| Cow::Owned(engine.evaluate(view)), |e| Cow::Borrowed(e.results.as_slice()));
        }
        m.recent_misses += 1;
        self.stats.misses += 1;
        if !m.should_record() {
            return Cow::Owned(engine.evaluate(view));
        }
        view.record_reads();
        let results = engine.evaluate(view);
        let Some(reads) = view.take_reads() else { return Cow::Owned(results) };
        if reads.volatile || results.iter().any(|r| r.as_detection().is_some_and(|d| d.event.is_some())) {
            return Cow::Owned(results);
        }
        if m.learn(&reads.fields) {
            let fields = m.key_fields.as_deref().unwrap_or_default();
            let key = key_of(&self.hasher, fields, view);
            if reads.fields.iter().map(|(_, v)| v.as_ref().map_or(0, text_len)).sum::<usize>()
                <= MAX_ENTRY_BYTES
            {
                if m.slots.is_empty() {
                    m.slots.resize_with(SLOTS, || None);
                }
                m.slots[slot_of(key)] = Some(Entry { key, reads: reads.fields, results: results.clone() });
            }
        }
        Cow::Owned(results)
    }
}

impl CategoryMemo {
    fn tick(&mut self) {
        self.evaluations = self.evaluations.wrapping_add(1);
        if self.evaluations.is_multiple_of(DECAY_EVERY) {
            self.recent_hits /= 2;
            self.recent_misses /= 2;
        }
    }

    /// Record while at least one lookup in eight hits; otherwise sample.
    fn should_record(&self) -> bool {
        self.recent_hits >= self.recent_misses / 8 || self.evaluations.is_multiple_of(SAMPLE_EVERY)
    }

    /// Narrows the key fields to those `reads` holds too. False when that leaves none (nothing
    /// is worth keeping: every entry would share one slot).
    fn learn(&mut self, reads: &[Read]) -> bool {
        let read = |f: &&'static Field| reads.iter().any(|(g, _)| std::ptr::eq(*g, *f));
        match &mut self.key_fields {
            None => self.key_fields = Some(reads.iter().map(|(f, _)| *f).collect()),
            Some(fields) => {
                let before = fields.len();
                fields.retain(read);
                if fields.len() != before {
                    // Entries were filed under the longer key.
                    self.slots.iter_mut().for_each(|s| *s = None);
                }
            }
        }
        self.key_fields.as_ref().is_some_and(|f| !f.is_empty())
    }
}

fn slot_of(key: u64) -> usize {
    (key % SLOTS as u64) as usize
}

fn key_of(hasher: &ahash::RandomState, fields: &[&'static Field], view: &RecordView<'_>) -> u64 {
    let mut h = hasher.build_hasher();
    for f in fields {
        hash_value(view.value_of(f).as_ref(), &mut h);
    }
    h.finish()
}

fn hash_value(v: Option<&EventValue<'_>>, h: &mut impl Hasher) {
    let Some(v) = v else {
        0u8.hash(h);
        return;
    };
    match v {
        EventValue::Str(s) => (1u8, s.as_ref()).hash(h),
        EventValue::Int(i) => (2u8, i).hash(h),
        EventValue::Float(f) => (3u8, f.to_bits()).hash(h),
        EventValue::Bool(b) => (4u8, b).hash(h),
        EventValue::Null => 5u8.hash(h),
        EventValue::Array(items) => {
            (6u8, items.len()).hash(h);
            items.iter().for_each(|i| hash_value(Some(i), h));
        }
        EventValue::Map(kv) => {
            (7u8, kv.len()).hash(h);
            for (k, v) in kv {
                k.hash(h);
                hash_value(Some(v), h);
            }
        }
    }
}

/// Equal values (both absent counts as equal).
fn same<'a>(a: Option<&EventValue<'a>>, b: Option<&EventValue<'a>>) -> bool {
    a == b
}

fn text_len(v: &EventValue<'_>) -> usize {
    match v {
        EventValue::Str(s) => s.len(),
        EventValue::Array(items) => items.iter().map(text_len).sum(),
        EventValue::Map(kv) => kv.iter().map(|(k, v)| k.len() + text_len(v)).sum(),
        EventValue::Int(_) | EventValue::Float(_) | EventValue::Bool(_) | EventValue::Null => 8,
    }
}

#[cfg(test)]
mod tests;
