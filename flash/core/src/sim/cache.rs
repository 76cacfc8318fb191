//! What a simulated part has written since its last sync, so that a power cut can
//! take it back (see [`Unsynced`]).

use crate::power::{PowerRail, Unsynced};

/// The state at the last sync (taken at the first write after it) and the writes
/// made since, in order.
#[derive(Debug, Clone)]
pub struct WriteCache<S, W> {
    synced: Option<S>,
    writes: Vec<W>,
    seen_cuts: u64,
}

impl<S, W> Default for WriteCache<S, W> {
    fn default() -> Self {
        WriteCache {
            synced: None,
            writes: Vec::new(),
            seen_cuts: 0,
        }
    }
}

impl<S, W> WriteCache<S, W> {
    /// Note `write`, about to change `live`. Nothing is kept when the rail keeps
    /// unsynced writes anyway.
    pub fn note(&mut self, rail: &PowerRail, live: impl FnOnce() -> S, write: W) {
        if rail.unsynced() == Unsynced::Kept && self.synced.is_none() {
            return;
        }
        self.synced.get_or_insert_with(live);
        self.writes.push(write);
    }

    /// Everything written so far is durable.
    pub fn synced(&mut self) {
        self.synced = None;
        self.writes.clear();
    }

    /// After a cut this part has not seen yet: the synced state and the writes
    /// that survive it, to be replayed on that state. `None` when there was no
    /// new cut or nothing unsynced.
    pub fn after_cut(&mut self, rail: &PowerRail) -> Option<(S, Vec<W>)> {
        let cuts = rail.cuts();
        if cuts == self.seen_cuts {
            return None;
        }
        self.seen_cuts = cuts;
        let base = self.synced.take()?;
        let mut writes = std::mem::take(&mut self.writes);
        match rail.unsynced() {
            Unsynced::Kept => {}
            Unsynced::Lost => writes.clear(),
            Unsynced::FirstKept(n) => writes.truncate(n),
        }
        Some((base, writes))
    }

    /// The state at the last sync, if anything was written since (factory loads
    /// must land there too).
    pub fn synced_state(&mut self) -> Option<&mut S> {
        self.synced.as_mut()
    }

    /// The same cache for a part on a new rail that has seen no cut.
    pub fn for_new_rail(&self) -> Self
    where
        S: Clone,
        W: Clone,
    {
        WriteCache {
            synced: self.synced.clone(),
            writes: self.writes.clone(),
            seen_cuts: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(cache: &mut WriteCache<Vec<u8>, u8>, rail: &PowerRail, live: &mut Vec<u8>) {
        if let Some((base, writes)) = cache.after_cut(rail) {
            *live = base;
            live.extend(writes);
        }
    }

    #[test]
    fn a_cut_keeps_what_the_rail_says() {
        for (unsynced, want) in [
            (Unsynced::Lost, vec![1]),
            (Unsynced::FirstKept(1), vec![1, 2]),
            (Unsynced::Kept, vec![1, 2, 3]),
        ] {
            let rail = PowerRail::new();
            rail.set_unsynced(unsynced);
            let (mut cache, mut live) = (WriteCache::default(), vec![]);
            cache.note(&rail, || live.clone(), 1);
            live.push(1);
            cache.synced();
            for w in [2, 3] {
                cache.note(&rail, || live.clone(), w);
                live.push(w);
            }
            replay(&mut cache, &rail, &mut live);
            assert_eq!(live, [1, 2, 3], "no cut yet");
            rail.cut_now();
            replay(&mut cache, &rail, &mut live);
            assert_eq!(live, want, "{unsynced:?}");
            rail.reboot();
            replay(&mut cache, &rail, &mut live);
            assert_eq!(live, want, "a cut is taken back once");
        }
    }
}
