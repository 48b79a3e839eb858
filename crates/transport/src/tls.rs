//! TLS on rustls, configured the way `tls_mgm` is: named server and client domains, each matched
//! by `ip:port` (`match_ip_address`) and by SNI / destination name (`match_sip_domain`), with
//! `certificate`, `private_key`, `ca_list`, `verify_cert`, `require_cert` and `tls_method`.
//!
//! Certificates are read from files and can be re-read at run time (`reload`): the new set is
//! built completely and swapped in only if every domain loads, so a bad file never leaves the
//! server without TLS. OpenSIPS can only reload certificates kept in a database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};

/// One `tls_mgm` domain as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDomain {
    pub name: String,
    /// A server domain (accepts) or a client domain (connects).
    pub server: bool,
    /// `match_ip_address`: `ip:port`, `ip` or `*`.
    pub match_addresses: Vec<String>,
    /// `match_sip_domain`: SNI (server) or destination host (client) names, or `*`.
    pub match_domains: Vec<String>,
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub ca_list: Option<PathBuf>,
    /// `verify_cert` (default on): check the peer's certificate against `ca_list`.
    pub verify_cert: bool,
    /// `require_cert` (default on for servers): a client must present a certificate.
    pub require_cert: bool,
    /// `tls_method`: `SSLv23`, `TLSv1`, `TLSv1_2`, `TLSv1_3` or a range `A-B` / `A-`.
    pub method: String,
}

impl TlsDomain {
    /// A domain with the `tls_mgm` defaults.
    pub fn new(name: &str, server: bool) -> TlsDomain {
        TlsDomain {
            name: name.to_owned(),
            server,
            match_addresses: Vec::new(),
            match_domains: Vec::new(),
            certificate: None,
            private_key: None,
            ca_list: None,
            verify_cert: true,
            require_cert: true,
            method: "SSLv23".to_owned(),
        }
    }

    fn matches_address(&self, addr: SocketAddr) -> bool {
        self.match_addresses.iter().any(|m| {
            let m = m.trim();
            m == "*"
                || m.parse::<SocketAddr>() == Ok(addr)
                || m.trim_start_matches('[').trim_end_matches(']').parse() == Ok(addr.ip())
        })
    }

    fn matches_domain(&self, name: Option<&str>) -> bool {
        self.match_domains.is_empty()
            || self
                .match_domains
                .iter()
                .any(|m| m == "*" || name.is_some_and(|n| n.eq_ignore_ascii_case(m.trim())))
    }
}

struct Built {
    servers: Vec<(TlsDomain, Arc<ServerConfig>)>,
    clients: Vec<(TlsDomain, Arc<ClientConfig>)>,
}

/// Every TLS domain, ready to accept and connect.
pub struct TlsContext {
    domains: Vec<TlsDomain>,
    built: RwLock<Arc<Built>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Loads every domain's files; any error names the domain and the file.
    pub fn new(domains: Vec<TlsDomain>) -> Result<TlsContext, String> {
        let built = build(&domains)?;
        Ok(TlsContext {
            domains,
            built: RwLock::new(Arc::new(built)),
        })
    }

    /// The domains as configured (MI `tls_mgm:list`).
    pub fn domains(&self) -> &[TlsDomain] {
        &self.domains
    }

    /// Re-reads every certificate, key and CA list; keeps the current set on any error.
    pub fn reload(&self) -> Result<(), String> {
        let built = build(&self.domains)?;
        let mut slot = self
            .built
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Arc::new(built);
        Ok(())
    }

