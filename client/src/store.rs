//! The assignment cache: a [`Store`] trait, a [`FileStore`] (the default) and a [`MemoryStore`].
//!
//! The spec decides when the cache is used or invalidated ([`hubswap_spec::Action::PersistAssignment`],
//! [`hubswap_spec::Action::InvalidateAssignment`]); a store only keeps it across restarts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hubswap_spec::Assignment;
use serde::{Deserialize, Serialize};

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the file failed.
    #[error("assignment store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Keeps the assignment cache across restarts.
///
/// A store holds the assignment of one identity; `identity` is `{id scope}/{registration id}`,
/// and an entry saved for another identity is not returned.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The cached assignment of `identity`, if any. A corrupt entry reads as none.
    fn load(&self, identity: &str) -> Result<Option<Assignment>, StoreError>;
    /// Replaces the cached assignment.
    fn save(&self, identity: &str, assignment: &Assignment) -> Result<(), StoreError>;
    /// Removes the cached assignment.
    fn clear(&self, identity: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    identity: String,
    hub: String,
    device_id: String,
}

/// A JSON file, written atomically (temporary file, fsync, rename) with mode 0600.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store in `path` (the file need not exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary sibling, fsync, rename, mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

impl Store for FileStore {
    fn load(&self, identity: &str) -> Result<Option<Assignment>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) if e.identity == identity => Ok(Some(Assignment {
                hub: e.hub,
                device_id: e.device_id,
            })),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring a corrupt assignment cache");
                Ok(None)
            }
        }
    }

    fn save(&self, identity: &str, a: &Assignment) -> Result<(), StoreError> {
        let entry = Entry {
            identity: identity.to_owned(),
            hub: a.hub.clone(),
            device_id: a.device_id.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| self.io(e.into()))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        write_atomic(&self.path, &bytes).map_err(|e| self.io(e))
    }

    fn clear(&self, _identity: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }
}

/// An in-memory store: the cache lives as long as the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entry: Mutex<Option<(String, Assignment)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `assignment` for `identity`.
    pub fn with(identity: &str, assignment: Assignment) -> Self {
        Self {
            entry: Mutex::new(Some((identity.to_owned(), assignment))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, Assignment)>> {
        self.entry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn load(&self, identity: &str) -> Result<Option<Assignment>, StoreError> {
        Ok(self
            .lock()
            .as_ref()
            .filter(|(id, _)| id == identity)
            .map(|(_, a)| a.clone()))
    }

    fn save(&self, identity: &str, a: &Assignment) -> Result<(), StoreError> {
        *self.lock() = Some((identity.to_owned(), a.clone()));
        Ok(())
    }

    fn clear(&self, _identity: &str) -> Result<(), StoreError> {
        *self.lock() = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> Assignment {
        Assignment {
            hub: "hub-a.example".into(),
            device_id: "dev1".into(),
        }
    }

    #[test]
    fn file_store_round_trips_with_mode_0600_and_scopes_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("sub/assignment.json"));
        assert_eq!(store.load("s/dev1").unwrap(), None);
        store.save("s/dev1", &a()).unwrap();
        assert_eq!(store.load("s/dev1").unwrap(), Some(a()));
        assert_eq!(store.load("s/other").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("sub/assignment.json.tmp").exists());
        store.clear("s/dev1").unwrap();
        assert_eq!(store.load("s/dev1").unwrap(), None);
        store.clear("s/dev1").unwrap();
    }

    #[test]
    fn a_corrupt_file_reads_as_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(FileStore::new(&path).load("x").unwrap(), None);
    }

    #[test]
    fn memory_store_round_trips() {
        let s = MemoryStore::new();
        s.save("i", &a()).unwrap();
        assert_eq!(s.load("i").unwrap(), Some(a()));
        s.clear("i").unwrap();
        assert_eq!(s.load("i").unwrap(), None);
    }
}
