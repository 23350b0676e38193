//! The tokio runtime the server runs on, sized for the machine rather than napi's default.

// glibc's per-thread arenas kept freed connection memory: RSS grew by ~36 MB over 1000 sessions
// with the JS heap flat. mimalloc returns it; the soak test bounds the growth.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[napi_derive::module_init]
fn init() {
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(crate::core::config::runtime_workers())
        .thread_name("webtransport-napi")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
