//! Bounded caches for the hot path. Each is a plain map with first-in-first-out eviction:
//! memory stays bounded whatever the traffic, and eviction order cannot be steered into
//! anything worse than a cache miss. Values that hold secrets zeroize themselves on drop
//! (eviction, replacement, or the cache's own drop).

use alloc::collections::{BTreeMap, VecDeque};
use core::fmt;

/// A map holding at most `capacity` entries, evicting the oldest insertion first.
pub(crate) struct BoundedCache<K: Ord + Copy, V> {
    map: BTreeMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Ord + Copy, V> BoundedCache<K, V> {
    /// A cache of at most `capacity` entries (0 disables caching).
    pub(crate) fn new(capacity: usize) -> Self {
        Self { map: BTreeMap::new(), order: VecDeque::new(), capacity }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Removes an entry (O(capacity): only on rare paths such as a closed session).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let v = self.map.remove(key)?;
        self.order.retain(|k| k != key);
        Some(v)
    }

    /// Inserts `value`, evicting the oldest entries beyond capacity. With capacity 0 the
    /// value is dropped at once.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

impl<K: Ord + Copy, V> fmt::Debug for BoundedCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes only: keys may identify accounts, values may be secret.
        f.debug_struct("BoundedCache").field("len", &self.map.len()).field("capacity", &self.capacity).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_beyond_capacity() {
        let mut c = BoundedCache::new(2);
        c.insert(1, "a");
        c.insert(2, "b");
        c.insert(1, "a2"); // replacement keeps its place
        c.insert(3, "c");
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&2), Some(&"b"));
        assert_eq!(c.get(&3), Some(&"c"));
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = BoundedCache::new(0);
        c.insert(1, 1);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn drops_evicted_values() {
        use alloc::rc::Rc;
        let v = Rc::new(());
        let mut c = BoundedCache::new(1);
        c.insert(1, Rc::clone(&v));
        c.insert(2, Rc::clone(&v));
        assert_eq!(Rc::strong_count(&v), 2);
        c.clear();
        assert_eq!(Rc::strong_count(&v), 1);
    }
}
