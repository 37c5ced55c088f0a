//! KMS's `CiphertextForRecipient`: a CMS `EnvelopedData` (RFC 5652) addressed to the one-time
//! RSA key whose public half was in our attestation document.
//!
//! KMS encodes it in BER with indefinite lengths (which DER parsers refuse), and always the
//! same way: one `KeyTransRecipientInfo` with RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label)
//! wrapping a content key, and the content (the data key) in AES-256-CBC with PKCS #7
//! padding. This reads exactly that shape — anything else is an error — with a small BER
//! reader (definite and indefinite lengths, constructed strings, bounded depth).
//!
//! There is no integrity here (CBC, no MAC): what authenticates the answer as KMS's is the TLS
//! channel it arrived on, and a wrong data key would fail the sealed blob's AEAD anyway.
//!
//! The RSA key is single-use: one attestation document, one KMS answer, one decryption, then
//! dropped. That is why the `rsa` crate's non-constant-time arithmetic (RUSTSEC-2023-0071, a
//! timing oracle over many decryptions) gives an attacker nothing to accumulate; blinding is
//! on as well.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use std::vec::Vec;

use aes::Aes256;
use aes::cipher::{BlockCipherDecrypt as _, KeyInit as _};
use rsa::{Oaep, RsaPrivateKey};
use zeroize::{Zeroize as _, Zeroizing};

/// Why a `CiphertextForRecipient` did not open. Never carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// Not well-formed BER, or not the structure KMS sends.
    #[error("malformed CMS EnvelopedData: {0}")]
    Malformed(&'static str),
    /// A well-formed structure with an algorithm KMS does not use for recipients.
    #[error("unexpected CMS algorithm: {0}")]
    Unsupported(&'static str),
    /// RSA-OAEP did not decrypt (not for our key, or altered).
    #[error("the content key does not decrypt with this enclave's one-time key")]
    KeyTransport,
    /// AES-256-CBC padding is wrong (altered ciphertext).
    #[error("the content does not decrypt")]
    Content,
}

/// Nesting deeper than this is not KMS's structure (its deepest element, the MGF1 hash OID,
/// is at depth 10).
const MAX_DEPTH: usize = 12;

// DER encodings of the object identifiers involved (contents octets only).
/// 1.2.840.113549.1.7.3 envelopedData
const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// 1.2.840.113549.1.7.1 data
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// 1.2.840.113549.1.1.7 rsaesOaep
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
/// 1.2.840.113549.1.1.8 mgf1
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
/// 2.16.840.1.101.3.4.2.1 sha256
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// 2.16.840.1.101.3.4.1.42 aes256-CBC
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OCTET_STRING_CONSTRUCTED: u8 = 0x24;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
const CONTEXT_1_CONSTRUCTED: u8 = 0xa1;
const CONTEXT_2_CONSTRUCTED: u8 = 0xa2;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// One BER element: its tag and its contents (for an indefinite length, the children without
/// the end-of-contents octets).
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
}

