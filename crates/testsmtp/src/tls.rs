//! STARTTLS (mailin's own) and implicit TLS (a TLS front that terminates
//! TLS and hands the plaintext SMTP session to the mailin server behind it,
//! the way an SMTPS port is often served by a TLS terminator).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mailin_embedded::{Handler, Server, SslConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// mailin builds its rustls config with the process-level provider; with
/// both ring and aws-lc-rs compiled into a test binary rustls cannot pick
/// one, so install ring (what mail-send uses) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub struct SelfSigned {
    pub cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

impl SelfSigned {
    pub fn generate() -> io::Result<Self> {
        install_crypto_provider();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).map_err(other)?;
        Ok(Self {
            cert_der: ck.cert.der().to_vec(),
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            key_der: ck.signing_key.serialize_der(),
        })
    }

    /// mailin reads the certificate from files: write them to a private
    /// temporary directory, load, and remove them at once.
    pub fn configure_starttls<H: Handler + Clone + Send>(
        &self,
        server: &mut Server<H>,
    ) -> io::Result<()> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "galaxy-testsmtp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, &self.cert_pem)?;
        std::fs::write(&key_path, &self.key_pem)?;
        let res = server.with_ssl(SslConfig::SelfSigned {
            cert_path: cert_path.to_string_lossy().into_owned(),
            key_path: key_path.to_string_lossy().into_owned(),
        });
        let _ = std::fs::remove_dir_all(&dir);
        res.map(|_| ()).map_err(other)
    }

    fn server_config(&self) -> io::Result<rustls::ServerConfig> {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(self.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
        )
        .map_err(other)
    }
}

/// Listens on `addr` for TLS and pipes each session to `inner` in plaintext.
pub fn spawn_front(addr: &str, inner: SocketAddr, cert: &SelfSigned) -> io::Result<SocketAddr> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config()?));
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    std::thread::Builder::new()
        .name("testsmtp-tls".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                    return;
                };
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(inner).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        })?;
    Ok(local)
}
