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

impl TelemetrySettings {
    /// The backend's exporters and log filter; `service.name` from
    /// `OTEL_SERVICE_NAME` as [`service_name_from_env`] reads it.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        let traces = match r
            .choice("BACKEND_OTEL_TRACES_EXPORTER", &["otlp", "none", "stdout"])?
            .as_str()
        {
            "otlp" => TracesExporter::Otlp,
            "stdout" => TracesExporter::Stdout,
            _ => TracesExporter::None,
        };
        let metrics = match r
            .choice(
                "BACKEND_OTEL_METRICS_EXPORTER",
                &["otlp", "none", "stdout", "prometheus"],
            )?
            .as_str()
        {
            "otlp" => MetricsExporter::Otlp,
            "stdout" => MetricsExporter::Stdout,
            "prometheus" => MetricsExporter::Prometheus,
            _ => MetricsExporter::None,
        };
        Ok(Self {
            traces,
            metrics,
            prometheus_listen: Some(r.addr("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR")?),
            log_filter: r.string("RUST_LOG"),
            service_name: service_name_from_env(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (name, value) in [
            // spans have no pull exporter
            ("BACKEND_OTEL_TRACES_EXPORTER", "prometheus"),
            ("BACKEND_OTEL_METRICS_EXPORTER", "graphite"),
            ("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR", "nowhere"),
        ] {
            let err = TelemetrySettings::from_env(&Env::from_pairs([(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value} gave {err}");
        }
    }
}