    fn current(&self) -> Arc<Built> {
        Arc::clone(
            &self
                .built
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Whether some server domain serves the listener `local`.
    pub fn serves(&self, local: SocketAddr) -> bool {
        self.current()
            .servers
            .iter()
            .any(|(d, _)| d.matches_address(local))
    }

    /// Accepts a TLS connection on `local`: the server domain is chosen by the listener
    /// address, then by the SNI the client sent.
    pub async fn accept<IO>(
        &self,
        local: SocketAddr,
        io: IO,
    ) -> Result<tokio_rustls::server::TlsStream<IO>, String>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
            .await
            .map_err(|e| e.to_string())?;
        let sni = start.client_hello().server_name().map(str::to_owned);
        let built = self.current();
        let candidates: Vec<&(TlsDomain, Arc<ServerConfig>)> = built
            .servers
            .iter()
            .filter(|(d, _)| d.matches_address(local))
            .collect();
        let chosen = candidates
            .iter()
            .find(|(d, _)| !d.match_domains.is_empty() && d.matches_domain(sni.as_deref()))
            .or_else(|| candidates.iter().find(|(d, _)| d.match_domains.is_empty()))
            .or_else(|| candidates.first())
            .ok_or_else(|| format!("no TLS server domain for {local}"))?;
        start
            .into_stream(Arc::clone(&chosen.1))
            .await
            .map_err(|e| e.to_string())
    }

    /// The client side for a connection to `dest` (named `host` when known, for SNI and
    /// `match_sip_domain`).
    pub fn connector(
        &self,
        dest: SocketAddr,
        host: Option<&str>,
    ) -> (TlsConnector, ServerName<'static>) {
        let built = self.current();
        let chosen = built
            .clients
            .iter()
            .find(|(d, _)| {
                d.matches_address(dest) && !d.match_domains.is_empty() && d.matches_domain(host)
            })
            .or_else(|| built.clients.iter().find(|(d, _)| d.matches_address(dest)))
            .or_else(|| built.clients.iter().find(|(d, _)| d.matches_domain(host)))
            .map(|(_, c)| Arc::clone(c))
            .unwrap_or_else(default_client);
        let name = host
            .and_then(|h| ServerName::try_from(h.to_owned()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(dest.ip().into()));
        (TlsConnector::from(chosen), name)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS versions a `tls_method` allows. rustls speaks TLS 1.2 and 1.3 only, so methods that
/// name older versions keep their upper bound and get 1.2 as the floor.
fn versions(method: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |m: &str| -> Result<u8, String> {
        match m.trim().to_ascii_uppercase().as_str() {
            "" | "SSLV23" => Ok(0),
            "TLSV1" | "TLSV1_0" | "TLSV1_1" | "TLSV1_2" => Ok(2),
            "TLSV1_3" => Ok(3),
            other => Err(format!("unknown tls_method `{other}`")),
        }
    };
    let (lo, hi) = match method.split_once('-') {
        Some((a, b)) => (rank(a)?, if b.trim().is_empty() { 3 } else { rank(b)? }),
        None if method.trim().eq_ignore_ascii_case("SSLv23") || method.trim().is_empty() => (0, 3),
        None => {
            let r = rank(method)?;
            (r, r)
        }
    };
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 || hi == 0 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 3 || hi == 0 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(format!(
            "tls_method `{method}` allows no version rustls speaks"
        ));
    }
    Ok(out)
}

fn read_certs(path: &PathBuf, domain: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            format!(
                "tls domain `{domain}`: cannot read `{}`: {e}",
                path.display()
            )
        })?
        .collect();
    let certs = certs.map_err(|e| {
        format!(
            "tls domain `{domain}`: bad PEM in `{}`: {e}",
            path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "tls domain `{domain}`: no certificate in `{}`",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &PathBuf, domain: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "tls domain `{domain}`: cannot read a private key from `{}`: {e}",
            path.display()
        )
    })
}

fn roots(domain: &TlsDomain) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &domain.ca_list {
        for cert in read_certs(path, &domain.name)? {
            store.add(cert).map_err(|e| {
                format!(
                    "tls domain `{}`: CA in `{}`: {e}",
                    domain.name,
                    path.display()
                )
            })?;
        }
    }
    Ok(store)
}

fn build(domains: &[TlsDomain]) -> Result<Built, String> {
    let mut built = Built {
        servers: Vec::new(),
        clients: Vec::new(),
    };
    for d in domains {
        if d.server {
            built.servers.push((d.clone(), Arc::new(server_config(d)?)));
        } else {
            built.clients.push((d.clone(), Arc::new(client_config(d)?)));
        }
    }
    Ok(built)
}

