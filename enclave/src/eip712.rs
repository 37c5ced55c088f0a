//! EIP-712 v4 typed-data hashing (the `eth_signTypedData_v4` JSON shape).
//!
//! The enclave hashes typed data itself rather than trusting a prehash, so this module is the
//! line between "what the user was shown" and "what gets signed". It is therefore strict:
//! anything two reasonable implementations could hash differently (unsized `uint`, missing or
//! extra fields, `null`, mis-sized bytes, bad checksums, odd type strings) is rejected instead
//! of being coerced. Recursion follows the data and is capped at [`MAX_DATA_DEPTH`]; nothing is
//! allocated from a size declared in the input (a `uint8[4294967295]` type costs nothing until
//! a JSON array of that length actually exists).

use alloc::{
    collections::{BTreeMap, BTreeSet},
    string::{String, ToString},
    vec::Vec,
};
use sha3::{Digest, Keccak256};

use crate::json::{self, Object, Value};

/// Maximum nesting of structs and arrays inside the domain or message (the message itself is
/// level 1). Real-world typed data stays far below this.
pub const MAX_DATA_DEPTH: usize = 32;

/// Names and values quoted in errors are clipped to this many characters.
const MAX_ECHO_CHARS: usize = 64;

const DOMAIN_TYPE: &str = "EIP712Domain";

/// The domain fields wallets infer when `types` lacks `EIP712Domain`, in canonical order.
const CANONICAL_DOMAIN: [(&str, &str, Atomic); 5] = [
    ("name", "string", Atomic::String),
    ("version", "string", Atomic::String),
    ("chainId", "uint256", Atomic::Uint(256)),
    ("verifyingContract", "address", Atomic::Address),
    ("salt", "bytes32", Atomic::FixedBytes(32)),
];

/// Hashes computed from one typed-data document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypedDataHashes {
    /// `hashStruct("EIP712Domain", domain)`.
    pub domain_separator: [u8; 32],
    /// `hashStruct(primaryType, message)` (the struct hash, not the bare type hash).
    pub primary_type_hash: [u8; 32],
    /// `keccak256(0x19 0x01 || domain_separator || primary_type_hash)`: what gets signed.
    pub digest: [u8; 32],
}

/// Why typed data was rejected. Names quoted in messages are clipped to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Eip712Error {
    /// The document is not strict RFC 8259 JSON (the payload says why).
    #[error("typed data is not valid json: {0}")]
    InvalidJson(String),
    /// The document is valid JSON but not an object.
    #[error("typed data must be a json object")]
    NotAnObject,
    /// One of `types`, `primaryType`, `domain`, `message` is absent.
    #[error("typed data is missing `{0}`")]
    MissingTopLevelKey(&'static str),
    /// A top-level key other than the four defined ones.
    #[error("unknown top-level key `{0}`")]
    UnknownTopLevelKey(String),
    /// A top-level member has the wrong JSON type.
    #[error("`{key}` must be a json {expected}")]
    WrongTopLevelType {
        /// The top-level key.
        key: &'static str,
        /// The JSON type required.
        expected: &'static str,
    },
    /// A type definition is not an array of `{"name": string, "type": string}` objects.
    #[error("malformed definition of type `{0}`")]
    MalformedTypeDefinition(String),
    /// A struct name is not an identifier (`[A-Za-z_$][A-Za-z0-9_$]*`).
    #[error("invalid struct type name `{0}`")]
    InvalidTypeName(String),
    /// A struct name that reads as an atomic type (`uint256`, `address`, `uint`, `bytes33`, ...).
    #[error("struct type name `{0}` collides with an atomic type")]
    ReservedTypeName(String),
    /// A member name is not an identifier, which would make `encodeType` ambiguous.
    #[error("invalid field name `{field}` in type `{ty}`")]
    InvalidFieldName {
        /// The struct.
        ty: String,
        /// The offending member name.
        field: String,
    },
    /// A struct declares the same member name twice.
    #[error("duplicate field `{field}` in type `{ty}`")]
    DuplicateField {
        /// The struct.
        ty: String,
        /// The repeated member name.
        field: String,
    },
    /// A member type string is malformed or an unsupported atomic type (`uint`, `bytes0`,
    /// `uint7`, `int264`, `Foo[0]`, `Foo[01]`, ...).
    #[error("invalid type `{field_type}` in type `{ty}`")]
    InvalidFieldType {
        /// The struct.
        ty: String,
        /// The offending type string.
        field_type: String,
    },
    /// A member refers to a struct type that `types` does not define.
    #[error("type `{0}` is referenced but not defined")]
    UndefinedType(String),
    /// `primaryType` names a type that `types` does not define.
    #[error("primary type `{0}` is not defined")]
    UndefinedPrimaryType(String),
    /// `primaryType` is `EIP712Domain`, which would sign a domain as a message.
    #[error("primary type must not be EIP712Domain")]
    PrimaryTypeIsDomain,
    /// The domain has a key that its `EIP712Domain` type (given or inferred) lacks.
    #[error("domain field `{0}` is not part of EIP712Domain")]
    UnknownDomainField(String),
    /// A struct value lacks a member (never zero-filled).
    #[error("missing field `{field}` of type `{ty}`")]
    MissingField {
        /// The struct.
        ty: String,
        /// The missing member.
        field: String,
    },
    /// A struct value has a member its type does not declare (never silently ignored).
    #[error("field `{field}` is not part of type `{ty}`")]
    UnknownField {
        /// The struct.
        ty: String,
        /// The extra member.
        field: String,
    },
    /// A value is `null`.
    #[error("field `{0}` is null")]
    NullValue(String),
    /// A value has the wrong JSON type for its EIP-712 type.
    #[error("field `{field}` must be a json {expected}")]
    WrongJsonType {
        /// The member whose value (or element) is wrong.
        field: String,
        /// The JSON type required.
        expected: &'static str,
    },
    /// An integer value is not a JSON integer literal, a canonical decimal string or `0x` hex.
    #[error("field `{0}` is not a valid integer")]
    InvalidInteger(String),
    /// An integer value does not fit its `uintN` / `intN` type.
    #[error("field `{0}` is out of range for its integer type")]
    IntegerOutOfRange(String),
    /// An address value is not `0x` followed by 40 hex digits.
    #[error("field `{0}` is not a valid address")]
    InvalidAddress(String),
    /// A mixed-case address whose EIP-55 checksum is wrong (likely a typo).
    #[error("field `{0}` has an invalid eip-55 address checksum")]
    BadAddressChecksum(String),
    /// A `bytes`/`bytesN` value is not `0x` followed by an even number of hex digits.
    #[error("field `{0}` is not valid 0x-prefixed hex")]
    InvalidHex(String),
    /// A `bytesN` value does not have exactly N bytes (no implicit padding).
    #[error("field `{field}` must be exactly {expected} bytes")]
    WrongBytesLength {
        /// The member.
        field: String,
        /// N.
        expected: usize,
    },
    /// A fixed-size array value has the wrong number of elements.
    #[error("field `{field}` must have exactly {expected} elements, got {actual}")]
    ArrayLengthMismatch {
        /// The member.
        field: String,
        /// The declared length.
        expected: usize,
        /// The JSON array's length.
        actual: usize,
    },
    /// Structs and arrays nest deeper than [`MAX_DATA_DEPTH`].
    #[error("typed data nests deeper than 32 structs or arrays")]
    TooDeep,
}

