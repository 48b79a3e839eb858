//! The transaction timers: a two-level timing wheel. A busy proxy keeps tens of thousands of
//! timers (retransmissions, final-response timeouts, the wait before deletion); a binary heap
//! of them made every expiry walk log n scattered entries, which showed as the timer thread's
//! main cost under load. Here a timer is put in a 10 ms slot of a 2.56 s fine wheel, or a 1 s
//! slot of a 68 min coarse wheel that is poured into the fine one a second ahead of time, or
//! (further out) a heap; expiring is reading the slots that time has passed.
//!
//! A timer fires on the first [`TimerWheel::due`] whose `now` is at or after it, exactly as a
//! heap ordered by time would fire it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Nanoseconds per fine slot (10 ms).
const FINE_NANOS: u128 = 10_000_000;
const FINE_SLOTS: u64 = 256;
/// Fine slots per coarse slot (1 s).
const PER_COARSE: u64 = 100;
const COARSE_SLOTS: u64 = 4096;

type Entry = (Instant, u64);

pub(crate) struct TimerWheel {
    origin: Instant,
    /// The fine slot not yet read to its end: every timer of an earlier slot has fired.
    cursor: u64,
    /// Timers of the coarse slot of `cursor` and the next one, by fine slot.
    fine: Vec<Vec<Entry>>,
    /// Timers of the coarse slots after those, up to `COARSE_SLOTS` ahead.
    coarse: Vec<Vec<Entry>>,
    /// Timers further out still.
    far: BinaryHeap<Reverse<Entry>>,
}

impl TimerWheel {
    pub(crate) fn new(origin: Instant) -> TimerWheel {
        TimerWheel {
            origin,
            cursor: 0,
            fine: (0..FINE_SLOTS).map(|_| Vec::new()).collect(),
            coarse: (0..COARSE_SLOTS).map(|_| Vec::new()).collect(),
            far: BinaryHeap::new(),
        }
    }

    /// The fine slot of an instant (instants before the origin are in slot 0).
    fn slot(&self, at: Instant) -> u64 {
        let n = at.saturating_duration_since(self.origin).as_nanos() / FINE_NANOS;
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Schedules `id` at `at` (a time already past fires on the next [`TimerWheel::due`]).
    pub(crate) fn push(&mut self, at: Instant, id: u64) {
        let slot = self.slot(at).max(self.cursor);
        let (coarse, current) = (slot / PER_COARSE, self.cursor / PER_COARSE);
        if coarse <= current + 1 {
            // Within 200 fine slots of the cursor: no two such slots share an index.
            if let Some(v) = self.fine.get_mut((slot % FINE_SLOTS) as usize) {
                v.push((at, id));
            }
        } else if coarse - current < COARSE_SLOTS {
            if let Some(v) = self.coarse.get_mut((coarse % COARSE_SLOTS) as usize) {
                v.push((at, id));
            }
        } else {
            self.far.push(Reverse((at, id)));
        }
    }

    /// Appends to `out` every timer due at `now` (at or before it), each once.
    pub(crate) fn due(&mut self, now: Instant, out: &mut Vec<u64>) {
        let last = self.slot(now);
        while self.cursor < last {
            // A slot before `now`'s: everything in it is due.
            if let Some(v) = self.fine.get_mut((self.cursor % FINE_SLOTS) as usize) {
                out.extend(v.drain(..).map(|(_, id)| id));
            }
            self.cursor += 1;
            if self.cursor.is_multiple_of(PER_COARSE) {
                self.cascade();
            }
        }
        // The slot `now` is in (or, when `now` went back, the cursor's): what is due in it.
        if let Some(v) = self.fine.get_mut((self.cursor % FINE_SLOTS) as usize) {
            v.retain(|&(at, id)| {
                let fire = at <= now;
                if fire {
                    out.push(id);
                }
                !fire
            });
        }
    }

    /// The cursor entered a new coarse slot: the one after it moves into the fine wheel, and
    /// timers of the heap now within the coarse wheel's reach move into it.
    fn cascade(&mut self) {
        let next = self.cursor / PER_COARSE + 1;
        if let Some(v) = self.coarse.get_mut((next % COARSE_SLOTS) as usize) {
            let entries = std::mem::take(v);
            for (at, id) in entries {
                self.push(at, id);
            }
        }
        let current = self.cursor / PER_COARSE;
        while let Some(&Reverse((at, id))) = self.far.peek() {
            if (self.slot(at) / PER_COARSE).saturating_sub(current) >= COARSE_SLOTS {
                break;
            }
            self.far.pop();
            self.push(at, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// What a heap ordered by time fires: every entry at or before `now`, each once.
    fn reference_due(pending: &mut Vec<Entry>, now: Instant) -> Vec<u64> {
        let mut fired: Vec<u64> = pending
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        pending.retain(|(at, _)| *at > now);
        fired.sort_unstable();
        fired
    }

    proptest! {
        // Each case walks hours of 10 ms slots: fewer cases than the default keep it quick.
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Timers from a few ms to hours ahead (and some already past), checked at times that
        /// move by irregular steps, sometimes by more than the fine or the coarse wheel spans:
        /// the wheel fires exactly what a heap would, when it would.
        #[test]
        fn fires_what_a_heap_fires(
            steps in proptest::collection::vec(
                (
                    proptest::collection::vec((0u64..8_000_000, 0u8..4), 0..12),
                    0u64..3_000_000,
                ),
                1..60,
            ),
        ) {
            let origin = Instant::now();
            let mut wheel = TimerWheel::new(origin);
            let mut pending: Vec<Entry> = Vec::new();
            let mut now = origin;
            let mut id = 0u64;
            for (timers, advance_ms) in steps {
                for (offset_ms, kind) in timers {
                    id += 1;
                    // Mostly near (ms to seconds), some far (up to hours), some in the past.
                    let at = match kind {
                        0 => now + Duration::from_millis(offset_ms % 3_000),
                        1 => now + Duration::from_millis(offset_ms % 120_000),
                        2 => now + Duration::from_millis(offset_ms * 3),
                        _ => now.checked_sub(Duration::from_millis(offset_ms % 50)).unwrap_or(now),
                    };
                    wheel.push(at, id);
                    pending.push((at, id));
                }
                // Mostly small steps, sometimes a long sleep.
                let step = if advance_ms % 17 == 0 { advance_ms * 5 } else { advance_ms % 700 };
                now += Duration::from_millis(step) + Duration::from_micros(advance_ms % 1000);
                let mut got = Vec::new();
                wheel.due(now, &mut got);
                got.sort_unstable();
                prop_assert_eq!(got, reference_due(&mut pending, now));
            }
        }
    }

    #[test]
    fn a_timer_fires_at_its_time_not_before() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let at = origin + Duration::from_millis(500);
        wheel.push(at, 7);
        let mut out = Vec::new();
        wheel.due(at - Duration::from_nanos(1), &mut out);
        assert!(out.is_empty());
        wheel.due(at, &mut out);
        assert_eq!(out, vec![7]);
        wheel.due(at + Duration::from_secs(10), &mut out);
        assert_eq!(out, vec![7], "once");
    }
}
