//! Fuzz entry points. Not part of the API: the `fuzz/` targets are thin wrappers around these,
//! and the unit tests below run them over a few seeds so they stay correct between fuzz runs.

use alloc::vec::Vec;
use core::fmt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{self, Deframer, FrameError, HEADER_LEN, MAGIC, MAX_FRAME, TRAILER_LEN};
use crate::{Envelope, Request, Response, decode_message, decode_payload, encode_message};

/// Drives a [`Deframer`] with a byte stream and decodes every frame it yields.
///
/// `data[0]` is a control byte, `data[1..]` the stream. Control bits 0..3 give the largest
/// read (`1 << bits` bytes), bits 3..7 seed the read sizes, and bit 7 first rewrites the
/// checksum of every complete, well-magicked frame in the stream, so that mutated payloads
/// reach the message decoder instead of stopping at the CRC. Asserts that:
/// - the frames and the final state (error, or bytes left buffered) do not depend on the cuts:
///   they equal those of pushing the whole stream at once;
/// - an error poisons the deframer: it is returned again and nothing more is buffered;
/// - after draining, less than one whole frame is buffered;
/// - every yielded frame is valid for [`frame::decode`];
/// - any frame that decodes as an `Envelope<Request>` or `Envelope<Response>` re-encodes to a
///   frame that decodes to an equal value, and whose re-encoding is byte-identical (the
///   encoder's output is canonical; the decoder's input need not be).
#[doc(hidden)]
pub fn frame_and_message(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let fixed;
    let stream = if control & 0x80 == 0 {
        stream
    } else {
        fixed = with_valid_checksums(stream);
        fixed.as_slice()
    };
    let cut = deframe(stream, Cuts::new(control));
    let whole = deframe(stream, Cuts::whole(stream.len()));
    assert!(cut == whole, "deframer outcome depends on read boundaries");
    for f in &cut.frames {
        let Ok(parsed) = frame::decode(f) else {
            unreachable_frame();
        };
        reencodes::<Envelope<Request>>(parsed.payload);
        reencodes::<Envelope<Response>>(parsed.payload);
    }
}

#[cold]
fn unreachable_frame() -> ! {
    unreachable!("the deframer yielded a frame that does not decode")
}

/// `stream` with the CRC of each leading complete frame recomputed (stops at the first bad
/// magic, oversized length or incomplete frame; the rest is copied as is).
fn with_valid_checksums(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    let mut rest = stream;
    while let Some((header, _)) = rest.split_first_chunk::<HEADER_LEN>() {
        let [m0, m1, m2, version, flags, l0, l1, l2, l3] = *header;
        if [m0, m1, m2] != MAGIC {
            break;
        }
        let len = usize::try_from(u32::from_be_bytes([l0, l1, l2, l3])).unwrap_or(usize::MAX);
        let end = HEADER_LEN.saturating_add(len);
        let (Some(payload), Some(after)) = (rest.get(HEADER_LEN..end), rest.get(end.saturating_add(TRAILER_LEN)..))
        else {
            break;
        };
        // Leaves `out` unchanged on error (payload too large).
        if frame::encode(version, flags, payload, &mut out).is_err() {
            break;
        }
        rest = after;
    }
    out.extend_from_slice(rest);
    out
}

/// Read sizes derived from one control byte.
struct Cuts {
    state: u8,
    max: usize,
    random: bool,
}

impl Cuts {
    fn new(control: u8) -> Self {
        Self { state: (control >> 3) & 0x0f, max: 1 << (control & 0x07), random: true }
    }

    fn whole(len: usize) -> Self {
        Self { state: 0, max: len.max(1), random: false }
    }

    fn next_len(&mut self) -> usize {
        if !self.random {
            return self.max;
        }
        // Full-period LCG mod 256.
        self.state = self.state.wrapping_mul(165).wrapping_add(13);
        usize::from(self.state) % self.max + 1
    }
}

/// What a deframer made of a stream.
#[derive(PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    /// The error that stopped it, or the bytes left buffered at the end.
    end: Result<usize, FrameError>,
}

fn deframe(stream: &[u8], mut cuts: Cuts) -> Outcome {
    let mut d = Deframer::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = cuts.next_len().min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(d.next_frame(), Err(e), "error not sticky");
                    d.push(chunk);
                    assert_eq!(d.buffered(), 0, "poisoned deframer buffered data");
                    return Outcome { frames, end: Err(e) };
                }
            }
        }
        assert!(d.buffered() < MAX_FRAME, "a whole frame was left buffered");
    }
    Outcome { frames, end: Ok(d.buffered()) }
}

