//! Prometheus metrics: one registry, families defined here (and only here), a `/metrics` HTTP
//! endpoint. Workers count in plain thread-local fields and publish once per batch, so the hot
//! path touches no atomics.

mod server;

pub use server::{check_security, EndpointSecurity, MetricsServer, MetricsServerError};

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Every metric family the sensor exports.
pub struct Metrics {
    registry: Registry,
    /// Packets seen by the capture thread, by result.
    pub packets: IntCounterVec,
    /// Bytes (on the wire) seen by the capture thread, by result.
    pub bytes: IntCounterVec,
    /// Frames not decoded into TCP/UDP, by reason.
    pub decode_skipped: IntCounterVec,
    /// libpcap's packets received counter.
    pub capture_received: IntCounter,
    /// libpcap: dropped for lack of buffer space (`ps_drop`).
    pub capture_kernel_drops: IntCounter,
    /// libpcap: dropped by the interface or driver (`ps_ifdrop`).
    pub capture_interface_drops: IntCounter,
    /// Packets dropped because a worker's queue was full (live capture only).
    pub queue_drops: IntCounter,
    /// Batches waiting in each worker's queue.
    pub queue_depth: IntGaugeVec,
    /// Packets processed per worker.
    pub worker_packets: IntCounterVec,
    /// Flows held now, per worker.
    pub flows_active: IntGaugeVec,
    /// Flow-state bytes charged against the flow memory cap, per worker.
    pub flow_memory: IntGaugeVec,
    /// Flows created, by transport.
    pub flows_created: IntCounterVec,
    /// Flows ended, by reason.
    pub flows_ended: IntCounterVec,
    /// Holes in TCP streams skipped.
    pub reassembly_gaps: IntCounter,
    /// Bytes missing in skipped holes.
    pub reassembly_gap_bytes: IntCounter,
    /// Out-of-order bytes held now, per worker.
    pub reassembly_ooo_bytes: IntGaugeVec,
    /// Overlapping segments whose bytes differed from the first seen.
    pub reassembly_overlap_conflicts: IntCounter,
    /// Retransmitted bytes discarded.
    pub reassembly_duplicate_bytes: IntCounter,
    /// Segments refused because a reassembly cap was hit.
    pub reassembly_segments_dropped: IntCounter,
    /// Packets whose IPv4/TCP/UDP checksum failed verification (dropped or, in `auto` mode on
    /// offloaded traffic, kept).
    pub checksum_errors: IntCounter,
    /// IP fragments whose bytes disagreed with bytes already held (first copy kept).
    pub defrag_conflicts: IntCounter,
    /// IPv4 datagrams reassembled from fragments.
    pub defrag_reassembled: IntCounter,
    /// Fragments given up (timeout, memory cap, bad offsets).
    pub defrag_dropped: IntCounter,
    /// Payload bytes scanned by the matcher.
    pub scanned_bytes: IntCounter,
    /// Raw pattern hits, by rule.
    pub pattern_hits: IntCounterVec,
    /// Values that passed validation, by rule (before per-flow de-duplication).
    pub pii_findings: IntCounterVec,
    /// Distinct values reported in alerts, by rule.
    pub pii_reported: IntCounterVec,
    /// Alerts raised, by rule.
    pub alerts: IntCounterVec,
    /// Alerts that could not be written to the output.
    pub alert_write_errors: IntCounter,
    /// Values not alerted because policy allows them, by rule and reason.
    pub pii_suppressed: IntCounterVec,
    /// Values not alerted because their confidence is below `--min-confidence`, by rule.
    pub pii_below_min_confidence: IntCounterVec,
    /// Egress TCP directions (counted at flow end) and UDP datagrams, by application protocol.
    pub l7_protocol: IntCounterVec,
    /// Decoder limits hit and decoding stops, by event.
    pub l7_events: IntCounterVec,
    /// Egress payload bytes not inspected because their flow was bypassed, by protocol and reason.
    pub bypassed_bytes: IntCounterVec,
    /// Flows bypassed, by protocol and reason.
    pub flows_bypassed: IntCounterVec,