/// Hashes an `eth_signTypedData_v4` document:
/// `{"types": {...}, "primaryType": "...", "domain": {...}, "message": {...}}`.
///
/// If `types` has no `EIP712Domain`, it is inferred from the domain's keys in the canonical
/// order `name, version, chainId, verifyingContract, salt` (as viem and ethers do).
pub fn hash_typed_data(json: &str) -> Result<TypedDataHashes, Eip712Error> {
    let doc = json::parse(json).map_err(|e| Eip712Error::InvalidJson(e.to_string()))?;
    let top = doc.as_object().ok_or(Eip712Error::NotAnObject)?;
    for (key, _) in top.iter() {
        if !matches!(key, "types" | "primaryType" | "domain" | "message") {
            return Err(Eip712Error::UnknownTopLevelKey(clip(key)));
        }
    }
    let types = top_level(top, "types")?
        .as_object()
        .ok_or(Eip712Error::WrongTopLevelType { key: "types", expected: "object" })?;
    let primary = top_level(top, "primaryType")?
        .as_str()
        .ok_or(Eip712Error::WrongTopLevelType { key: "primaryType", expected: "string" })?;
    let domain = top_level(top, "domain")?;
    let domain_obj = domain.as_object().ok_or(Eip712Error::WrongTopLevelType { key: "domain", expected: "object" })?;
    let message = top_level(top, "message")?;
    if message.as_object().is_none() {
        return Err(Eip712Error::WrongTopLevelType { key: "message", expected: "object" });
    }

    let mut defs = parse_types(types)?;
    if primary == DOMAIN_TYPE {
        return Err(Eip712Error::PrimaryTypeIsDomain);
    }
    if !defs.contains_key(primary) {
        return Err(Eip712Error::UndefinedPrimaryType(clip(primary)));
    }
    match defs.get(DOMAIN_TYPE) {
        Some(def) => {
            if let Some((key, _)) = domain_obj.iter().find(|(k, _)| !def.fields.iter().any(|f| f.name == *k)) {
                return Err(Eip712Error::UnknownDomainField(clip(key)));
            }
        }
        None => {
            // Inserted only after `parse_types` checked references, so a message type that
            // names `EIP712Domain` without defining it is still rejected as undefined.
            let inferred = infer_domain(domain_obj)?;
            defs.insert(DOMAIN_TYPE, inferred);
        }
    }

    let mut hasher = Hasher::new(&defs)?;
    let domain_separator = hasher.hash_struct(DOMAIN_TYPE, domain, "domain", 1)?;
    let primary_type_hash = hasher.hash_struct(primary, message, "message", 1)?;
    let digest: [u8; 32] = Keccak256::new()
        .chain_update([0x19, 0x01])
        .chain_update(domain_separator)
        .chain_update(primary_type_hash)
        .finalize()
        .into();
    Ok(TypedDataHashes { domain_separator, primary_type_hash, digest })
}

fn top_level<'v>(top: &'v Object, key: &'static str) -> Result<&'v Value, Eip712Error> {
    top.get(key).ok_or(Eip712Error::MissingTopLevelKey(key))
}

/// Quotes untrusted text in an error without echoing megabytes of it.
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => {
            let mut out = String::from(s.get(..cut).unwrap_or_default());
            out.push('…');
            out
        }
        None => String::from(s),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atomic {
    Bool,
    Address,
    /// `uintN`, N in 8..=256 step 8.
    Uint(u16),
    /// `intN`, N in 8..=256 step 8.
    Int(u16),
    /// `bytesN`, N in 1..=32.
    FixedBytes(usize),
    Bytes,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base<'a> {
    Atomic(Atomic),
    Struct(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Dynamic,
    Fixed(usize),
}

/// A member type: base plus array dimensions in source order (`Foo[][2]` is
/// `[Dynamic, Fixed(2)]`; the last one is the outermost, as in Solidity).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldType<'a> {
    base: Base<'a>,
    dims: Vec<Dim>,
}

#[derive(Debug)]
struct Field<'a> {
    name: &'a str,
    /// The type string exactly as written; it goes verbatim into `encodeType`.
    ty: &'a str,
    parsed: FieldType<'a>,
}

#[derive(Debug)]
struct StructDef<'a> {
    fields: Vec<Field<'a>>,
    /// `Name(type1 name1,type2 name2)`, this struct's piece of `encodeType`, built once so
    /// that hashing many types that share dependencies only re-reads bytes.
    fragment: String,
    /// Struct types named by members (through arrays), sorted, without repeats.
    refs: Vec<&'a str>,
}

impl<'a> StructDef<'a> {
    fn new(name: &str, fields: Vec<Field<'a>>) -> Self {
        let mut fragment = String::from(name);
        fragment.push('(');
        let mut refs = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                fragment.push(',');
            }
            fragment.push_str(field.ty);
            fragment.push(' ');
            fragment.push_str(field.name);
            if let Base::Struct(s) = field.parsed.base {
                refs.push(s);
            }
        }
        fragment.push(')');
        refs.sort_unstable();
        refs.dedup();
        Self { fields, fragment, refs }
    }
}

type Defs<'a> = BTreeMap<&'a str, StructDef<'a>>;

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// A positive decimal without leading zeros (so every length has one spelling).
fn canonical_positive(s: &str) -> Option<usize> {
    if s.starts_with('0') || s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0usize, |acc, b| {
        let d = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(usize::try_from(d).ok()?)
    })
}

fn atomic(name: &str) -> Option<Atomic> {
    match name {
        "bool" => return Some(Atomic::Bool),
        "address" => return Some(Atomic::Address),
        "string" => return Some(Atomic::String),
        "bytes" => return Some(Atomic::Bytes),
        _ => {}
    }
    let sized = |digits: &str| canonical_positive(digits).and_then(|n| u16::try_from(n).ok());
    if let Some(n) = name.strip_prefix("uint").and_then(sized) {
        return (n % 8 == 0 && n <= 256).then_some(Atomic::Uint(n));
    }
    if let Some(n) = name.strip_prefix("int").and_then(sized) {
        return (n % 8 == 0 && n <= 256).then_some(Atomic::Int(n));
    }
    if let Some(n) = name.strip_prefix("bytes").and_then(sized) {
        return (n <= 32).then_some(Atomic::FixedBytes(usize::from(n)));
    }
    None
}

