//! The device store's bounds, its recovery from a damaged database, and its accounting.

use std::time::Duration;

use starling_core::{Event, Starling};
use starling_tests::*;

#[test]
fn the_size_bound_evicts_oldest_first_and_reports_the_loss() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), &server.url());
    config.max_store_bytes = 64 * 1024;
    config.commit_group_events = 100;
    let device = open_device(config);

    for n in 0..5000 {
        device
            .track(
                Event::new("tick")
                    .with("n", n)
                    .with("screen", "product_detail"),
            )
            .unwrap();
        if n % 100 == 99 {
            device.flush().unwrap();
        }
    }
    device.flush().unwrap();
    let d = device.diagnostics().unwrap();
    assert!(
        d.stored_bytes <= 64 * 1024,
        "store holds {} bytes",
        d.stored_bytes
    );
    assert!(d.events_evicted_size > 3000, "{d:?}");
    assert_eq!(d.events_committed, 5000);
    assert_eq!(
        d.events_unsealed + d.events_evicted_size,
        5000,
        "every event is accounted for"
    );

    sync_until_drained(&device, Duration::from_secs(10));
    let events = server.device_events(&device.device_id().unwrap());
    let ns: Vec<i64> = events.iter().filter_map(|e| int_property(e, "n")).collect();
    // What survived is the newest events, in order.
    let first = 5000 - ns.len() as i64;
    assert_eq!(ns, (first..5000).collect::<Vec<_>>());
    let stats = server.stats();
    assert_eq!(
        stats.device_losses.get("evicted_size").copied(),
        Some(d.events_evicted_size)
    );
    assert_eq!(
        stats.events + d.events_evicted_size,
        5000,
        "the server can balance the books"
    );
}

#[test]
fn the_age_bound_evicts_old_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = starling_core::Config::new(dir.path());
    config.max_age_ms = 150;
    let device = open_device(config.clone());
    for _ in 0..10 {
        device.track(Event::new("old")).unwrap();
    }
    device.flush().unwrap();
    drop(device);
    std::thread::sleep(Duration::from_millis(300));

    // The next sealing pass (here, a sync attempt without a server) enforces the bound.
    let device = open_device(config.with_server("http://127.0.0.1:9", "k"));
    device.track(Event::new("new")).unwrap();
    let _ = device.sync().unwrap();
    let d = device.diagnostics().unwrap();
    assert_eq!(d.events_evicted_age, 10);
    assert_eq!(d.events_batched, 1, "only the new event is left");
}

#[test]
fn a_corrupt_database_is_set_aside_and_the_app_keeps_working() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    {
        let device = open_device(device_config(dir.path(), &server.url()));
        device.track(Event::new("before")).unwrap();
        device.flush().unwrap();
    }
    // Scribble over the file, header included.
    let path = dir.path().join(starling_core::DATABASE_FILE);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    std::fs::write(&path, vec![0xab; len.max(4096)]).unwrap();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", path.display()));
    }

    let device = Starling::open(device_config(dir.path(), &server.url())).expect("opens anyway");
    let d = device.diagnostics().unwrap();
    assert_eq!(d.database_recoveries, 1);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept for inspection");

    // Consent lived in the lost database: the app is asked again, then works as before.
    assert!(!device.consent());
    device.set_consent(true).unwrap();
    device.track(Event::new("after")).unwrap();
    let report = sync_until_drained(&device, Duration::from_secs(5));
    assert_eq!(report.events_sent, 1);
}

#[test]
fn many_devices_sync_concurrently_without_loss() {
    let server = TestServer::start();
    let url = server.url();
    let handles: Vec<_> = (0..8)
        .map(|d| {
            let url = url.clone();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let device = open_device(device_config(dir.path(), &url));
                let mut workload = Workload::new(d, 1_760_000_000_000);
                for _ in 0..400 {
                    device.track(workload.next_event()).unwrap();
                }
                let report = sync_until_drained(&device, Duration::from_secs(20));
                (device.device_id().unwrap(), report.events_sent)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        let (device_id, sent) = h.join().unwrap();
        assert_eq!(sent, 400);
        assert_eq!(server.device_events(&device_id).len(), 400);
        total += sent;
    }
    let stats = server.stats();
    assert_eq!((stats.events, stats.devices), (total, 8));
}
