//! Small helpers shared by the benchmark binaries in `tests/benches/`.

/// The sections named on the command line (arguments not starting with `-`); all of them when
/// none is named. Returns a predicate on a section's name.
pub fn sections() -> impl Fn(&str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    move |name| named.is_empty() || named.iter().any(|n| n == name)
}

/// Prints the machine line that heads every report.
pub fn print_header(runs: usize) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("Machine: {cores} cores; {runs} runs each, medians shown.\n");
}

/// The median of `values` (sorts them).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// The `p` quantile (0 to 1) of already sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
