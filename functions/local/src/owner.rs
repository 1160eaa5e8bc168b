//! One `serve` per data directory. The running server keeps settings, budget counters and
//! reservations in memory and writes through to SQLite; that is exact only while no other
//! process serves (or writes budgets and settings into) the same directory. So `serve`
//! holds an exclusive lock on `serve.lock` for its whole life, and a second `serve` on
//! that directory refuses to start, naming the directory and the owner's PID.
//!
//! The lock is an advisory `flock` the kernel drops when the process dies, however it
//! dies (SIGKILL included): a stale lock file never keeps a restart out. `token create`
//! takes no lock: it only adds a token row, which the server reads on first use of that
//! token (the token cache never remembers a miss), so it keeps working next to `serve`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "serve.lock";

#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error(
        "data directory {dir} is already served by another llm-local (pid {pid}); \
         one serve per data directory: stop it or pass another --data-dir"
    )]
    Taken { dir: PathBuf, pid: String },
    #[error("lock file {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Held for as long as the process serves the directory; dropping it releases the lock.
#[derive(Debug)]
pub struct Owner {
    _file: File,
}

/// Takes the data directory, or says who has it. The PID is written only after the lock
/// is ours, so a loser never truncates the owner's PID out of the file.
pub fn take(data_dir: &Path) -> Result<Owner, OwnerError> {
    let path = data_dir.join(LOCK_FILE);
    let io = |e| OwnerError::Io(path.clone(), e);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    match try_lock(&file) {
        Ok(true) => {}
        Ok(false) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = match pid.trim() {
                "" => "unknown".to_owned(),
                p => p.to_owned(),
            };
            return Err(OwnerError::Taken {
                dir: data_dir.to_path_buf(),
                pid,
            });
        }
        Err(e) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(Owner { _file: file })
}

/// `Ok(false)`: another process holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere the directory is not guarded: one serve per directory is then the
/// operator's to keep.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = take(dir.path()).unwrap();
        match take(dir.path()) {
            Err(OwnerError::Taken { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("expected Taken, got {other:?}"),
        }
        drop(first);
        assert!(take(dir.path()).is_ok());
    }
}
