//! Process kills: some sessions run in a worker process (the emulator binary re-executed with
//! [`WORKER_ARG`]) that owns the device's database while it works, and is killed with SIGKILL
//! part-way through. The parent then reopens the database, as the app would on its next
//! launch, and checks that nothing durable was lost.
//!
//! The worker prints one [`Note`] per line, each before the action it announces, and flushes
//! stdout after each, so the parent knows every event the app handed to the SDK before it died.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::app::{self, Note, Step};

/// First argument that turns the emulator binary into a worker.
pub const WORKER_ARG: &str = "__session-worker";

/// What a worker is asked to do: open this device and carry out these steps.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    /// The device's data directory.
    pub dir: PathBuf,
    /// Server URL.
    pub url: String,
    /// API key.
    pub key: String,
    /// The session's steps.
    pub steps: Vec<Step>,
    /// The simulated time the device's clock shows, Unix ms.
    pub now_ms: i64,
}

/// Entry point of a worker process: reads a [`Job`] from stdin, prints notes on stdout.
/// Returns the process exit code.
pub fn worker_main() -> i32 {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("worker: reading the job: {e}");
        return 2;
    }
    let job: Job = match serde_json::from_str(&line) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("worker: bad job: {e}");
            return 2;
        }
    };
    let starling = match starling_core::Starling::open(app::device_config(
        &job.dir, &job.url, &job.key, job.now_ms,
    )) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("worker: open {}: {e}", job.dir.display());
            return 2;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut note = |n: Note| {
        let line = serde_json::to_string(&n).expect("notes serialise");
        // A parent that stopped listening is about to kill this process anyway.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    if let Err(e) = app::execute(&starling, &job.steps, &mut note) {
        eprintln!("worker: {e}");
        return 1;
    }
    match starling.close() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("worker: close: {e}");
            1
        }
    }
}

/// What the parent saw of a worker it killed.
#[derive(Debug)]
pub struct Killed {
    /// Every note the worker printed before it died, in order.
    pub notes: Vec<Note>,
    /// False when the worker finished before the kill came.
    pub killed: bool,
}

/// Runs `job` in a worker process started from `exe`, and sends SIGKILL once it has printed
/// `kill_after` notes, or (with `at_sync`) that long after it starts to sync, so that the kill
/// lands while it seals or uploads. Reads what it printed until the pipe closes, and reaps it.
pub fn run_and_kill(
    exe: &Path,
    job: &Job,
    kill_after: usize,
    at_sync: Option<std::time::Duration>,
) -> Result<Killed, String> {
    let mut child = Command::new(exe)
        .arg(WORKER_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting a worker from {}: {e}", exe.display()))?;
    {
        let mut stdin = child.stdin.take().expect("piped");
        let line = serde_json::to_string(job).map_err(|e| e.to_string())?;
        writeln!(stdin, "{line}").map_err(|e| format!("sending the job: {e}"))?;
    }
    let stdout = child.stdout.take().expect("piped");
    let mut notes = Vec::new();
    let mut sent = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading the worker: {e}"))?;
        let note: Note =
            serde_json::from_str(&line).map_err(|e| format!("worker printed {line:?}: {e}"))?;
        notes.push(note);
        let syncing = at_sync.filter(|_| notes.last() == Some(&Note::Syncing));
        if let (false, Some(delay)) = (sent, syncing) {
            std::thread::sleep(delay);
        }
        if !sent && (notes.len() >= kill_after || syncing.is_some()) {
            // `Child::kill` sends SIGKILL on Unix: no destructor, no final commit.
            child
                .kill()
                .map_err(|e| format!("killing the worker: {e}"))?;
            sent = true;
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("reaping the worker: {e}"))?;
    // The worker may have finished just before the signal came.
    let killed = std::os::unix::process::ExitStatusExt::signal(&status) == Some(9);
    if !killed && !status.success() {
        return Err(format!("the worker failed: {status}"));
    }
    Ok(Killed { notes, killed })
}
