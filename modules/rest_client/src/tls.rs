//! rest_client's TLS settings, as libcurl's that OpenSIPS passes on: `ssl_verifypeer` (0: any
//! server certificate is taken), `ssl_verifyhost` (0: a certificate that chains to a trusted
//! root is taken whatever name it is for), `ssl_capath` (a directory of PEM CA certificates,
//! or one file, trusted besides the usual public roots).

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The settings a configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub verify_peer: bool,
    pub verify_host: bool,
    pub capath: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trusted roots: the public ones and those of `capath`.
fn roots(capath: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let Some(path) = capath else { return Ok(roots) };
    let meta = std::fs::metadata(path).map_err(|e| format!("ssl_capath {path}: {e}"))?;
    let files: Vec<std::path::PathBuf> = if meta.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| format!("ssl_capath {path}: {e}"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect()
    } else {
        vec![path.into()]
    };
    let mut added = 0;
    for f in files {
        let Ok(certs) = CertificateDer::pem_file_iter(&f) else {
            continue;
        };
        for cert in certs.flatten() {
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
    }
    if added == 0 {
        return Err(format!("ssl_capath {path}: no CA certificate in it"));
    }
    Ok(roots)
}

/// The client configuration for `s`.
pub fn client_config(s: &Settings) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let roots = Arc::new(roots(s.capath.as_deref())?);
    let config = if !s.verify_peer {
        builder
            .dangerous()
            .with_custom_certificate_verifier(transport::tls::nameless_verifier(None))
            .with_no_client_auth()
    } else if !s.verify_host {
        builder
            .dangerous()
            .with_custom_certificate_verifier(transport::tls::nameless_verifier(Some(roots)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates((*roots).clone())
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

static CONFIG: OnceLock<(Settings, Arc<rustls::ClientConfig>)> = OnceLock::new();

/// Reads the settings at start; an unreadable `ssl_capath` stops it.
pub fn start(script: &engine::Script) -> Result<(), String> {
    if !script.loads("rest_client") {
        return Ok(());
    }
    let s = settings(script);
    let config = client_config(&s).map_err(|e| format!("rest_client: {e}"))?;
    let _ = CONFIG.set((s, config));
    Ok(())
}

fn settings(script: &engine::Script) -> Settings {
    let flag = |n: &str| script.modparam_int("rest_client", n).unwrap_or(1) != 0;
    Settings {
        verify_peer: flag("ssl_verifypeer"),
        verify_host: flag("ssl_verifyhost"),
        capath: script
            .modparam_str("rest_client", "ssl_capath")
            .filter(|p| !p.trim().is_empty()),
    }
}

/// The client configuration of the running script (built at start; built now for a
/// script that was not started, such as a reloaded one with other settings).
pub fn config(script: &engine::Script) -> Option<Arc<rustls::ClientConfig>> {
    let s = settings(script);
    match CONFIG.get() {
        Some((started, c)) if *started == s => Some(Arc::clone(c)),
        _ => match client_config(&s) {
            Ok(c) => Some(c),
            Err(e) => {
                log::error!("rest_client: {e}");
                None
            }
        },
    }
}
