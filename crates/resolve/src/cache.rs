//! A bounded, thread-safe answer cache keyed by (name, type), honouring record TTLs and caching
//! negative answers too (RFC 2308), so relaying to the same domain does not query DNS per
//! message. Time is passed in, which keeps expiry testable.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::wire::{RData, RecordType};

#[derive(Debug)]
struct Entry {
    /// Empty for a negative answer (NXDOMAIN or no data).
    records: Vec<RData>,
    expires: Instant,
}

#[derive(Debug)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<(String, RecordType), Entry>>,
    capacity: usize,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A panic elsewhere while holding the lock leaves the map consistent (every update is a
    /// single insert or remove), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, RecordType), Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached answer, if still fresh.
    pub(crate) fn get(&self, name: &str, qtype: RecordType, now: Instant) -> Option<Vec<RData>> {
        let key = (name.to_ascii_lowercase(), qtype);
        let mut entries = self.lock();
        match entries.get(&key) {
            Some(entry) if entry.expires > now => Some(entry.records.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Stores an answer for `ttl`. When full, expired entries go first, then the one closest
    /// to expiry.
    pub(crate) fn put(
        &self,
        name: &str,
        qtype: RecordType,
        records: Vec<RData>,
        ttl: Duration,
        now: Instant,
    ) {
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let key = (name.to_ascii_lowercase(), qtype);
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, entry| entry.expires > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.expires)
                    .map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    entries.remove(&soonest);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                records,
                expires: now + ttl,
            },
        );
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn a(last: u8) -> Vec<RData> {
        vec![RData::A(Ipv4Addr::new(192, 0, 2, last))]
    }

    #[test]
    fn expires_with_ttl_and_ignores_case() {
        let cache = Cache::new(8);
        let t0 = Instant::now();
        cache.put(
            "Host.Example",
            RecordType::A,
            a(1),
            Duration::from_secs(10),
            t0,
        );
        assert_eq!(cache.get("host.example", RecordType::A, t0), Some(a(1)));
        assert_eq!(cache.get("host.example", RecordType::Aaaa, t0), None);
        assert_eq!(
            cache.get("host.example", RecordType::A, t0 + Duration::from_secs(10)),
            None
        );
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_evicting_soonest_expiry() {
        let cache = Cache::new(2);
        let t0 = Instant::now();
        cache.put("a", RecordType::A, a(1), Duration::from_secs(5), t0);
        cache.put("b", RecordType::A, a(2), Duration::from_secs(50), t0);
        cache.put("c", RecordType::A, a(3), Duration::from_secs(20), t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a", RecordType::A, t0), None);
        assert_eq!(cache.get("b", RecordType::A, t0), Some(a(2)));
        assert_eq!(cache.get("c", RecordType::A, t0), Some(a(3)));
    }

    #[test]
    fn zero_capacity_or_ttl_stores_nothing() {
        let t0 = Instant::now();
        let off = Cache::new(0);
        off.put("a", RecordType::A, a(1), Duration::from_secs(5), t0);
        assert_eq!(off.len(), 0);
        let cache = Cache::new(4);
        cache.put("a", RecordType::A, a(1), Duration::ZERO, t0);
        assert_eq!(cache.len(), 0);
    }
}
