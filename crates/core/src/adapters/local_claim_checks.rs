//! [`ClaimChecks`] for the local app and tests: in memory, or files under
//! the local app's data directory (`<dir>/<key>`), so a claim-checked event
//! still reads after `retailflow run` has exited.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{ClaimChecks, StoreError};

pub struct LocalClaimChecks {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, Vec<u8>>>,
}

const MEMORY: &str = "memory:";
const FILE: &str = "file:";

impl LocalClaimChecks {
    pub fn in_memory() -> Self {
        LocalClaimChecks {
            dir: None,
            memory: Mutex::default(),
        }
    }

    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        LocalClaimChecks {
            dir: Some(dir.into()),
            memory: Mutex::default(),
        }
    }

    /// A key as a path under `dir`: plain names only, nothing that climbs
    /// out of it (a location comes from a message).
    fn path(dir: &Path, key: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(key);
        if rel.components().all(|c| matches!(c, Component::Normal(_))) {
            Ok(dir.join(rel))
        } else {
            Err(StoreError::Corrupt {
                key: key.to_string(),
                reason: "not a claim check key".into(),
            })
        }
    }
}

#[async_trait]
impl ClaimChecks for LocalClaimChecks {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        match &self.dir {
            None => {
                // Plain data behind the lock: a poisoned lock still holds it.
                let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                m.insert(key.to_string(), bytes);
                Ok(format!("{MEMORY}{key}"))
            }
            Some(dir) => {
                let path = Self::path(dir, key)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Unavailable(format!("{}: {e}", parent.display()))
                    })?;
                }
                // Written whole under another name, then renamed: a reader
                // never sees half a file.
                let tmp = path.with_extension("partial");
                std::fs::write(&tmp, &bytes)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
                Ok(format!("{FILE}{key}"))
            }
        }
    }

    async fn get(&self, location: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(location)
    }
}

impl LocalClaimChecks {
    /// [`ClaimChecks::get`] without waiting: for the local app's views,
    /// which read what it published.
    pub fn read(&self, location: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(key) = location.strip_prefix(MEMORY) {
            let m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(m.get(key).cloned());
        }
        let (Some(key), Some(dir)) = (location.strip_prefix(FILE), &self.dir) else {
            return Err(StoreError::Corrupt {
                key: location.to_string(),
                reason: "not a location of this store".into(),
            });
        };
        match std::fs::read(Self::path(dir, key)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("{location}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kept_bytes_read_back_from_files_and_a_location_cannot_climb_out() {
        let dir = std::env::temp_dir().join(format!("rf-claims-{}", uuid::Uuid::new_v4()));
        let store = LocalClaimChecks::in_dir(&dir);
        let loc = store
            .put("events/e1/abc.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(loc, "file:events/e1/abc.json");
        let again = LocalClaimChecks::in_dir(&dir);
        assert_eq!(again.get(&loc).await.unwrap(), Some(b"{}".to_vec()));
        assert_eq!(again.get("file:events/none.json").await.unwrap(), None);
        assert!(again.get("file:../../etc/passwd").await.is_err());
        assert!(again.get("s3://other-bucket/x").await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
