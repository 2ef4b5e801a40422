//! The outbox journal: every accepted message is written to disk (one file per message,
//! atomically, mode 0600) before the session sees it, and removed when it settles, so a
//! restart resends what the hub never acknowledged. IO only; the session decides.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SendError;
use crate::session::Entry;
use crate::telemetry::Telemetry;

#[derive(Serialize, Deserialize)]
struct Stored {
    seq: u64,
    mid: String,
    msg: Telemetry,
}

/// A journal directory.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) `dir` and reads the messages a previous run left there. A file that
    /// cannot be read or parsed is logged and skipped.
    pub(crate) fn open(dir: &Path) -> std::io::Result<(Self, Vec<Entry>)> {
        std::fs::create_dir_all(dir)?;
        let mut restored = Vec::new();
        for f in std::fs::read_dir(dir)? {
            let path = f?.path();
            if path.extension().is_none_or(|e| e != "msg") {
                continue;
            }
            match std::fs::read(&path).map(|b| serde_json::from_slice::<Stored>(&b)) {
                Ok(Ok(s)) => restored.push(Entry {
                    seq: s.seq,
                    mid: s.mid,
                    msg: s.msg,
                    deadline: None,
                    handle: None,
                }),
                Ok(Err(e)) => {
                    tracing::warn!(file = %path.display(), error = %e, "dropping a corrupt outbox file");
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read an outbox file");
                }
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
            },
            restored,
        ))
    }

    fn file(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.msg"))
    }

    /// Writes message `seq`.
    pub(crate) fn write(&self, seq: u64, mid: &str, msg: &Telemetry) -> Result<(), SendError> {
        let stored = Stored {
            seq,
            mid: mid.to_owned(),
            msg: msg.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| SendError::Journal(e.to_string()))?;
        crate::store::write_atomic(&self.file(seq), &bytes)
            .map_err(|e| SendError::Journal(e.to_string()))
    }

    /// Removes message `seq` (it settled).
    pub(crate) fn forget(&self, seq: u64) {
        let path = self.file(seq);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a settled message from the journal");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_what_did_not_settle_and_skips_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, restored) = Journal::open(dir.path()).unwrap();
            assert!(restored.is_empty());
            for (seq, b) in [(1, "a"), (2, "b"), (3, "c")] {
                j.write(seq, &format!("m-{b}"), &Telemetry::new(b)).unwrap();
            }
            j.forget(2);
            j.forget(2);
        }
        std::fs::write(dir.path().join("junk.msg"), b"{broken").unwrap();
        let (_, mut restored) = Journal::open(dir.path()).unwrap();
        restored.sort_by_key(|e| e.seq);
        let got: Vec<_> = restored
            .iter()
            .map(|e| (e.seq, e.mid.as_str(), e.msg.payload.as_slice(), e.handle))
            .collect();
        assert_eq!(
            got,
            vec![(1, "m-a", &b"a"[..], None), (3, "m-c", &b"c"[..], None)]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let f = dir.path().join(format!("{:020}.msg", 1));
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn an_unwritable_journal_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(&dir.path().join("sub")).unwrap();
        std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
        assert!(matches!(
            j.write(1, "m", &Telemetry::new("x")),
            Err(SendError::Journal(_))
        ));
    }
}
