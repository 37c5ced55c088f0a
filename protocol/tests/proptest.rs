//! Property tests of the wire format:
//! - every message (random values of every `Request` / `Response` variant, in an `Envelope`)
//!   round-trips through `encode_message` / `decode_message`;
//! - a stream of frames cut at random boundaries comes out of the `Deframer` as exactly the
//!   frames that went in, in order, with nothing left buffered;
//! - random bytes (raw, behind a valid header, or as a validly framed payload) never make the
//!   `Deframer` or the decoders panic, and whatever does decode re-encodes to an equal value.
//!
//! Failures are persisted to `protocol/proptest-regressions/proptest.txt`; commit that file.
//! `PROPTEST_CASES=10000 cargo test -p sigil-protocol --test proptest` runs a longer search.
#![allow(clippy::expect_used, reason = "test helpers outside #[test] fns: a failed expectation is a test failure")]

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sigil_protocol::frame::{self, FrameError, HEADER_LEN, MAX_FRAME, TRAILER_LEN};
use sigil_protocol::{
    AddressInfo, BrokerToken, Bytes, DecodeError, Deframer, DeriveAddress, DeriveKek, Eip191Signature, Eip712Signature,
    Envelope, Epoch, ErrorCode, Hello, HelloAck, MAX_PAYLOAD, OmniAccount, PROTOCOL_VERSION, Request, Response,
    SealedKek, SignEip191, SignEip712, Status, Subject, WireError, decode_message, encode_message,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        // Moderate by default (the whole file runs in a few seconds in debug);
        // PROPTEST_CASES overrides it.
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/proptest.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// ---- strategies: one per type, every variant ------------------------------------------------

fn bytes<const N: usize>() -> impl Strategy<Value = Bytes<N>> {
    prop::array::uniform::<_, N>(any::<u8>()).prop_map(Bytes)
}

/// Short byte strings, sometimes long ones.
fn byte_vec() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), 0..2048),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        // JWT-shaped.
        "[A-Za-z0-9_-]{10,200}\\.[A-Za-z0-9_-]{10,600}\\.[A-Za-z0-9_-]{86}",
    ]
}

fn subject() -> impl Strategy<Value = Subject> {
    (text(), any::<u8>(), bytes::<32>()).prop_map(|(t, key_version, omni)| Subject {
        token: BrokerToken::new(t),
        key_version,
        omni: OmniAccount(omni),
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u8>(), any::<u8>())
            .prop_map(|(min_version, max_version)| { Request::Hello(Hello { min_version, max_version }) }),
        Just(Request::Status),
        subject().prop_map(|subject| Request::DeriveAddress(DeriveAddress { subject })),
        (subject(), byte_vec()).prop_map(|(subject, message)| Request::SignEip191(SignEip191 { subject, message })),
        (subject(), text())
            .prop_map(|(subject, typed_data)| { Request::SignEip712(SignEip712 { subject, typed_data }) }),
        (subject(), byte_vec(), bytes::<32>()).prop_map(|(subject, context, recipient)| {
            Request::DeriveKek(DeriveKek { subject, context, recipient })
        }),
    ]
}

/// Every wire number: the 17 named codes and `Other(_)` for the rest (only `from_u16` can make
/// an `Other`, so a named number never hides in one).
fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![0u16..=20, any::<u16>()].prop_map(ErrorCode::from_u16)
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (error_code(), text()).prop_map(|(code, message)| Response::Error(WireError { code, message })),
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(version, min_version, max_version)| {
            Response::Hello(HelloAck { version, min_version, max_version })
        }),
        (
            any::<u8>(),
            any::<Option<u8>>(),
            vec(
                (any::<u8>(), bytes::<32>())
                    .prop_map(|(key_version, k3_fingerprint)| Epoch { key_version, k3_fingerprint }),
                0..8
            )
        )
            .prop_map(|(protocol_version, current_key_version, epochs)| {
                Response::Status(Status { protocol_version, current_key_version, epochs })
            }),
        (bytes::<20>(), any::<u8>())
            .prop_map(|(address, key_version)| { Response::Address(AddressInfo { address, key_version }) }),
        (bytes::<65>(), bytes::<20>(), any::<u8>()).prop_map(|(signature, address, key_version)| {
            Response::Eip191Signature(Eip191Signature { signature, address, key_version })
        }),
        (bytes::<65>(), bytes::<20>(), bytes::<32>(), bytes::<32>(), bytes::<32>(), any::<u8>()).prop_map(
            |(signature, address, primary_type_hash, domain_separator, digest, key_version)| {
                Response::Eip712Signature(Eip712Signature {
                    signature,
                    address,
                    primary_type_hash,
                    domain_separator,
                    digest,
                    key_version,
                })
            }
        ),
        (any::<u8>(), bytes::<32>(), byte_vec()).prop_map(|(key_version, encapsulated_key, ciphertext)| {
            Response::SealedKek(SealedKek { key_version, encapsulated_key, ciphertext })
        }),
    ]
}

fn envelope<B: core::fmt::Debug>(body: impl Strategy<Value = B>) -> impl Strategy<Value = Envelope<B>> {
    // Small ids and the full range (varint edge cases).
    (prop_oneof![0u64..300, any::<u64>()], body).prop_map(|(request_id, body)| Envelope { request_id, body })
}

