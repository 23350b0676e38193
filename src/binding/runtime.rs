//! The tokio runtime the server runs on, sized for the machine rather than napi's default.

// glibc's per-thread arenas kept freed connection memory: RSS grew by ~36 MB over 1000 sessions
// with the JS heap flat. mimalloc returns it; the soak test bounds the growth.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[napi_derive::module_init]
fn init() {
    // One core is Node's own thread, busy with the JS side of every session, so the runtime gets
    // the others: on this 2-core machine one worker against two cut the server's CPU per
    // request/response stream by ~12 % and per bulk byte by ~10 % (bench/README.md, profile 5),
    // since a second worker only contended with Node's thread for the same cores.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let workers = cores.saturating_sub(1).clamp(1, 8);
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("webtransport-napi")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
