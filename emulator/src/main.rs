//! `starling-emulate`: run a fleet of simulated devices and print what happened.

use clap::Parser;
use starling_emulator::{run, worker, Options};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    if std::env::args().nth(1).as_deref() == Some(worker::WORKER_ARG) {
        std::process::exit(worker::worker_main());
    }
    let options = Options::parse();
    println!(
        "Emulating {} devices over {} simulated days (seed {})...",
        options.devices, options.days, options.seed
    );
    let report = match run(&options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("starling-emulate: {e}");
            std::process::exit(1);
        }
    };
    let a = &report.accounting;
    let f = &report.faults;
    let lost: u64 = a.lost.values().sum();
    println!();
    println!("Events");
    println!(
        "  generated             {:>10}  ({} app events, {} decision logs)",
        a.generated, a.app_events, a.decision_logs
    );
    println!(
        "  on the server         {:>10}  (each exactly once: {} duplicates)",
        a.on_server, a.duplicated
    );
    println!("  still queued          {:>10}", a.queued);
    println!("  lost, counted         {:>10}  {:?}", lost, a.lost);
    println!(
        "  replays refused       {:>10}",
        a.duplicate_batches_refused
    );
    println!("  refused, no consent   {:>10}", a.not_collected);
    println!("Faults");
    println!(
        "  processes killed      {:>10}  (SIGKILL while owning a database)",
        f.processes_killed
    );
    println!("  app restarts          {:>10}", f.restarts);
    println!("  offline devices       {:>10}", f.offline_devices);
    println!("  consent changes       {:>10}", f.consent_changes);
    println!(
        "  syncs                 {:>10}  ({} met a failure and retried)",
        f.syncs, f.syncs_retried
    );
    println!("Bandits (expected clicks per decision, on the same opportunities)");
    for b in &report.bandits {
        println!(
            "  {:<12} {:>7} decisions  bandit {:.3}  random {:.3}  best {:.3}  regret {:.0}% of random's ({:.0}% in the last quarter)",
            b.bandit,
            b.opportunities,
            b.expected_click_rate,
            b.random_click_rate,
            b.best_click_rate,
            100.0 * b.regret_vs_random,
            100.0 * b.regret_vs_random_last_quarter
        );
    }
    if let Some(m) = &report.model_accuracy {
        let accuracy = |r: Option<&starling_emulator::learning::Round>| {
            r.and_then(|r| r.accuracy).unwrap_or(f64::NAN)
        };
        println!("Federated learning ({})", m.task);
        println!(
            "  versions published    {:>10}  ({} updates accepted, {} refused, {} learning syncs)",
            m.rounds.len(),
            m.updates_sent,
            m.updates_refused,
            m.syncs
        );
        println!(
            "  held-out accuracy         {:.3} untrained, {:.3} latest  (always \"no click\": {:.3})",
            accuracy(m.rounds.first()),
            accuracy(m.rounds.iter().rev().find(|r| r.accuracy.is_some())),
            m.majority_baseline
        );
    }
    if let Some(p) = &report.private_estimates {
        let days: usize = p.reports.iter().map(|r| r.days.len()).sum();
        println!("Private reports (estimates against the truth)");
        println!(
            "  reports sent          {:>10}  ({} report-days published, {} withheld: too few devices)",
            p.reports_sent, days, p.days_withheld
        );
        println!(
            "  95% intervals         {:>10}  cover the truth: {} ({:.1}%)",
            p.intervals,
            p.covered,
            100.0 * p.coverage
        );
        println!("  mean relative error   {:>10.2}", p.mean_relative_error);
        println!(
            "  epsilon per device    {:>10.2}  mean, {:.2} most",
            p.epsilon_per_device_mean, p.epsilon_per_device_max
        );
    }
    println!("Wire");
    println!("  bytes per event       {:>10.2}", report.bytes.per_event);
    println!(
        "  bytes per device-day  {:>10.0}",
        report.bytes.per_device_day
    );
    println!(
        "  device-days/minute    {:>10.0}  ({:.1} s)",
        report.device_days_per_minute, report.elapsed_s
    );
    println!();
    println!(
        "Reports: {} and {}",
        options.json_path().display(),
        options.html_path().display()
    );
    println!("Accounting balances: every event is on the server once, queued, or counted as lost.");
}