/// Reads the elements of a contents slice, one after another.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    const fn new(input: &'a [u8], depth: usize) -> Self {
        Self { rest: input, depth }
    }

    const fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, any tag.
    fn any(&mut self) -> Result<Element<'a>, CmsError> {
        if self.depth > MAX_DEPTH {
            return Err(CmsError::Malformed("nested too deeply"));
        }
        let (&tag, after_tag) = self.rest.split_first().ok_or(CmsError::Malformed("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(CmsError::Malformed("multi-byte tag"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(CmsError::Malformed("truncated"))?;
        let length = match first {
            0x80 => None,
            n if n < 0x80 => Some(usize::from(n)),
            n => {
                let count = usize::from(n & 0x7f);
                if count > 4 {
                    return Err(CmsError::Malformed("length too large"));
                }
                let bytes = after_len.get(..count).ok_or(CmsError::Malformed("truncated"))?;
                after_len = after_len.get(count..).unwrap_or_default();
                Some(bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
            }
        };
        match length {
            Some(len) => {
                let contents = after_len.get(..len).ok_or(CmsError::Malformed("truncated"))?;
                self.rest = after_len.get(len..).unwrap_or_default();
                Ok(Element { tag, contents })
            }
            None => {
                if tag & 0x20 == 0 {
                    return Err(CmsError::Malformed("indefinite length on a primitive element"));
                }
                // Walk the children to find the end-of-contents octets.
                let mut children = Reader::new(after_len, self.depth + 1);
                loop {
                    if children.rest.starts_with(&[0, 0]) {
                        let used = after_len.len() - children.rest.len();
                        self.rest = children.rest.get(2..).unwrap_or_default();
                        return Ok(Element { tag, contents: after_len.get(..used).unwrap_or_default() });
                    }
                    children.any()?;
                }
            }
        }
    }

    /// The next element, which must have `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<Element<'a>, CmsError> {
        let element = self.any()?;
        if element.tag == tag { Ok(element) } else { Err(CmsError::Malformed(what)) }
    }

    /// The next element if it has `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<Element<'a>>, CmsError> {
        if self.rest.first() == Some(&tag) { self.any().map(Some) } else { Ok(None) }
    }

    /// Reads the contents of `element` as a sequence of elements.
    const fn inside(&self, element: Element<'a>) -> Self {
        Self::new(element.contents, self.depth + 1)
    }

    /// The next element must be the OID `oid`.
    fn expect_oid(&mut self, oid: &[u8], what: &'static str) -> Result<(), CmsError> {
        let found = self.expect(OID, "expected an object identifier")?;
        if found.contents == oid { Ok(()) } else { Err(CmsError::Unsupported(what)) }
    }

    /// An OCTET STRING's bytes, primitive or constructed (BER lets a sender cut it into
    /// pieces). `constructed_tag` is the constructed form of the same tag.
    fn octets(&self, element: Element<'a>, constructed_tag: u8) -> Result<Vec<u8>, CmsError> {
        if element.tag == constructed_tag {
            let mut parts = self.inside(element);
            let mut out = Vec::new();
            while !parts.is_empty() {
                let part = parts.any()?;
                match part.tag {
                    OCTET_STRING => out.extend_from_slice(part.contents),
                    OCTET_STRING_CONSTRUCTED => out.extend(parts.octets(part, OCTET_STRING_CONSTRUCTED)?),
                    _ => return Err(CmsError::Malformed("expected an OCTET STRING segment")),
                }
            }
            Ok(out)
        } else {
            Ok(element.contents.to_vec())
        }
    }
}

/// The parts of an `EnvelopedData` we use.
struct Envelope {
    encrypted_key: Vec<u8>,
    iv: [u8; 16],
    encrypted_content: Vec<u8>,
}

/// Decrypts a `CiphertextForRecipient` with the one-time key: the data key inside.
///
/// # Errors
/// [`CmsError`]: malformed, another algorithm, not for this key, or altered.
pub fn open(ber: &[u8], key: &RsaPrivateKey) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let envelope = parse(ber)?;
    let mut rng = rsa::rand_core::OsRng;
    let content_key = Zeroizing::new(
        key.decrypt_blinded(&mut rng, Oaep::new::<sha2_010::Sha256>(), &envelope.encrypted_key)
            .map_err(|_| CmsError::KeyTransport)?,
    );
    let content_key: &[u8; 32] =
        content_key.as_slice().try_into().map_err(|_| CmsError::Unsupported("content key is not 256 bits"))?;
    decrypt_cbc(content_key, &envelope.iv, &envelope.encrypted_content)
}