/// A payload: usually short and random, sometimes up to the 64 KiB limit (patterned, so that
/// generating it stays cheap in debug builds).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..256),
        1 => (0..=MAX_PAYLOAD, any::<u8>()).prop_map(|(n, seed)| {
            (0..n).map(|i| seed.wrapping_add(i.to_le_bytes()[0])).collect()
        }),
    ]
}

/// Frames concatenated into one stream, and chunk sizes in `1..=stream.len()` to cut it with.
fn stream_and_cuts() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<usize>)> {
    vec(payload(), 0..8).prop_flat_map(|payloads| {
        let len: usize = payloads.iter().map(|p| HEADER_LEN + p.len() + TRAILER_LEN).sum();
        (Just(payloads), vec(1..=len.max(1), 1..32))
    })
}

/// Random bytes; half the time behind a valid-looking header so the deframer gets past it.
fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..1024),
        (0u16..600, any::<u8>(), vec(any::<u8>(), 0..1024)).prop_map(|(len, flags, rest)| {
            let mut s = b"SGL\x01".to_vec();
            s.push(flags & 1);
            s.extend_from_slice(&u32::from(len).to_be_bytes());
            s.extend(rest);
            s
        }),
    ]
}

// ---- helpers -------------------------------------------------------------------------------

fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(PROTOCOL_VERSION, 0, payload, &mut out).expect("payload fits in a frame");
    out
}

/// Feeds `stream` to a Deframer in pieces of `cuts` (cycled), draining after every push.
/// Returns the frames and the error that stopped it, if any.
fn deframe(stream: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Option<FrameError>, usize) {
    let mut d = Deframer::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = cuts.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    // Poisoned for good: the same error again, nothing buffered.
                    assert_eq!(d.next_frame(), Err(e));
                    d.push(b"SGL");
                    assert_eq!(d.buffered(), 0);
                    return (frames, Some(e), 0);
                }
            }
        }
        // Drained: less than one whole frame is left.
        assert!(d.buffered() < MAX_FRAME);
    }
    (frames, None, d.buffered())
}

/// If `payload` decodes as a `T`, re-encoding gives a frame that decodes to an equal value.
fn reencodes_if_decodes<T>(payload: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug,
{
    if let Ok(v) = decode_message::<T>(&frame_of(payload)) {
        let again = encode_message(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_message::<T>(&again), Ok(v));
    }
    Ok(())
}

// ---- properties ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_envelopes_round_trip(msg in envelope(request())) {
        let f = encode_message(&msg).expect("fits in a frame");
        prop_assert_eq!(decode_message::<Envelope<Request>>(&f), Ok(msg));
    }

    #[test]
    fn response_envelopes_round_trip(msg in envelope(response())) {
        let f = encode_message(&msg).expect("fits in a frame");
        prop_assert_eq!(decode_message::<Envelope<Response>>(&f), Ok(msg));
    }

    #[test]
    fn deframer_yields_every_frame_whatever_the_cuts((payloads, cuts) in stream_and_cuts()) {
        let frames: Vec<Vec<u8>> = payloads.iter().map(|p| frame_of(p)).collect();
        let stream = frames.concat();
        let (got, err, left) = deframe(&stream, &cuts);
        prop_assert_eq!(err, None);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(&got, &frames);
        let got_payloads: Vec<&[u8]> = got
            .iter()
            .map(|f| frame::decode(f).map(|f| f.payload))
            .collect::<Result<_, _>>()
            .expect("deframed frames are valid");
        let want: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(got_payloads, want);
    }

    #[test]
    fn deframer_never_panics_and_ignores_cuts(
        stream in hostile_stream(),
        cuts in vec(1usize..64, 1..16),
    ) {
        let (got, err, left) = deframe(&stream, &cuts);
        for f in &got {
            prop_assert!(frame::decode(f).is_ok());
        }
        // The outcome does not depend on how the stream was cut.
        prop_assert_eq!((got, err, left), deframe(&stream, &[stream.len().max(1)]));
        // And decoding the raw bytes as one frame never panics either.
        let _ = decode_message::<Envelope<Request>>(&stream);
        let _ = decode_message::<Envelope<Response>>(&stream);
    }

    #[test]
    fn random_payloads_never_panic_and_reencode(payload in vec(any::<u8>(), 0..512)) {
        reencodes_if_decodes::<Envelope<Request>>(&payload)?;
        reencodes_if_decodes::<Envelope<Response>>(&payload)?;
    }

    #[test]
    fn mutated_messages_never_panic_and_reencode(
        req in envelope(request()),
        resp in envelope(response()),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        for mut p in [
            postcard::to_allocvec(&req).expect("serializes"),
            postcard::to_allocvec(&resp).expect("serializes"),
        ] {
            for (at, byte) in &edits {
                let i = at.index(p.len());
                p[i] = *byte;
            }
            reencodes_if_decodes::<Envelope<Request>>(&p)?;
            reencodes_if_decodes::<Envelope<Response>>(&p)?;
        }
    }
}

#[test]
fn decode_errors_are_typed() {
    // A sanity anchor for the properties above: the two error families are distinguishable.
    assert_eq!(decode_message::<Envelope<Request>>(b"SGL"), Err(DecodeError::Frame(FrameError::Truncated)));
    assert_eq!(decode_message::<Envelope<Request>>(&frame_of(&[])), Err(DecodeError::Message));
}
