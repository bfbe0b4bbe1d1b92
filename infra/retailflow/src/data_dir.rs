//! The local app's state on disk: one embedded database file (redb) in a
//! data directory (default `.retailflow/`), so a restarted `serve` finds
//! every accepted event, and `trace`, `replay` and `reconcile` work after
//! `run` has exited.
//!
//! Everything is one table of text rows keyed by kind (`saga/…`,
//! `claim/…`, `msg/<queue>/…`, `dlq/…`, `event/…`, `meta/…`); each write is
//! one durable transaction. The file is locked while open: a second process
//! gets [`DataDirError::InUse`] and should ask the running `serve` instead.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, TableDefinition};
use retailflow_core::ports::journal::{Journal, JournalError, JournalRow};

const ROWS: TableDefinition<'_, &str, &str> = TableDefinition::new("rows");
const FILE: &str = "state.redb";
/// Where a running `serve` says it listens, for the CLI to ask it.
const SERVE_URL_FILE: &str = "serve.url";

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".retailflow";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process (a running `serve`) has the file open: not retryable
    /// until it stops; ask it over HTTP instead.
    #[error("{0} is in use by another retailflow process (a running `retailflow serve`?)")]
    InUse(PathBuf),
    /// No state yet: nothing has run with this data directory.
    #[error("no local state in {0}: run `retailflow run` or `retailflow serve` first")]
    Empty(PathBuf),
    /// The path names a file: a person mistyped `--data-dir`.
    #[error("{0} is a file, not a directory: pass --data-dir <a directory> (default .retailflow)")]
    NotADirectory(PathBuf),
    /// The disk or the file failed: not retryable without a person.
    #[error("local state file {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
}

/// The open data directory.
pub struct DataDir {
    dir: PathBuf,
    db: redb::Database,
}

