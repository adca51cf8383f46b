//! A reader's own place in one ring, for readers that take every record once as it is
//! written (the debug endpoint's span ends, the stream of `GRANULAR_ALL_FROM=recording`)
//! rather than a window of them (the analyzer).

use super::record::Record;
use super::ring::{Ring, RingCopy};

/// Where a reader is in one ring: its copy holds only what it has not used yet.
#[derive(Debug, Default)]
pub(crate) struct RingCursor {
    copy: RingCopy,
    next_seq: u64,
}

impl RingCursor {
    /// Copies what `ring` got past the cursor. Returns how many records the ring overwrote
    /// before they could be read, and the unread records (oldest first); the cursor stays
    /// put until [`advance`](Self::advance).
    pub(crate) fn unread(&mut self, ring: &Ring) -> (u64, &[Record]) {
        ring.refresh(self.next_seq, &mut self.copy);
        let missed = self.copy.first_seq().saturating_sub(self.next_seq);
        (missed, self.copy.records())
    }

    /// Moves past the first `used` records [`unread`](Self::unread) returned (the rest, an
    /// event whose payloads were not written yet, is returned again next time).
    pub(crate) fn advance(&mut self, used: usize) {
        self.next_seq = self.copy.first_seq() + used as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::record::Kind;

    fn rec(i: u64) -> Record {
        Record::header(Kind::PollStart, i, i)
    }

    #[test]
    fn each_record_is_returned_until_used_and_overwritten_ones_are_counted() {
        let ring = Ring::new(4);
        let mut cursor = RingCursor::default();
        for i in 1..=3 {
            ring.push(rec(i));
        }
        let (missed, records) = cursor.unread(&ring);
        assert_eq!((missed, records.len()), (0, 3));
        cursor.advance(2);
        ring.push(rec(4));
        let (missed, records) = cursor.unread(&ring);
        assert_eq!(records.iter().map(Record::ts).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(missed, 0);
        cursor.advance(2);
        // Six more into a ring of four: the first two were overwritten before being read.
        for i in 5..=10 {
            ring.push(rec(i));
        }
        let (missed, records) = cursor.unread(&ring);
        assert_eq!(missed, 2);
        assert_eq!(records.first().map(Record::ts), Some(7));
    }
}
