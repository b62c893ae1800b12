//! A TCP forwarder from an address containers reach (the stack network's
//! gateway) to a loopback-only server of the test process (galaxy-testdb's
//! PostgreSQL listens on 127.0.0.1 only). It can also cut the link, to stage
//! a database outage for one stack without touching the shared server.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    stop: AtomicBool,
    cut: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

pub struct Forwarder {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Forwarder {
    /// Listens on `bind_ip`:free port and pipes each connection to `target`.
    pub fn start(bind_ip: &str, target: SocketAddr) -> Self {
        let listener = TcpListener::bind((bind_ip, 0))
            .unwrap_or_else(|e| panic!("forwarder: bind {bind_ip}: {e}"));
        let addr = listener.local_addr().expect("forwarder address");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    // While cut, a connection is closed at once: refused, as
                    // by a server that is down.
                    Ok((inbound, _)) if shared.cut.load(Ordering::Relaxed) => drop(inbound),
                    Ok((inbound, _)) => pipe(inbound, target, &shared),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => eprintln!("forwarder: accept: {e}"),
                }
            }
        });
        Self { addr, state }
    }

    /// Closes every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::Relaxed);
        for conn in self.state.open.lock().unwrap().drain(..) {
            report_unless_closed(conn.shutdown(Shutdown::Both), "cut a connection");
        }
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::Relaxed);
    }
}

/// A socket error other than the peer (or a cut) having closed it already
/// is printed: a forwarder that silently stops forwarding would show up only
/// as a confusing timeout in the scenario.
fn report_unless_closed(result: std::io::Result<()>, what: &str) {
    if let Err(e) = result
        && !matches!(
            e.kind(),
            ErrorKind::NotConnected | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        )
    {
        eprintln!("forwarder: {what}: {e}");
    }
}

fn pipe(inbound: TcpStream, target: SocketAddr, state: &State) {
    let Ok(outbound) = TcpStream::connect(target) else {
        return;
    };
    // Accepted from a non-blocking listener; the copy threads block.
    if let Err(e) = inbound.set_nonblocking(false) {
        eprintln!("forwarder: dropping a connection that cannot block: {e}");
        return;
    }
    let (Ok(a), Ok(b), Ok(c), Ok(d)) = (
        inbound.try_clone(),
        outbound.try_clone(),
        outbound.try_clone(),
        inbound.try_clone(),
    ) else {
        return;
    };
    state.open.lock().unwrap().extend([inbound, outbound]);
    for (mut from, mut to) in [(a, b), (c, d)] {
        std::thread::spawn(move || {
            // Either side closing (or a cut) ends the copy; the other
            // direction then sees its socket shut down.
            report_unless_closed(std::io::copy(&mut from, &mut to).map(drop), "copy");
            report_unless_closed(to.shutdown(Shutdown::Both), "shut down after the copy");
        });
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}
