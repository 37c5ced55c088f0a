//! Prometheus metrics, kept by hand: a few counters and one histogram need no framework.
//!
//! - `sigil_http_requests_total{route,code}`: requests by route and outcome code (`ok` or a
//!   SPEC error code);
//! - `sigil_http_request_duration_seconds{route}`: latency histogram;
//! - `sigil_enclave_in_flight`, `sigil_enclave_connections`, `sigil_enclave_reconnects_total`:
//!   the enclave client's state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request counters and latency histograms.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The enclave client's gauges, sampled when `/metrics` is scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnclaveGauges {
    /// Requests waiting for the enclave right now.
    pub in_flight: u64,
    /// Live pooled connections.
    pub connections: u64,
    /// Reconnections since start.
    pub reconnects: u64,
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, route: &'static str, code: &'static str, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, code)).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route).or_default();
            for (slot, le) in h.counts.iter_mut().zip(BUCKETS) {
                if secs <= le {
                    *slot += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self, enclave: EnclaveGauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP sigil_http_requests_total HTTP requests by route and outcome code.\n");
        out.push_str("# TYPE sigil_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, code), n) in m.iter() {
                let _ = writeln!(out, "sigil_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}");
            }
        }
        out.push_str("# HELP sigil_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE sigil_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (le, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "sigil_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "sigil_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "sigil_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(out, "sigil_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
            }
        }
        let gauges = [
            ("sigil_enclave_in_flight", "gauge", "Requests waiting for the enclave.", enclave.in_flight),
            ("sigil_enclave_connections", "gauge", "Live connections to the enclave.", enclave.connections),
            ("sigil_enclave_reconnects_total", "counter", "Reconnections to the enclave.", enclave.reconnects),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.record("/dev/sign-message", "ok", Duration::from_micros(300));
        m.record("/dev/sign-message", "unauthorized", Duration::from_millis(20));
        let text = m.render(EnclaveGauges { in_flight: 2, connections: 4, reconnects: 1 });
        assert!(text.contains("sigil_http_requests_total{route=\"/dev/sign-message\",code=\"ok\"} 1"));
        assert!(
            text.contains("sigil_http_request_duration_seconds_bucket{route=\"/dev/sign-message\",le=\"0.0005\"} 1")
        );
        assert!(
            text.contains("sigil_http_request_duration_seconds_bucket{route=\"/dev/sign-message\",le=\"0.025\"} 2")
        );
        assert!(text.contains("sigil_http_request_duration_seconds_count{route=\"/dev/sign-message\"} 2"));
        assert!(text.contains("sigil_enclave_connections 4"));
        assert!(text.contains("sigil_enclave_reconnects_total 1"));
    }
}
