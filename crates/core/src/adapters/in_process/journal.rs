//! Where the in-process adapters write what they change (the local app's
//! data directory), and one value kept behind a lock and journaled whole.

use super::*;
use crate::ports::journal::Journal;

/// One value in memory behind a lock, written whole to one [`Journal`]
/// row on every change when given a journal (stock, catalog): the change
/// and its write happen under the lock, so writes land in order, and a
/// failed write fails the call.
pub struct JournaledState<T> {
    state: Mutex<T>,
    journal: Option<(std::sync::Arc<dyn Journal>, &'static str)>,
}

impl<T: Default> Default for JournaledState<T> {
    fn default() -> Self {
        JournaledState {
            state: Mutex::new(T::default()),
            journal: None,
        }
    }
}

impl<T: Serialize + serde::de::DeserializeOwned> JournaledState<T> {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        // Plain data, changed by whole assignments: a poisoned lock still
        // holds a consistent value.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on written to `row` of `journal`, starting from what that
    /// row held (`saved`), if anything.
    pub fn write_to(
        &mut self,
        journal: std::sync::Arc<dyn Journal>,
        row: &'static str,
        saved: Option<&str>,
    ) -> Result<(), serde_json::Error> {
        if let Some(saved) = saved {
            *self.lock() = serde_json::from_str(saved)?;
        }
        self.journal = Some((journal, row));
        Ok(())
    }

    /// One change, written before the lock is let go.
    pub fn change<R>(
        &self,
        f: impl FnOnce(&mut T) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut st = self.lock();
        let out = f(&mut st)?;
        if let Some((journal, row)) = &self.journal {
            let value =
                serde_json::to_string(&*st).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            journal
                .write(&[(row.to_string(), Some(value))])
                .map_err(|e| StoreError::Unavailable(format!("local state file: {e}")))?;
        }
        Ok(out)
    }
}
