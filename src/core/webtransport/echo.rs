//! The reference echo, written on the core's public API: bidirectional streams are echoed as data
//! arrives, a unidirectional stream is answered whole on a new one, datagrams are sent back in
//! the batches they are read in. The benchmarks' Rust ceiling (bench/core-echo) and the core's
//! tests both run this one copy.

use bytes::Bytes;

use super::session::Session;
use super::stream::pipe;

/// Serves `session` until it ends.
pub async fn serve(session: Session) {
    let datagrams = session.clone();
    tokio::spawn(async move {
        while let Some(batch) = datagrams.read_datagrams(256).await {
            for datagram in batch {
                let _ = datagrams.send_datagram(&datagram);
            }
        }
    });
    let uni = session.clone();
    tokio::spawn(async move {
        while let Some(mut recv) = uni.accept_uni().await {
            let uni = uni.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                while let Ok(Some(chunk)) = recv.read(65536).await {
                    data.extend_from_slice(&chunk);
                }
                if let Ok(mut send) = uni.open_uni().await {
                    let _ = send.write(Bytes::from(data)).await;
                    let _ = send.finish();
                }
            });
        }
    });
    echo_bidi(session).await;
}

/// Echoes only the bidirectional streams of `session` until it ends.
pub async fn echo_bidi(session: Session) {
    while let Some((mut send, mut recv)) = session.accept_bi().await {
        tokio::spawn(async move {
            pipe(&mut recv, &mut send).await;
        });
    }
}
