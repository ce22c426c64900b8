//! The agent's Prometheus metrics, and the HTTP endpoint that serves them.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the workloads-by-state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `starting`, `pulling`, `imagePullBackOff`, `running`, `restarting`, `exited`, `failed`.
    pub state: String,
}

/// Labels of the command counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// `deploy`, `stop`, or `unknown` for what did not decode.
    pub kind: String,
    /// `accepted`, `repeated`, or the refusal's label (`bad_signature`, `stale`, …).
    pub outcome: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    /// Workloads by state.
    pub workloads: Family<StateLabel, Gauge>,
    /// Heartbeats published.
    pub heartbeats_sent: Counter,
    /// Oracle commands by kind and outcome.
    pub commands: Family<CommandLabels, Counter>,
    /// Seconds from creating a container to its task running.
    pub container_start_seconds: Histogram,
    /// Seconds per reconcile pass.
    pub reconcile_seconds: Histogram,
    /// Reconcile passes that failed (containerd unreachable, …).
    pub reconcile_errors: Counter,
    /// 1 while connected to the broker.
    pub broker_connected: Gauge,
    /// CSPs' logs and exec sessions ended, by kind (`logs`, `exec`) and outcome (`done`,
    /// `exited`, `failed`, `closed`).
    pub sessions: Family<CommandLabels, Counter>,
    /// Sessions open now.
    pub sessions_open: Gauge,
    /// Tunnel clients by state (`up`, `down`).
    pub tunnel_clients: Family<StateLabel, Gauge>,
    /// Tunnel clients started.
    pub tunnel_starts: Counter,
    /// Tunnel client failures (exits, missing URL, failed health checks, failed starts).
    pub tunnel_failures: Counter,
    /// Calls between a project's jobs, by direction (`out`: a local replica called; `in`: a
    /// peer's replica called one here) and outcome (`local`, `remote`, `refused`, `failed`).
    pub service_calls: Family<CommandLabels, Counter>,
    /// Service listeners open in replicas' namespaces.
    pub service_listeners: Gauge,
    registry: Registry,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Arc<Self> {
        Self::with_registry(Self::registry())
    }

    /// The registry the node's metrics go in (prefix `r1_node`), for parts that register their
    /// own (the peer-to-peer layer) before [`Metrics::with_registry`] takes it.
    pub fn registry() -> Registry {
        Registry::with_prefix("r1_node")
    }

    /// Registers the node's metrics beside what `registry` already holds.
    pub fn with_registry(mut registry: Registry) -> Arc<Self> {
        let workloads = Family::<StateLabel, Gauge>::default();
        let heartbeats_sent = Counter::default();
        let commands = Family::<CommandLabels, Counter>::default();
        let start_buckets = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];
        let container_start_seconds = Histogram::new(start_buckets);
        let reconcile_seconds = Histogram::new([0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]);
        let reconcile_errors = Counter::default();
        let broker_connected = Gauge::default();
        let sessions = Family::<CommandLabels, Counter>::default();
        let sessions_open = Gauge::default();
        registry.register(
            "sessions",
            "Logs and exec sessions ended, by kind and outcome",
            sessions.clone(),
        );
        registry.register("sessions_open", "Sessions open now", sessions_open.clone());
        let tunnel_clients = Family::<StateLabel, Gauge>::default();
        let tunnel_starts = Counter::default();
        let tunnel_failures = Counter::default();
        registry.register(
            "tunnel_clients",
            "Tunnel clients by state",
            tunnel_clients.clone(),
        );
        registry.register(
            "tunnel_starts",
            "Tunnel clients started",
            tunnel_starts.clone(),
        );
        registry.register(
            "tunnel_failures",
            "Tunnel client failures (exit, no URL, failed health check, failed start)",
            tunnel_failures.clone(),
        );
        let service_calls = Family::<CommandLabels, Counter>::default();
        let service_listeners = Gauge::default();
        registry.register(
            "service_calls",
            "Calls between a project's jobs, by direction (kind) and outcome",
            service_calls.clone(),
        );
        registry.register(
            "service_listeners",
            "Service listeners open in replicas' network namespaces",
            service_listeners.clone(),
        );
        registry.register("workloads", "Workloads by state", workloads.clone());
        registry.register(
            "heartbeats_sent",
            "Heartbeats published",
            heartbeats_sent.clone(),
        );
        registry.register(
            "commands",
            "Oracle commands by kind and outcome",
            commands.clone(),
        );
        registry.register(
            "container_start_seconds",
            "Seconds from container create to task running",
            container_start_seconds.clone(),
        );
        registry.register(
            "reconcile_seconds",
            "Seconds per reconcile pass",
            reconcile_seconds.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile passes that failed",
            reconcile_errors.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while connected to the MQTT broker",
            broker_connected.clone(),
        );
        Arc::new(Self {
            workloads,
            heartbeats_sent,
            commands,
            container_start_seconds,
            reconcile_seconds,
            reconcile_errors,
            broker_connected,
            sessions,
            sessions_open,
            tunnel_clients,
            tunnel_starts,
            tunnel_failures,
            service_calls,
            service_listeners,
            registry,
        })
    }

    /// Counts one command.
    pub fn command(&self, kind: &str, outcome: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` and `GET /healthz` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let metrics = Metrics::new();
        metrics.heartbeats_sent.inc();
        metrics.command("deploy", "bad_signature");
        metrics
            .workloads
            .get_or_create(&StateLabel {
                state: "running".into(),
            })
            .set(2);
        metrics.container_start_seconds.observe(0.3);
        let text = metrics.render();
        for needle in [
            "r1_node_heartbeats_sent_total 1",
            "r1_node_commands_total{kind=\"deploy\",outcome=\"bad_signature\"} 1",
            "r1_node_workloads{state=\"running\"} 2",
            "r1_node_container_start_seconds_count 1",
            "r1_node_broker_connected 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
