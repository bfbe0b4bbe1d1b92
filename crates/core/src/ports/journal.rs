//! Where the local app's in-process adapters keep what they change (the
//! data directory's embedded database), so a restarted app finds its state.

/// One row of a [`Journal`]: a key and its new value, `None` to delete it.
pub type JournalRow = (String, Option<String>);

/// Where the local app's in-process adapters write what they change, so a
/// restarted app finds its state again (an embedded database file). A write
/// is one durable transaction: all of its rows, or none.
pub trait Journal: Send + Sync {
    fn write(&self, rows: &[JournalRow]) -> Result<(), JournalError>;
}

/// The journal did not take a write (its file unwritable, full or gone),
/// or a row it gave back cannot be read. A change whose write failed is
/// not made; state with an unreadable row is not started on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("{0}")]
    Unwritable(String),
    #[error("{key}: {reason}")]
    Unreadable { key: String, reason: String },
}

impl JournalError {
    pub fn unreadable(key: &str, reason: impl std::fmt::Display) -> Self {
        JournalError::Unreadable {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}
