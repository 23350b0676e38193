//! The server's quinn endpoints: one per worker, each on its own socket of one address, with
//! connection IDs that name the worker (and, for a balancer, the server) and keys shared by all.
//!
//! One quinn endpoint is one task that every packet of its socket goes through
//! (quinn-rs/quinn#1576); K endpoints let K runtime threads receive, decrypt and route at once.

pub mod counted;
pub mod group;
pub mod ids;
pub mod keys;

use std::net::SocketAddr;
use std::sync::Arc;

pub use counted::{WorkerCounters, WorkerCounts};
pub use ids::IdLayout;
pub use keys::EndpointKeys;

use crate::core::error::{Error, ErrorCode, Result};

/// Most endpoints one server runs: the worker byte is one octet, and more endpoints than cores
/// only add sockets.
pub const MAX_WORKERS: usize = 64;

/// How the server's endpoints are made.
#[derive(Debug, Clone)]
pub struct EndpointPlan {
    pub addr: SocketAddr,
    pub workers: usize,
    pub layout: IdLayout,
    pub keys: EndpointKeys,
    pub steer: bool,
    pub socket_buffer: usize,
}

/// One worker's endpoint and what it has seen.
pub struct Worker {
    pub endpoint: quinn::Endpoint,
    pub counters: Arc<WorkerCounters>,
}

/// Binds every worker's socket and starts its endpoint. Must be called inside a tokio runtime.
pub fn start(plan: &EndpointPlan, server: quinn::ServerConfig) -> Result<Vec<Worker>> {
    if plan.workers == 0 || plan.workers > MAX_WORKERS {
        return Err(Error::new(
            ErrorCode::InvalidOption,
            format!("workers must be between 1 and {MAX_WORKERS}, got {}", plan.workers),
        ));
    }
    let sockets = group::bind(plan.addr, plan.workers, &plan.layout, plan.steer, plan.socket_buffer)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| Error::new(ErrorCode::Bind, "no async runtime to run the endpoint on"))?;
    let server = Arc::new(server);
    let mut started = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.into_iter().enumerate() {
        let worker = index as u8;
        let cant_use = |e: std::io::Error| group::bind_error(plan.addr, &e);
        let inner = runtime.wrap_udp_socket(socket).map_err(cant_use)?;
        let counters = Arc::new(WorkerCounters::default());
        let socket =
            Arc::new(counted::CountedSocket { inner, counters: counters.clone(), layout: plan.layout.clone(), worker });
        let mut config = quinn::EndpointConfig::new(plan.keys.reset.clone());
        let layout = plan.layout.clone();
        config.cid_generator(move || Box::new(layout.generator(worker)));
        let endpoint =
            quinn::Endpoint::new_with_abstract_socket(config, Some(server.as_ref().clone()), socket, runtime.clone())
                .map_err(cant_use)?;
        started.push(Worker { endpoint, counters });
    }
    Ok(started)
}
