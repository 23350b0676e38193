//! The client end for JS: sessions opened from this process to WebTransport servers, as the same
//! `NativeSession` the server hands out, so that `lib/client.js` gives them the W3C shape with the
//! server's session and stream classes. Every client of the process shares one endpoint per local
//! address (`SharedClients`), closed when its last session ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use napi_derive::napi;
use rustls::RootCertStore;

use super::error::{invalid_option, to_js};
use super::hub::{Hub, ReadyCallback};
use super::request_fields::pairs;
use super::session::NativeSession;
use crate::core::trust::add_pem_roots;
use crate::core::{ClientConfig, ServerTrust, SessionRequest, SharedClients};

/// One session request, as `lib/client.js` passes it after checking types.
#[napi(object)]
pub struct NativeConnectOptions {
    /// The server's IP address (JS resolves names).
    pub address: String,
    pub port: u32,
    /// The name the certificate must carry (the URL's host).
    pub server_name: String,
    pub authority: String,
    /// Path and query.
    pub path: String,
    pub origin: Option<String>,
    pub protocols: Vec<String>,
    /// Flattened `[name, value, ...]`.
    pub headers: Vec<String>,
    /// SHA-256 values of `serverCertificateHashes`, hex; when any, they replace the roots.
    pub certificate_hashes: Vec<String>,
    /// PEM text of extra roots (`ca`).
    pub ca: Vec<String>,
    /// The local IP address to send from, and its port (0: any).
    pub local_address: Option<String>,
    pub local_port: Option<u32>,
    /// 'cubic' | 'bbr' | 'newreno'.
    pub congestion_control: Option<String>,
}

fn clients() -> &'static Arc<SharedClients> {
    static CLIENTS: OnceLock<Arc<SharedClients>> = OnceLock::new();
    CLIENTS.get_or_init(|| SharedClients::new(ClientConfig::default()))
}

fn ip(value: &str, name: &str) -> napi::Result<IpAddr> {
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| invalid_option(format!("{name} must be an IP address, got {value:?}")))
}

fn hash(hex: &str) -> napi::Result<[u8; 32]> {
    let bad = || invalid_option(format!("a sha-256 certificate hash is 32 bytes, got {hex:?}"));
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex.get(i * 2..i * 2 + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(bad)?;
    }
    Ok(out)
}

/// Opens client sessions for one JS environment, whose hub settles their waits.
#[napi]
pub struct NativeConnector {
    hub: Arc<Hub>,
    /// The roots certificates are checked against unless hashes are pinned; loaded by JS before
    /// the first session that needs them (reading Node's and the system's stores takes ~100 ms,
    /// which a process that only pins hashes never pays).
    roots: Mutex<Option<Arc<RootCertStore>>>,
}

#[napi]
impl NativeConnector {
    /// `on_ready` receives the finished waits of this connector's sessions and streams.
    #[napi(constructor, catch_unwind)]
    pub fn new(on_ready: ReadyCallback) -> Self {
        Self { hub: Hub::new(on_ready), roots: Mutex::new(None) }
    }

    /// Whether `loadRoots` has been called.
    #[napi(catch_unwind)]
    pub fn has_roots(&self) -> bool {
        self.roots.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The PEM certificates trusted by default (Node's, and the system's). One that cannot be
    /// used as a root is left out rather than failing every connection.
    #[napi(catch_unwind)]
    pub fn load_roots(&self, default_roots: Vec<String>) {
        let mut roots = RootCertStore::empty();
        for pem in default_roots {
            let _ = add_pem_roots(&mut roots, pem.as_bytes());
        }
        *self.roots.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(roots));
    }

    /// Opens a session; rejects with WT_ERR_HANDSHAKE_FAILED (unreachable, untrusted),
    /// WT_ERR_SESSION_REFUSED (a status other than 2xx) or WT_ERR_INVALID_OPTION.
    #[napi]
    pub async fn connect(&self, options: NativeConnectOptions) -> napi::Result<NativeSession> {
        let port = u16::try_from(options.port).map_err(|_| invalid_option("the port must be 0 to 65535"))?;
        let addr = SocketAddr::new(ip(&options.address, "the server address")?, port);
        let local = match &options.local_address {
            Some(local) => {
                let local_port = u16::try_from(options.local_port.unwrap_or(0))
                    .map_err(|_| invalid_option("localPort must be 0 to 65535"))?;
                Some(SocketAddr::new(ip(local, "localAddress")?, local_port))
            }
            None => None,
        };
        let trust = if options.certificate_hashes.is_empty() {
            let loaded = self.roots.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let loaded = loaded.unwrap_or_else(|| Arc::new(RootCertStore::empty()));
            if options.ca.is_empty() {
                // The shared store as it is: copying its ~150 anchors is only needed to add to it.
                ServerTrust::Roots(loaded)
            } else {
                let mut roots = (*loaded).clone();
                for pem in &options.ca {
                    add_pem_roots(&mut roots, pem.as_bytes()).map_err(to_js)?;
                }
                ServerTrust::Roots(Arc::new(roots))
            }
        } else {
            ServerTrust::Hashes(options.certificate_hashes.iter().map(|h| hash(h)).collect::<napi::Result<_>>()?)
        };
        let mut config = ClientConfig::default();
        if let Some(name) = options.congestion_control.as_deref() {
            config.congestion_control = name.parse().map_err(to_js)?;
        }
        let request = SessionRequest {
            authority: options.authority,
            path: options.path,
            origin: options.origin,
            protocols: options.protocols,
            headers: pairs(options.headers),
        };
        let session =
            clients().connect(local, &config, &trust, addr, &options.server_name, request).await.map_err(to_js)?;
        Ok(NativeSession::new(session, self.hub.clone()))
    }

    /// Client endpoints open in the process now (each closes when its last session ends).
    #[napi(catch_unwind)]
    pub fn endpoints() -> u32 {
        clients().endpoints() as u32
    }
}
