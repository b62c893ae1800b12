//! The listen ports the stack needs, checked by binding them before anything
//! starts: a foreign listener on 8080 would otherwise answer the readiness
//! probe in the backend's place while the backend itself has already died.

use std::net::TcpListener;

/// One port the stack will listen on, and how a person moves it elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct Port {
    pub number: u16,
    pub what: &'static str,
    pub flag: &'static str,
}

/// Binds and releases each port on 127.0.0.1 (where the stack listens);
/// the first one taken is the error, naming the port and the flag.
pub fn check_free(ports: &[Port]) -> anyhow::Result<()> {
    for p in ports {
        if let Err(e) = TcpListener::bind(("127.0.0.1", p.number)) {
            anyhow::bail!(
                "port {} ({}) is not free: {e}; choose another with {} PORT",
                p.number,
                p.what,
                p.flag
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let number = taken.local_addr().unwrap().port();
        let err = check_free(&[Port {
            number,
            what: "backend HTTP",
            flag: "--http-port",
        }])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("port {number} (backend HTTP)")),
            "{err}"
        );
        assert!(err.contains("--http-port"), "{err}");
        drop(taken);
        check_free(&[Port {
            number,
            what: "backend HTTP",
            flag: "--http-port",
        }])
        .unwrap();
    }
}
