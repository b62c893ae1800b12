//! The launcher's command line. Hand-parsed: six flags do not justify a
//! parser dependency in a crate every newcomer compiles first.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: cargo stack [FLAGS]   (or: galaxy-dev [FLAGS])

  --http-port PORT      backend HTTP (operators' URL, admin routes)   default 8080
  --grpc-port PORT      backend gRPC push listener (the gateway's)     default 9090
  --gateway-port PORT   gateway HTTP (players' URL)                    default 8000
  --data DIR            keep the world in DIR between runs (database, admin
                        password, engine volumes, Docker network); Ctrl-C then
                        stops the engines and removes nothing
  --verbose             also stream every process log to this terminal
  --no-build            do not run `cargo build` first (tests, or binaries you built)
  -h, --help            this text

Enter (or SIGUSR1) prints the banner again; Ctrl-C or SIGTERM stops the stack.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub http_port: u16,
    pub grpc_port: u16,
    pub gateway_port: u16,
    pub data: Option<PathBuf>,
    pub verbose: bool,
    pub build: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            http_port: 8080,
            grpc_port: 9090,
            gateway_port: 8000,
            data: None,
            verbose: false,
            build: true,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Args),
    Help,
}

/// Parses the arguments after the program name; `Err` is a one-line reason.
pub fn parse(raw: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut args = Args::default();
    let mut raw = raw.into_iter();
    while let Some(arg) = raw.next() {
        // `--flag=value` and `--flag value` both work.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| raw.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--http-port" => args.http_port = port(&flag, &value(&flag)?)?,
            "--grpc-port" => args.grpc_port = port(&flag, &value(&flag)?)?,
            "--gateway-port" => args.gateway_port = port(&flag, &value(&flag)?)?,
            "--data" => {
                let dir = value(&flag)?;
                if dir.is_empty() {
                    return Err("--data needs a directory".to_owned());
                }
                args.data = Some(PathBuf::from(dir));
            }
            "--verbose" | "-v" => args.verbose = true,
            "--no-build" => args.build = false,
            "-h" | "--help" => return Ok(Parsed::Help),
            // `cargo stack -- FLAGS` (the alias already ends in `--`).
            "--" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let ports = [
        ("--http-port", args.http_port),
        ("--grpc-port", args.grpc_port),
        ("--gateway-port", args.gateway_port),
    ];
    for (i, (a, pa)) in ports.iter().enumerate() {
        for (b, pb) in &ports[i + 1..] {
            if pa == pb {
                return Err(format!(
                    "{a} and {b} are both {pa}; each needs its own port"
                ));
            }
        }
    }
    Ok(Parsed::Run(args))
}

fn port(flag: &str, value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{flag}: {value:?} is not a port (1-65535)")),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_without_flags() {
        assert_eq!(run(&[]), Ok(Parsed::Run(Args::default())));
    }

    #[test]
    fn every_flag_in_both_spellings() {
        let Ok(Parsed::Run(a)) = run(&[
            "--http-port",
            "18080",
            "--grpc-port=19090",
            "--gateway-port",
            "18000",
            "--",
            "--data=/tmp/world",
            "--verbose",
            "--no-build",
        ]) else {
            panic!("parses");
        };
        assert_eq!(
            a,
            Args {
                http_port: 18080,
                grpc_port: 19090,
                gateway_port: 18000,
                data: Some(PathBuf::from("/tmp/world")),
                verbose: true,
                build: false,
            }
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert!(run(&["--http-port"]).unwrap_err().contains("needs a value"));
        assert!(
            run(&["--http-port", "x"])
                .unwrap_err()
                .contains("--http-port")
        );
        assert!(
            run(&["--grpc-port", "0"])
                .unwrap_err()
                .contains("not a port")
        );
        assert!(run(&["--bogus"]).unwrap_err().contains("--bogus"));
        assert!(
            run(&["--http-port", "9090"])
                .unwrap_err()
                .contains("--http-port and --grpc-port")
        );
        assert_eq!(run(&["--help"]), Ok(Parsed::Help));
    }
}
