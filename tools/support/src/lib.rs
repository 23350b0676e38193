//! One copy of the helpers the workspace's tool binaries used to copy from each other:
//! tools/wt-server, tools/wt-client, tools/h3-client, and bench's wt-load, wtransport-echo and
//! core-echo.
//!
//! The tests in __test__/ and bench/run.mjs parse what these tools print and pass them the same
//! options, so the tools must agree: how a JSON line is escaped and ordered, how a certificate
//! hash is written and read, which certificate a server makes when given none, how a server says
//! it is ready and when it exits, how CPU time is counted. Kept as copies, a fix to one could
//! leave the others behind; here it reaches every tool.
//!
//! Nothing here speaks HTTP/3 or WebTransport, and nothing comes from src/: each tool stays an
//! independent peer of the code under test. Without features the crate has no dependencies, so
//! the clients build nothing they did not build before.

pub mod client;
pub mod hash;
pub mod json;
pub mod server;
