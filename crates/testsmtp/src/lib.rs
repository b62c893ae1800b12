//! A real SMTP server on loopback for tests, benchmarks and the local stack.
//!
//! It is mailin-embedded (an SMTP server library speaking the protocol over a
//! real TCP socket), not a mock of any client: what a client sends is parsed
//! by a real server and answered with real reply codes. Each test starts its
//! own server on a port-0 listener and picks how it answers (accept, a 4xx or
//! 5xx at `RCPT TO`), whether it speaks STARTTLS or implicit TLS with a
//! self-signed certificate (feature `tls`) and whether it requires AUTH.
//!
//! mailin's `serve()` blocks forever, so the server runs on its own threads;
//! they end with the test process.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support")]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mailin_embedded::response::{self, OK};
use mailin_embedded::{AuthMechanism, Handler, Response, Server};

#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub use tls::install_crypto_provider;

/// How the server answers `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Accept,
    /// Answer with this code and text (e.g. `451`, `550`).
    Reject(u16, String),
}

impl Reply {
    pub fn reject(code: u16) -> Self {
        Self::Reject(code, format!("test server answers {code}"))
    }
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The raw message (headers and body, CRLF line ends).
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = found.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_owned());
            }
        }
        found
    }

    /// The body after the header block (transfer encoding left as sent).
    pub fn body(&self) -> String {
        let text = self.text();
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// The `Message-ID` without angle brackets.
    pub fn message_id(&self) -> Option<String> {
        self.header("Message-ID")
            .map(|v| v.trim_matches(['<', '>']).to_owned())
    }
}

type Callback = Box<dyn Fn(&Received) + Send + Sync>;

struct State {
    reply: Mutex<Reply>,
    messages: Mutex<Vec<Received>>,
    credentials: Option<(String, String)>,
    on_message: Option<Callback>,
    greetings: AtomicUsize,
    rejected: AtomicUsize,
    /// Pause before answering the end of DATA (a slow relay).
    delay: std::time::Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Clone)]
struct SessionHandler {
    state: Arc<State>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for SessionHandler {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        self.state.greetings.fetch_add(1, Ordering::SeqCst);
        OK
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        from.clone_into(&mut self.from);
        self.to.clear();
        self.data.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        match &*lock(&self.state.reply) {
            Reply::Accept => {
                self.to.push(to.to_owned());
                OK
            }
            Reply::Reject(code, text) => {
                self.state.rejected.fetch_add(1, Ordering::SeqCst);
                Response::custom(*code, text.clone())
            }
        }
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let msg = Received {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
        };
        if !self.state.delay.is_zero() {
            std::thread::sleep(self.state.delay);
        }
        if let Some(cb) = &self.state.on_message {
            cb(&msg);
        }
        lock(&self.state.messages).push(msg);
        OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check(user, password)
    }
}

