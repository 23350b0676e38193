//! WebTransport flow control's state machine (`flow::FlowState`), driven by any sequence of what a
//! client (streams, data, capsules) and the application (reads, finished streams, writes, new
//! streams) can do. Whatever the order, our sends stay within the client's limits, credit we give
//! only grows and never runs more than a window ahead of what was read, and every capsule we owe
//! says what the state says.
#![no_main]

use bytes::BytesMut;
use flow::{FlowState, StreamKind};
use libfuzzer_sys::fuzz_target;
use webtransport_napi_fuzz::{flow, proto, split_header, varint, wire, FlowLimits};
use wire::{take_capsule, Capsule};

fuzz_target!(|data: &[u8]| {
    let (head, ops) = split_header::<6>(data);
    let window = FlowLimits {
        max_data: u64::from(head[0]) * 97 + 1,
        max_streams_bidi: u64::from(head[1] % 8) + 1,
        max_streams_uni: u64::from(head[2] % 8) + 1,
    };
    let peer = FlowLimits {
        max_data: u64::from(head[3]) * 13,
        max_streams_bidi: u64::from(head[4] % 4),
        max_streams_uni: u64::from(head[5] % 4),
    };
    let mut state = FlowState::new(window, peer);
    let mut sent_max_data = window.max_data;
    let mut sent_max_streams = [window.max_streams_bidi, window.max_streams_uni];
    let mut done = [0u64; 2];
    for op in ops.chunks(3) {
        let arg = u64::from(u16::from_le_bytes([op.get(1).copied().unwrap_or(0), op.get(2).copied().unwrap_or(0)]));
        let kind = if arg % 2 == 0 { StreamKind::Bidi } else { StreamKind::Uni };
        let k = usize::from(kind == StreamKind::Uni);
        let before = state.stats();
        match op[0] % 9 {
            0 => {
                let result = state.consumed(arg);
                let after = state.stats();
                assert_eq!(result.is_err(), before.data_received + arg > before.local_max_data);
                if result.is_ok() {
                    assert!(after.local_max_data >= before.local_max_data);
                    assert!(
                        after.local_max_data - after.data_received
                            <= window.max_data.max(before.local_max_data - before.data_received)
                    );
                }
            }
            1 => {
                let opened = [before.streams_opened_by_peer_bidi, before.streams_opened_by_peer_uni][k];
                let limit = [before.local_max_streams_bidi, before.local_max_streams_uni][k];
                assert_eq!(state.peer_opened(kind).is_err(), opened >= limit);
            }
            2 => {
                let opened = [before.streams_opened_by_peer_bidi, before.streams_opened_by_peer_uni][k];
                if done[k] < opened {
                    done[k] += 1;
                    state.peer_stream_done(kind);
                }
            }
            3 => {
                let granted = state.reserve(arg);
                assert!(granted <= arg);
                assert_eq!(granted, arg.min(before.remote_max_data - before.data_sent));
            }
            4 => state.refund(arg.min(before.data_sent)),
            5 => {
                let opened = [before.streams_opened_bidi, before.streams_opened_uni][k];
                let limit = [before.remote_max_streams_bidi, before.remote_max_streams_uni][k];
                assert_eq!(state.try_open(kind), opened < limit);
            }
            6 => assert_eq!(state.peer_max_data(arg).is_ok(), arg > before.remote_max_data),
            7 => {
                let limit = [before.remote_max_streams_bidi, before.remote_max_streams_uni][k];
                assert_eq!(state.peer_max_streams(kind, arg).is_ok(), arg > limit);
            }
            _ => {
                let frame = state.take_capsules();
                if frame.is_empty() {
                    continue;
                }
                let mut buf = BytesMut::from(&frame[..]);
                assert_eq!(varint::decode(&mut buf), Some(proto::frame::DATA));
                assert_eq!(varint::decode(&mut buf), Some(buf.len() as u64));
                let now = state.stats();
                while let Some(capsule) = take_capsule(&mut buf, 1 << 16).expect("our own capsules parse") {
                    let Capsule::Flow { kind, value } = capsule else { panic!("not a flow-control capsule") };
                    match kind {
                        wire::capsule::WT_MAX_DATA => {
                            assert!(value > sent_max_data, "WT_MAX_DATA must grow");
                            assert_eq!(value, now.local_max_data);
                            sent_max_data = value;
                        }
                        wire::capsule::WT_MAX_STREAMS_BIDI | wire::capsule::WT_MAX_STREAMS_UNI => {
                            let i = usize::from(kind == wire::capsule::WT_MAX_STREAMS_UNI);
                            assert!(value > sent_max_streams[i], "WT_MAX_STREAMS must grow");
                            assert_eq!(value, [now.local_max_streams_bidi, now.local_max_streams_uni][i]);
                            sent_max_streams[i] = value;
                        }
                        wire::capsule::WT_DATA_BLOCKED => assert_eq!(value, now.remote_max_data),
                        wire::capsule::WT_STREAMS_BLOCKED_BIDI => assert_eq!(value, now.remote_max_streams_bidi),
                        wire::capsule::WT_STREAMS_BLOCKED_UNI => assert_eq!(value, now.remote_max_streams_uni),
                        other => panic!("unexpected capsule {other:#x}"),
                    }
                }
                assert!(buf.is_empty());
            }
        }
        let after = state.stats();
        assert!(after.data_sent <= after.remote_max_data, "sent past the client's WT_MAX_DATA");
        assert!(after.streams_opened_bidi <= after.remote_max_streams_bidi);
        assert!(after.streams_opened_uni <= after.remote_max_streams_uni);
        assert!(after.local_max_data >= before.local_max_data, "our limit shrank");
    }
});
