//! What of a child's log reaches the terminal when it is not `--verbose`:
//! warnings and errors, as one short line each. Every line goes to the log
//! file regardless; this only decides what a person sees while playing.

use serde_json::Value;

/// Warnings the stack causes on purpose; showing them on every start would
/// teach people to ignore warnings.
const EXPECTED: &[&str] = &["BACKEND_SMTP_TLS_MODE=none"];

/// The terminal line for one log line of `name`, if it deserves one.
///
/// JSON log lines (the backend's and gateway's format: flat objects with
/// `level` and `message`) are shown at WARN and ERROR; any other line is
/// something the process wrote outside its logger (a panic, a configuration
/// error before logging started), so it is always shown.
pub fn for_terminal(name: &str, line: &str) -> Option<String> {
    let line = line.trim_end();
    if line.is_empty() {
        return None;
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
        return Some(format!("{name}: {line}"));
    };
    let level = fields.get("level").and_then(Value::as_str).unwrap_or("");
    if !matches!(level, "WARN" | "ERROR") {
        return None;
    }
    let message = fields.get("message").and_then(Value::as_str).unwrap_or("");
    if EXPECTED.iter().any(|e| message.starts_with(e)) {
        return None;
    }
    Some(format!("{name} {level} {}", summary(message, &fields)))
}

/// The message plus the fields that explain it (`error`, `game_id`, …),
/// without the bookkeeping every line carries.
fn summary(message: &str, fields: &serde_json::Map<String, Value>) -> String {
    const BOOKKEEPING: &[&str] = &[
        "timestamp",
        "level",
        "target",
        "message",
        "request_id",
        "otel_trace_id",
        "otel_span_id",
        "span",
        "spans",
        "threadId",
        "threadName",
    ];
    let mut out = message.to_owned();
    for (key, value) in fields {
        if BOOKKEEPING.contains(&key.as_str()) {
            continue;
        }
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!(" {key}={value}"));
    }
    out
}

/// A log line shortened for the "last lines" report of a child that died.
pub fn for_report(line: &str) -> String {
    match serde_json::from_str::<Value>(line.trim_end()) {
        Ok(Value::Object(fields)) => {
            let level = fields.get("level").and_then(Value::as_str).unwrap_or("");
            let message = fields.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{level} {}", summary(message, &fields))
        }
        _ => line.trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_quiet_warnings_and_plain_lines_are_shown() {
        let info = r#"{"timestamp":"t","level":"INFO","target":"x","message":"listening"}"#;
        assert_eq!(for_terminal("backend", info), None);
        let warn = r#"{"timestamp":"t","level":"WARN","target":"x","message":"engine failed","attempt":2,"game_id":"g1"}"#;
        assert_eq!(
            for_terminal("backend", warn).as_deref(),
            Some("backend WARN engine failed attempt=2 game_id=g1")
        );
        assert_eq!(
            for_terminal("backend", "error: cannot bind the HTTP listener").as_deref(),
            Some("backend: error: cannot bind the HTTP listener")
        );
        assert_eq!(for_terminal("backend", "  \n"), None);
    }

    #[test]
    fn the_stacks_own_choices_are_not_warned_about() {
        let smtp =
            r#"{"level":"WARN","message":"BACKEND_SMTP_TLS_MODE=none: mail is sent in plaintext"}"#;
        assert_eq!(for_terminal("backend", smtp), None);
    }

    #[test]
    fn report_lines_are_short() {
        let line = r#"{"timestamp":"t","level":"ERROR","target":"x","message":"backend stopped with an error","error":"boom"}"#;
        assert_eq!(
            for_report(line),
            "ERROR backend stopped with an error error=boom"
        );
        assert_eq!(for_report("plain text\n"), "plain text");
    }
}
