//! `SimJournal`: the transaction journal in memory, its writes counted on the
//! simulator's power rail so a cut can fall between any flash operation and any
//! journal update.

use std::collections::BTreeMap;

use crate::journal::{JournalError, JournalStore, TxRecord};
use crate::power::{PowerRail, Tick};

/// In-memory journal that shares the simulator's power rail.
#[derive(Debug, Default)]
pub struct SimJournal {
    records: BTreeMap<String, TxRecord>,
    rail: PowerRail,
}

impl SimJournal {
    /// An empty journal counting its writes on `rail`.
    pub fn new(rail: PowerRail) -> Self {
        SimJournal {
            records: BTreeMap::new(),
            rail,
        }
    }

    fn op(&self) -> Result<(), JournalError> {
        match self.rail.tick() {
            Tick::Run => Ok(()),
            Tick::Tear | Tick::Dead => Err(JournalError::PowerCut),
        }
    }
}

impl JournalStore for SimJournal {
    fn load_all(&mut self) -> Result<Vec<TxRecord>, JournalError> {
        Ok(self.records.values().cloned().collect())
    }

    fn store(&mut self, rec: &TxRecord) -> Result<(), JournalError> {
        self.op()?;
        self.records.insert(rec.key(), rec.clone());
        Ok(())
    }

    fn clear(&mut self, key: &str) -> Result<(), JournalError> {
        self.op()?;
        self.records.remove(key);
        Ok(())
    }
}