fn parse(ber: &[u8]) -> Result<Envelope, CmsError> {
    let mut top = Reader::new(ber, 0);
    let content_info = top.expect(SEQUENCE, "expected ContentInfo")?;
    if !top.is_empty() {
        return Err(CmsError::Malformed("trailing bytes"));
    }
    let mut ci = top.inside(content_info);
    ci.expect_oid(OID_ENVELOPED_DATA, "content type is not envelopedData")?;
    let explicit = ci.expect(CONTEXT_0_CONSTRUCTED, "expected [0] content")?;
    let mut wrapper = ci.inside(explicit);
    let enveloped = wrapper.expect(SEQUENCE, "expected EnvelopedData")?;
    let mut ed = wrapper.inside(enveloped);
    ed.expect(INTEGER, "expected EnvelopedData version")?;
    if ed.optional(CONTEXT_0_CONSTRUCTED)?.is_some() {
        return Err(CmsError::Unsupported("originatorInfo"));
    }

    let recipients = ed.expect(SET, "expected recipientInfos")?;
    let mut ris = ed.inside(recipients);
    let ktri = ris.expect(SEQUENCE, "expected a KeyTransRecipientInfo")?;
    if !ris.is_empty() {
        return Err(CmsError::Unsupported("more than one recipient"));
    }
    let mut kt = ris.inside(ktri);
    kt.expect(INTEGER, "expected KeyTransRecipientInfo version")?;
    // The recipient identifier (KMS: subjectKeyIdentifier) names our key; there is only one.
    kt.any()?;
    let algorithm = kt.expect(SEQUENCE, "expected keyEncryptionAlgorithm")?;
    check_oaep_sha256(kt.inside(algorithm))?;
    let encrypted_key = kt.any()?;
    if encrypted_key.tag != OCTET_STRING && encrypted_key.tag != OCTET_STRING_CONSTRUCTED {
        return Err(CmsError::Malformed("expected encryptedKey"));
    }
    let encrypted_key = kt.octets(encrypted_key, OCTET_STRING_CONSTRUCTED)?;

    let eci = ed.expect(SEQUENCE, "expected EncryptedContentInfo")?;
    let mut ec = ed.inside(eci);
    ec.expect_oid(OID_DATA, "encrypted content type is not data")?;
    let content_algorithm = ec.expect(SEQUENCE, "expected contentEncryptionAlgorithm")?;
    let mut ca = ec.inside(content_algorithm);
    ca.expect_oid(OID_AES256_CBC, "content cipher is not AES-256-CBC")?;
    let iv = ca.expect(OCTET_STRING, "expected the CBC IV")?;
    let iv: [u8; 16] = iv.contents.try_into().map_err(|_| CmsError::Malformed("CBC IV is not 16 bytes"))?;
    let content = ec.any()?;
    if content.tag != CONTEXT_0_PRIMITIVE && content.tag != CONTEXT_0_CONSTRUCTED {
        return Err(CmsError::Malformed("expected [0] encryptedContent"));
    }
    let encrypted_content = ec.octets(content, CONTEXT_0_CONSTRUCTED)?;
    Ok(Envelope { encrypted_key, iv, encrypted_content })
}

/// `RSAES-OAEP-params` must say SHA-256, MGF1 with SHA-256, and the default (empty) label:
/// OAEP's defaults are SHA-1, which KMS never uses.
fn check_oaep_sha256(mut algorithm: Reader<'_>) -> Result<(), CmsError> {
    algorithm.expect_oid(OID_RSAES_OAEP, "key transport is not RSAES-OAEP")?;
    let params = algorithm.expect(SEQUENCE, "expected RSAES-OAEP parameters")?;
    let mut p = algorithm.inside(params);
    let hash = p.optional(CONTEXT_0_CONSTRUCTED)?.ok_or(CmsError::Unsupported("OAEP hash is SHA-1"))?;
    let mut h = p.inside(hash);
    let hash_alg = h.expect(SEQUENCE, "expected the OAEP hash algorithm")?;
    digest_is_sha256(h.inside(hash_alg))?;
    let mgf = p.optional(CONTEXT_1_CONSTRUCTED)?.ok_or(CmsError::Unsupported("OAEP MGF1 hash is SHA-1"))?;
    let mut m = p.inside(mgf);
    let mgf_alg = m.expect(SEQUENCE, "expected the OAEP mask generation function")?;
    let mut ma = m.inside(mgf_alg);
    ma.expect_oid(OID_MGF1, "OAEP mask generation is not MGF1")?;
    let mgf_hash = ma.expect(SEQUENCE, "expected the MGF1 hash")?;
    digest_is_sha256(ma.inside(mgf_hash))?;
    if p.optional(CONTEXT_2_CONSTRUCTED)?.is_some() {
        return Err(CmsError::Unsupported("OAEP label"));
    }
    if p.is_empty() { Ok(()) } else { Err(CmsError::Malformed("trailing OAEP parameters")) }
}

/// `AlgorithmIdentifier { sha256, NULL or absent }`.
fn digest_is_sha256(mut alg: Reader<'_>) -> Result<(), CmsError> {
    alg.expect_oid(OID_SHA256, "OAEP hash is not SHA-256")?;
    if let Some(null) = alg.optional(NULL)?
        && !null.contents.is_empty()
    {
        return Err(CmsError::Malformed("non-empty NULL"));
    }
    if alg.is_empty() { Ok(()) } else { Err(CmsError::Malformed("trailing hash parameters")) }
}