/// Names that read as atomic types even when invalid (`uint`, `uint7`, `bytes0`, `int0256`):
/// a struct by such a name would make `encodeType` misleading, and as a member type they are
/// errors rather than struct references.
fn is_reserved(name: &str) -> bool {
    if atomic(name).is_some() {
        return true;
    }
    ["uint", "int", "bytes"]
        .iter()
        .any(|prefix| name.strip_prefix(prefix).is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit())))
}

/// Parses `Base([]|[N])*` with `N` a canonical positive decimal; no whitespace anywhere.
fn parse_field_type(s: &str) -> Option<FieldType<'_>> {
    let (base, mut rest) = match s.find('[') {
        Some(i) => s.split_at_checked(i)?,
        None => (s, ""),
    };
    let mut dims = Vec::new();
    while !rest.is_empty() {
        let (inner, after) = rest.strip_prefix('[')?.split_once(']')?;
        dims.push(if inner.is_empty() { Dim::Dynamic } else { Dim::Fixed(canonical_positive(inner)?) });
        rest = after;
    }
    let base = match atomic(base) {
        Some(a) => Base::Atomic(a),
        None if is_identifier(base) && !is_reserved(base) => Base::Struct(base),
        None => return None,
    };
    Some(FieldType { base, dims })
}

/// Validates every definition in `types` (used or not) and that every struct reference
/// resolves.
fn parse_types(types: &Object) -> Result<Defs<'_>, Eip712Error> {
    // Names first, so a struct called `uint` is reported as such rather than as a bad
    // member type wherever it happens to be used.
    for (name, _) in types.iter() {
        if !is_identifier(name) {
            return Err(Eip712Error::InvalidTypeName(clip(name)));
        }
        if is_reserved(name) {
            return Err(Eip712Error::ReservedTypeName(clip(name)));
        }
    }
    let mut defs = Defs::new();
    for (name, def) in types.iter() {
        let malformed = || Eip712Error::MalformedTypeDefinition(clip(name));
        let members = def.as_array().ok_or_else(malformed)?;
        let mut fields = Vec::new();
        let mut seen = BTreeSet::new();
        for member in members {
            let member = member.as_object().ok_or_else(malformed)?;
            let (Some(field), Some(ty), 2) =
                (member.get("name").and_then(Value::as_str), member.get("type").and_then(Value::as_str), member.len())
            else {
                return Err(malformed());
            };
            if !is_identifier(field) {
                return Err(Eip712Error::InvalidFieldName { ty: clip(name), field: clip(field) });
            }
            if !seen.insert(field) {
                return Err(Eip712Error::DuplicateField { ty: clip(name), field: clip(field) });
            }
            let parsed = parse_field_type(ty)
                .ok_or_else(|| Eip712Error::InvalidFieldType { ty: clip(name), field_type: clip(ty) })?;
            fields.push(Field { name: field, ty, parsed });
        }
        // JSON keys are unique, so no struct is defined twice.
        defs.insert(name, StructDef::new(name, fields));
    }
    for def in defs.values() {
        if let Some(s) = def.refs.iter().find(|s| !defs.contains_key(*s)) {
            return Err(Eip712Error::UndefinedType(clip(s)));
        }
    }
    Ok(defs)
}

/// `EIP712Domain` from the domain's keys, in canonical order.
fn infer_domain(domain: &Object) -> Result<StructDef<'static>, Eip712Error> {
    if let Some((key, _)) = domain.iter().find(|(k, _)| !CANONICAL_DOMAIN.iter().any(|(name, _, _)| name == k)) {
        return Err(Eip712Error::UnknownDomainField(clip(key)));
    }
    let fields = CANONICAL_DOMAIN
        .iter()
        .filter(|(name, _, _)| domain.get(name).is_some())
        .map(|&(name, ty, atomic)| Field {
            name,
            ty,
            parsed: FieldType { base: Base::Atomic(atomic), dims: Vec::new() },
        })
        .collect();
    Ok(StructDef::new(DOMAIN_TYPE, fields))
}

