//! A private Redis server (Debian's `redis-server`) on a free loopback
//! port, for the gateway's shared rate limits; removed on drop.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::free_port;
use crate::process::Process;

pub struct RedisServer {
    process: Option<Process>,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Starts one; panics (the tests need it) when `redis-server` is missing.
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("galaxy-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("Redis work dir");
        let mut server = Self {
            process: None,
            port,
            dir,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &self.dir.display().to_string(),
        ]);
        let mut process = Process::spawn("redis-server", cmd);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = process.exited() {
                panic!(
                    "redis-server exited with {status} (is Debian's redis-server installed?):\n{}",
                    process.dump()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen:\n{}",
                process.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (its data goes with it).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill_hard();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("remove {}: {e}", self.dir.display());
        }
    }
}
