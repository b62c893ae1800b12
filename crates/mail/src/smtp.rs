//! The SMTP side of delivery: one mail-send connection reused across a
//! batch, reconnected when it breaks, and a classification of every failure
//! into transient (retry later) or permanent (dead-letter now).

use std::sync::Arc;

use mail_send::mail_builder::MessageBuilder;
use mail_send::smtp::message::Message;
use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use uuid::Uuid;

use crate::settings::{SmtpSettings, TlsMode};

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Connection, TLS, timeout, AUTH or a 4xx reply: try again later.
    Transient { code: Option<u16>, error: String },
    /// A 5xx reply to the message itself: it will never be accepted.
    Permanent { code: u16, error: String },
}

impl SendFailure {
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Transient { code, .. } => *code,
            Self::Permanent { code, .. } => Some(*code),
        }
    }

    pub fn error(&self) -> &str {
        match self {
            Self::Transient { error, .. } | Self::Permanent { error, .. } => error,
        }
    }
}

/// A mail to send; the `Message-ID` is derived from `id`.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub id: Uuid,
    pub to: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("BACKEND_SMTP_FROM is not an email address")]
    BadFrom,
    #[error("cannot build the TLS client: {0}")]
    Tls(String),
}

enum Conn {
    Plain(SmtpClient<TcpStream>),
    // Boxed: the TLS session state is large and the enum is moved around.
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

impl Conn {
    async fn send(&mut self, msg: Message<'_>) -> mail_send::Result<()> {
        match self {
            Self::Plain(c) => c.send(msg).await.map(|_| ()),
            Self::Tls(c) => c.send(msg).await.map(|_| ()),
        }
    }

    async fn rset(&mut self) -> mail_send::Result<()> {
        match self {
            Self::Plain(c) => c.rset().await,
            Self::Tls(c) => c.rset().await,
        }
    }