/// Walks data against validated definitions, caching type hashes.
struct Hasher<'d, 'a> {
    /// Definitions in name order, which is the order `encodeType` lists dependencies in
    /// (identifiers are ASCII, so byte order is what every other implementation uses).
    sorted: Vec<(&'a str, &'d StructDef<'a>)>,
    /// For each definition, the positions in `sorted` of the structs its members name, so
    /// dependency walks compare integers, not strings.
    refs: Vec<Vec<usize>>,
    type_hashes: Vec<Option<[u8; 32]>>,
}

impl<'d, 'a> Hasher<'d, 'a> {
    fn new(defs: &'d Defs<'a>) -> Result<Self, Eip712Error> {
        let sorted: Vec<(&'a str, &'d StructDef<'a>)> = defs.iter().map(|(name, def)| (*name, def)).collect();
        let mut refs = Vec::new();
        for (_, def) in &sorted {
            let positions = def.refs.iter().map(|r| position(&sorted, r)).collect::<Result<Vec<_>, _>>()?;
            refs.push(positions);
        }
        let type_hashes = sorted.iter().map(|_| None).collect();
        Ok(Self { sorted, refs, type_hashes })
    }

    /// `keccak256(encodeType(sorted[index]))`: the type itself, then every struct it reaches
    /// (through arrays and cycles) sorted by name.
    fn type_hash(&mut self, index: usize) -> [u8; 32] {
        if let Some(Some(hash)) = self.type_hashes.get(index) {
            return *hash;
        }
        let mut reached: Vec<bool> = self.sorted.iter().map(|_| false).collect();
        let mut pending = Vec::from([index]);
        while let Some(current) = pending.pop() {
            for &r in self.refs.get(current).into_iter().flatten() {
                if let Some(seen) = reached.get_mut(r)
                    && !*seen
                {
                    *seen = true;
                    pending.push(r);
                }
            }
        }
        let mut h = Keccak256::new();
        if let Some((_, def)) = self.sorted.get(index) {
            h.update(&def.fragment);
        }
        for (i, ((_, def), reached)) in self.sorted.iter().zip(&reached).enumerate() {
            if *reached && i != index {
                h.update(&def.fragment);
            }
        }
        let hash: [u8; 32] = h.finalize().into();
        if let Some(slot) = self.type_hashes.get_mut(index) {
            *slot = Some(hash);
        }
        hash
    }

    /// `hashStruct(name, value)`; `depth` is this struct's nesting level.
    fn hash_struct(
        &mut self,
        name: &'a str,
        value: &Value,
        field: &str,
        depth: usize,
    ) -> Result<[u8; 32], Eip712Error> {
        if depth > MAX_DATA_DEPTH {
            return Err(Eip712Error::TooDeep);
        }
        let obj = match value {
            Value::Object(o) => o,
            Value::Null => return Err(Eip712Error::NullValue(clip(field))),
            _ => {
                return Err(Eip712Error::WrongJsonType { field: clip(field), expected: "object" });
            }
        };
        let index = position(&self.sorted, name)?;
        let def = self.sorted.get(index).map(|(_, def)| *def).ok_or_else(|| Eip712Error::UndefinedType(clip(name)))?;
        // Extra members are checked before any hashing work is spent on the value.
        if let Some((extra, _)) = obj.iter().find(|(k, _)| !def.fields.iter().any(|f| f.name == *k)) {
            return Err(Eip712Error::UnknownField { ty: clip(name), field: clip(extra) });
        }
        let mut h = Keccak256::new();
        h.update(self.type_hash(index));
        for member in &def.fields {
            let v = obj
                .get(member.name)
                .ok_or_else(|| Eip712Error::MissingField { ty: clip(name), field: clip(member.name) })?;
            let word = self.encode_value(&member.parsed, member.parsed.dims.len(), v, member.name, depth)?;
            h.update(word);
        }
        Ok(h.finalize().into())
    }

    /// The 32-byte `encodeData` word for `value` of type `ty` restricted to its first `ndims`
    /// dimensions; `depth` is the enclosing struct's or array's level.
    fn encode_value(
        &mut self,
        ty: &FieldType<'a>,
        ndims: usize,
        value: &Value,
        field: &str,
        depth: usize,
    ) -> Result<[u8; 32], Eip712Error> {
        if matches!(value, Value::Null) {
            return Err(Eip712Error::NullValue(clip(field)));
        }
        let Some(inner) = ndims.checked_sub(1) else {
            return match ty.base {
                Base::Atomic(a) => encode_atomic(a, value, field),
                Base::Struct(s) => self.hash_struct(s, value, field, depth + 1),
            };
        };
        if depth + 1 > MAX_DATA_DEPTH {
            return Err(Eip712Error::TooDeep);
        }
        let items =
            value.as_array().ok_or_else(|| Eip712Error::WrongJsonType { field: clip(field), expected: "array" })?;
        // The declared length is only compared, never used to allocate.
        if let Some(Dim::Fixed(expected)) = ty.dims.get(inner)
            && items.len() != *expected
        {
            return Err(Eip712Error::ArrayLengthMismatch {
                field: clip(field),
                expected: *expected,
                actual: items.len(),
            });
        }
        let mut h = Keccak256::new();
        for item in items {
            h.update(self.encode_value(ty, inner, item, field, depth + 1)?);
        }
        Ok(h.finalize().into())
    }
}

/// Where `name` sits among the name-sorted definitions.
fn position(sorted: &[(&str, &StructDef<'_>)], name: &str) -> Result<usize, Eip712Error> {
    sorted.binary_search_by(|(n, _)| (*n).cmp(name)).map_err(|_| Eip712Error::UndefinedType(clip(name)))
}

fn string_value<'v>(value: &'v Value, field: &str) -> Result<&'v str, Eip712Error> {
    value.as_str().ok_or_else(|| Eip712Error::WrongJsonType { field: clip(field), expected: "string" })
}

fn encode_atomic(ty: Atomic, value: &Value, field: &str) -> Result<[u8; 32], Eip712Error> {
    let mut word = [0u8; 32];
    match ty {
        Atomic::Bool => {
            let b = value
                .as_bool()
                .ok_or_else(|| Eip712Error::WrongJsonType { field: clip(field), expected: "boolean" })?;
            if let Some(last) = word.last_mut() {
                *last = u8::from(b);
            }
        }
        Atomic::Address => {
            let addr = parse_address(string_value(value, field)?, field)?;
            for (dst, src) in word.iter_mut().skip(12).zip(addr) {
                *dst = src;
            }
        }
        Atomic::Uint(bits) => word = parse_integer(value, bits, false, field)?,
        Atomic::Int(bits) => word = parse_integer(value, bits, true, field)?,
        Atomic::FixedBytes(n) => {
            let bytes = parse_hex_bytes(string_value(value, field)?, field)?;
            if bytes.len() != n {
                return Err(Eip712Error::WrongBytesLength { field: clip(field), expected: n });
            }
            // bytesN is left-aligned, zero-padded on the right.
            for (dst, src) in word.iter_mut().zip(bytes) {
                *dst = src;
            }
        }
        Atomic::Bytes => {
            let bytes = parse_hex_bytes(string_value(value, field)?, field)?;
            word = Keccak256::digest(&bytes).into();
        }
        Atomic::String => word = Keccak256::digest(string_value(value, field)?).into(),
    }
    Ok(word)
}

/// `0x` followed by an even number of hex digits (either case); `0x` alone is empty bytes.
fn parse_hex_bytes(s: &str, field: &str) -> Result<Vec<u8>, Eip712Error> {
    s.strip_prefix("0x").and_then(|h| hex::decode(h).ok()).ok_or_else(|| Eip712Error::InvalidHex(clip(field)))
}

/// `0x` + 40 hex digits; all-lowercase or all-uppercase is unchecked, mixed case must be a
/// valid EIP-55 checksum.
fn parse_address(s: &str, field: &str) -> Result<[u8; 20], Eip712Error> {
    let invalid = || Eip712Error::InvalidAddress(clip(field));
    let digits = s.strip_prefix("0x").ok_or_else(invalid)?;
    let mut addr = [0u8; 20];
    if digits.len() != 40 || hex::decode_to_slice(digits, &mut addr).is_err() {
        return Err(invalid());
    }
    let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        let lower = digits.to_ascii_lowercase();
        let hash = Keccak256::digest(lower.as_bytes());
        let valid = digits.bytes().enumerate().all(|(i, b)| {
            let nibble = hash.get(i / 2).map_or(0, |h| if i % 2 == 0 { h >> 4 } else { h & 0x0f });
            !b.is_ascii_alphabetic() || (nibble >= 8) == b.is_ascii_uppercase()
        });
        if !valid {
            return Err(Eip712Error::BadAddressChecksum(clip(field)));
        }
    }
    Ok(addr)
}

/// A `uintN`/`intN` value as its 256-bit big-endian two's-complement word.
///
/// Accepted spellings: a JSON integer literal (`-` only for signed types), a decimal string
/// without leading zeros (`"-123"` for signed types), or `"0x"` + hex digits read as a
/// non-negative magnitude. Fractions, exponents, `+`, whitespace, `0X` and empty digits are
/// rejected; the value must fit in N bits.
fn parse_integer(value: &Value, bits: u16, signed: bool, field: &str) -> Result<[u8; 32], Eip712Error> {
    let invalid = || Eip712Error::InvalidInteger(clip(field));
    let out_of_range = || Eip712Error::IntegerOutOfRange(clip(field));
    let (negative, magnitude) = if let Some(literal) = value.as_number() {
        // The JSON grammar already excludes leading zeros and `+`; fractions and exponents
        // fail the digit check.
        let (negative, digits) = split_sign(literal);
        (negative, decimal_u256(digits).ok_or_else(invalid)?)
    } else if let Some(s) = value.as_str() {
        match s.strip_prefix("0x") {
            Some(hex_digits) => (false, hex_u256(hex_digits).ok_or_else(invalid)?),
            None => {
                let (negative, digits) = split_sign(s);
                // A leading zero could be read as octal elsewhere; "0" itself is fine.
                if digits.len() > 1 && digits.starts_with('0') {
                    return Err(invalid());
                }
                (negative, decimal_u256(digits).ok_or_else(invalid)?)
            }
        }
    } else {
        return Err(Eip712Error::WrongJsonType { field: clip(field), expected: "integer number or string" });
    };
    let magnitude = magnitude.ok_or_else(out_of_range)?;
    let negative = negative && magnitude.iter().any(|&b| b != 0);
    if negative && !signed {
        return Err(out_of_range());
    }
    let word = if negative { twos_complement(magnitude) } else { magnitude };
    // Bits from the sign bit (signed) or from bit N (unsigned) up must all equal the sign.
    let first = if signed { bits - 1 } else { bits };
    if !high_bits_equal(&word, first, negative) {
        return Err(out_of_range());
    }
    Ok(word)
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    }
}