/// AES-256-CBC decryption with PKCS #7 padding removed.
fn decrypt_cbc(key: &[u8; 32], iv: &[u8; 16], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(CmsError::Malformed("content is not whole AES blocks"));
    }
    let cipher = Aes256::new(key.into());
    let mut out = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    let mut previous = *iv;
    for chunk in ciphertext.chunks_exact(16) {
        let mut block = aes::Block::try_from(chunk).map_err(|_| CmsError::Malformed("content block"))?;
        cipher.decrypt_block(&mut block);
        out.extend(block.iter().zip(previous).map(|(b, p)| b ^ p));
        block.as_mut_slice().zeroize();
        previous.copy_from_slice(chunk);
    }
    let pad = usize::from(*out.last().ok_or(CmsError::Content)?);
    if pad == 0 || pad > 16 || out.iter().rev().take(pad).any(|b| usize::from(*b) != pad) {
        return Err(CmsError::Content);
    }
    let keep = out.len() - pad;
    out.truncate(keep);
    Ok(out)
}

/// Test support: a `CiphertextForRecipient` the way KMS encodes one (BER, indefinite
/// lengths, subjectKeyIdentifier, NULL hash parameters), for the mock KMS of the tests.
#[doc(hidden)]
pub mod testing {
    use std::vec::Vec;

    use aes::Aes256;
    use aes::cipher::{BlockCipherEncrypt as _, KeyInit as _};
    use rsa::{Oaep, RsaPublicKey};

    use super::{
        OCTET_STRING, OID, OID_AES256_CBC, OID_DATA, OID_ENVELOPED_DATA, OID_MGF1, OID_RSAES_OAEP, OID_SHA256,
    };

    fn definite(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = std::vec![tag];
        let len = contents.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap_or_default());
        } else {
            let bytes = u32::try_from(len).unwrap_or_default().to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | u8::try_from(4 - skip).unwrap_or_default());
            out.extend_from_slice(bytes.get(skip..).unwrap_or_default());
        }
        out.extend_from_slice(contents);
        out
    }

    fn indefinite(tag: u8, children: &[&[u8]]) -> Vec<u8> {
        let mut out = std::vec![tag, 0x80];
        for child in children {
            out.extend_from_slice(child);
        }
        out.extend_from_slice(&[0, 0]);
        out
    }

    fn sha256_alg() -> Vec<u8> {
        definite(0x30, &[definite(OID, OID_SHA256), std::vec![0x05, 0x00]].concat())
    }

    /// Envelopes `plaintext` for `recipient` as KMS does. `iv` and `content_key` come from
    /// the caller (a test's randomness).
    ///
    /// # Errors
    /// RSA encryption failed (a key below 2048 bits would be refused by KMS anyway).
    pub fn envelope(
        recipient: &RsaPublicKey,
        content_key: &[u8; 32],
        iv: &[u8; 16],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, rsa::Error> {
        let mut rng = rsa::rand_core::OsRng;
        let encrypted_key = recipient.encrypt(&mut rng, Oaep::new::<sha2_010::Sha256>(), content_key)?;
        let oaep_params = definite(
            0x30,
            &[
                definite(0xa0, &sha256_alg()),
                definite(0xa1, &definite(0x30, &[definite(OID, OID_MGF1), sha256_alg()].concat())),
            ]
            .concat(),
        );
        let ktri = definite(
            0x30,
            &[
                std::vec![0x02, 0x01, 0x02],
                definite(0x80, &[0x5a; 32]),
                definite(0x30, &[definite(OID, OID_RSAES_OAEP), oaep_params].concat()),
                definite(OCTET_STRING, &encrypted_key),
            ]
            .concat(),
        );
        let cipher = Aes256::new(content_key.into());
        let pad = 16 - plaintext.len() % 16;
        let mut padded = plaintext.to_vec();
        padded.resize(plaintext.len() + pad, u8::try_from(pad).unwrap_or_default());
        let mut previous = *iv;
        let mut ciphertext = Vec::with_capacity(padded.len());
        for chunk in padded.chunks_exact(16) {
            let mut block = aes::Block::default();
            for (b, (p, c)) in block.iter_mut().zip(chunk.iter().zip(previous)) {
                *b = p ^ c;
            }
            cipher.encrypt_block(&mut block);
            previous.copy_from_slice(&block);
            ciphertext.extend_from_slice(&block);
        }
        let content_alg = definite(0x30, &[definite(OID, OID_AES256_CBC), definite(OCTET_STRING, iv)].concat());
        let eci = indefinite(
            0x30,
            &[&definite(OID, OID_DATA), &content_alg, &indefinite(0xa0, &[&definite(OCTET_STRING, &ciphertext)])],
        );
        let enveloped = indefinite(0x30, &[&[0x02, 0x01, 0x02], &definite(0x31, &ktri), &eci]);
        Ok(indefinite(0x30, &[&definite(OID, OID_ENVELOPED_DATA), &indefinite(0xa0, &[&enveloped])]))
    }
}

