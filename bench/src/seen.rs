//! Which numbered messages arrived already: each expected message is counted once, and a
//! second copy is a duplicate, its own figure (a saturating `sent - received` would hide it).

use std::sync::atomic::{AtomicU64, Ordering};

/// Whether a sequence number was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    First,
    Duplicate,
}

/// A growable bit set of sequence numbers, for one reader.
#[derive(Default)]
pub struct Seen {
    words: Vec<u64>,
}

impl Seen {
    pub fn mark(&mut self, seq: u64) -> Arrival {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & bit != 0;
        self.words[word] |= bit;
        if was { Arrival::Duplicate } else { Arrival::First }
    }
}

/// A fixed bit set of `rows` × `per_row` sequence numbers shared by several readers (one row
/// each), for the messages of one measured step.
pub struct SharedSeen {
    words_per_row: usize,
    per_row: u64,
    words: Vec<AtomicU64>,
}

impl SharedSeen {
    pub fn new(rows: usize, per_row: u64) -> Self {
        let words_per_row = per_row.div_ceil(64) as usize;
        SharedSeen {
            words_per_row,
            per_row,
            words: (0..rows * words_per_row).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// `None` when `seq` is beyond what the step can have sent (or the row does not exist).
    pub fn mark(&self, row: usize, seq: u64) -> Option<Arrival> {
        if seq >= self.per_row || row * self.words_per_row >= self.words.len() {
            return None;
        }
        let word = &self.words[row * self.words_per_row + (seq / 64) as usize];
        let bit = 1u64 << (seq % 64);
        let was = word.fetch_or(bit, Ordering::Relaxed) & bit != 0;
        Some(if was { Arrival::Duplicate } else { Arrival::First })
    }

    /// How many distinct sequence numbers below `limit` arrived, over all rows: what was
    /// delivered of the `limit` messages actually sent.
    pub fn count_below(&self, limit: u64) -> u64 {
        let limit = limit.min(self.per_row);
        let (full, rest) = ((limit / 64) as usize, limit % 64);
        self.words
            .chunks(self.words_per_row.max(1))
            .map(|row| {
                let whole: u64 = row[..full]
                    .iter()
                    .map(|w| w.load(Ordering::Relaxed).count_ones() as u64)
                    .sum();
                let part = if rest > 0 {
                    (row[full].load(Ordering::Relaxed) & ((1u64 << rest) - 1)).count_ones() as u64
                } else {
                    0
                };
                whole + part
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts_each_number_once() {
        let mut s = Seen::default();
        assert_eq!(s.mark(1), Arrival::First);
        assert_eq!(s.mark(200), Arrival::First);
        assert_eq!(s.mark(1), Arrival::Duplicate);
        assert_eq!(s.mark(200), Arrival::Duplicate);
        assert_eq!(s.mark(0), Arrival::First);
    }

    #[test]
    fn shared_seen_rows_are_separate_and_bounded() {
        let s = SharedSeen::new(3, 130);
        assert_eq!(s.mark(0, 5), Some(Arrival::First));
        assert_eq!(s.mark(1, 5), Some(Arrival::First));
        assert_eq!(s.mark(0, 5), Some(Arrival::Duplicate));
        assert_eq!(s.mark(2, 129), Some(Arrival::First));
        assert_eq!(s.mark(2, 130), None);
        assert_eq!(s.mark(3, 0), None);
        assert_eq!(s.mark(1, 64), Some(Arrival::First));
        assert_eq!(s.count_below(130), 4);
        // Only what was actually sent counts: 129 is beyond a step that sent 100.
        assert_eq!(s.count_below(100), 3);
        assert_eq!(s.count_below(64), 2);
        assert_eq!(s.count_below(0), 0);
    }
}
