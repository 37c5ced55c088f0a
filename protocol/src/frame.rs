//! The frame: the unit of the byte stream between host and enclave.
//!
//! ```text
//! +-------+---------+-------+-----------+-----------------+-----------+
//! | "SGL" | version | flags | len u32BE | payload (len B) | crc32c BE |
//! +-------+---------+-------+-----------+-----------------+-----------+
//!    3         1        1         4          0..=64 KiB         4
//! ```
//!
//! The CRC-32C covers every byte before it (header and payload). Magic, version, flags and
//! length are validated as soon as the 9 header bytes are present, *before* any payload is
//! buffered, so a hostile peer cannot make us allocate more than [`MAX_PAYLOAD`].
//! Any frame error is fatal for the connection: there is no way to resynchronise a stream
//! whose framing is in doubt.

use alloc::vec::Vec;
use core::fmt;

/// The three magic bytes every frame starts with.
pub const MAGIC: [u8; 3] = *b"SGL";
/// Bytes before the payload: magic, version, flags, length.
pub const HEADER_LEN: usize = 9;
/// Bytes after the payload: the CRC-32C.
pub const TRAILER_LEN: usize = 4;
/// Largest payload a frame may carry (64 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest whole frame.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN;
/// Writers split frames into pieces of at most this many bytes: virtio-vsock on Nitro has been
/// seen to corrupt single writes of 32 KiB and more.
pub const MAX_WRITE_CHUNK: usize = 16 * 1024;

/// The protocol version this build speaks natively.
pub const PROTOCOL_VERSION: u8 = 1;
/// Oldest protocol version this build accepts.
pub const MIN_SUPPORTED_VERSION: u8 = 1;
/// Newest protocol version this build accepts.
pub const MAX_SUPPORTED_VERSION: u8 = 1;

/// Flag bits defined by the current version. A frame with any other bit set is refused:
/// flags change meaning, so guessing is never safe.
pub const KNOWN_FLAGS: u8 = 0;

const CRC32C: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// Why a byte sequence is not a valid frame. Every variant closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The first three bytes are not `SGL`.
    BadMagic,
    /// The frame's version byte is outside the supported range.
    UnsupportedVersion(u8),
    /// A flag bit this version does not define is set.
    UnknownFlags(u8),
    /// The length field exceeds [`MAX_PAYLOAD`].
    TooLarge(u32),
    /// Fewer bytes than the header announces.
    Truncated,
    /// Bytes follow the end of a frame that should stand alone.
    TrailingBytes,
    /// The CRC-32C does not match.
    BadChecksum,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => f.write_str("bad frame magic"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            Self::UnknownFlags(x) => write!(f, "unknown frame flags {x:#04x}"),
            Self::TooLarge(n) => write!(f, "frame payload of {n} bytes exceeds {MAX_PAYLOAD}"),
            Self::Truncated => f.write_str("truncated frame"),
            Self::TrailingBytes => f.write_str("trailing bytes after frame"),
            Self::BadChecksum => f.write_str("frame checksum mismatch"),
        }
    }
}

impl core::error::Error for FrameError {}

/// A validated frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Protocol version the payload is encoded in.
    pub version: u8,
    /// Flag bits (only [`KNOWN_FLAGS`] can be set).
    pub flags: u8,
    /// The postcard-encoded message.
    pub payload: &'a [u8],
}

/// Validated header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u8,
    flags: u8,
    len: usize,
}

/// Checks the 9 header bytes. Called before anything of the payload is buffered.
fn parse_header(h: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
    let [m0, m1, m2, version, flags, l0, l1, l2, l3] = *h;
    if [m0, m1, m2] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if !(MIN_SUPPORTED_VERSION..=MAX_SUPPORTED_VERSION).contains(&version) {
        return Err(FrameError::UnsupportedVersion(version));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::UnknownFlags(flags));
    }
    let len32 = u32::from_be_bytes([l0, l1, l2, l3]);
    let len = usize::try_from(len32).map_err(|_| FrameError::TooLarge(len32))?;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len32));
    }
    Ok(Header { version, flags, len })
}

