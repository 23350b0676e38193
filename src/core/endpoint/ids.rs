//! Connection IDs in the QUIC-LB plaintext layout (draft-ietf-quic-load-balancers), so that a
//! balancer in front of a fleet (AWS NLB's QUIC listeners) and the kernel in front of our own
//! endpoints can both route a packet by its destination connection ID alone:
//!
//! ```text
//! | first octet          | server ID       | worker | nonce     |
//! | CR:3=0 | len-1 : 5   | 0..=14 bytes    | 1 byte | 4..8 bytes|
//! ```
//!
//! The first octet's config rotation bits are 0 and its low five bits say the ID's length less one
//! (the draft's length self-description). The worker byte and the nonce are the draft's "server
//! use" bytes.

use quinn::{ConnectionId, ConnectionIdGenerator};
use quinn_proto::InvalidCid;
use ring::rand::{SecureRandom, SystemRandom};

use crate::core::error::{Error, ErrorCode, Result};

/// Longest connection ID QUIC allows (RFC 9000 §17.2).
const MAX_ID: usize = 20;
/// Nonce bytes when the server ID leaves room; the draft's floor is 4.
const NONCE: usize = 8;
const MIN_NONCE: usize = 4;
/// Longest server ID: the first octet, the worker byte and the shortest nonce must still fit.
pub const MAX_SERVER_ID: usize = MAX_ID - 2 - MIN_NONCE;

/// Where things sit in our connection IDs; the same for every worker of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdLayout {
    server_id: Vec<u8>,
}

impl IdLayout {
    /// Checks the server ID's length (0 means none).
    pub fn new(server_id: Vec<u8>) -> Result<Self> {
        if server_id.len() > MAX_SERVER_ID {
            return Err(Error::new(
                ErrorCode::InvalidOption,
                format!("serverId must be at most {MAX_SERVER_ID} bytes, got {}", server_id.len()),
            ));
        }
        Ok(Self { server_id })
    }

    /// Length of every connection ID we issue.
    pub fn id_len(&self) -> usize {
        let nonce = NONCE.min(MAX_ID - 2 - self.server_id.len());
        2 + self.server_id.len() + nonce
    }

    /// Offset of the worker byte inside a connection ID.
    pub fn worker_offset(&self) -> usize {
        1 + self.server_id.len()
    }

    fn first_octet(&self) -> u8 {
        // At most 20 - 1 = 19, which fits the five length bits; config rotation 0.
        (self.id_len() - 1) as u8 & 0x1f
    }

    /// A generator for one worker's endpoint.
    pub fn generator(&self, worker: u8) -> RoutableIds {
        RoutableIds { layout: self.clone(), worker, random: SystemRandom::new() }
    }

    /// Whether `id` could be one of ours: right first octet and our server ID. quinn drops a
    /// short-header packet whose ID fails this instead of answering it with a stateless reset,
    /// which behind a shared balancer would be a reset of another server's connection.
    pub fn carries_ours(&self, id: &[u8]) -> bool {
        id.len() == self.id_len()
            && id.first() == Some(&self.first_octet())
            && id.get(1..self.worker_offset()) == Some(self.server_id.as_slice())
    }

    /// The worker a short-header packet's destination ID names, if the packet is one.
    pub fn worker_of_short_packet(&self, packet: &[u8]) -> Option<u8> {
        match packet.first() {
            Some(first) if first & 0x80 == 0 => packet.get(1 + self.worker_offset()).copied(),
            _ => None,
        }
    }
}

/// One worker's connection-ID generator.
pub struct RoutableIds {
    layout: IdLayout,
    worker: u8,
    random: SystemRandom,
}

impl ConnectionIdGenerator for RoutableIds {
    fn generate_cid(&mut self) -> ConnectionId {
        let len = self.layout.id_len();
        let mut id = [0u8; MAX_ID];
        let (head, rest) = id.split_at_mut(self.layout.worker_offset());
        if let Some((first, server_id)) = head.split_first_mut() {
            *first = self.layout.first_octet();
            server_id.copy_from_slice(&self.layout.server_id);
        }
        if let Some((worker, nonce)) = rest.split_first_mut() {
            *worker = self.worker;
            let nonce_len = len - 1 - self.layout.worker_offset();
            if let Some(nonce) = nonce.get_mut(..nonce_len) {
                // SystemRandom fails only where the OS has no randomness at all; the ID is
                // still valid, only guessable, and quinn has no way to report an error here.
                let _ = self.random.fill(nonce);
            }
        }
        ConnectionId::new(id.get(..len).unwrap_or(&id))
    }

    fn validate(&self, id: &ConnectionId) -> std::result::Result<(), InvalidCid> {
        if self.layout.carries_ours(id) {
            Ok(())
        } else {
            Err(InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        self.layout.id_len()
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_plaintext_layout() {
        let layout = IdLayout::new(vec![0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4]).unwrap();
        let mut ids = layout.generator(3);
        let a = ids.generate_cid();
        let b = ids.generate_cid();
        assert_eq!(a.len(), 18);
        assert_eq!(a[0], 17, "config rotation 0, length 18 - 1");
        assert_eq!(&a[1..9], &[0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4]);
        assert_eq!(a[9], 3, "worker byte");
        assert_ne!(&a[10..], &b[10..], "nonces differ");
        assert!(ids.validate(&a).is_ok());
        let mut other = a.to_vec();
        other[4] ^= 1;
        assert!(ids.validate(&ConnectionId::new(&other)).is_err(), "another server's ID");
    }

    #[test]
    fn server_id_length_bounds() {
        assert_eq!(IdLayout::new(Vec::new()).unwrap().id_len(), 10);
        assert_eq!(IdLayout::new(vec![7; MAX_SERVER_ID]).unwrap().id_len(), MAX_ID);
        assert!(IdLayout::new(vec![7; MAX_SERVER_ID + 1]).is_err());
    }

    #[test]
    fn worker_is_read_from_short_headers_only() {
        let layout = IdLayout::new(vec![9, 9]).unwrap();
        let id = layout.generator(1).generate_cid();
        let mut short = vec![0x41];
        short.extend_from_slice(&id);
        assert_eq!(layout.worker_of_short_packet(&short), Some(1));
        short[0] = 0xc0;
        assert_eq!(layout.worker_of_short_packet(&short), None);
    }
}