impl DataDir {
    /// Opens (creating if need be) the state file in `dir`.
    pub fn open(dir: &Path) -> Result<Self, DataDirError> {
        if dir.exists() && !dir.is_dir() {
            return Err(DataDirError::NotADirectory(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
        let db = redb::Database::create(dir.join(FILE)).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => DataDirError::InUse(dir.to_path_buf()),
            other => storage(dir, other),
        })?;
        let data = DataDir {
            dir: dir.to_path_buf(),
            db,
        };
        // The table exists from the first open, so reads never find it missing.
        data.write(&[]).map_err(|reason| DataDirError::Storage {
            path: dir.to_path_buf(),
            reason: reason.to_string(),
        })?;
        Ok(data)
    }

    /// Opens an existing state file only (for the read-only commands).
    pub fn open_existing(dir: &Path) -> Result<Self, DataDirError> {
        if dir.exists() && !dir.is_dir() {
            return Err(DataDirError::NotADirectory(dir.to_path_buf()));
        }
        if !dir.join(FILE).exists() {
            return Err(DataDirError::Empty(dir.to_path_buf()));
        }
        Self::open(dir)
    }

    /// Opens the state file emptied (a fresh `run`), unless another
    /// process has it: the rows go in one transaction, with the file held.
    pub fn open_empty(dir: &Path) -> Result<Self, DataDirError> {
        let data = Self::open(dir)?;
        data.clear_serve_url();
        // The claim-checked events of the run before go with its state.
        let claims = dir.join("claims");
        if claims.exists() {
            std::fs::remove_dir_all(&claims).map_err(|e| storage(dir, &e))?;
        }
        let err = |e: &dyn std::fmt::Display| storage(dir, e);
        let tx = data.db.begin_write().map_err(|e| err(&e))?;
        tx.delete_table(ROWS).map_err(|e| err(&e))?;
        tx.open_table(ROWS).map_err(|e| err(&e))?;
        tx.commit().map_err(|e| err(&e))?;
        Ok(data)
    }

    /// The directory as the serve holding it reports it (absolute).
    pub fn canonical(&self) -> PathBuf {
        self.dir.canonicalize().unwrap_or_else(|_| self.dir.clone())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every row whose key starts with `prefix`, in key order.
    pub fn rows(&self, prefix: &str) -> Result<Vec<(String, String)>, DataDirError> {
        let err = |e: &dyn std::fmt::Display| storage(&self.dir, e);
        let tx = self.db.begin_read().map_err(|e| err(&e))?;
        let table = tx.open_table(ROWS).map_err(|e| err(&e))?;
        let mut out = Vec::new();
        for row in table.range(prefix..).map_err(|e| err(&e))? {
            let (k, v) = row.map_err(|e| err(&e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// One row's value.
    pub fn get(&self, key: &str) -> Result<Option<String>, DataDirError> {
        let err = |e: &dyn std::fmt::Display| storage(&self.dir, e);
        let tx = self.db.begin_read().map_err(|e| err(&e))?;
        let table = tx.open_table(ROWS).map_err(|e| err(&e))?;
        let value = table.get(key).map_err(|e| err(&e))?;
        Ok(value.map(|v| v.value().to_string()))
    }

    /// Records where a `serve` on this directory listens.
    pub fn set_serve_url(&self, url: &str) -> Result<(), DataDirError> {
        std::fs::write(self.dir.join(SERVE_URL_FILE), url).map_err(|e| storage(&self.dir, e))
    }

    /// Forgets the `serve` URL (it stopped).
    pub fn clear_serve_url(&self) {
        let _ = std::fs::remove_file(self.dir.join(SERVE_URL_FILE));
    }
}

/// Where the `serve` holding `dir` listens, if it said.
pub fn serve_url(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(SERVE_URL_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn storage(dir: &Path, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Storage {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Journal for DataDir {
    fn write(&self, rows: &[JournalRow]) -> Result<(), JournalError> {
        let unwritable = |e: &dyn std::fmt::Display| JournalError::Unwritable(e.to_string());
        let tx = self.db.begin_write().map_err(|e| unwritable(&e))?;
        {
            let mut table = tx.open_table(ROWS).map_err(|e| unwritable(&e))?;
            for (key, value) in rows {
                match value {
                    Some(v) => table.insert(key.as_str(), v.as_str()),
                    None => table.remove(key.as_str()),
                }
                .map_err(|e| unwritable(&e))?;
            }
        }
        tx.commit().map_err(|e| unwritable(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("retailflow-data-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn rows_written_are_read_back_by_prefix_after_reopening() {
        let dir = scratch();
        {
            let data = DataDir::open(&dir).unwrap();
            data.write(&[
                ("saga/a".into(), Some("1".into())),
                ("saga/b".into(), Some("2".into())),
                ("sagb/c".into(), Some("3".into())),
                ("saga/b".into(), None),
            ])
            .unwrap();
        }
        let data = DataDir::open(&dir).unwrap();
        assert_eq!(
            data.rows("saga/").unwrap(),
            vec![("saga/a".into(), "1".into())]
        );
        assert_eq!(data.get("sagb/c").unwrap().as_deref(), Some("3"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_opener_is_told_the_directory_is_in_use() {
        let dir = scratch();
        let held = DataDir::open(&dir).unwrap();
        assert!(matches!(DataDir::open(&dir), Err(DataDirError::InUse(_))));
        assert!(matches!(
            DataDir::open_empty(&dir),
            Err(DataDirError::InUse(_))
        ));
        held.write(&[("saga/a".into(), Some("1".into()))]).unwrap();
        drop(held);
        let emptied = DataDir::open_empty(&dir).unwrap();
        assert!(emptied.rows("").unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_never_run_is_empty_not_created() {
        let dir = scratch();
        assert!(matches!(
            DataDir::open_existing(&dir),
            Err(DataDirError::Empty(_))
        ));
        assert!(!dir.exists());
    }
}
