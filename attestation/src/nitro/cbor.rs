//! Bounded CBOR decoding shared by the envelope and the payload.

use ciborium::Value;

/// Deepest nesting accepted. A real document nests at most 4 levels (tag → array → map →
/// value; payload map → `pcrs` map → value). ciborium's default limit of 256 lets hostile input
/// nest deep enough to overflow a small thread stack while decoding (or dropping) the tree.
const MAX_DEPTH: usize = 16;

/// Decodes the one CBOR item at the start of `bytes`. Returns it and how many bytes follow it,
/// or `None` if `bytes` does not start with a well-formed item nested at most [`MAX_DEPTH`] deep.
pub(super) fn decode_prefix(bytes: &[u8]) -> Option<(Value, usize)> {
    let mut rest = bytes;
    // ciborium reads exactly one item from a slice reader, so `rest` is what follows it.
    let value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH).ok()?;
    Some((value, rest.len()))
}

/// Decodes `bytes` as exactly one CBOR item nested at most [`MAX_DEPTH`] deep.
pub(super) fn decode_exact(bytes: &[u8]) -> Option<Value> {
    match decode_prefix(bytes)? {
        (value, 0) => Some(value),
        _ => None,
    }
}
