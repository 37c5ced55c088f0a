//! The attestation document payload: a CBOR map decoded field by field into a
//! [`NitroDocument`], with the types and bounds of the AWS NSM API
//! (`aws-nitro-enclaves-nsm-api`, `AttestationDoc`).

use ciborium::Value;
use std::collections::BTreeMap;

use super::{NitroDocument, NitroError, cbor};

/// The only digest the NSM uses; it fixes the PCR length to 48 bytes.
const DIGEST_SHA384: &str = "SHA384";
/// PCR length for SHA-384.
const PCR_LEN: usize = 48;
/// The NSM has 32 PCRs (indices 0..=31).
const MAX_PCRS: usize = 32;
/// NSM bounds on the caller-supplied fields.
const MAX_USER_DATA: usize = 512;
const MAX_NONCE: usize = 512;
const MAX_PUBLIC_KEY: usize = 1024;

/// Decodes the payload map. Unknown text keys are ignored (they are signed, so they cannot hurt,
/// and rejecting them would break on a future NSM field); duplicate keys are not.
pub(super) fn decode(payload: &[u8]) -> Result<NitroDocument, NitroError> {
    let Some(Value::Map(entries)) = cbor::decode_exact(payload) else {
        return Err(NitroError::PayloadMalformed);
    };
    let mut fields = Fields(BTreeMap::new());
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(NitroError::PayloadMalformed);
        };
        if fields.0.insert(key, value).is_some() {
            return Err(NitroError::PayloadMalformed);
        }
    }

    let module_id = fields.text("module_id")?;
    if module_id.is_empty() {
        return Err(NitroError::FieldInvalid { field: "module_id" });
    }
    if fields.text("digest")? != DIGEST_SHA384 {
        return Err(NitroError::UnsupportedDigest);
    }
    let timestamp_ms = fields.uint("timestamp")?;
    if timestamp_ms == 0 {
        return Err(NitroError::FieldInvalid { field: "timestamp" });
    }
    let pcrs = pcrs(fields.take("pcrs")?)?;
    let certificate = fields.bytes("certificate")?;
    if certificate.is_empty() {
        return Err(NitroError::FieldInvalid { field: "certificate" });
    }
    let cabundle = cabundle(fields.take("cabundle")?)?;
    let public_key = fields.optional_bytes("public_key", MAX_PUBLIC_KEY)?;
    let user_data = fields.optional_bytes("user_data", MAX_USER_DATA)?;
    let nonce = fields.optional_bytes("nonce", MAX_NONCE)?;

    // `pcrs` always holds PCR0 (checked in `pcrs`); all zero is how the NSM reports debug mode.
    let debug = pcrs.get(&0).is_none_or(|pcr0| pcr0.iter().all(|&b| b == 0));
    Ok(NitroDocument {
        module_id,
        digest: DIGEST_SHA384.to_owned(),
        timestamp_ms,
        pcrs,
        certificate,
        cabundle,
        public_key,
        user_data,
        nonce,
        debug,
    })
}

/// The payload map by key, consumed field by field.
struct Fields(BTreeMap<String, Value>);

impl Fields {
    /// A mandatory field; CBOR null counts as absent.
    fn take(&mut self, field: &'static str) -> Result<Value, NitroError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Err(NitroError::MissingField { field }),
            Some(value) => Ok(value),
        }
    }

    fn text(&mut self, field: &'static str) -> Result<String, NitroError> {
        match self.take(field)? {
            Value::Text(text) => Ok(text),
            _ => Err(NitroError::FieldType { field }),
        }
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, NitroError> {
        match self.take(field)? {
            Value::Integer(int) => u64::try_from(int).map_err(|_| NitroError::FieldType { field }),
            _ => Err(NitroError::FieldType { field }),
        }
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, NitroError> {
        match self.take(field)? {
            Value::Bytes(bytes) => Ok(bytes),
            _ => Err(NitroError::FieldType { field }),
        }
    }

    /// An optional byte field: the NSM sends absent ones as CBOR null; a missing key is read the
    /// same way.
    fn optional_bytes(&mut self, field: &'static str, max: usize) -> Result<Option<Vec<u8>>, NitroError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bytes(bytes)) if bytes.len() > max => {
                Err(NitroError::FieldTooLong { field, len: bytes.len(), max })
            }
            Some(Value::Bytes(bytes)) => Ok(Some(bytes)),
            Some(_) => Err(NitroError::FieldType { field }),
        }
    }
}

/// `pcrs`: a map of 1..=32 distinct indices 0..=31 to 48-byte values, including PCR0.
fn pcrs(value: Value) -> Result<BTreeMap<u8, Vec<u8>>, NitroError> {
    const FIELD: &str = "pcrs";
    let Value::Map(entries) = value else {
        return Err(NitroError::FieldType { field: FIELD });
    };
    if entries.is_empty() || entries.len() > MAX_PCRS {
        return Err(NitroError::FieldInvalid { field: FIELD });
    }
    let mut pcrs = BTreeMap::new();
    for (index, pcr) in entries {
        let (Value::Integer(index), Value::Bytes(pcr)) = (index, pcr) else {
            return Err(NitroError::FieldType { field: FIELD });
        };
        let index = u8::try_from(index).map_err(|_| NitroError::FieldInvalid { field: FIELD })?;
        if usize::from(index) >= MAX_PCRS || pcr.len() != PCR_LEN || pcrs.insert(index, pcr).is_some() {
            return Err(NitroError::FieldInvalid { field: FIELD });
        }
    }
    // Debug mode is read from PCR0; a document without it cannot say whether it is in debug mode.
    if !pcrs.contains_key(&0) {
        return Err(NitroError::FieldInvalid { field: FIELD });
    }
    Ok(pcrs)
}

/// `cabundle`: a non-empty array of DER certificates, root first.
fn cabundle(value: Value) -> Result<Vec<Vec<u8>>, NitroError> {
    const FIELD: &str = "cabundle";
    let Value::Array(items) = value else {
        return Err(NitroError::FieldType { field: FIELD });
    };
    if items.is_empty() {
        return Err(NitroError::FieldInvalid { field: FIELD });
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Bytes(der) if der.is_empty() => Err(NitroError::FieldInvalid { field: FIELD }),
            Value::Bytes(der) => Ok(der),
            _ => Err(NitroError::FieldType { field: FIELD }),
        })
        .collect()
}
