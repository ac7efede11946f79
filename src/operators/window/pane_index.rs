//! `PaneIndex`: where a pane of the aligned window operator finds a key's entry. An open-addressing
//! table (linear probing) of entry positions, each slot holding the low 32 bits of the key's table
//! hash beside the position, so a probe reads an entry only when 32 bits of its hash match, and
//! growing needs no entry at all. One slot is 8 bytes, eight to a cache line, and the slot a hash
//! starts at is known before the lookup: [`PaneIndex::prefetch`] asks for it a few records ahead,
//! so that the cache misses of a batch's lookups overlap instead of coming one after another.

/// The most entries per slot (3/4): the table grows before it would be fuller.
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;
/// The first allocation, in slots (a power of two).
const MIN_SLOTS: usize = 16;

/// Positions of a pane's entries by the low 32 bits of their keys' table hashes
/// ([`crate::state::key_group::table_hash`]).
#[derive(Clone)]
pub(super) struct PaneIndex {
    /// Zero for an empty slot, else `hash32 << 32 | (position + 1)`. The length is zero or a power
    /// of two.
    slots: Vec<u64>,
    len: usize,
}

impl PaneIndex {
    pub fn new() -> PaneIndex {
        PaneIndex { slots: Vec::new(), len: 0 }
    }

    /// Entries indexed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries it can index without growing.
    pub fn capacity(&self) -> usize {
        self.slots.len() / LOAD_DEN * LOAD_NUM
    }

    /// Forgets every entry, keeping the slots.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(0);
            self.len = 0;
        }
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        let needed = self.len.saturating_add(additional);
        if needed > self.capacity() {
            let slots = needed.saturating_mul(LOAD_DEN).div_ceil(LOAD_NUM).next_power_of_two().max(MIN_SLOTS);
            self.resize(slots);
        }
    }

    /// Starts bringing the slot where a lookup of `hash` begins into the cache; a hint only.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
        if !self.slots.is_empty() {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let at = hash as u32 as usize & (self.slots.len() - 1);
            // SAFETY: a prefetch reads nothing a program sees and cannot fault; the address is a slot
            // of `slots` anyway, and the cfg above makes sure the target has SSE.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().wrapping_add(at).cast::<i8>()) };
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
        let _ = hash;
    }

    /// The position of the entry with `hash` for which `is_key(position)` holds.
    #[inline]
    pub fn find(&self, hash: u64, is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(hash, is_key).ok()
    }

    /// The position of the entry with `hash` for which `is_key(position)` holds and false; or, if
    /// there is none, `new_position` (indexed from now on: the caller makes that entry) and true.
    #[inline]
    pub fn find_or_insert(&mut self, hash: u64, is_key: impl FnMut(u32) -> bool, new_position: u32) -> (u32, bool) {
        // Positions come from a pane's entry count, far below this (a pane holds at most a shard's keys).
        debug_assert!(new_position < u32::MAX, "a pane holds fewer than 2^32 - 1 entries");
        if self.len >= self.capacity() {
            self.reserve(1);
        }
        match self.probe(hash, is_key) {
            Ok(position) => (position, false),
            Err(at) => {
                self.slots[at] = (hash as u32 as u64) << 32 | (u64::from(new_position) + 1);
                self.len += 1;
                (new_position, true)
            }
        }
    }

    /// Probes from `hash`'s slot: the position of the entry for which `is_key` holds, or the empty slot
    /// the probe ended at. The table has slots, and always an empty one.
    #[inline]
    fn probe(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Result<u32, usize> {
        let mask = self.slots.len() - 1;
        let tag = hash as u32 as u64;
        let mut at = tag as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Err(at);
            }
            if slot >> 32 == tag {
                let position = (slot as u32).wrapping_sub(1);
                if is_key(position) {
                    return Ok(position);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Moves every slot into a table of `n_slots` (a power of two above the entries held).
    fn resize(&mut self, n_slots: usize) {
        debug_assert!(n_slots.is_power_of_two() && n_slots / LOAD_DEN * LOAD_NUM >= self.len);
        let old = std::mem::replace(&mut self.slots, vec![0; n_slots]);
        let mask = n_slots - 1;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            let mut at = (slot >> 32) as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rand::SplitMix64;
    use std::collections::HashMap;

    /// Keys with deliberately poor hashes (few distinct low bits) and good ones, inserted, found and
    /// cleared against a `HashMap`.
    #[test]
    fn finds_what_a_map_finds_through_growth_collisions_and_clears() {
        let mut rng = SplitMix64::new(7);
        for round in 0..4 {
            let mut index = PaneIndex::new();
            let mut keys: Vec<(u64, u64)> = Vec::new(); // position -> (key, hash)
            let mut model: HashMap<u64, u32> = HashMap::new();
            let hash_of = |key: u64| if round % 2 == 0 { key.wrapping_mul(0x9E37_79B9_7F4A_7C15) } else { key % 7 };
            for _ in 0..3_000 {
                let key = rng.next_u64() % 2_000;
                let hash = hash_of(key);
                let found = index.find(hash, |p| keys[p as usize].0 == key);
                assert_eq!(found, model.get(&key).copied(), "key {key}");
                let (position, inserted) = index.find_or_insert(hash, |p| keys[p as usize].0 == key, keys.len() as u32);
                if inserted {
                    keys.push((key, hash));
                }
                assert_eq!(inserted, !model.contains_key(&key));
                assert_eq!(position, *model.entry(key).or_insert(position));
                assert_eq!(index.len(), model.len());
                assert!(index.len() <= index.capacity());
            }
            for (&key, &position) in &model {
                assert_eq!(index.find(hash_of(key), |p| keys[p as usize].0 == key), Some(position));
                index.prefetch(hash_of(key));
            }
            let capacity = index.capacity();
            index.clear();
            assert_eq!((index.len(), index.capacity()), (0, capacity), "a clear keeps the slots");
            assert_eq!(index.find(hash_of(keys[0].0), |_| true), None);
        }
        let empty = PaneIndex::new();
        assert_eq!(empty.find(3, |_| true), None);
        empty.prefetch(3);
    }

    #[test]
    fn reserve_makes_room_without_moving_positions() {
        let mut index = PaneIndex::new();
        index.reserve(1_000);
        let capacity = index.capacity();
        assert!(capacity >= 1_000);
        for key in 0..1_000u64 {
            let hash = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert_eq!(index.find_or_insert(hash, |_| false, key as u32), (key as u32, true));
        }
        assert_eq!(index.capacity(), capacity, "no growth within the reservation");
    }
}
