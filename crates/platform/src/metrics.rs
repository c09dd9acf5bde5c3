//! Prometheus metrics. The `metrics` facade is process-global by design (like `tracing`), so the
//! recorder is installed once per process and every app instance in it (tests start many)
//! shares the handle that renders `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) from 0.5 ms to 10 s: the API's hot paths live below 10 ms.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS)
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours simply stays idle.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// A recorder made with `build_recorder` (rather than the exporter's own `install`) keeps
/// every histogram sample until something drains it: without a scrape of `/metrics` the
/// process grew by ~20 bytes per request (7 MB per 10 s of cached reads, without bound).
/// `run_upkeep` folds the samples into their buckets; a thread of its own does it every few
/// seconds for the life of the process, whatever runtime or test comes and goes.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the metrics upkeep thread; histogram samples pile up until /metrics is scraped");
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("valuva_http_requests_total", "HTTP requests by method, route template and status class");
    describe_histogram!(
        "valuva_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method, route template and status class"
    );
    describe_gauge!("valuva_http_requests_in_flight", "HTTP requests being served");
    describe_gauge!("valuva_http_connections_active", "Open client connections");
    describe_counter!("valuva_http_errors_total", "Error responses by problem code");
    describe_counter!("valuva_db_queries_total", "Database statements by operation and outcome");
    describe_histogram!("valuva_db_query_duration_seconds", Unit::Seconds, "Database statement latency by operation");
    describe_gauge!("valuva_db_pool_connections", "Database pool connections by pool and state (idle, in_use, max)");
    describe_counter!("valuva_orders_total", "Order events: created, paid, cancelled, expired, refunded");
    describe_counter!(
        "valuva_payments_after_close_total",
        "Payments a provider took for an order already cancelled, by provider (staff refund them there)"
    );
    describe_counter!("valuva_catalog_operations_total", "Catalog writes by entity and operation");
    describe_counter!("valuva_checkout_retries_total", "SERIALIZABLE checkout/transition transactions re-run after a conflict");
    describe_counter!("valuva_housekeeping_runs_total", "Background task runs by task and outcome");
    describe_gauge!("valuva_process_resident_memory_bytes", Unit::Bytes, "Resident set size of the process");
}

/// The memory limit of the process's own cgroup (a container's limit, or systemd's
/// `MemoryMax`): cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`. `None` when there is
/// none or it cannot be read.
pub fn memory_limit_bytes() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |path: String| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok();
    // v1 reports "no limit" as a number near 2^63.
    limit_files(&cgroups).into_iter().find_map(read).filter(|l| *l < 1 << 60)
}

/// Where the limit of the cgroups named in `/proc/self/cgroup` is, v2 first.
fn limit_files(cgroups: &str) -> Vec<String> {
    // v2: the line `0::/path` (`/` inside a container's own namespace); v1: `n:memory:/path`.
    let v2 = cgroups.lines().find_map(|l| l.strip_prefix("0::"));
    let v1 = cgroups.lines().find_map(|l| l.split_once(":memory:").map(|(_, p)| p));
    let v2 = v2.map(|p| format!("/sys/fs/cgroup{}/memory.max", p.trim_end_matches('/')));
    let v1 = v1.map(|p| format!("/sys/fs/cgroup/memory{}/memory.limit_in_bytes", p.trim_end_matches('/')));
    v2.into_iter().chain(v1).collect()
}

/// Resident set size from /proc (Linux); `None` elsewhere.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_limit_files_follow_the_process_cgroup() {
        assert_eq!(super::limit_files("0::/system.slice/valuva.service\n"), ["/sys/fs/cgroup/system.slice/valuva.service/memory.max"]);
        assert_eq!(
            super::limit_files("4:memory:/docker/abc\n0::/\n"),
            ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"]
        );
        assert!(super::limit_files("").is_empty());
    }
}