/// Appends one frame carrying `payload` to `out`.
///
/// # Errors
/// [`FrameError::TooLarge`] if the payload exceeds [`MAX_PAYLOAD`]; `out` is then unchanged.
pub fn encode(version: u8, flags: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(u32::try_from(payload.len()).unwrap_or(u32::MAX)));
    }
    let start = out.len();
    out.reserve(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.push(flags);
    // Cannot truncate: checked against MAX_PAYLOAD above.
    #[allow(clippy::cast_possible_truncation)]
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    let crc = CRC32C.checksum(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Validates `bytes` as exactly one frame and returns a view of it.
///
/// # Errors
/// Any [`FrameError`]; checks run in wire order (magic, version, flags, length, checksum).
pub fn decode(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    let header: &[u8; HEADER_LEN] =
        bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(FrameError::Truncated)?;
    let h = parse_header(header)?;
    let total = HEADER_LEN + h.len + TRAILER_LEN;
    if bytes.len() < total {
        return Err(FrameError::Truncated);
    }
    if bytes.len() > total {
        return Err(FrameError::TrailingBytes);
    }
    let (body, crc) = bytes.split_at(total - TRAILER_LEN);
    let expected = u32::from_be_bytes(crc.try_into().map_err(|_| FrameError::Truncated)?);
    if CRC32C.checksum(body) != expected {
        return Err(FrameError::BadChecksum);
    }
    let payload = body.get(HEADER_LEN..).ok_or(FrameError::Truncated)?;
    Ok(Frame { version: h.version, flags: h.flags, payload })
}

/// Splits an encoded frame into the pieces a transport should write one at a time, each at
/// most [`MAX_WRITE_CHUNK`] bytes.
pub fn write_chunks(frame: &[u8]) -> core::slice::Chunks<'_, u8> {
    frame.chunks(MAX_WRITE_CHUNK)
}

/// Incremental frame decoder for a byte stream read in arbitrary pieces.
///
/// Feed whatever the transport read with [`Deframer::push`], then call
/// [`Deframer::next_frame`] until it returns `Ok(None)`. The header is validated as soon as
/// it is complete, so at most one frame (≤ [`MAX_FRAME`]) plus the last read is ever
/// buffered, provided the caller drains frames after each push.
#[derive(Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Set once an error has been returned: the stream cannot be trusted again.
    poisoned: Option<FrameError>,
}

impl fmt::Debug for Deframer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer may hold a broker token in transit: show its size only.
        f.debug_struct("Deframer").field("buffered", &self.buf.len()).field("poisoned", &self.poisoned).finish()
    }
}

