//! TLS for the webhook: rustls with the ring provider, and a certificate that follows its
//! files. A background task re-reads the certificate and key files every few seconds;
//! when their bytes change and the new pair loads, new connections get it (connections
//! already open keep theirs). A pair that does not load (e.g. caught between two writes)
//! is logged and the previous one stays in use. Kubernetes updates Secret volumes with an
//! atomic symlink swap, and cert-manager rotates certificates before they expire, so
//! both are picked up without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;

use crate::log;

/// The current certificate, swapped in place when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents `current` was loaded from.
    loaded: RwLock<(Vec<u8>, Vec<u8>)>,
}

impl ReloadingCert {
    /// Load the pair once; an error here stops the server from starting.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, String> {
        let (cert_pem, key_pem) = read_pair(cert_path, key_path)?;
        let key = certified_key(&cert_pem, &key_pem)?;
        Ok(Arc::new(ReloadingCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(key)),
            loaded: RwLock::new((cert_pem, key_pem)),
        }))
    }

    /// Re-read the files; true when a new certificate was installed.
    pub fn reload(&self) -> bool {
        let (cert_pem, key_pem) = match read_pair(&self.cert_path, &self.key_path) {
            Ok(p) => p,
            Err(e) => {
                log::warn("certificate files unreadable, keeping the current certificate", &[("error", &e)]);
                return false;
            }
        };
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.0 == cert_pem && loaded.1 == key_pem {
                return false;
            }
        }
        match certified_key(&cert_pem, &key_pem) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = (cert_pem, key_pem);
                log::info("certificate reloaded", &[("cert", &self.cert_path.display().to_string())]);
                true
            }
            Err(e) => {
                log::warn("new certificate files do not load, keeping the current certificate", &[("error", &e)]);
                false
            }
        }
    }

    /// Poll the files every `every` until the runtime stops.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.reload();
            }
        });
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner())))
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let c = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let k = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((c, k))
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem).collect::<Result<_, _>>().map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate file holds no CERTIFICATE".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key: {e}"))?;
    let signer = ring::sign::any_supported_type(&key).map_err(|e| format!("private key: {e}"))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| format!("certificate and key do not match: {e}"))?;
    Ok(ck)
}

/// A rustls server config (ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN) over the reloading cert.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<Arc<ServerConfig>, String> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