    async fn quit(self) {
        let _ = match self {
            Self::Plain(c) => c.quit().await,
            Self::Tls(c) => c.quit().await,
        };
    }
}

/// Builds messages and holds at most one open SMTP session.
pub struct Mailer {
    builder: SmtpClientBuilder<String>,
    tls: TlsMode,
    /// Header From as configured (may carry a display name).
    from_name: Option<String>,
    /// Envelope sender.
    from_addr: String,
    /// Right-hand side of generated Message-IDs.
    id_domain: String,
    conn: Option<Conn>,
}

/// `addr@domain` or `Name <addr@domain>` → (name, addr).
fn parse_from(from: &str) -> Option<(Option<String>, String)> {
    let from = from.trim();
    let (name, addr) = match from.rsplit_once('<') {
        Some((name, rest)) => {
            let addr = rest.strip_suffix('>')?.trim();
            let name = name.trim().trim_matches('"').trim();
            ((!name.is_empty()).then(|| name.to_owned()), addr.to_owned())
        }
        None => (None, from.to_owned()),
    };
    let (local, domain) = addr.split_once('@')?;
    if local.is_empty() || domain.is_empty() || addr.chars().any(char::is_whitespace) {
        return None;
    }
    Some((name, addr))
}

fn tls_connector(extra_roots: &[Vec<u8>]) -> Result<TlsConnector, SmtpSetupError> {
    // The provider is passed explicitly: rustls cannot choose one by itself
    // when a dependency compiles in a second provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = extra_roots
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect::<Vec<_>>();
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, Arc::clone(&provider))
            .map_err(|e| SmtpSetupError::Tls(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SmtpSetupError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn classify(err: mail_send::Error, connecting: bool) -> SendFailure {
    use mail_send::Error as E;
    match err {
        // A 5xx to the message is final; during connect/AUTH it is a relay
        // or credentials problem an operator can fix, so it stays transient
        // rather than dead-lettering every queued mail.
        E::UnexpectedReply(r) if !connecting && (500..600).contains(&r.code) => {
            SendFailure::Permanent {
                code: r.code,
                error: format!("{} {}", r.code, r.message),
            }
        }
        E::UnexpectedReply(r) | E::AuthenticationFailed(r) => SendFailure::Transient {
            code: Some(r.code),
            error: format!("{} {}", r.code, r.message),
        },
        other => SendFailure::Transient {
            code: None,
            error: other.to_string(),
        },
    }
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self, SmtpSetupError> {
        let (from_name, from_addr) = parse_from(&s.from).ok_or(SmtpSetupError::BadFrom)?;
        let id_domain = from_addr
            .split_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default();
        let mut builder = SmtpClientBuilder::new_with_tls_connector(
            s.host.clone(),
            s.port,
            tls_connector(&s.extra_roots)?,
        )
        .implicit_tls(s.tls == TlsMode::Tls)
        .timeout(s.timeout)
        .helo_host(id_domain.clone());
        if let Some(user) = &s.username {
            builder = builder.credentials(Credentials::new(user.clone(), s.password.clone()));
        }
        Ok(Self {
            builder,
            tls: s.tls,
            from_name,
            from_addr,
            id_domain,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Conn, SendFailure> {
        let connect = async {
            match self.tls {
                TlsMode::None => self.builder.connect_plain().await.map(Conn::Plain),
                TlsMode::StartTls | TlsMode::Tls => {
                    self.builder.connect().await.map(|c| Conn::Tls(Box::new(c)))
                }
            }
        };
        // mail-send bounds the TCP connect but not the wait for the greeting
        // on a plaintext session: a relay that accepts and never speaks must
        // not stall the worker.
        let conn = match tokio::time::timeout(self.builder.timeout, connect).await {
            Ok(res) => res.map_err(|e| classify(e, true))?,
            Err(_) => return Err(classify(mail_send::Error::Timeout, true)),
        };
        // mail-send writes a message body and its terminating dot in
        // separate small writes; with Nagle's algorithm the second waits for
        // the relay's delayed ACK (~40 ms per mail). Commands are already
        // one write each, so disabling Nagle costs nothing.
        let _ = match &conn {
            Conn::Plain(c) => c.stream.set_nodelay(true),
            Conn::Tls(c) => c.stream.get_ref().0.set_nodelay(true),
        };
        Ok(conn)
    }

    /// The `Message-ID` of delivery `id`: stable across retries, so a
    /// receiving system can recognise a duplicate after a crash.
    pub fn message_id(&self, id: Uuid) -> String {
        format!("{id}@{}", self.id_domain)
    }

    pub fn render(&self, m: &Outgoing<'_>) -> std::io::Result<Vec<u8>> {
        let from = match &self.from_name {
            Some(name) => mail_send::mail_builder::headers::address::Address::from((
                name.as_str(),
                self.from_addr.as_str(),
            )),
            None => self.from_addr.as_str().into(),
        };
        let mut b = MessageBuilder::new()
            .from(from)
            .to(m.to)
            .subject(m.subject)
            .message_id(self.message_id(m.id))
            .date(chrono::Utc::now().timestamp())
            .text_body(m.body_text);
        if let Some(html) = m.body_html {
            b = b.html_body(html);
        }
        b.write_to_vec()
    }

    /// The same configuration with no session open; the TLS client (root
    /// store included) is shared rather than rebuilt for every batch.
    pub fn fresh(&self) -> Self {
        Self {
            builder: self.builder.clone(),
            tls: self.tls,
            from_name: self.from_name.clone(),
            from_addr: self.from_addr.clone(),
            id_domain: self.id_domain.clone(),
            conn: None,
        }
    }

    /// Opens the session now (so a batch can fail fast on a dead relay).
    pub async fn ensure_connected(&mut self) -> Result<(), SendFailure> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        Ok(())
    }

    /// Sends one message over the open session (opening one if needed).
    pub async fn send(&mut self, m: &Outgoing<'_>) -> Result<(), SendFailure> {
        let body = self.render(m).map_err(|e| SendFailure::Transient {
            code: None,
            error: format!("cannot render the message: {e}"),
        })?;
        self.ensure_connected().await?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendFailure::Transient {
                code: None,
                error: "no SMTP session".to_owned(),
            });
        };
        let msg = Message::new(self.from_addr.as_str(), [m.to], body);
        match conn.send(msg).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let reply = matches!(e, mail_send::Error::UnexpectedReply(_));
                // After a rejected command the session is still usable once
                // reset; after an I/O error or timeout it is not.
                if !(reply && conn.rset().await.is_ok()) {
                    self.conn = None;
                }
                Err(classify(e, false))
            }
        }
    }

    /// A session is open (it may still have been closed by the relay).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Ends the session politely (end of batch).
    pub async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.quit().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_forms() {
        assert_eq!(
            parse_from("galaxy@example.com"),
            Some((None, "galaxy@example.com".into()))
        );
        assert_eq!(
            parse_from("Galaxy <galaxy@example.com>"),
            Some((Some("Galaxy".into()), "galaxy@example.com".into()))
        );
        assert_eq!(
            parse_from("\"Galaxy Game\" <g@x.test>"),
            Some((Some("Galaxy Game".into()), "g@x.test".into()))
        );
        assert_eq!(parse_from("nobody"), None);
        assert_eq!(parse_from("Galaxy <broken"), None);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut s = SmtpSettings::new("h", 25, TlsMode::None, "a@b.c");
        s.password = "hunter2-secret".into();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