#[cfg(test)]
mod tests {
    use rsa::RsaPublicKey;
    use rsa::pkcs8::DecodePrivateKey as _;

    use super::*;

    fn fixture_key() -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_der(include_bytes!("../../../testdata/kms/cms-recipient.p8.der")).unwrap()
    }

    /// OpenSSL's `cms -encrypt -stream` (BER, indefinite lengths, issuerAndSerialNumber, no
    /// NULL hash parameters): see `testdata/kms/make-cms-fixture.sh`.
    #[test]
    fn opens_openssl_envelope() {
        let plaintext = open(include_bytes!("../../../testdata/kms/cms-openssl.ber"), &fixture_key()).unwrap();
        assert_eq!(plaintext.as_slice(), include_bytes!("../../../testdata/kms/cms-plaintext.bin"));
    }

    /// The shape of a real KMS `CiphertextForRecipient` (published in RustCrypto/formats#779;
    /// its key is not ours, so only the structure is checked).
    #[test]
    fn parses_a_real_kms_envelope() {
        use base64ct::{Base64UrlUnpadded, Encoding as _};
        let ber = Base64UrlUnpadded::decode_vec(
            include_str!("../../../testdata/kms/kms-ciphertext-for-recipient.b64url").trim(),
        )
        .unwrap();
        let envelope = parse(&ber).unwrap();
        assert_eq!(envelope.encrypted_key.len(), 256);
        assert_eq!(envelope.encrypted_content.len(), 16);
        assert_eq!(open(&ber, &fixture_key()), Err(CmsError::KeyTransport));
    }

    #[test]
    fn round_trip_with_the_kms_shape_and_every_alteration_refused() {
        let key = fixture_key();
        let public = RsaPublicKey::from(&key);
        let data_key = [7u8; 32];
        let ber = testing::envelope(&public, &[9; 32], &[3; 16], &data_key).unwrap();
        assert_eq!(open(&ber, &key).unwrap().as_slice(), &data_key);
        let key_at = ber.windows(256).position(|w| w == &parse(&ber).unwrap().encrypted_key[..]).unwrap();
        for i in 0..ber.len() {
            let mut bad = ber.clone();
            bad[i] ^= 0x01;
            match open(&bad, &key) {
                // CBC has no integrity: a flip in the IV or content changes the data key (the
                // TLS channel authenticates KMS's answer, and a wrong key fails the blob's AEAD),
                // and a flip in an ignored field (version, recipient identifier) changes nothing.
                Ok(p) => assert_eq!(p.len(), 32, "byte {i}"),
                Err(e) if (key_at..key_at + 256).contains(&i) => assert_eq!(e, CmsError::KeyTransport, "byte {i}"),
                Err(_) => {}
            }
        }
        for n in 0..ber.len() {
            assert!(open(&ber[..n], &key).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion_trouble() {
        let mut ber = Vec::new();
        for _ in 0..10_000 {
            ber.extend_from_slice(&[0x30, 0x80]);
        }
        assert_eq!(parse(&ber).err(), Some(CmsError::Malformed("nested too deeply")));
    }

    #[test]
    fn bad_padding_is_refused() {
        use aes::cipher::BlockCipherEncrypt as _;
        let key = [1u8; 32];
        assert_eq!(
            decrypt_cbc(&key, &[0; 16], &[0; 15]).err(),
            Some(CmsError::Malformed("content is not whole AES blocks"))
        );
        // A block that decrypts to all zeros: padding byte 0 is never valid.
        let mut block = aes::Block::default();
        Aes256::new(&key.into()).encrypt_block(&mut block);
        assert_eq!(decrypt_cbc(&key, &[0; 16], &block).err(), Some(CmsError::Content));
        // ... and to 15 zeros then 0x02: the byte before the last is not 0x02.
        let mut block = aes::Block::default();
        block[15] = 2;
        Aes256::new(&key.into()).encrypt_block(&mut block);
        assert_eq!(decrypt_cbc(&key, &[0; 16], &block).err(), Some(CmsError::Content));
    }
}
