//! Opening the device database: pragmas, migrations, and recovery from a damaged file.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::schema;
use crate::error::StorageError;

/// File name of the database inside the configured data directory.
pub(crate) const DB_FILE: &str = "starling.db";

/// What `open` had to do to give back a usable database.
#[derive(Debug, Default)]
pub(crate) struct OpenReport {
    /// Where a damaged database was moved to, if one was.
    pub(crate) moved_aside: Option<PathBuf>,
}

/// Opens (or creates) the database in `dir`. A file that is corrupt, not a database, or from a
/// newer SDK is moved aside and replaced with an empty one, so the app keeps working.
pub(crate) fn open(dir: &Path) -> Result<(Connection, OpenReport), StorageError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(DB_FILE);
    match open_checked(&path) {
        Ok(conn) => Ok((conn, OpenReport::default())),
        Err(e) if e.is_corruption() => {
            let aside = move_aside(&path)?;
            log::warn!(
                "starling: the database was unreadable ({e}); moved aside to {} and started anew",
                aside.display()
            );
            let conn = open_checked(&path)?;
            Ok((
                conn,
                OpenReport {
                    moved_aside: Some(aside),
                },
            ))
        }
        Err(e) => Err(e),
    }
}

fn open_checked(path: &Path) -> Result<Connection, StorageError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;

    // A cheap structural check: the store is bounded (16 MiB by default), so this costs a few
    // milliseconds at start-up on the writer thread, and it catches a damaged file before the
    // first write does.
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StorageError::Integrity(verdict));
    }
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Applies the connection pragmas Starling relies on.
pub(crate) fn configure(conn: &Connection) -> Result<(), StorageError> {
    // Write-ahead logging: a commit appends to the log instead of rewriting pages, so group
    // commits are cheap and readers never block the writer.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("starling: WAL journal unavailable, running with {mode}");
    }
    // FULL syncs the log at every commit, so a committed event survives power loss as well as a
    // killed process. Commits are grouped, so the fsync is paid once per group, not per event.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Wait rather than fail if another connection (a debugging tool) holds a lock briefly.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Keep the log file from growing without bound after a burst; 4 MiB.
    conn.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)?;
    Ok(())
}

/// Renames the database and its side files to `<name>.corrupt-<ms>`.
pub(crate) fn move_aside(path: &Path) -> Result<PathBuf, StorageError> {
    let stamp = crate::now_ms();
    let aside = path.with_extension(format!("db.corrupt-{stamp}"));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&from, &to)?;
        }
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_file_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();

        let (conn, report) = open(dir.path()).unwrap();
        let aside = report.moved_aside.expect("moved aside");
        assert!(aside.exists());
        assert_eq!(std::fs::read(&aside).unwrap(), vec![0x5a; 8192]);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn healthy_database_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (conn, _) = open(dir.path()).unwrap();
            conn.execute("INSERT INTO meta VALUES ('k', 'v')", [])
                .unwrap();
        }
        let (conn, report) = open(dir.path()).unwrap();
        assert!(report.moved_aside.is_none());
        let v: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'k'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "v");
    }
}