/// Outer `None`: not a non-empty run of decimal digits. Inner `None`: at least 2^256.
fn decimal_u256(digits: &str) -> Option<Option<[u8; 32]>> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut word = [0u8; 32];
    for b in digits.bytes() {
        let mut carry = u16::from(b - b'0');
        for limb in word.iter_mut().rev() {
            let [lo, hi] = (u16::from(*limb) * 10 + carry).to_le_bytes();
            *limb = lo;
            carry = u16::from(hi);
        }
        if carry != 0 {
            return Some(None);
        }
    }
    Some(Some(word))
}

/// Outer `None`: not a non-empty run of hex digits. Inner `None`: at least 2^256.
fn hex_u256(digits: &str) -> Option<Option<[u8; 32]>> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 64 {
        return Some(None);
    }
    let mut word = [0u8; 32];
    for (i, c) in significant.chars().rev().enumerate() {
        let nibble = u8::try_from(c.to_digit(16)?).ok()?;
        let limb = word.get_mut(31 - i / 2)?;
        *limb |= if i % 2 == 0 { nibble } else { nibble << 4 };
    }
    Some(Some(word))
}

fn twos_complement(mut word: [u8; 32]) -> [u8; 32] {
    let mut carry = true;
    for limb in word.iter_mut().rev() {
        let (sum, overflow) = (!*limb).overflowing_add(u8::from(carry));
        *limb = sum;
        carry = overflow;
    }
    word
}

