//! The backend's telemetry variables (`BACKEND_OTEL_*`, `RUST_LOG`). The
//! gateway reads its own `GATEWAY_OTEL_*` in its settings and builds a
//! [`TelemetrySettings`] from them.

use galaxy_core::env::{ConfigError, Env, Reader, Variable};

use crate::pipeline::{MetricsExporter, TelemetrySettings, TracesExporter, service_name_from_env};

/// The variables this crate reads for the backend (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::new(
        "BACKEND_OTEL_TRACES_EXPORTER",
        "otlp",
        "`otlp`, `none`, `stdout`",
    ),
    Variable::new(
        "BACKEND_OTEL_METRICS_EXPORTER",
        "otlp",
        "`otlp`, `none`, `stdout`, `prometheus`",
    ),
    Variable::new(
        "BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR",
        "127.0.0.1:9464",
        "separate scrape listener (only with `prometheus`)",
    ),
    Variable::new("RUST_LOG", "info", "log filter"),
];

impl TracesExporter {
    /// The names an `*_OTEL_TRACES_EXPORTER` variable takes (spans have no
    /// pull exporter).
    pub const OPTIONS: &[(&str, Self)] = &[
        ("otlp", Self::Otlp),
        ("none", Self::None),
        ("stdout", Self::Stdout),
    ];
}

impl MetricsExporter {
    /// The names an `*_OTEL_METRICS_EXPORTER` variable takes.
    pub const OPTIONS: &[(&str, Self)] = &[
        ("otlp", Self::Otlp),
        ("none", Self::None),
        ("stdout", Self::Stdout),
        ("prometheus", Self::Prometheus),
    ];
}

impl TelemetrySettings {
    /// The backend's exporters and log filter; `service.name` from
    /// `OTEL_SERVICE_NAME` as [`service_name_from_env`] reads it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        Ok(Self {
            traces: r.pick("BACKEND_OTEL_TRACES_EXPORTER", TracesExporter::OPTIONS)?,
            metrics: r.pick("BACKEND_OTEL_METRICS_EXPORTER", MetricsExporter::OPTIONS)?,
            prometheus_listen: Some(r.addr("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR")?),
            log_filter: r.string("RUST_LOG"),
            service_name: service_name_from_env(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use galaxy_core::env::assert_each_names_its_variable;

    #[test]
    fn defaults_match_the_contract() {
        let s = TelemetrySettings::from_env(&Env::default()).unwrap();
        assert_eq!(s.traces, TracesExporter::Otlp);
        assert_eq!(s.metrics, MetricsExporter::Otlp);
        assert_eq!(s.prometheus_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(s.log_filter, "info");
    }

    #[test]
    fn exporters_are_chosen_and_checked() {
        let env = Env::from_pairs([
            ("BACKEND_OTEL_TRACES_EXPORTER", "stdout"),
            ("BACKEND_OTEL_METRICS_EXPORTER", "Prometheus"),
            ("RUST_LOG", "debug"),
        ]);
        let s = TelemetrySettings::from_env(&env).unwrap();
        assert_eq!(
            (s.traces, s.metrics, s.log_filter.as_str()),
            (TracesExporter::Stdout, MetricsExporter::Prometheus, "debug")
        );
        assert_each_names_its_variable(
            TelemetrySettings::from_env,
            &[],
            &[
                // spans have no pull exporter
                ("BACKEND_OTEL_TRACES_EXPORTER", "prometheus"),
                ("BACKEND_OTEL_METRICS_EXPORTER", "graphite"),
                ("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR", "nowhere"),
            ],
        );
    }
}
