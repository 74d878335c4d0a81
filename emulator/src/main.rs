//! `starling-emulate`: run a fleet of simulated devices and print what happened.

use clap::Parser;
use starling_emulator::{run, Options};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let options = Options::parse();
    println!(
        "Emulating {} devices over {} simulated days (seed {})...",
        options.devices, options.days, options.seed
    );
    let report = match run(&options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("starling-emulate: {e}");
            std::process::exit(2);
        }
    };
    let lost: u64 = report.events_lost.values().sum();
    println!();
    println!("  events generated      {:>10}", report.events_generated);
    println!(
        "  on the server         {:>10}  (each exactly once: {} duplicates)",
        report.events_on_server, report.events_duplicated
    );
    println!("  still queued          {:>10}", report.events_queued);
    println!(
        "  lost, counted         {:>10}  {:?}",
        lost, report.events_lost
    );
    println!(
        "  replays refused       {:>10}",
        report.duplicate_batches_refused
    );
    println!(
        "  syncs                 {:>10}  ({} met a failure and retried)",
        report.syncs, report.syncs_retried
    );
    println!("  app restarts          {:>10}", report.restarts);
    println!("  bytes per event       {:>10.2}", report.bytes_per_event);
    println!(
        "  bytes per device-day  {:>10.0}",
        report.bytes_per_device_day
    );
    println!(
        "  device-days/minute    {:>10.0}  ({:.1} s)",
        report.device_days_per_minute, report.elapsed_s
    );
    println!();
    println!("Report: {}", options.out.join("report.json").display());
    if report.balanced {
        println!(
            "Accounting balances: every event is on the server once, queued, or counted as lost."
        );
    } else {
        eprintln!("Accounting does NOT balance.");
        std::process::exit(1);
    }
}
