//! The environment of a child: what the stack wires (addresses, secrets —
//! the stack breaks if they change), its development defaults, and the
//! person's own `BACKEND_*`/`GATEWAY_*` variables, which pass through and win
//! over the defaults (e.g. `BACKEND_RUNTIME_TURN_TICK_INTERVAL=5s cargo
//! stack`). Every variable taken from the environment is named on the
//! terminal, so a leftover export never changes the stack silently.

use std::process::Command;

pub struct Plan {
    /// Set on the child.
    pub set: Vec<(String, String)>,
    /// Removed from the child (the other process's prefix).
    pub remove: Vec<String>,
    /// One line each for the terminal.
    pub notes: Vec<String>,
}

/// What `process`'s environment becomes, given the launcher's `env`.
pub fn plan(
    process: &str,
    prefix: &str,
    other_prefix: &str,
    env: &[(String, String)],
    wired: &[(&str, String)],
    defaults: &[(&str, String)],
) -> Plan {
    let from_env = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let mut set: Vec<(String, String)> = wired
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut notes = Vec::new();
    for (key, _) in wired {
        if from_env(key).is_some() {
            notes.push(format!(
                "ignoring {key} from your environment: the stack sets it for {process}"
            ));
        }
    }
    for (key, value) in defaults {
        if from_env(key).is_none() {
            set.push(((*key).to_owned(), value.clone()));
        }
    }
    for (key, value) in env {
        let ours = wired.iter().any(|(k, _)| k == key);
        if key.starts_with(prefix) && !ours {
            notes.push(format!(
                "passing {key}={value} from your environment to {process}"
            ));
        }
    }
    let remove = env
        .iter()
        .filter(|(k, _)| k.starts_with(other_prefix))
        .map(|(k, _)| k.clone())
        .collect();
    Plan { set, remove, notes }
}

impl Plan {
    pub fn apply(&self, command: &mut Command) {
        for key in &self.remove {
            command.env_remove(key);
        }
        command.envs(self.set.iter().map(|(k, v)| (k, v)));
    }
}

/// The launcher's environment, for [`plan`].
pub fn current() -> Vec<(String, String)> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wired_wins_defaults_yield_and_every_import_is_named() {
        let env = vec![
            (
                "BACKEND_HTTP_LISTEN_ADDR".to_owned(),
                "0.0.0.0:1".to_owned(),
            ),
            (
                "BACKEND_RUNTIME_RECONCILE_INTERVAL".to_owned(),
                "2s".to_owned(),
            ),
            (
                "BACKEND_RUNTIME_TURN_TICK_INTERVAL".to_owned(),
                "5s".to_owned(),
            ),
            ("GATEWAY_ID".to_owned(), "g".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        let p = plan(
            "galaxy-backend",
            "BACKEND_",
            "GATEWAY_",
            &env,
            &[("BACKEND_HTTP_LISTEN_ADDR", "127.0.0.1:8080".to_owned())],
            &[
                ("BACKEND_RUNTIME_RECONCILE_INTERVAL", "10s".to_owned()),
                ("BACKEND_OTEL_TRACES_EXPORTER", "none".to_owned()),
            ],
        );
        assert_eq!(
            p.set,
            vec![
                (
                    "BACKEND_HTTP_LISTEN_ADDR".to_owned(),
                    "127.0.0.1:8080".to_owned()
                ),
                ("BACKEND_OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned()),
            ]
        );
        assert_eq!(p.remove, vec!["GATEWAY_ID".to_owned()]);
        assert_eq!(p.notes.len(), 3, "{:?}", p.notes);
        assert!(p.notes[0].starts_with("ignoring BACKEND_HTTP_LISTEN_ADDR"));
        assert!(p.notes[1].contains("BACKEND_RUNTIME_RECONCILE_INTERVAL=2s"));
        assert!(p.notes[2].contains("BACKEND_RUNTIME_TURN_TICK_INTERVAL=5s"));
    }
}
