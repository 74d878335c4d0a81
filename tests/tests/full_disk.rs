//! A full disk: a child process whose file-size limit stops SQLite's writes. `flush()` must
//! report the failure instead of claiming durability, the process must keep running, and once
//! space is back the events tracked meanwhile must be committed and delivered exactly once.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use starling_core::Event;
use starling_tests::*;

const CHILD_DIR: &str = "STARLING_FULL_DISK_CHILD_DIR";

fn set_file_size_limit(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall on a stack value.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) };
    assert_eq!(rc, 0, "setrlimit");
}

/// The child's body; does nothing unless started by the test below.
#[test]
fn full_disk_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    // Writing past the limit must fail with EFBIG, not kill the process with SIGXFSZ.
    // SAFETY: setting a signal disposition to "ignore".
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };

    let mut config = starling_core::Config::new(&dir);
    config.flush_interval_ms = 20;
    let device = open_device(config);
    let track = |n: &mut i64, count: i64| {
        for _ in 0..count {
            device
                .track(
                    Event::new("tick")
                        .with("n", *n)
                        .with("padding", "x".repeat(200)),
                )
                .unwrap();
            *n += 1;
        }
    };
    let mut n = 0i64;
    track(&mut n, 100);
    device.flush().unwrap();
    println!("ACK {n}");

    // The disk fills up: the database files may not grow past their current size plus a little.
    let path = std::path::Path::new(&dir).join(starling_core::DATABASE_FILE);
    let largest = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .max()
        .unwrap();
    set_file_size_limit(largest + 16 * 1024);
    let mut failures = 0;
    for _ in 0..50 {
        track(&mut n, 200);
        match device.flush() {
            Ok(()) => println!("ACK {n}"),
            Err(e) => {
                failures += 1;
                println!("FULL {e}");
            }
        }
    }
    assert!(failures > 0, "the disk never filled");

    // Space comes back: everything tracked meanwhile is committed.
    set_file_size_limit(u64::MAX >> 1);
    track(&mut n, 10);
    device.flush().unwrap();
    println!("ACK {n}");
    println!(
        "DONE {}",
        device.diagnostics().unwrap().events_dropped_unwritable
    );
}

#[test]
fn a_full_disk_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "full_disk_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let full = stdout.lines().filter(|l| l.contains("FULL ")).count();
    assert!(full > 0, "no flush reported the full disk:\n{stdout}");
    let acked: i64 = stdout
        .lines()
        .filter_map(|l| {
            l.rsplit_once("ACK ")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .max()
        .unwrap();
    let dropped: u64 = stdout
        .lines()
        .find_map(|l| {
            l.rsplit_once("DONE ")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .expect("child finished");
    assert_eq!(dropped, 0, "nothing was dropped from memory");

    let server = TestServer::start();
    let device = open_device(device_config(dir.path(), &server.url()));
    sync_until_drained(&device, Duration::from_secs(30));
    let events = server.device_events(&device.device_id().unwrap());
    let ns: Vec<i64> = events.iter().filter_map(|e| int_property(e, "n")).collect();
    let distinct: BTreeSet<i64> = ns.iter().copied().collect();
    assert_eq!(distinct.len(), ns.len(), "no event stored twice");
    assert_eq!(
        distinct,
        (0..acked).collect(),
        "every event, including those tracked while full"
    );
}
