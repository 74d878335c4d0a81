//! A small fleet with every fault switched on, process kills included, must still balance its
//! books, its bandits must beat random choices on the same opportunities, its federated
//! model must improve over the rounds, and the server's private estimates must cover the truth.

use starling_emulator::{run, Options};

#[test]
fn a_faulty_fleet_balances_its_books_its_bandits_beat_random_and_its_model_learns() {
    let out = tempfile::tempdir().unwrap();
    // A week: each device learns on its own, and its context-free layout bandit needs a few
    // dozen decisions before it beats random by a clear margin.
    let mut options = Options::new(20, 7, 7, out.path().to_owned());
    options.offline_fraction = 0.5;
    options.consent_fraction = 0.3;
    options.restart_rate = 0.05;
    options.kill_rate = 0.15;
    options.server_error_hours = 6;
    options.slow_hours = 2;
    options.quiet = true;
    options.worker_exe = Some(env!("CARGO_BIN_EXE_starling-emulate").into());
    // Twenty devices, some of them offline or without consent on a given day: the embedded
    // server publishes a day's estimate from 10 reports.
    options.private_min_devices = 10;

    let report = run(&options).unwrap();
    let a = &report.accounting;
    let f = &report.faults;
    assert!(a.balanced, "{a:?}");
    assert_eq!(a.duplicated, 0);
    assert_eq!(a.generated, a.app_events + a.decision_logs);
    assert!(a.app_events > 1_000 && a.decision_logs > 500, "{a:?}");
    assert!(a.sdk_events_on_server > 0, "decision logs reach the server");
    for reason in a.lost.keys() {
        assert!(
            ["deleted_by_consent", "lost_in_killed_process"].contains(&reason.as_str()),
            "unexpected loss {reason}: {a:?}"
        );
    }
    assert!(
        f.processes_killed > 0
            && f.restarts > 0
            && f.syncs_retried > 0
            && f.consent_changes > 0
            && f.offline_devices > 0,
        "faults happened: {f:?}"
    );

    // A bandit that chooses no better than uniformly at random has a mean expected click rate
    // within a few `random_click_rate_sd` of random's (the standard deviation computed from
    // every arm's true probability on the same opportunities). Four of them fail such a
    // bandit with probability below 1e-4.
    for b in &report.bandits {
        let tolerance = 4.0 * b.random_click_rate_sd;
        assert!(tolerance > 0.0);
        assert!(
            b.expected_click_rate - b.random_click_rate > tolerance,
            "{}: bandit {:.4}, random {:.4}, tolerance {tolerance:.4} over {} decisions",
            b.bandit,
            b.expected_click_rate,
            b.random_click_rate,
            b.opportunities
        );
        assert!(b.regret < b.random_regret);
        assert!(b.best_click_rate >= b.expected_click_rate);
    }

    // Federated rounds ran, and the published versions beat the untrained model (version 0,
    // zero weights: it predicts a click everywhere) on the devices' held-out examples. The
    // margin is three standard errors of the mean accuracy over the second half of the
    // versions.
    let m = report
        .model_accuracy
        .as_ref()
        .expect("the embedded server runs rounds");
    assert!(m.updates_sent > 0 && m.rounds.len() >= 4, "{m:?}");
    let first = m.rounds[0].accuracy.expect("version 0 evaluated");
    let later: Vec<f64> = m.rounds[m.rounds.len() / 2..]
        .iter()
        .filter_map(|r| r.accuracy)
        .collect();
    let n = later.len() as f64;
    let mean = later.iter().sum::<f64>() / n;
    let sd = (later.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(
        mean - first > 3.0 * sd / n.sqrt(),
        "accuracy {first:.3} at version 0, {mean:.3} (sd {sd:.3}) over the later versions"
    );

    // Private estimates were published, and their 95% intervals cover the truth the emulator
    // knows. Were each interval's coverage 0.95 and the intervals independent, the covered
    // count would be binomial(n, 0.95); the check allows 4 standard deviations below it (a
    // probability below 1e-4 of failing a correct pipeline), or 80%, whichever is lower.
    let p = report
        .private_estimates
        .as_ref()
        .expect("the devices send private reports");
    assert!(p.reports_sent > 0 && p.intervals >= 30, "{p:?}");
    assert!(
        p.reports.iter().all(|r| !r.days.is_empty()),
        "every report published a day"
    );
    assert_eq!(p.devices_unmatched, 0, "receipts line up with the books");
    for r in &p.reports {
        for d in &r.days {
            assert_eq!(d.devices, d.expected_devices, "{} day {}", r.report, d.day);
        }
    }
    let n = p.intervals as f64;
    let floor = (0.95 * n - 4.0 * (n * 0.95 * 0.05).sqrt()).min(0.8 * n);
    assert!(
        p.covered as f64 >= floor,
        "{} of {} intervals cover the truth (at least {floor:.1} expected)",
        p.covered,
        p.intervals
    );
    assert!(p.epsilon_per_device_max > 0.0 && p.epsilon_per_device_max <= 12.0 + 1e-9);

    // Both reports are written; the HTML one is self-contained.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(options.json_path()).unwrap()).unwrap();
    assert_eq!(json["accounting"]["generated"].as_u64(), Some(a.generated));
    assert!(json["model_accuracy"]["rounds"].is_array());
    assert_eq!(
        json["private_estimates"]["intervals"].as_u64(),
        Some(p.intervals)
    );
    let html = std::fs::read_to_string(options.html_path()).unwrap();
    assert!(html.contains("<svg") && html.contains("id=\"accounting\""));
    assert!(html.contains("id=\"model-accuracy\"") && html.contains("id=\"private-estimates\""));
    assert!(html.contains("daily_activity: estimate"));
    assert!(!html.contains("<script") && !html.contains("src="));
}