    // ---- Alert outputs (src/sink): one series per configured output, label `output` = its
    // fixed name (`file`, `stdout`, `syslog`, `http-0`, …), so cardinality is bounded by config.
    /// Alerts the receiver acknowledged, by output.
    pub output_delivered: IntCounterVec,
    /// Alerts in delivery attempts that failed (each attempt counts its alerts), by output.
    pub output_failed: IntCounterVec,
    /// Alerts sent again after an earlier failed attempt (replayed from the spool), by output.
    pub output_retried: IntCounterVec,
    /// Alerts written to the output's disk spool, by output.
    pub output_spooled: IntCounterVec,
    /// Alerts given up, by output and reason (`rejected`, `spool_full`, `spool_error`,
    /// `queue_full`, `shutdown`).
    pub output_dropped: IntCounterVec,
    /// Bytes in the output's disk spool.
    pub output_spool_bytes: IntGaugeVec,
    /// Alerts waiting in the output's in-memory queue.
    pub output_queue_depth: IntGaugeVec,
    /// 1 while the output's last delivery attempt succeeded (connected), 0 while it fails.
    pub output_connected: IntGaugeVec,

    /// Rule reloads (SIGHUP), by result (`ok`, `failed`).
    pub rule_reloads: IntCounterVec,
    /// Generation of the rule set in use: 1 at start, +1 per successful reload.
    pub rules_generation: IntGauge,
    /// Rules in the rule set in use.
    pub rules_loaded: IntGauge,
    /// Unix time (seconds) the rule set in use was loaded.
    pub rules_last_reload_timestamp: IntGauge,
    /// 1 if the last reload attempt succeeded (or none was made), 0 if it was refused.
    pub rules_last_reload_successful: IntGauge,
    /// Packets read by each capture thread (label `thread`, 0 … capture threads − 1): shows how
    /// evenly the af-packet fanout spreads the interface.
    pub capture_thread_packets: IntCounterVec,
    /// af-packet: times the kernel found a ring full and froze its queue (`tp_freeze_q_cnt`).
    pub capture_ring_freezes: IntCounter,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build = IntGauge::with_opts(
            Opts::new("nigehban_build_info", "Build information; always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric definition");
        build.set(1);
        r.register(Box::new(build)).expect("metric registered once");
        Metrics {
            packets: counter_vec(
                &r,
                "nigehban_packets_total",
                "Packets seen by the capture thread, by result.",
                &["result"],
            ),
            bytes: counter_vec(
                &r,
                "nigehban_bytes_total",
                "Bytes on the wire seen by the capture thread, by result.",
                &["result"],
            ),
            decode_skipped: counter_vec(
                &r,
                "nigehban_decode_skipped_total",
                "Frames not decoded into a TCP or UDP packet, by reason.",
                &["reason"],
            ),
            capture_received: counter(
                &r,
                "nigehban_capture_received_total",
                "Packets received as counted by libpcap.",
            ),
            capture_kernel_drops: counter(
                &r,
                "nigehban_capture_kernel_drops_total",
                "Packets dropped for lack of capture buffer space (libpcap ps_drop).",
            ),
            capture_interface_drops: counter(
                &r,
                "nigehban_capture_interface_drops_total",
                "Packets dropped by the interface or its driver (libpcap ps_ifdrop).",
            ),
            queue_drops: counter(
                &r,
                "nigehban_queue_drops_total",
                "Packets dropped because a worker's queue was full (live capture never waits).",
            ),
            queue_depth: gauge_vec(
                &r,
                "nigehban_queue_depth_batches",
                "Packet batches waiting in a worker's queue.",
                &["worker"],
            ),
            worker_packets: counter_vec(
                &r,
                "nigehban_worker_packets_total",
                "Packets processed by a worker.",
                &["worker"],
            ),
            flows_active: gauge_vec(
                &r,
                "nigehban_flows_active",
                "Flows held in a worker's flow table.",
                &["worker"],
            ),
            flow_memory: gauge_vec(
                &r,
                "nigehban_flow_memory_bytes",
                "Flow-state bytes charged against a worker's flow memory cap.",
                &["worker"],
            ),
            flows_created: counter_vec(
                &r,
                "nigehban_flows_created_total",
                "Flows created, by transport.",
                &["transport"],
            ),
            flows_ended: counter_vec(&r, "nigehban_flows_ended_total", "Flows ended, by reason.", &["reason"]),
            reassembly_gaps: counter(
                &r,
                "nigehban_reassembly_gaps_total",
                "Holes in TCP streams skipped because they would never fill.",
            ),
            reassembly_gap_bytes: counter(
                &r,
                "nigehban_reassembly_gap_bytes_total",
                "Bytes missing in skipped TCP holes.",
            ),
            reassembly_ooo_bytes: gauge_vec(
                &r,
                "nigehban_reassembly_ooo_bytes",
                "Out-of-order TCP bytes held by a worker.",
                &["worker"],
            ),
            reassembly_overlap_conflicts: counter(
                &r,
                "nigehban_reassembly_overlap_conflicts_total",
                "Overlapping TCP segments whose bytes differed from those seen first.",
            ),
            reassembly_duplicate_bytes: counter(
                &r,
                "nigehban_reassembly_duplicate_bytes_total",
                "Retransmitted TCP bytes discarded.",
            ),
            checksum_errors: counter(
                &r,
                "nigehban_checksum_errors_total",
                "Packets whose IPv4, TCP or UDP checksum was wrong (dropped unless auto mode saw offload).",
            ),
            defrag_conflicts: counter(
                &r,
                "nigehban_defrag_conflicts_total",
                "IP fragments overlapping held bytes with different content (the first copy is kept).",
            ),
            reassembly_segments_dropped: counter(
                &r,
                "nigehban_reassembly_segments_dropped_total",
                "TCP segments refused because a reassembly memory cap was hit.",
            ),
            defrag_reassembled: counter(
                &r,
                "nigehban_defrag_reassembled_total",
                "IPv4 datagrams reassembled from fragments.",
            ),
            defrag_dropped: counter(
                &r,
                "nigehban_defrag_dropped_total",
                "Fragmented datagrams given up (timeout, memory cap, bad offsets).",
            ),
            scanned_bytes: counter(
                &r,
                "nigehban_scanned_bytes_total",
                "Payload bytes scanned for personal data.",
            ),
            pattern_hits: counter_vec(
                &r,
                "nigehban_pattern_hits_total",
                "Raw pattern hits before validation, by rule.",
                &["rule"],
            ),
            pii_findings: counter_vec(
                &r,
                "nigehban_pii_findings_total",
                "Values that passed validation, by rule, before de-duplication.",
                &["rule"],
            ),
            pii_reported: counter_vec(
                &r,
                "nigehban_pii_reported_total",
                "Distinct values reported in alerts, by rule.",
                &["rule"],
            ),
            alerts: counter_vec(&r, "nigehban_alerts_total", "Alerts raised, by rule.", &["rule"]),
            alert_write_errors: counter(
                &r,
                "nigehban_alert_write_errors_total",
                "Alerts that could not be written to the alert output.",
            ),
            pii_suppressed: counter_vec(
                &r,
                "nigehban_pii_suppressed_total",
                "Values not alerted because an allow-list covers them, by rule and reason.",
                &["rule", "reason"],
            ),
            pii_below_min_confidence: counter_vec(
                &r,
                "nigehban_pii_below_min_confidence_total",
                "Values not alerted because their confidence is below --min-confidence, by rule.",
                &["rule"],
            ),
            l7_protocol: counter_vec(
                &r,
                "nigehban_l7_protocol_total",
                "Egress TCP directions (at flow end) and UDP datagrams, by recognised application protocol.",
                &["protocol"],
            ),
            l7_events: counter_vec(
                &r,
                "nigehban_l7_events_total",
                "Application decoder limits hit (decompression bombs, nesting, oversized headers) and decoding stops, by event.",
                &["event"],
            ),
            bypassed_bytes: counter_vec(
                &r,
                "nigehban_bypassed_bytes_total",
                "Egress payload bytes not reassembled or scanned because their flow was bypassed (encrypted or past flow.stream_depth), by protocol and reason.",
                &["protocol", "reason"],
            ),
            flows_bypassed: counter_vec(
                &r,
                "nigehban_flows_bypassed_total",
                "Flows whose egress direction stopped being inspected, by protocol and reason (encrypted, depth).",
                &["protocol", "reason"],
            ),
            // ---- Alert outputs (src/sink).
            output_delivered: counter_vec(
                &r,
                "nigehban_output_delivered_total",
                "Alerts acknowledged by an output's receiver (TCP/TLS syslog: written and flushed; HTTP: 2xx).",
                &["output"],
            ),
            output_failed: counter_vec(
                &r,
                "nigehban_output_failed_total",
                "Alerts in delivery attempts that failed; they are retried or spooled, not lost.",
                &["output"],
            ),
            output_retried: counter_vec(
                &r,
                "nigehban_output_retried_total",
                "Alerts sent again from the disk spool after an earlier failure or restart.",
                &["output"],
            ),
            output_spooled: counter_vec(
                &r,
                "nigehban_output_spooled_total",
                "Alerts written to an output's disk spool.",
                &["output"],
            ),
            output_dropped: counter_vec(
                &r,
                "nigehban_output_dropped_total",
                "Alerts given up by an output, by reason.",
                &["output", "reason"],
            ),
            output_spool_bytes: gauge_vec(
                &r,
                "nigehban_output_spool_bytes",
                "Bytes held in an output's disk spool.",
                &["output"],
            ),
            output_queue_depth: gauge_vec(
                &r,
                "nigehban_output_queue_depth",
                "Alerts waiting in an output's in-memory queue.",
                &["output"],
            ),
            output_connected: gauge_vec(
                &r,
                "nigehban_output_connected",
                "1 while an output's last delivery succeeded, 0 while it fails.",
                &["output"],
            ),
            rule_reloads: counter_vec(
                &r,
                "nigehban_rule_reloads_total",
                "Rule set reloads requested by SIGHUP, by result (failed: the old set keeps running).",
                &["result"],
            ),
            rules_generation: gauge(
                &r,
                "nigehban_rules_generation",
                "Generation of the rule set in use: 1 at start, one more per successful reload.",
            ),
            rules_loaded: gauge(&r, "nigehban_rules_loaded", "Rules in the rule set in use."),
            rules_last_reload_timestamp: gauge(
                &r,
                "nigehban_rules_last_reload_timestamp_seconds",
                "Unix time the rule set in use was loaded (at start or by the last successful reload).",
            ),
            rules_last_reload_successful: gauge(
                &r,
                "nigehban_rules_last_reload_successful",
                "1 if the last rule reload succeeded or none was attempted, 0 if it was refused.",
            ),
            capture_thread_packets: counter_vec(
                &r,
                "nigehban_capture_thread_packets_total",
                "Packets read by each capture thread (af-packet fanout balance).",
                &["thread"],
            ),
            capture_ring_freezes: counter(
                &r,
                "nigehban_capture_ring_freezes_total",
                "Times an af-packet ring was full and the kernel froze its queue (tp_freeze_q_cnt).",
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_follow_conventions() {
        let m = Metrics::new();
        m.packets.with_label_values(&["queued"]).inc();
        m.alerts.with_label_values(&["NGB-X"]).inc_by(2);
        let text = m.render();
        assert!(text.contains("nigehban_packets_total{result=\"queued\"} 1"));
        assert!(text.contains("nigehban_alerts_total{rule=\"NGB-X\"} 2"));
        assert!(text.contains("nigehban_build_info{version="));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let parts: Vec<_> = line.split_whitespace().collect();
            assert!(parts[2].starts_with("nigehban_"), "{line}");
            if parts[3] == "counter" {
                assert!(parts[2].ends_with("_total"), "{line}");
            }
        }
    }
}