/// If `payload` decodes as a `T`, its re-encoding decodes to an equal value and is stable.
fn reencodes<T>(payload: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
{
    let Ok(value) = decode_payload::<T>(payload) else {
        return;
    };
    // Canonical varints are never longer than the ones decoded, so this always fits.
    let Ok(first) = encode_message(&value) else {
        unreachable!("a decoded message does not re-encode");
    };
    let Ok(again) = decode_message::<T>(&first) else {
        unreachable!("a re-encoded message does not decode");
    };
    assert_eq!(again, value, "re-encoding changed the message");
    assert!(encode_message(&again).ok().as_deref() == Some(first.as_slice()), "encoding is not stable");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BrokerToken, Bytes, Hello, OmniAccount, SignEip191, Subject};
    use alloc::vec;

    fn seeds() -> Vec<Vec<u8>> {
        let hello = Envelope { request_id: 1, body: Request::Hello(Hello { min_version: 1, max_version: 1 }) };
        let sign = Envelope {
            request_id: u64::MAX,
            body: Request::SignEip191(SignEip191 {
                subject: Subject {
                    token: BrokerToken::new("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into()),
                    key_version: 1,
                    omni: OmniAccount::from([7; 32]),
                },
                message: b"hello".to_vec(),
            }),
        };
        let status = Envelope {
            request_id: 2,
            body: Response::Status(crate::Status {
                protocol_version: 1,
                current_key_version: Some(1),
                epochs: vec![crate::Epoch { key_version: 1, k3_fingerprint: Bytes([9; 32]) }],
            }),
        };
        let mut stream = encode_message(&hello).unwrap();
        stream.extend(encode_message(&sign).unwrap());
        stream.extend(encode_message(&status).unwrap());
        let mut bad_crc = stream.clone();
        if let Some(b) = bad_crc.last_mut() {
            *b ^= 1;
        }
        // Overlong varint request_id (0x80 0x00 = 0), validly framed.
        let mut overlong = Vec::new();
        frame::encode(1, 0, &[0x80, 0x00, 0x01], &mut overlong).unwrap();
        let mut truncated = stream.clone();
        truncated.truncate(stream.len() - 3);
        vec![
            stream,
            bad_crc,
            overlong,
            truncated,
            b"GET / HTTP/1.1\r\n".to_vec(),
            b"SGL\x02\x00\x00\x00\x00\x00".to_vec(),
            b"SGL\x01\x00\xff\xff\xff\xff".to_vec(),
            vec![],
        ]
    }

    #[test]
    fn fuzz_entry_point_accepts_seeds_with_every_cut_pattern() {
        for seed in seeds() {
            for control in [0u8, 1, 2, 3, 7, 8, 0x2a, 0x55, 0x80, 0x83, 0xd5, 0xff] {
                let mut data = vec![control];
                data.extend_from_slice(&seed);
                frame_and_message(&data);
            }
        }
        frame_and_message(&[]);
    }

    #[test]
    fn checksum_fixup_repairs_mutated_frames_only() {
        let mut stream = encode_message(&Envelope { request_id: 5, body: Request::Status }).unwrap();
        let good = stream.clone();
        stream[HEADER_LEN] = 6; // request_id 6: the CRC no longer matches
        stream.extend_from_slice(b"SGX");
        let fixed = with_valid_checksums(&stream);
        assert_eq!(
            decode_message::<Envelope<Request>>(&fixed[..good.len()]),
            Ok(Envelope { request_id: 6, body: Request::Status })
        );
        assert_eq!(&fixed[good.len()..], b"SGX");
        assert_eq!(with_valid_checksums(&good), good);
    }

    /// Every file of the checked-in seed corpus (`fuzz/seeds/frame_message/`).
    #[cfg(feature = "std")]
    #[test]
    fn fuzz_entry_point_accepts_the_seed_corpus() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/frame_message");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            frame_and_message(&data);
            // And with the other checksum mode.
            if let Some((c, rest)) = data.split_first() {
                let mut flipped = vec![c ^ 0x80];
                flipped.extend_from_slice(rest);
                frame_and_message(&flipped);
            }
            n += 1;
        }
        assert!(n > 0, "empty seed corpus");
    }

    #[test]
    fn fuzz_entry_point_survives_pseudo_random_streams() {
        let mut x: u32 = 0x9e37_79b9;
        for n in 0..500usize {
            let mut data = vec![0u8; n % 97 + 1];
            for b in &mut data {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x.to_le_bytes()[0];
            }
            // Half of them get a valid header prefix so the deframer gets past it.
            if n % 2 == 0 {
                let mut s = vec![data[0]];
                s.extend_from_slice(b"SGL\x01\x00\x00\x00\x00");
                s.push(data.len().to_le_bytes()[0] % 8);
                s.extend_from_slice(&data);
                data = s;
            }
            frame_and_message(&data);
        }
    }
}
