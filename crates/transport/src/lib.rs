//! rsips transports: the connection-oriented protocols (TCP, TLS, WS, WSS) and the pieces they share
//! with UDP (PROXY protocol headers, write outcomes).
//!
//! The codecs (`proxy_protocol`, `ws`) are sans-IO: they take bytes and return what they found, so
//! they are tested and fuzzed without sockets.

pub mod inbox;
pub mod proto;
pub mod proxy_protocol;
pub mod stream;
pub mod tls;
pub mod ws;
mod ws_conn;
pub mod x509;

pub use proto::Proto;
