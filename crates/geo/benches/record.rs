//! Throughput of `CountryCounters::record` (the per-request cost) and of the
//! bare `GeoIp::country` lookup, single-threaded and from several threads.
//! `cargo bench -p galaxy-geo --bench record`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use galaxy_geo::{CountryCounters, GeoIp, fixture};
use uuid::Uuid;

const OPS: usize = 2_000_000;

fn main() {
    let path = std::env::temp_dir().join(format!("galaxy-geo-bench-{}.mmdb", std::process::id()));
    fixture::write(&path).expect("write the fixture");
    let geo = GeoIp::open(&path).expect("open the fixture");
    let _ = std::fs::remove_file(&path);

    let ips: Vec<IpAddr> = fixture::KNOWN
        .iter()
        .map(|(a, _)| *a)
        .chain(["10.0.0.1"])
        .map(|a| a.parse().unwrap())
        .collect();
    let accounts: Vec<Uuid> = (0..1_000).map(|_| Uuid::now_v7()).collect();

    let start = Instant::now();
    for i in 0..OPS {
        black_box(geo.country(ips[i % ips.len()]).ok());
    }
    report("GeoIp::country", 1, OPS, start);

    let counters = CountryCounters::new(geo.clone());
    let start = Instant::now();
    for i in 0..OPS {
        counters.record(accounts[i % accounts.len()], Some(ips[i % ips.len()]));
    }
    report("CountryCounters::record", 1, OPS, start);

    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .max(2);
    let counters = CountryCounters::new(geo);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (counters, accounts, ips) = (&counters, &accounts, &ips);
            s.spawn(move || {
                for i in 0..OPS / threads {
                    let n = i + t * 7;
                    counters.record(accounts[n % accounts.len()], Some(ips[n % ips.len()]));
                }
            });
        }
    });
    report(
        "CountryCounters::record",
        threads,
        OPS / threads * threads,
        start,
    );
    println!("pending (account, address) entries: {}", counters.pending());
}

fn report(what: &str, threads: usize, ops: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what:<26} threads={threads}  {ops} ops in {secs:.3} s  = {:>12.0} ops/s  ({:.0} ns/op)",
        ops as f64 / secs,
        secs * 1e9 / ops as f64
    );
}