impl Deframer {
    /// An empty decoder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the transport.
    pub fn push(&mut self, data: &[u8]) {
        if self.poisoned.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Number of bytes buffered but not yet returned as a frame.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete frame (header, payload and checksum, ready for
    /// [`decode`]), or `None` if more bytes are needed.
    ///
    /// # Errors
    /// The first framing error; every later call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = self.poisoned {
            return Err(e);
        }
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            // Reject a wrong magic even before the header is complete, so a peer speaking
            // another protocol fails on its first bytes.
            let n = self.buf.len().min(MAGIC.len());
            if self.buf.get(..n) != MAGIC.get(..n) {
                return Err(self.poison(FrameError::BadMagic));
            }
            return Ok(None);
        };
        let header: &[u8; HEADER_LEN] = header.try_into().map_err(|_| FrameError::Truncated)?;
        let h = match parse_header(header) {
            Ok(h) => h,
            Err(e) => return Err(self.poison(e)),
        };
        let total = HEADER_LEN + h.len + TRAILER_LEN;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let frame = core::mem::replace(&mut self.buf, rest);
        match decode(&frame) {
            Ok(_) => Ok(Some(frame)),
            Err(e) => Err(self.poison(e)),
        }
    }

    fn poison(&mut self, e: FrameError) -> FrameError {
        self.poisoned = Some(e);
        self.buf.clear();
        e
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, reason = "test constants fit in u32")]
mod tests {
    use super::*;
    use alloc::vec;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(PROTOCOL_VERSION, 0, payload, &mut out).unwrap();
        out
    }

    #[test]
    fn golden_empty_frame() {
        // Frozen: "SGL" v1 flags 0 len 0, CRC-32C of the 9 header bytes.
        assert_eq!(hex::encode(frame(b"")), "53474c0100000000009890540f");
    }

    #[test]
    fn round_trips_payload() {
        let f = frame(b"hello");
        let d = decode(&f).unwrap();
        assert_eq!(d.payload, b"hello");
        assert_eq!(d.version, 1);
    }

    #[test]
    fn rejects_bad_magic() {
        let mut f = frame(b"x");
        f[0] = b'X';
        assert_eq!(decode(&f), Err(FrameError::BadMagic));
    }

    #[test]
    fn rejects_unknown_version() {
        let mut f = frame(b"x");
        f[3] = 2;
        assert_eq!(decode(&f), Err(FrameError::UnsupportedVersion(2)));
        f[3] = 0;
        assert_eq!(decode(&f), Err(FrameError::UnsupportedVersion(0)));
    }

    #[test]
    fn rejects_unknown_flags() {
        let mut f = frame(b"x");
        f[4] = 0x80;
        assert_eq!(decode(&f), Err(FrameError::UnknownFlags(0x80)));
    }

    #[test]
    fn rejects_bad_checksum_and_flipped_payload() {
        let mut f = frame(b"payload");
        let last = f.len() - 1;
        f[last] ^= 1;
        assert_eq!(decode(&f), Err(FrameError::BadChecksum));
        let mut f = frame(b"payload");
        f[HEADER_LEN] ^= 1;
        assert_eq!(decode(&f), Err(FrameError::BadChecksum));
    }

    #[test]
    fn rejects_oversized_frame_before_buffering() {
        let mut header = vec![b'S', b'G', b'L', 1, 0];
        header.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        let mut d = Deframer::new();
        d.push(&header);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(MAX_PAYLOAD as u32 + 1)));
        // Poisoned: more data is not buffered.
        d.push(&[0; 1000]);
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(MAX_PAYLOAD as u32 + 1)));
    }

    #[test]
    fn rejects_oversized_payload_on_encode() {
        let mut out = vec![7];
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(encode(1, 0, &big, &mut out), Err(FrameError::TooLarge(_))));
        assert_eq!(out, vec![7]);
        assert!(encode(1, 0, &big[..MAX_PAYLOAD], &mut out).is_ok());
    }

    #[test]
    fn rejects_truncated_and_trailing() {
        let f = frame(b"abc");
        assert_eq!(decode(&f[..f.len() - 1]), Err(FrameError::Truncated));
        assert_eq!(decode(&f[..4]), Err(FrameError::Truncated));
        let mut g = f.clone();
        g.push(0);
        assert_eq!(decode(&g), Err(FrameError::TrailingBytes));
    }

    #[test]
    fn deframer_rejects_wrong_magic_early() {
        let mut d = Deframer::new();
        d.push(b"GE");
        assert_eq!(d.next_frame(), Err(FrameError::BadMagic));
    }

    #[test]
    fn deframer_handles_byte_at_a_time_and_coalesced_frames() {
        let mut stream = frame(b"one");
        stream.extend(frame(b""));
        stream.extend(frame(&[9u8; 40_000]));
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(core::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(decode(&f).unwrap().payload.to_vec());
            }
        }
        assert_eq!(got, vec![b"one".to_vec(), vec![], vec![9u8; 40_000]]);
        assert_eq!(d.buffered(), 0);
        // And all at once.
        let mut d = Deframer::new();
        d.push(&stream);
        let mut n = 0;
        while d.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn write_chunks_stay_below_32k() {
        let f = frame(&vec![1u8; MAX_PAYLOAD]);
        let chunks: Vec<&[u8]> = write_chunks(&f).collect();
        assert!(chunks.iter().all(|c| c.len() < 32 * 1024));
        assert_eq!(chunks.concat(), f);
    }
}