impl SessionHandler {
    fn check(&self, user: &str, password: &str) -> Response {
        match &self.state.credentials {
            Some((u, p)) if u == user && p == password => response::AUTH_OK,
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

/// Configures a server; [`SmtpServer::builder`].
pub struct Builder {
    reply: Reply,
    starttls: bool,
    implicit_tls: bool,
    credentials: Option<(String, String)>,
    on_message: Option<Callback>,
    threads: u32,
    delay: std::time::Duration,
}

impl Builder {
    /// Wait this long before accepting each message (a slow relay).
    pub fn delay_per_message(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    /// How `RCPT TO` is answered at start (changeable with [`SmtpServer::set_reply`]).
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Offer STARTTLS with a fresh self-signed certificate for `localhost`.
    #[cfg(feature = "tls")]
    pub fn starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// Speak TLS from the first byte (SMTPS) on [`SmtpServer::addr`], with a
    /// fresh self-signed certificate for `localhost`.
    #[cfg(feature = "tls")]
    pub fn implicit_tls(mut self) -> Self {
        self.implicit_tls = true;
        self
    }

    /// Require `AUTH PLAIN`/`LOGIN` with these credentials before mail is
    /// accepted (mailin offers AUTH only over TLS, so this implies STARTTLS).
    #[cfg(feature = "tls")]
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self.starttls = true;
        self
    }

    /// Called for every accepted message (the local stack prints it).
    pub fn on_message(mut self, f: impl Fn(&Received) + Send + Sync + 'static) -> Self {
        self.on_message = Some(Box::new(f));
        self
    }

    /// Maximum concurrent SMTP sessions (default 16).
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }

    /// Binds `127.0.0.1:0` (or `addr`) and starts serving on background threads.
    pub fn start(self) -> io::Result<SmtpServer> {
        self.start_on("127.0.0.1:0")
    }

    pub fn start_on(self, addr: &str) -> io::Result<SmtpServer> {
        let state = Arc::new(State {
            reply: Mutex::new(self.reply),
            messages: Mutex::new(Vec::new()),
            credentials: self.credentials.clone(),
            on_message: self.on_message,
            greetings: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            delay: self.delay,
        });
        let handler = SessionHandler {
            state: Arc::clone(&state),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        // With implicit TLS the SMTP server itself listens on a private
        // loopback port behind the TLS front.
        let listener = TcpListener::bind(if self.implicit_tls {
            "127.0.0.1:0"
        } else {
            addr
        })?;
        let inner_addr = listener.local_addr()?;
        let mut server = Server::new(handler);
        server
            .with_name("galaxy-testsmtp")
            .with_num_threads(self.threads)
            .with_tcp_listener(listener);
        if self.credentials.is_some() {
            server
                .with_auth(AuthMechanism::Plain)
                .with_auth(AuthMechanism::Login);
        }
        #[allow(unused_mut)]
        let mut cert_der: Option<Vec<u8>> = None;
        #[allow(unused_mut)]
        let mut public_addr = inner_addr;
        #[cfg(feature = "tls")]
        {
            if self.starttls || self.implicit_tls {
                let cert = tls::SelfSigned::generate()?;
                if self.starttls {
                    cert.configure_starttls(&mut server)?;
                }
                if self.implicit_tls {
                    public_addr = tls::spawn_front(addr, inner_addr, &cert)?;
                }
                cert_der = Some(cert.cert_der.clone());
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = (self.starttls, self.implicit_tls);
        std::thread::Builder::new()
            .name("testsmtp".into())
            .spawn(move || {
                // serve() only returns on a listener error; nothing to do then.
                let _ = server.serve();
            })?;
        Ok(SmtpServer {
            addr: public_addr,
            state,
            cert_der,
        })
    }
}

/// A running server. Dropping it leaves the threads running until the
/// process exits (mailin has no shutdown); the port stays private to the test.
pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<State>,
    cert_der: Option<Vec<u8>>,
}

impl SmtpServer {
    pub fn builder() -> Builder {
        Builder {
            reply: Reply::Accept,
            starttls: false,
            implicit_tls: false,
            credentials: None,
            on_message: None,
            threads: 16,
            delay: std::time::Duration::ZERO,
        }
    }

    /// A plaintext server that accepts everything.
    pub fn accepting() -> io::Result<Self> {
        Self::builder().start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The DER of the self-signed certificate the client must trust.
    pub fn cert_der(&self) -> Option<&[u8]> {
        self.cert_der.as_deref()
    }

    pub fn set_reply(&self, reply: Reply) {
        *lock(&self.state.reply) = reply;
    }

    /// Every accepted message so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        lock(&self.state.messages).clone()
    }

    pub fn message_count(&self) -> usize {
        lock(&self.state.messages).len()
    }

    /// `EHLO`/`HELO` commands seen (one per plaintext connection; STARTTLS
    /// sessions greet twice).
    pub fn greetings(&self) -> usize {
        self.state.greetings.load(Ordering::SeqCst)
    }

    /// `RCPT TO` commands answered with a rejection.
    pub fn rejections(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }
}

/// A loopback port with nothing listening on it (connections are refused).
pub fn closed_port() -> io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    drop(l);
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing_unfolds_and_stops_at_body() {
        let r = Received {
            from: "a@x".into(),
            to: vec!["b@y".into()],
            data: b"Subject: hello\r\n  world\r\nMessage-ID: <abc@x>\r\n\r\nSubject: no\r\n"
                .to_vec(),
        };
        assert_eq!(r.header("subject").as_deref(), Some("hello world"));
        assert_eq!(r.message_id().as_deref(), Some("abc@x"));
        assert_eq!(r.body(), "Subject: no\r\n");
        assert_eq!(r.header("To"), None);
    }

    #[test]
    fn closed_port_refuses() {
        let port = closed_port().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