/// Whether bits `first..256` (bit 0 = least significant) are all `one`.
fn high_bits_equal(word: &[u8; 32], first: u16, one: bool) -> bool {
    (first..256).all(|bit| word.get(31 - usize::from(bit / 8)).is_some_and(|b| ((b >> (bit % 8)) & 1 == 1) == one))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use alloc::{format, vec};
    use hex_literal::hex;

    const MAIL_TYPES: &str = r#""Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],
        "Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]"#;
    const MAIL_MESSAGE: &str = r#"{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}"#;
    const MAIL_DOMAIN: &str = r#"{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"}"#;
    const DOMAIN_TYPE_JSON: &str = r#""EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}]"#;

    fn mail(explicit_domain: bool) -> String {
        let domain_type = if explicit_domain { format!("{DOMAIN_TYPE_JSON},") } else { String::new() };
        format!(
            r#"{{"types":{{{domain_type}{MAIL_TYPES}}},"primaryType":"Mail","domain":{MAIL_DOMAIN},"message":{MAIL_MESSAGE}}}"#
        )
    }

    /// A one-field document `{"v": <value>}` of type `ty`, with an empty domain.
    fn single(ty: &str, value: &str) -> Result<TypedDataHashes, Eip712Error> {
        hash_typed_data(&format!(
            r#"{{"types":{{"T":[{{"name":"v","type":"{ty}"}}]}},"primaryType":"T","domain":{{}},"message":{{"v":{value}}}}}"#
        ))
    }

    fn word(ty: &str, value: &str) -> Result<[u8; 32], Eip712Error> {
        let parsed = parse_field_type(ty).unwrap();
        let Base::Atomic(a) = parsed.base else { panic!("not atomic") };
        encode_atomic(a, &json::parse(value).unwrap(), "v")
    }

    #[test]
    fn eip712_spec_mail_example() {
        // Values from the EIP-712 specification's reference example.
        let h = hash_typed_data(&mail(true)).unwrap();
        assert_eq!(h.domain_separator, hex!("f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"));
        assert_eq!(h.primary_type_hash, hex!("c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"));
        assert_eq!(h.digest, hex!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"));
    }

    #[test]
    fn inferred_domain_matches_explicit_canonical_domain() {
        assert_eq!(hash_typed_data(&mail(false)).unwrap(), hash_typed_data(&mail(true)).unwrap());
    }

    #[test]
    fn inferred_domain_uses_canonical_order_not_key_order() {
        // keccak256("EIP712Domain(string name,uint256 chainId)") is not involved: inference
        // must produce "EIP712Domain(string name,string version,uint256 chainId,address
        // verifyingContract)" whatever order the keys come in.
        let reordered = mail(false).replace(
            MAIL_DOMAIN,
            r#"{"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC","chainId":1,"version":"1","name":"Ether Mail"}"#,
        );
        assert_eq!(
            hash_typed_data(&reordered).unwrap().digest,
            hex!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
        );
    }

    #[test]
    fn usdc_permit_domain_separator_inferred() {
        // USDC on mainnet: DOMAIN_SEPARATOR() returns this value on-chain.
        let doc = r#"{"types":{"Permit":[{"name":"owner","type":"address"},{"name":"spender","type":"address"},
            {"name":"value","type":"uint256"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"}]},
            "primaryType":"Permit",
            "domain":{"name":"USD Coin","version":"2","chainId":1,"verifyingContract":"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"},
            "message":{"owner":"0x0000000000000000000000000000000000000001","spender":"0x0000000000000000000000000000000000000002",
            "value":"1000000","nonce":0,"deadline":"0xffffffff"}}"#;
        assert_eq!(
            hash_typed_data(doc).unwrap().domain_separator,
            hex!("06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335")
        );
    }

    #[test]
    fn hand_computed_inferred_domain_with_salt() {
        // Independent derivation: encodeData by hand for
        // EIP712Domain(string name,uint256 chainId,bytes32 salt).
        let doc = r#"{"types":{"T":[]},"primaryType":"T","message":{},
            "domain":{"salt":"0x0101010101010101010101010101010101010101010101010101010101010101","chainId":5,"name":"X"}}"#;
        let mut enc = Vec::new();
        enc.extend_from_slice(&Keccak256::digest("EIP712Domain(string name,uint256 chainId,bytes32 salt)"));
        enc.extend_from_slice(&Keccak256::digest("X"));
        let mut five = [0u8; 32];
        five[31] = 5;
        enc.extend_from_slice(&five);
        enc.extend_from_slice(&[1u8; 32]);
        let h = hash_typed_data(doc).unwrap();
        assert_eq!(h.domain_separator, <[u8; 32]>::from(Keccak256::digest(&enc)));
        assert_eq!(h.primary_type_hash, <[u8; 32]>::from(Keccak256::digest(Keccak256::digest("T()"))));
    }

    #[test]
    fn empty_domain_infers_empty_struct() {
        let h = single("bool", "true").unwrap();
        assert_eq!(h.domain_separator, <[u8; 32]>::from(Keccak256::digest(Keccak256::digest("EIP712Domain()"))));
    }

    #[test]
    fn encode_type_sorts_and_handles_cycles_and_arrays() {
        let doc = r#"{"types":{
            "Zed":[{"name":"b","type":"Beta[2]"},{"name":"a","type":"Alpha[][]"},{"name":"z","type":"Zed[]"}],
            "Alpha":[{"name":"g","type":"Gamma"},{"name":"z","type":"Zed[]"}],
            "Beta":[{"name":"x","type":"uint8"}],
            "Gamma":[{"name":"a","type":"Alpha[]"}]},
            "primaryType":"Zed","domain":{},"message":{}}"#;
        let doc_json = json::parse(doc).unwrap();
        let types = doc_json.as_object().unwrap().get("types").unwrap();
        let defs = parse_types(types.as_object().unwrap()).unwrap();
        let mut hasher = Hasher::new(&defs).unwrap();
        let zed = position(&hasher.sorted, "Zed").unwrap();
        let gamma = position(&hasher.sorted, "Gamma").unwrap();
        let expected = "Zed(Beta[2] b,Alpha[][] a,Zed[] z)Alpha(Gamma g,Zed[] z)Beta(uint8 x)Gamma(Alpha[] a)";
        assert_eq!(hasher.type_hash(zed), <[u8; 32]>::from(Keccak256::digest(expected)));
        let expected = "Gamma(Alpha[] a)Alpha(Gamma g,Zed[] z)Beta(uint8 x)Zed(Beta[2] b,Alpha[][] a,Zed[] z)";
        assert_eq!(hasher.type_hash(gamma), <[u8; 32]>::from(Keccak256::digest(expected)));
    }

    #[test]
    fn field_type_grammar() {
        for ok in [
            "uint8",
            "uint256",
            "int8",
            "int256",
            "uint160",
            "bytes1",
            "bytes32",
            "bytes",
            "string",
            "bool",
            "address",
            "Foo",
            "Foo[]",
            "Foo[3]",
            "Foo[][2]",
            "uint8[4294967295]",
            "$_a1",
            "_",
            "uint256x",
            "intx",
            "bytesA",
        ] {
            assert!(parse_field_type(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "uint",
            "int",
            "uint0",
            "uint7",
            "uint264",
            "int257",
            "uint08",
            "bytes0",
            "bytes33",
            "bytes01",
            "Foo[0]",
            "Foo[01]",
            "Foo[ ]",
            "Foo[-1]",
            "Foo[",
            "Foo]",
            "Foo[]]",
            "Foo[[]]",
            "Foo[1]x",
            "Foo []",
            " Foo",
            "1Foo",
            "Fo-o",
            "Foo[3",
            "Foo[99999999999999999999999999]",
            "tuple(uint8)",
            "uint256 ",
            "string[]x",
        ] {
            assert!(parse_field_type(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_field_type("Foo[][2]").unwrap().dims, vec![Dim::Dynamic, Dim::Fixed(2)]);
    }

    #[test]
    fn integers_encode_as_twos_complement() {
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(word("uint8", "1").unwrap(), one);
        assert_eq!(word("uint8", "\"1\"").unwrap(), one);
        assert_eq!(word("uint8", "\"0x1\"").unwrap(), one);
        assert_eq!(word("uint8", "\"0x0001\"").unwrap(), one);
        assert_eq!(word("uint8", "\"0x01\"").unwrap(), one);
        assert_eq!(word("int8", "-1").unwrap(), [0xff; 32]);
        assert_eq!(word("int256", "\"-1\"").unwrap(), [0xff; 32]);
        assert_eq!(word("int8", "-0").unwrap(), [0; 32]);
        assert_eq!(word("uint8", "\"-0\"").unwrap(), [0; 32]);
        let mut min8 = [0xff; 32];
        min8[31] = 0x80;
        assert_eq!(word("int8", "-128").unwrap(), min8);
        assert_eq!(
            word("uint256", "\"0xFFffFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\"").unwrap(),
            [0xff; 32]
        );
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(word("uint256", max).unwrap(), [0xff; 32]);
        assert_eq!(word("uint256", &format!("\"{max}\"")).unwrap(), [0xff; 32]);
        let mut min256 = [0u8; 32];
        min256[0] = 0x80;
        let min = "-57896044618658097711785492504343953926634992332820282019728792003956564819968";
        assert_eq!(word("int256", min).unwrap(), min256);
        let mut max256 = [0xff; 32];
        max256[0] = 0x7f;
        assert_eq!(
            word("int256", "57896044618658097711785492504343953926634992332820282019728792003956564819967").unwrap(),
            max256
        );
        let mut v = [0u8; 32];
        v[30] = 0x30;
        v[31] = 0x39;
        assert_eq!(word("uint16", "12345").unwrap(), v);
        assert_eq!(word("int16", "\"0x3039\"").unwrap(), v);
    }

    #[test]
    fn integer_ranges() {
        let range = |ty: &str, v: &str| matches!(word(ty, v), Err(Eip712Error::IntegerOutOfRange(_)));
        assert!(word("uint8", "255").is_ok());
        assert!(range("uint8", "256"));
        assert!(range("uint8", "\"0x100\""));
        assert!(range("uint8", "-1"));
        assert!(range("uint256", "\"-1\""));
        assert!(word("int8", "127").is_ok());
        assert!(range("int8", "128"));
        assert!(range("int8", "\"0x80\""));
        assert!(word("int8", "-128").is_ok());
        assert!(range("int8", "-129"));
        assert!(range("uint256", "115792089237316195423570985008687907853269984665640564039457584007913129639936"));
        assert!(range("uint256", "\"0x10000000000000000000000000000000000000000000000000000000000000000\""));
        assert!(range("int256", "57896044618658097711785492504343953926634992332820282019728792003956564819968"));
        assert!(range("int256", "-57896044618658097711785492504343953926634992332820282019728792003956564819969"));
        assert!(range("int256", &format!("-{}", "9".repeat(100))));
        assert!(range("uint64", "18446744073709551616"));
        assert!(word("uint64", "18446744073709551615").is_ok());
        assert!(word("uint256", &format!("\"0x{}1\"", "0".repeat(1000))).is_ok());
    }

    #[test]
    fn integer_spellings_rejected() {
        for bad in [
            "1.0",
            "1e3",
            "1E0",
            "-1.5",
            "\"1.0\"",
            "\"1e3\"",
            "\"\"",
            "\"0x\"",
            "\"+1\"",
            "\" 1\"",
            "\"1 \"",
            "\"01\"",
            "\"-01\"",
            "\"-\"",
            "\"-0x1\"",
            "\"0X1\"",
            "\"0xg\"",
            "\"1_000\"",
            "\"١\"",
            "\"0x 1\"",
            "\"--1\"",
        ] {
            assert!(
                matches!(word("int64", bad), Err(Eip712Error::InvalidInteger(_))),
                "{bad}: {:?}",
                word("int64", bad)
            );
        }
        for wrong in ["true", "null", "[]", "{}"] {
            assert!(matches!(word("uint8", wrong), Err(Eip712Error::WrongJsonType { .. })));
        }
    }

    #[test]
    fn addresses() {
        let mut w = [0u8; 32];
        w[12..].copy_from_slice(&hex!("cd2a3d9f938e13cd947ec05abc7fe734df8dd826"));
        assert_eq!(word("address", "\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\"").unwrap(), w);
        assert_eq!(word("address", "\"0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826\"").unwrap(), w);
        assert_eq!(word("address", "\"0xCD2A3D9F938E13CD947EC05ABC7FE734DF8DD826\"").unwrap(), w);
        assert!(matches!(
            word("address", "\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD827\""),
            Err(Eip712Error::BadAddressChecksum(_))
        ));
        assert!(matches!(
            word("address", "\"0xcD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\""),
            Err(Eip712Error::BadAddressChecksum(_))
        ));
        for bad in [
            "\"0xcd2a3d9f938e13cd947ec05abc7fe734df8dd82\"",
            "\"0xcd2a3d9f938e13cd947ec05abc7fe734df8dd8266\"",
            "\"cd2a3d9f938e13cd947ec05abc7fe734df8dd826\"",
            "\"0Xcd2a3d9f938e13cd947ec05abc7fe734df8dd826\"",
            "\"0xgd2a3d9f938e13cd947ec05abc7fe734df8dd826\"",
            "\"0x\"",
            "\"\"",
        ] {
            assert!(matches!(word("address", bad), Err(Eip712Error::InvalidAddress(_))), "{bad}");
        }
        assert!(matches!(word("address", "1"), Err(Eip712Error::WrongJsonType { .. })));
    }

    #[test]
    fn bytes_values() {
        let mut w = [0u8; 32];
        w[..4].copy_from_slice(&hex!("deadbeef"));
        assert_eq!(word("bytes4", "\"0xDEADbeef\"").unwrap(), w);
        assert_eq!(word("bytes32", &format!("\"0x{}\"", "ab".repeat(32))).unwrap(), [0xab; 32]);
        assert!(matches!(word("bytes32", "\"0xdeadbeef\""), Err(Eip712Error::WrongBytesLength { expected: 32, .. })));
        assert!(matches!(word("bytes4", "\"0xdeadbeef00\""), Err(Eip712Error::WrongBytesLength { .. })));
        assert_eq!(word("bytes", "\"0x\"").unwrap(), <[u8; 32]>::from(Keccak256::digest([])));
        assert_eq!(word("bytes", "\"0xdeadbeef\"").unwrap(), <[u8; 32]>::from(Keccak256::digest(hex!("deadbeef"))));
        for bad in ["\"0xabc\"", "\"deadbeef\"", "\"0xzz\"", "\"0X00\"", "\"hello\""] {
            assert!(matches!(word("bytes", bad), Err(Eip712Error::InvalidHex(_))), "{bad}");
            assert!(matches!(word("bytes2", bad), Err(Eip712Error::InvalidHex(_))), "{bad}");
        }
        assert!(matches!(word("bytes", "[1,2]"), Err(Eip712Error::WrongJsonType { .. })));
    }

    #[test]
    fn bools_and_strings() {
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(word("bool", "true").unwrap(), one);
        assert_eq!(word("bool", "false").unwrap(), [0; 32]);
        for bad in ["\"true\"", "1", "0", "\"\"", "[]"] {
            assert!(matches!(word("bool", bad), Err(Eip712Error::WrongJsonType { .. })), "{bad}");
        }
        assert_eq!(word("string", "\"h\\u00e9\"").unwrap(), <[u8; 32]>::from(Keccak256::digest("hé")));
        assert!(matches!(word("string", "5"), Err(Eip712Error::WrongJsonType { .. })));
    }

    #[test]
    fn arrays() {
        let elem = |n: u8| {
            let mut w = [0u8; 32];
            w[31] = n;
            w
        };
        let mut cat = Vec::new();
        cat.extend_from_slice(&elem(1));
        cat.extend_from_slice(&elem(2));
        let h12 = <[u8; 32]>::from(Keccak256::digest(&cat));
        let empty = <[u8; 32]>::from(Keccak256::digest([]));
        let a = single("uint8[]", "[1,2]").unwrap();
        let b = single("uint8[2]", "[1,2]").unwrap();
        assert_ne!(a.primary_type_hash, b.primary_type_hash);
        let expect = |ty: &str, w: [u8; 32]| {
            let mut enc = Vec::new();
            enc.extend_from_slice(&Keccak256::digest(format!("T({ty} v)")));
            enc.extend_from_slice(&w);
            <[u8; 32]>::from(Keccak256::digest(&enc))
        };
        assert_eq!(a.primary_type_hash, expect("uint8[]", h12));
        assert_eq!(b.primary_type_hash, expect("uint8[2]", h12));
        assert_eq!(single("uint8[]", "[]").unwrap().primary_type_hash, expect("uint8[]", empty));
        let nested = <[u8; 32]>::from(Keccak256::digest([h12, empty].concat()));
        assert_eq!(single("uint8[][2]", "[[1,2],[]]").unwrap().primary_type_hash, expect("uint8[][2]", nested));
        assert!(matches!(
            single("uint8[][2]", "[[1,2]]"),
            Err(Eip712Error::ArrayLengthMismatch { expected: 2, actual: 1, .. })
        ));
        assert!(matches!(
            single("uint8[2][]", "[[1,2],[1]]"),
            Err(Eip712Error::ArrayLengthMismatch { expected: 2, actual: 1, .. })
        ));
        assert!(matches!(
            single("uint8[4294967295]", "[1]"),
            Err(Eip712Error::ArrayLengthMismatch { expected: 4_294_967_295, .. })
        ));
        assert!(matches!(single("uint8[]", "1"), Err(Eip712Error::WrongJsonType { expected: "array", .. })));
        assert!(matches!(single("uint8[]", "[1,null]"), Err(Eip712Error::NullValue(_))));
    }

    #[test]
    fn data_depth_is_limited() {
        // Nested arrays: 1 (message) + array levels.
        let ok_dims = MAX_DATA_DEPTH - 1;
        let ty = format!("uint8{}", "[]".repeat(ok_dims));
        let value = format!("{}1{}", "[".repeat(ok_dims), "]".repeat(ok_dims));
        assert!(single(&ty, &value).is_ok());
        let ty = format!("uint8{}", "[]".repeat(ok_dims + 1));
        let value = format!("{}1{}", "[".repeat(ok_dims + 1), "]".repeat(ok_dims + 1));
        assert_eq!(single(&ty, &value), Err(Eip712Error::TooDeep));
        // Self-referential struct nested past the limit.
        // Self-referential struct: after k wraps the innermost (empty) array is at 2k + 2.
        let nest = |k: usize| {
            let mut msg = String::from(r#"{"c":[]}"#);
            for _ in 0..k {
                msg = format!(r#"{{"c":[{msg}]}}"#);
            }
            msg
        };
        let doc = |msg: &str| {
            format!(
                r#"{{"types":{{"N":[{{"name":"c","type":"N[]"}}]}},"primaryType":"N","domain":{{}},"message":{msg}}}"#
            )
        };
        assert!(hash_typed_data(&doc(&nest(MAX_DATA_DEPTH / 2 - 1))).is_ok());
        assert_eq!(hash_typed_data(&doc(&nest(MAX_DATA_DEPTH / 2))), Err(Eip712Error::TooDeep));
        assert!(hash_typed_data(&doc(r#"{"c":[{"c":[]},{"c":[{"c":[]}]}]}"#)).is_ok());
    }

    #[test]
    fn hostile_inputs_do_not_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(hash_typed_data(&deep), Err(Eip712Error::InvalidJson(_))));
        let many_dims = format!("uint8{}", "[]".repeat(10_000));
        assert!(single(&many_dims, "[]").is_ok());
        assert!(matches!(single(&many_dims, "1"), Err(Eip712Error::WrongJsonType { .. })));
    }

    #[test]
    fn error_messages_are_clipped() {
        let long = "A".repeat(10_000);
        let err =
            hash_typed_data(&format!(r#"{{"types":{{"T":[]}},"primaryType":"{long}","domain":{{}},"message":{{}}}}"#))
                .unwrap_err();
        assert!(err.to_string().len() < 120, "{err}");
        assert!(matches!(err, Eip712Error::UndefinedPrimaryType(_)));
    }

    #[test]
    fn structural_rejections() {
        let base = mail(true);
        type Check = fn(&Eip712Error) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("\"primaryType\":\"Mail\",", "", |e| matches!(e, Eip712Error::MissingTopLevelKey("primaryType"))),
            ("\"primaryType\":\"Mail\"", "\"primaryType\":\"Mail\",\"extra\":1", |e| {
                matches!(e, Eip712Error::UnknownTopLevelKey(_))
            }),
            ("\"primaryType\":\"Mail\"", "\"primaryType\":\"Nope\"", |e| {
                matches!(e, Eip712Error::UndefinedPrimaryType(_))
            }),
            ("\"primaryType\":\"Mail\"", "\"primaryType\":\"EIP712Domain\"", |e| {
                *e == Eip712Error::PrimaryTypeIsDomain
            }),
            ("\"primaryType\":\"Mail\"", "\"primaryType\":1", |e| {
                matches!(e, Eip712Error::WrongTopLevelType { key: "primaryType", .. })
            }),
            ("\"contents\":\"Hello, Bob!\"", "\"contents\":null", |e| matches!(e, Eip712Error::NullValue(_))),
            (",\"contents\":\"Hello, Bob!\"", "", |e| matches!(e, Eip712Error::MissingField { .. })),
            ("\"contents\":\"Hello, Bob!\"", "\"contents\":\"Hello, Bob!\",\"cc\":\"x\"", |e| {
                matches!(e, Eip712Error::UnknownField { .. })
            }),
            ("\"chainId\":1", "\"chainId\":1,\"salt\":\"0x00\"", |e| matches!(e, Eip712Error::UnknownDomainField(_))),
            ("\"type\":\"Person\"}", "\"type\":\"Human\"}", |e| matches!(e, Eip712Error::UndefinedType(_))),
            ("\"Person\":[", "\"uint256\":[],\"Person\":[", |e| matches!(e, Eip712Error::ReservedTypeName(_))),
            ("\"Person\":[", "\"Per son\":[],\"Person\":[", |e| matches!(e, Eip712Error::InvalidTypeName(_))),
            ("\"name\":\"contents\"", "\"name\":\"to\"", |e| matches!(e, Eip712Error::DuplicateField { .. })),
            ("\"name\":\"contents\"", "\"name\":\"con tents\"", |e| matches!(e, Eip712Error::InvalidFieldName { .. })),
            ("\"type\":\"address\"}", "\"type\":\"uint\"}", |e| matches!(e, Eip712Error::InvalidFieldType { .. })),
            ("\"type\":\"address\"}", "\"type\":\"address\",\"x\":1}", |e| {
                matches!(e, Eip712Error::MalformedTypeDefinition(_))
            }),
            ("\"name\":\"Bob\"", "\"name\":\"Bob\",\"name\":\"Eve\"", |e| matches!(e, Eip712Error::InvalidJson(_))),
        ];
        for (from, to, check) in cases {
            assert!(base.contains(from), "{from}");
            let doc = base.replacen(from, to, 1);
            let err = hash_typed_data(&doc).unwrap_err();
            assert!(check(&err), "{from} -> {to}: {err:?}");
        }
        assert_eq!(hash_typed_data("[]"), Err(Eip712Error::NotAnObject));
        // A message type referring to EIP712Domain needs it defined, even though the domain
        // type itself can be inferred.
        let doc =
            r#"{"types":{"T":[{"name":"d","type":"EIP712Domain"}]},"primaryType":"T","domain":{},"message":{"d":{}}}"#;
        assert!(matches!(hash_typed_data(doc), Err(Eip712Error::UndefinedType(_))));
    }

    #[test]
    fn clip_respects_char_boundaries() {
        assert_eq!(clip("abc"), "abc");
        let long = "é".repeat(100);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip(&"x".repeat(64)), "x".repeat(64));
    }

    #[test]
    fn reserved_names() {
        for r in [
            "uint", "int", "bytes", "uint7", "bytes0", "bytes33", "int0", "uint256", "address", "bool", "string",
            "uint0008",
        ] {
            assert!(is_reserved(r), "{r}");
        }
        for ok in ["Uint", "uintx", "integer", "bytesX", "Address", "EIP712Domain", "Person"] {
            assert!(!is_reserved(ok), "{ok}");
        }
        assert!(!is_identifier(""));
        assert!(!is_identifier("1a"));
        assert!(is_identifier("$a"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier("é"));
    }
}