fn server_config(d: &TlsDomain) -> Result<ServerConfig, String> {
    let (Some(cert), Some(key)) = (&d.certificate, &d.private_key) else {
        return Err(format!(
            "tls server domain `{}` needs `certificate` and `private_key`",
            d.name
        ));
    };
    let certs = read_certs(cert, &d.name)?;
    let key = read_key(key, &d.name)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(&d.method)?)
        .map_err(|e| format!("tls domain `{}`: {e}", d.name))?;
    let builder = if d.verify_cert || d.require_cert {
        let store = roots(d)?;
        if store.is_empty() {
            if d.require_cert {
                return Err(format!(
                    "tls server domain `{}`: require_cert needs a `ca_list`",
                    d.name
                ));
            }
            builder.with_no_client_auth()
        } else {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider());
            let verifier = if d.require_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("tls domain `{}`: {e}", d.name))?,
            )
        }
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls domain `{}`: certificate and key: {e}", d.name))
}

fn client_config(d: &TlsDomain) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(&d.method)?)
        .map_err(|e| format!("tls domain `{}`: {e}", d.name))?;
    let builder = if d.verify_cert {
        let store = roots(d)?;
        if store.is_empty() {
            return Err(format!(
                "tls client domain `{}`: verify_cert needs a `ca_list`",
                d.name
            ));
        }
        builder.with_root_certificates(store)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
    };
    match (&d.certificate, &d.private_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert, &d.name)?, read_key(key, &d.name)?)
            .map_err(|e| format!("tls domain `{}`: certificate and key: {e}", d.name)),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The client side with no domain configured: OpenSIPS' default client domain does not verify
/// the server (`verify_cert` 0).
fn default_client() -> Arc<ClientConfig> {
    let mut d = TlsDomain::new("default", false);
    d.verify_cert = false;
    match client_config(&d) {
        Ok(c) => Arc::new(c),
        Err(_) => Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
                        .with_no_client_auth()
                })
                .unwrap_or_else(|_| unreachable_config()),
        ),
    }
}

fn unreachable_config() -> ClientConfig {
    // ring's default provider supports the safe default versions; this path is not taken.
    ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// `verify_cert` 0 on a client domain: the server's certificate chain is not checked, but the
/// handshake signatures still are.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_methods_map_to_the_versions_rustls_speaks() {
        let v = |m: &str| versions(m).map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>());
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(v("SSLv23"), Ok(vec![TLSv1_2, TLSv1_3]));
        assert_eq!(v("TLSv1_2"), Ok(vec![TLSv1_2]));
        assert_eq!(v("TLSv1_3"), Ok(vec![TLSv1_3]));
        assert_eq!(v("TLSv1"), Ok(vec![TLSv1_2]), "older floors become 1.2");
        assert_eq!(v("TLSv1_2-"), Ok(vec![TLSv1_2, TLSv1_3]));
        assert_eq!(v("TLSv1-TLSv1_2"), Ok(vec![TLSv1_2]));
        assert!(v("SSLv3x").is_err());
    }

    #[test]
    fn a_server_domain_without_files_is_refused_with_its_name() {
        let d = TlsDomain::new("edge", true);
        let e = TlsContext::new(vec![d]).err().unwrap_or_default();
        assert!(e.contains("`edge`") && e.contains("certificate"), "{e}");
        let mut d = TlsDomain::new("edge", true);
        d.certificate = Some("/nonexistent/cert.pem".into());
        d.private_key = Some("/nonexistent/key.pem".into());
        let e = TlsContext::new(vec![d]).err().unwrap_or_default();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn domains_match_by_address_and_name() {
        let mut d = TlsDomain::new("a", true);
        d.match_addresses = vec!["127.0.0.1:5061".into()];
        d.match_domains = vec!["sip.example.com".into()];
        let addr: SocketAddr = "127.0.0.1:5061".parse().unwrap_or_else(|_| unreachable!());
        assert!(d.matches_address(addr));
        assert!(!d.matches_address(SocketAddr::new(addr.ip(), 5062)));
        assert!(d.matches_domain(Some("SIP.example.com")));
        assert!(!d.matches_domain(Some("other.example.com")));
        d.match_addresses = vec!["*".into()];
        assert!(d.matches_address(SocketAddr::new(addr.ip(), 5062)));
    }
}
