//! Golden byte vectors: every `Request` and `Response` variant, inside an `Envelope`, frozen as
//! the exact frame `encode_message` produces. Both directions are checked: encoding the value
//! gives exactly the bytes, decoding the bytes gives exactly the value.
//!
//! These bytes are the wire contract (SPEC §4: variants are append-only). If a test here fails,
//! the change broke compatibility with every deployed peer: fix the change, never the vector.
//! A new variant gets a new row; `print_golden_frames` (ignored) prints the literal for it.
#![allow(clippy::panic, reason = "test helpers outside #[test] fns: a failed expectation is a test failure")]

use hex_literal::hex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sigil_protocol::custody::{BlobHeader, offer_binding};
use sigil_protocol::frame::{self, FrameError, HEADER_LEN};
use sigil_protocol::{
    AddressInfo, AttestRequest, Attestation, BrokerToken, Bytes, CustodyStatus, DecodeError, DeriveAddress, DeriveKek,
    DevCall, DevResponse, DevRoute, Eip191Signature, Eip712Signature, Envelope, Epoch, EpochState, ErrorCode, Evidence,
    Hello, HelloAck, KEK_AAD_LABEL, OmniAccount, PROTOCOL_VERSION, PeerExport, PeerOffer, Platform, ProvisionK3,
    Request, Response, SealedK3, SealedKek, SealedRecord, SignEip191, SignEip712, Status, Subject, UnsealK3, WireError,
    decode_message, encode_message,
};

// ---- fixed, realistic field values ----------------------------------------------------------

/// `SHA256("agentkeys" || "email" || "alice@example.com")`.
const OMNI: [u8; 32] = hex!("caf843f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9d930ba6c158824");

/// A compact ES256 broker JWT shaped like SPEC §2's (header `{"alg":"ES256","kid":...}`, the
/// `agentkeys` claim block); the signature part is fixed filler.
const JWT: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImFrLXNlc3Npb24tMTc2NzIyNTYwMCJ9",
    ".eyJpc3MiOiJodHRwczovL2Jyb2tlci5hZ2VudGtleXMuZXhhbXBsZSIsInN1YiI6ImFnZW50a2V5czp1c2VyOmNh",
    "Zjg0M2Y3ZjZiMTdjMTVmYjQzZThmNmIyYWUyZTg1MDA0NTQ5N2JhN2ZiNmE1OGI5ZDkzMGJhNmMxNTg4MjQiLCJh",
    "dWQiOiJhZ2VudGtleXM6YnJva2VyIiwiZXhwIjoxNzY3MjI5MjAwLCJpYXQiOjE3NjcyMjU2MDAsImp0aSI6Ijdm",
    "M2MyYTllLTViMWQtNGM4ZS05YTZmLTJkNGI4ZTFjMGYzNyIsImFnZW50a2V5cyI6eyJvbW5pX2FjY291bnQiOiJj",
    "YWY4NDNmN2Y2YjE3YzE1ZmI0M2U4ZjZiMmFlMmU4NTAwNDU0OTdiYTdmYjZhNThiOWQ5MzBiYTZjMTU4ODI0Iiwi",
    "d2FsbGV0X2FkZHJlc3MiOiIweDNiZjczNGYxM2IzNjI2MDMxMmI4NDQ3MzRhOTBiZjAyM2U2YmE2MzgiLCJpZGVu",
    "dGl0eV90eXBlIjoiZW1haWwiLCJpZGVudGl0eV92YWx1ZSI6ImFsaWNlQGV4YW1wbGUuY29tIn19",
    ".E3_PUeiY_EFhihxZwtcQnCVrAQQE3A8wmm_M5R2u4SVlAGBcwaFbLAszBFEUwW_Ag5SDGMZU5NBRCfJPZ4B83Q",
);

/// The account's wallet address (the JWT's `wallet_address` claim).
const ADDRESS: [u8; 20] = hex!("3bf734f13b36260312b844734a90bf023e6ba638");

/// An EIP-191 signature `r || s || v` (low-s, `v = 0`).
const SIG_191: [u8; 65] = hex!(
    "395400263cb930dfedd3b16744615f871d814a4c73b8fa98157f9072d44ad0ce"
    "76684f2c9f52fc667d6645e816e572f78c53359c3d0c38f98e3805e14d633109"
    "00"
);

/// The EIP-712 reference example ("Ether Mail", signed by Cow).
const TYPED_DATA: &str = concat!(
    r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},"#,
    r#"{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"#,
    r#""Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"#,
    r#""Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"#,
    r#""primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"#,
    r#""verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"#,
    r#""message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"#,
    r#""to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#,
);
const SIG_712: [u8; 65] = hex!(
    "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
    "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
    "01"
);
const COW_ADDRESS: [u8; 20] = hex!("cd2a3d9f938e13cd947ec05abc7fe734df8dd826");
const MAIL_HASH: [u8; 32] = hex!("c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e");
const MAIL_DOMAIN: [u8; 32] = hex!("f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f");
const MAIL_DIGEST: [u8; 32] = hex!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");

/// RFC 7748 §6.1 Alice's X25519 public key, as a KEK recipient.
const RECIPIENT: [u8; 32] = hex!("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
const KEK_CONTEXT: &[u8] = b"vault.agentkeys.example/postgres";

const FP_1: [u8; 32] = hex!("e13c0682cc5f67424f8b3cd6ce42d589707abc8dff5fc605199a87cf518098df");
const FP_2: [u8; 32] = hex!("6a9e1828d0120ccaafa66c1388335aea859b6bc7a7c29b4daeb858f16221777e");
const ENCAPSULATED: [u8; 32] = hex!("b9e8908262733630b1acc5186b544eea459cf381b00a8b27117ab51092b5fa54");
/// 32-byte sealed KEK + 16-byte AES-GCM tag.
const SEALED: [u8; 48] = hex!(
    "bda59e36d9ad1710f0646131d40907532bc9f59e5f251d7b829dfb7ffc7581a6"
    "02e839c52b462f8300656c0436c9329f"
);

/// An attestation client nonce.
const NONCE: [u8; 32] = hex!("8a4b0e3f7c21d96a55e0b1c2d3f40516a7b8c9dadbecfd0e1f2031425364758a");
/// RFC 8032 §7.1 test 1 Ed25519 public key, as the enclave's response-signing key.
const SIGNING_PUB: [u8; 32] = hex!("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
/// The first bytes of an untagged COSE_Sign1 (`84 44 a1 01 38 22 a0`), standing in for a document.
const DOCUMENT: [u8; 7] = hex!("8444a1013822a0");
/// The first bytes of a DER certificate, standing in for one.
const CERT: [u8; 4] = hex!("30820540");
const SESSION_ID: [u8; 16] = hex!("0f1e2d3c4b5a69788796a5b4c3d2e1f0");
const DEV_BODY: &[u8] =
    br#"{"omni_account":"caf843f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9d930ba6c158824","message_hex":"68656c6c6f"}"#;
const DEV_ANSWER: &[u8] = br#"{"address":"0x3bf734f13b36260312b844734a90bf023e6ba638","key_version":1}"#;
/// RFC 8032 §7.1 test 1's signature, standing in for one.
const DEV_SIGNATURE: [u8; 64] = hex!(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
);

/// A peer's one-time X25519 import key (filler).
const IMPORT_PUB: [u8; 32] = [7; 32];
/// A custody `boot_id` (filler).
const BOOT_ID: [u8; 16] = hex!("b007b007b007b007b007b007b007b007");
/// Stands in for a sealed K3 blob: the `"SGLK"` magic, format 1, then filler.
const BLOB: [u8; 16] = hex!("53474c4b01a5a5a5a5a5a5a5a5a5a5a5");

fn sealed_record() -> SealedRecord {
    SealedRecord { session_id: Bytes(SESSION_ID), counter: 3, ciphertext: SEALED.to_vec() }
}

fn subject() -> Subject {
    Subject { token: BrokerToken::new(JWT.into()), key_version: 1, omni: OmniAccount::from(OMNI) }
}

fn derive_kek() -> DeriveKek {
    DeriveKek { subject: subject(), context: KEK_CONTEXT.to_vec(), recipient: Bytes(RECIPIENT) }
}

fn provision_k3(key_version: u8) -> ProvisionK3 {
    ProvisionK3 {
        key_version,
        encapsulated_key: Bytes(ENCAPSULATED),
        ciphertext: SEALED.to_vec(),
        proof_key_version: 0,
    }
}

/// B's offer, made on Nitro.
fn peer_offer() -> PeerOffer {
    PeerOffer {
        protocol_version: 1,
        import_pub: Bytes(IMPORT_PUB),
        evidence: Evidence { platform: Platform::Nitro, document: DOCUMENT.to_vec(), certificates: Vec::new() },
        config: Bytes(CONFIG),
    }
}

/// A's answer carrying one epoch (`32 + 16` bytes of ciphertext), made on the simulator.
fn peer_export() -> PeerExport {
    PeerExport {
        import_pub: Bytes(IMPORT_PUB),
        epochs: vec![Epoch { key_version: 1, k3_fingerprint: Bytes(FP_1) }],
        encapsulated_key: Bytes(ENCAPSULATED),
        ciphertext: SEALED.to_vec(),
        evidence: Evidence { platform: Platform::Sim, document: DOCUMENT.to_vec(), certificates: Vec::new() },
        config: Bytes(CONFIG),
    }
}

/// A configuration fingerprint (the pinned broker key's hash).
const CONFIG: [u8; 32] = [0x3c; 32];

fn error(request_id: u64, code: ErrorCode, message: &str) -> Envelope<Response> {
    Envelope { request_id, body: Response::Error(WireError { code, message: message.into() }) }
}

// ---- the tables ------------------------------------------------------------------------------

/// One golden vector: `value` must encode to exactly `frame`, and `frame` decode to `value`.
struct Vector<T> {
    name: &'static str,
    value: fn() -> T,
    frame: &'static [u8],
}

static REQUESTS: &[Vector<Envelope<Request>>] = &[
    Vector {
        name: "request/hello",
        value: || Envelope { request_id: 0, body: Request::Hello(Hello { min_version: 1, max_version: 1 }) },
        frame: &hex!("53474c0100000000040000010153c1c3c6"),
    },
    Vector {
        name: "request/status",
        value: || Envelope { request_id: 1, body: Request::Status },
        frame: &hex!("53474c01000000000201012e01e10a"),
    },
    Vector {
        name: "request/derive_address",
        value: || Envelope { request_id: 300, body: Request::DeriveAddress(DeriveAddress { subject: subject() }) },
        frame: &hex!(
            "53474c010000000316ac0202f00565794a68624763694f694a46557a49314e69"
            "4973496d74705a434936496d46724c584e6c63334e70623234744d5463324e7a"
            "49794e5459774d434a392e65794a7063334d694f694a6f64485277637a6f764c"
            "324a796232746c636935685a3256756447746c65584d755a586868625842735a"
            "534973496e4e3159694936496d466e5a57353061325635637a7031633256794f"
            "6d4e685a6a67304d3259335a6a5a694d54646a4d54566d596a517a5a54686d4e"
            "6d4979595755795a5467314d4441304e5451354e324a684e325a694e6d45314f"
            "4749355a446b7a4d474a684e6d4d784e5467344d6a51694c434a68645751694f"
            "694a685a3256756447746c65584d36596e4a7661325679496977695a58687749"
            "6a6f784e7a59334d6a49354d6a41774c434a70595851694f6a45334e6a63794d"
            "6a55324d444173496d703061534936496a646d4d324d7959546c6c4c5456694d"
            "5751744e474d345a53303559545a6d4c544a6b4e4749345a54466a4d47597a4e"
            "794973496d466e5a573530613256356379493665794a76625735705832466a59"
            "323931626e51694f694a6a595759344e444e6d4e325932596a4533597a45315a"
            "6d49304d3255345a6a5a694d6d466c4d6d55344e5441774e4455304f54646959"
            "54646d596a5a684e5468694f5751354d7a426959545a6a4d5455344f44493049"
            "69776964324673624756305832466b5a484a6c63334d694f69497765444e695a"
            "6a637a4e4759784d32497a4e6a49324d444d784d6d49344e4451334d7a52684f"
            "5442695a6a41794d325532596d45324d7a67694c434a705a47567564476c3065"
            "5639306558426c496a6f695a573168615777694c434a705a47567564476c3065"
            "563932595778315a534936496d467361574e6c51475634595731776247557559"
            "323974496e31392e45335f50556569595f4546686968785a777463516e435672"
            "41515145334138776d6d5f4d355232753453566c41474263776146624c41737a"
            "4246455577575f4167355344474d5a55354e425243664a505a344238335101ca"
            "f843f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9d930ba6c15882490"
            "5f18c3"
        ),
    },
    Vector {
        name: "request/sign_eip191",
        value: || Envelope {
            request_id: 0x0123_4567_89ab_cdef,
            body: Request::SignEip191(SignEip191 {
                subject: subject(),
                message: b"Sign in to agentKeys: nonce 8c1f4e2a".to_vec(),
            }),
        },
        frame: &hex!(
            "53474c010000000342ef9bafcdf8acd1910103f00565794a68624763694f694a"
            "46557a49314e694973496d74705a434936496d46724c584e6c63334e70623234"
            "744d5463324e7a49794e5459774d434a392e65794a7063334d694f694a6f6448"
            "5277637a6f764c324a796232746c636935685a3256756447746c65584d755a58"
            "6868625842735a534973496e4e3159694936496d466e5a57353061325635637a"
            "7031633256794f6d4e685a6a67304d3259335a6a5a694d54646a4d54566d596a"
            "517a5a54686d4e6d4979595755795a5467314d4441304e5451354e324a684e32"
            "5a694e6d45314f4749355a446b7a4d474a684e6d4d784e5467344d6a51694c43"
            "4a68645751694f694a685a3256756447746c65584d36596e4a76613256794969"
            "77695a586877496a6f784e7a59334d6a49354d6a41774c434a70595851694f6a"
            "45334e6a63794d6a55324d444173496d703061534936496a646d4d324d795954"
            "6c6c4c5456694d5751744e474d345a53303559545a6d4c544a6b4e4749345a54"
            "466a4d47597a4e794973496d466e5a573530613256356379493665794a766257"
            "35705832466a59323931626e51694f694a6a595759344e444e6d4e325932596a"
            "4533597a45315a6d49304d3255345a6a5a694d6d466c4d6d55344e5441774e44"
            "55304f5464695954646d596a5a684e5468694f5751354d7a426959545a6a4d54"
            "55344f4449304969776964324673624756305832466b5a484a6c63334d694f69"
            "497765444e695a6a637a4e4759784d32497a4e6a49324d444d784d6d49344e44"
            "51334d7a52684f5442695a6a41794d325532596d45324d7a67694c434a705a47"
            "567564476c30655639306558426c496a6f695a573168615777694c434a705a47"
            "567564476c3065563932595778315a534936496d467361574e6c514756345957"
            "31776247557559323974496e31392e45335f50556569595f4546686968785a77"
            "7463516e43567241515145334138776d6d5f4d355232753453566c4147426377"
            "6146624c41737a4246455577575f4167355344474d5a55354e425243664a505a"
            "344238335101caf843f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9d9"
            "30ba6c158824245369676e20696e20746f206167656e744b6579733a206e6f6e"
            "6365203863316634653261bf510cce"
        ),
    },
    Vector {
        name: "request/sign_eip191_empty_message",
        value: || Envelope {
            request_id: u64::MAX,
            body: Request::SignEip191(SignEip191 { subject: subject(), message: Vec::new() }),
        },
        frame: &hex!(
            "53474c01000000031fffffffffffffffffff0103f00565794a68624763694f69"
            "4a46557a49314e694973496d74705a434936496d46724c584e6c63334e706232"
            "34744d5463324e7a49794e5459774d434a392e65794a7063334d694f694a6f64"
            "485277637a6f764c324a796232746c636935685a3256756447746c65584d755a"
            "586868625842735a534973496e4e3159694936496d466e5a5735306132563563"
            "7a7031633256794f6d4e685a6a67304d3259335a6a5a694d54646a4d54566d59"
            "6a517a5a54686d4e6d4979595755795a5467314d4441304e5451354e324a684e"
            "325a694e6d45314f4749355a446b7a4d474a684e6d4d784e5467344d6a51694c"
            "434a68645751694f694a685a3256756447746c65584d36596e4a766132567949"
            "6977695a586877496a6f784e7a59334d6a49354d6a41774c434a70595851694f"
            "6a45334e6a63794d6a55324d444173496d703061534936496a646d4d324d7959"
            "546c6c4c5456694d5751744e474d345a53303559545a6d4c544a6b4e4749345a"
            "54466a4d47597a4e794973496d466e5a573530613256356379493665794a7662"
            "5735705832466a59323931626e51694f694a6a595759344e444e6d4e32593259"
            "6a4533597a45315a6d49304d3255345a6a5a694d6d466c4d6d55344e5441774e"
            "4455304f5464695954646d596a5a684e5468694f5751354d7a426959545a6a4d"
            "5455344f4449304969776964324673624756305832466b5a484a6c63334d694f"
            "69497765444e695a6a637a4e4759784d32497a4e6a49324d444d784d6d49344e"
            "4451334d7a52684f5442695a6a41794d325532596d45324d7a67694c434a705a"
            "47567564476c30655639306558426c496a6f695a573168615777694c434a705a"
            "47567564476c3065563932595778315a534936496d467361574e6c5147563459"
            "5731776247557559323974496e31392e45335f50556569595f4546686968785a"
            "777463516e43567241515145334138776d6d5f4d355232753453566c41474263"
            "776146624c41737a4246455577575f4167355344474d5a55354e425243664a50"
            "5a344238335101caf843f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9"
            "d930ba6c15882400743c92b1"
        ),
    },
    Vector {
        name: "request/sign_eip712",
        value: || Envelope {
            request_id: 42,
            body: Request::SignEip712(SignEip712 { subject: subject(), typed_data: TYPED_DATA.into() }),
        },
        frame: &hex!(
            "53474c0100000005cb2a04f00565794a68624763694f694a46557a49314e6949"
            "73496d74705a434936496d46724c584e6c63334e70623234744d5463324e7a49"
            "794e5459774d434a392e65794a7063334d694f694a6f64485277637a6f764c32"
            "4a796232746c636935685a3256756447746c65584d755a586868625842735a53"
            "4973496e4e3159694936496d466e5a57353061325635637a7031633256794f6d"
            "4e685a6a67304d3259335a6a5a694d54646a4d54566d596a517a5a54686d4e6d"
            "4979595755795a5467314d4441304e5451354e324a684e325a694e6d45314f47"
            "49355a446b7a4d474a684e6d4d784e5467344d6a51694c434a68645751694f69"
            "4a685a3256756447746c65584d36596e4a7661325679496977695a586877496a"
            "6f784e7a59334d6a49354d6a41774c434a70595851694f6a45334e6a63794d6a"
            "55324d444173496d703061534936496a646d4d324d7959546c6c4c5456694d57"
            "51744e474d345a53303559545a6d4c544a6b4e4749345a54466a4d47597a4e79"
            "4973496d466e5a573530613256356379493665794a76625735705832466a5932"
            "3931626e51694f694a6a595759344e444e6d4e325932596a4533597a45315a6d"
            "49304d3255345a6a5a694d6d466c4d6d55344e5441774e4455304f5464695954"
            "646d596a5a684e5468694f5751354d7a426959545a6a4d5455344f4449304969"
            "776964324673624756305832466b5a484a6c63334d694f69497765444e695a6a"
            "637a4e4759784d32497a4e6a49324d444d784d6d49344e4451334d7a52684f54"
            "42695a6a41794d325532596d45324d7a67694c434a705a47567564476c306556"
            "39306558426c496a6f695a573168615777694c434a705a47567564476c306556"
            "3932595778315a534936496d467361574e6c5147563459573177624755755932"
            "3974496e31392e45335f50556569595f4546686968785a777463516e43567241"
            "515145334138776d6d5f4d355232753453566c41474263776146624c41737a42"
            "46455577575f4167355344474d5a55354e425243664a505a344238335101caf8"
            "43f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9d930ba6c158824b405"
            "7b227479706573223a7b22454950373132446f6d61696e223a5b7b226e616d65"
            "223a226e616d65222c2274797065223a22737472696e67227d2c7b226e616d65"
            "223a2276657273696f6e222c2274797065223a22737472696e67227d2c7b226e"
            "616d65223a22636861696e4964222c2274797065223a2275696e74323536227d"
            "2c7b226e616d65223a22766572696679696e67436f6e7472616374222c227479"
            "7065223a2261646472657373227d5d2c22506572736f6e223a5b7b226e616d65"
            "223a226e616d65222c2274797065223a22737472696e67227d2c7b226e616d65"
            "223a2277616c6c6574222c2274797065223a2261646472657373227d5d2c224d"
            "61696c223a5b7b226e616d65223a2266726f6d222c2274797065223a22506572"
            "736f6e227d2c7b226e616d65223a22746f222c2274797065223a22506572736f"
            "6e227d2c7b226e616d65223a22636f6e74656e7473222c2274797065223a2273"
            "7472696e67227d5d7d2c227072696d61727954797065223a224d61696c222c22"
            "646f6d61696e223a7b226e616d65223a224574686572204d61696c222c227665"
            "7273696f6e223a2231222c22636861696e4964223a312c22766572696679696e"
            "67436f6e7472616374223a223078436343436363636343434343634343434343"
            "43634363436363436343434363436363636363636343227d2c226d6573736167"
            "65223a7b2266726f6d223a7b226e616d65223a22436f77222c2277616c6c6574"
            "223a223078434432613364394639333845313343443934374563303541624337"
            "46453733344466384444383236227d2c22746f223a7b226e616d65223a22426f"
            "62222c2277616c6c6574223a2230786242624242424262624242426262624262"
            "6242626262624242624262626262426242626242426242227d2c22636f6e7465"
            "6e7473223a2248656c6c6f2c20426f6221227d7da5c85287"
        ),
    },
    Vector {
        name: "request/derive_kek",
        value: || Envelope { request_id: 7, body: Request::DeriveKek(derive_kek()) },
        frame: &hex!(
            "53474c0100000003560705f00565794a68624763694f694a46557a49314e6949"
            "73496d74705a434936496d46724c584e6c63334e70623234744d5463324e7a49"
            "794e5459774d434a392e65794a7063334d694f694a6f64485277637a6f764c32"
            "4a796232746c636935685a3256756447746c65584d755a586868625842735a53"
            "4973496e4e3159694936496d466e5a57353061325635637a7031633256794f6d"
            "4e685a6a67304d3259335a6a5a694d54646a4d54566d596a517a5a54686d4e6d"
            "4979595755795a5467314d4441304e5451354e324a684e325a694e6d45314f47"
            "49355a446b7a4d474a684e6d4d784e5467344d6a51694c434a68645751694f69"
            "4a685a3256756447746c65584d36596e4a7661325679496977695a586877496a"
            "6f784e7a59334d6a49354d6a41774c434a70595851694f6a45334e6a63794d6a"
            "55324d444173496d703061534936496a646d4d324d7959546c6c4c5456694d57"
            "51744e474d345a53303559545a6d4c544a6b4e4749345a54466a4d47597a4e79"
            "4973496d466e5a573530613256356379493665794a76625735705832466a5932"
            "3931626e51694f694a6a595759344e444e6d4e325932596a4533597a45315a6d"
            "49304d3255345a6a5a694d6d466c4d6d55344e5441774e4455304f5464695954"
            "646d596a5a684e5468694f5751354d7a426959545a6a4d5455344f4449304969"
            "776964324673624756305832466b5a484a6c63334d694f69497765444e695a6a"
            "637a4e4759784d32497a4e6a49324d444d784d6d49344e4451334d7a52684f54"
            "42695a6a41794d325532596d45324d7a67694c434a705a47567564476c306556"
            "39306558426c496a6f695a573168615777694c434a705a47567564476c306556"
            "3932595778315a534936496d467361574e6c5147563459573177624755755932"
            "3974496e31392e45335f50556569595f4546686968785a777463516e43567241"
            "515145334138776d6d5f4d355232753453566c41474263776146624c41737a42"
            "46455577575f4167355344474d5a55354e425243664a505a344238335101caf8"
            "43f7f6b17c15fb43e8f6b2ae2e850045497ba7fb6a58b9d930ba6c1588242076"
            "61756c742e6167656e746b6579732e6578616d706c652f706f73746772657385"
            "20f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6aca"
            "507956"
        ),
    },
    Vector {
        name: "request/attest_with_session",
        value: || Envelope {
            request_id: 9,
            body: Request::Attest(AttestRequest { client_nonce: Bytes(NONCE), client_pub: Some(Bytes(RECIPIENT)) }),
        },
        frame: &hex!(
            "53474c01000000004309068a4b0e3f7c21d96a55e0b1c2d3f40516a7b8c9dadb"
            "ecfd0e1f2031425364758a018520f0098930a754748b7ddcb43ef75a0dbf3a0d"
            "26381af4eba4a98eaa9b4e6a941a2be5"
        ),
    },
    Vector {
        name: "request/attest_evidence_only",
        value: || Envelope {
            request_id: 10,
            body: Request::Attest(AttestRequest { client_nonce: Bytes(NONCE), client_pub: None }),
        },
        frame: &hex!(
            "53474c0100000000230a068a4b0e3f7c21d96a55e0b1c2d3f40516a7b8c9dadb"
            "ecfd0e1f2031425364758a005e224daf"
        ),
    },
    Vector {
        name: "request/sealed",
        value: || Envelope { request_id: 11, body: Request::Sealed(sealed_record()) },
        frame: &hex!(
            "53474c0100000000440b070f1e2d3c4b5a69788796a5b4c3d2e1f00330bda59e"
            "36d9ad1710f0646131d40907532bc9f59e5f251d7b829dfb7ffc7581a602e839"
            "c52b462f8300656c0436c9329f55aea046"
        ),
    },
    Vector {
        name: "request/dev_call",
        value: || Envelope {
            request_id: 12,
            body: Request::DevCall(DevCall {
                route: DevRoute::SignMessage,
                token: BrokerToken::new(JWT.into()),
                body: DEV_BODY.to_vec(),
            }),
        },
        frame: &hex!(
            "53474c0100000003640c0801f00565794a68624763694f694a46557a49314e69"
            "4973496d74705a434936496d46724c584e6c63334e70623234744d5463324e7a"
            "49794e5459774d434a392e65794a7063334d694f694a6f64485277637a6f764c"
            "324a796232746c636935685a3256756447746c65584d755a586868625842735a"
            "534973496e4e3159694936496d466e5a57353061325635637a7031633256794f"
            "6d4e685a6a67304d3259335a6a5a694d54646a4d54566d596a517a5a54686d4e"
            "6d4979595755795a5467314d4441304e5451354e324a684e325a694e6d45314f"
            "4749355a446b7a4d474a684e6d4d784e5467344d6a51694c434a68645751694f"
            "694a685a3256756447746c65584d36596e4a7661325679496977695a58687749"
            "6a6f784e7a59334d6a49354d6a41774c434a70595851694f6a45334e6a63794d"
            "6a55324d444173496d703061534936496a646d4d324d7959546c6c4c5456694d"
            "5751744e474d345a53303559545a6d4c544a6b4e4749345a54466a4d47597a4e"
            "794973496d466e5a573530613256356379493665794a76625735705832466a59"
            "323931626e51694f694a6a595759344e444e6d4e325932596a4533597a45315a"
            "6d49304d3255345a6a5a694d6d466c4d6d55344e5441774e4455304f54646959"
            "54646d596a5a684e5468694f5751354d7a426959545a6a4d5455344f44493049"
            "69776964324673624756305832466b5a484a6c63334d694f69497765444e695a"
            "6a637a4e4759784d32497a4e6a49324d444d784d6d49344e4451334d7a52684f"
            "5442695a6a41794d325532596d45324d7a67694c434a705a47567564476c3065"
            "5639306558426c496a6f695a573168615777694c434a705a47567564476c3065"
            "563932595778315a534936496d467361574e6c51475634595731776247557559"
            "323974496e31392e45335f50556569595f4546686968785a777463516e435672"
            "41515145334138776d6d5f4d355232753453566c41474263776146624c41737a"
            "4246455577575f4167355344474d5a55354e425243664a505a34423833516e7b"
            "226f6d6e695f6163636f756e74223a2263616638343366376636623137633135"
            "6662343365386636623261653265383530303435343937626137666236613538"
            "62396439333062613663313538383234222c226d6573736167655f686578223a"
            "2236383635366336633666227d9a09ee86"
        ),
    },
    Vector {
        name: "request/provision",
        value: || Envelope { request_id: 13, body: Request::Provision(provision_k3(2)) },
        frame: &hex!(
            "53474c0100000000550d0902b9e8908262733630b1acc5186b544eea459cf381"
            "b00a8b27117ab51092b5fa5430bda59e36d9ad1710f0646131d40907532bc9f5"
            "9e5f251d7b829dfb7ffc7581a602e839c52b462f8300656c0436c9329f009d3c"
            "43e8"
        ),
    },
    Vector {
        name: "request/custody_status",
        value: || Envelope { request_id: 14, body: Request::CustodyStatus },
        frame: &hex!("53474c0100000000020e0a50f140cc"),
    },
    Vector {
        name: "request/seal_k3",
        value: || Envelope { request_id: 15, body: Request::SealK3 },
        frame: &hex!("53474c0100000000020f0bb1385bb8"),
    },
    Vector {
        name: "request/unseal_k3",
        value: || Envelope { request_id: 16, body: Request::UnsealK3(UnsealK3 { blob: BLOB.to_vec() }) },
        frame: &hex!("53474c010000000013100c1053474c4b01a5a5a5a5a5a5a5a5a5a5a50311275b"),
    },
    Vector {
        name: "request/peer_offer",
        value: || Envelope { request_id: 17, body: Request::PeerOffer },
        frame: &hex!("53474c010000000002110d5c87df5b"),
    },
    Vector {
        name: "request/export_for_peer",
        value: || Envelope { request_id: 18, body: Request::ExportForPeer(peer_offer()) },
        frame: &hex!(
            "53474c01000000004d120e010707070707070707070707070707070707070707"
            "07070707070707070707070700078444a1013822a0003c3c3c3c3c3c3c3c3c3c"
            "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c246234e7"
        ),
    },
    Vector {
        name: "request/import_from_peer",
        value: || Envelope { request_id: 19, body: Request::ImportFromPeer(peer_export()) },
        frame: &hex!(
            "53474c0100000000bf130f070707070707070707070707070707070707070707"
            "07070707070707070707070101e13c0682cc5f67424f8b3cd6ce42d589707abc"
            "8dff5fc605199a87cf518098dfb9e8908262733630b1acc5186b544eea459cf3"
            "81b00a8b27117ab51092b5fa5430bda59e36d9ad1710f0646131d40907532bc9"
            "f59e5f251d7b829dfb7ffc7581a602e839c52b462f8300656c0436c9329f0207"
            "8444a1013822a0003c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c"
            "3c3c3c3c3c3c3c3ce12f7046"
        ),
    },
    Vector {
        name: "request/retire",
        value: || Envelope { request_id: 20, body: Request::Retire(provision_k3(1)) },
        frame: &hex!(
            "53474c010000000055141001b9e8908262733630b1acc5186b544eea459cf381"
            "b00a8b27117ab51092b5fa5430bda59e36d9ad1710f0646131d40907532bc9f5"
            "9e5f251d7b829dfb7ffc7581a602e839c52b462f8300656c0436c9329f00368d"
            "1863"
        ),
    },
];

static RESPONSES: &[Vector<Envelope<Response>>] = &[
    Vector {
        name: "response/error_unauthorized",
        value: || error(300, ErrorCode::Unauthorized, "broker token expired"),
        frame: &hex!(
            "53474c010000000019ac0200051462726f6b657220746f6b656e206578706972"
            "656460285df8"
        ),
    },
    Vector {
        name: "response/error_invalid_typed_data",
        value: || error(42, ErrorCode::InvalidTypedData, "primaryType \"Mail\" references undefined type \"Person2\""),
        frame: &hex!(
            "53474c01000000003a2a0004367072696d6172795479706520224d61696c2220"
            "7265666572656e63657320756e646566696e656420747970652022506572736f"
            "6e3222c47d05ff"
        ),
    },
    Vector {
        name: "response/error_unknown_key_version",
        value: || error(9, ErrorCode::UnknownKeyVersion, "key_version 2 is not loaded"),
        frame: &hex!(
            "53474c01000000001f0900111b6b65795f76657273696f6e2032206973206e6f"
            "74206c6f61646564397389b1"
        ),
    },
    Vector {
        name: "response/error_other_999",
        value: || error(u64::MAX, ErrorCode::from_u16(999), ""),
        frame: &hex!("53474c01000000000effffffffffffffffff0100e70700a7e8cf1b"),
    },
    Vector {
        name: "response/hello",
        value: || Envelope {
            request_id: 0,
            body: Response::Hello(HelloAck { version: 1, min_version: 1, max_version: 1 }),
        },
        frame: &hex!("53474c0100000000050001010101771c111c"),
    },
    Vector {
        name: "response/status_provisioned",
        value: || Envelope {
            request_id: 1,
            body: Response::Status(Status {
                protocol_version: 1,
                current_key_version: Some(2),
                epochs: vec![
                    Epoch { key_version: 1, k3_fingerprint: Bytes(FP_1) },
                    Epoch { key_version: 2, k3_fingerprint: Bytes(FP_2) },
                ],
            }),
        },
        frame: &hex!(
            "53474c01000000004801020101020201e13c0682cc5f67424f8b3cd6ce42d589"
            "707abc8dff5fc605199a87cf518098df026a9e1828d0120ccaafa66c1388335a"
            "ea859b6bc7a7c29b4daeb858f16221777ea8c9b52f"
        ),
    },
    Vector {
        name: "response/status_unprovisioned",
        value: || Envelope {
            request_id: 2,
            body: Response::Status(Status { protocol_version: 1, current_key_version: None, epochs: Vec::new() }),
        },
        frame: &hex!("53474c010000000005020201000084d55c09"),
    },
    Vector {
        name: "response/address",
        value: || Envelope {
            request_id: 300,
            body: Response::Address(AddressInfo { address: Bytes(ADDRESS), key_version: 1 }),
        },
        frame: &hex!(
            "53474c010000000018ac02033bf734f13b36260312b844734a90bf023e6ba638"
            "01a947759a"
        ),
    },
    Vector {
        name: "response/eip191_signature",
        value: || Envelope {
            request_id: 0x0123_4567_89ab_cdef,
            body: Response::Eip191Signature(Eip191Signature {
                signature: Bytes(SIG_191),
                address: Bytes(ADDRESS),
                key_version: 1,
            }),
        },
        frame: &hex!(
            "53474c010000000060ef9bafcdf8acd1910104395400263cb930dfedd3b16744"
            "615f871d814a4c73b8fa98157f9072d44ad0ce76684f2c9f52fc667d6645e816"
            "e572f78c53359c3d0c38f98e3805e14d633109003bf734f13b36260312b84473"
            "4a90bf023e6ba638018d690543"
        ),
    },
    Vector {
        name: "response/eip712_signature",
        value: || Envelope {
            request_id: 42,
            body: Response::Eip712Signature(Eip712Signature {
                signature: Bytes(SIG_712),
                address: Bytes(COW_ADDRESS),
                primary_type_hash: Bytes(MAIL_HASH),
                domain_separator: Bytes(MAIL_DOMAIN),
                digest: Bytes(MAIL_DIGEST),
                key_version: 1,
            }),
        },
        frame: &hex!(
            "53474c0100000000b82a054355c47d63924e8a72e509b65029052eb6c299d53a"
            "04e167c5775fd466751c9d07299936d304c153f6443dfa05f40ff007d72911b6"
            "f72307f996231605b9156201cd2a3d9f938e13cd947ec05abc7fe734df8dd826"
            "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
            "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
            "01a4848451"
        ),
    },
    Vector {
        name: "response/sealed_kek",
        value: || Envelope {
            request_id: 7,
            body: Response::SealedKek(SealedKek {
                key_version: 1,
                encapsulated_key: Bytes(ENCAPSULATED),
                ciphertext: SEALED.to_vec(),
            }),
        },
        frame: &hex!(
            "53474c010000000054070601b9e8908262733630b1acc5186b544eea459cf381"
            "b00a8b27117ab51092b5fa5430bda59e36d9ad1710f0646131d40907532bc9f5"
            "9e5f251d7b829dfb7ffc7581a602e839c52b462f8300656c0436c9329f0e3b84"
            "29"
        ),
    },
    Vector {
        name: "response/attestation_sim_session",
        value: || Envelope {
            request_id: 9,
            body: Response::Attestation(Attestation {
                protocol_version: 1,
                enclave_pub: Some(Bytes(ENCAPSULATED)),
                signing_pub: Bytes(SIGNING_PUB),
                k3_fingerprint: Bytes(FP_1),
                evidence: Evidence { platform: Platform::Sim, document: DOCUMENT.to_vec(), certificates: Vec::new() },
            }),
        },
        frame: &hex!(
            "53474c01000000006e09070101b9e8908262733630b1acc5186b544eea459cf3"
            "81b00a8b27117ab51092b5fa54d75a980182b10ab7d54bfed3c964073a0ee172"
            "f3daa62325af021a68f707511ae13c0682cc5f67424f8b3cd6ce42d589707abc"
            "8dff5fc605199a87cf518098df02078444a1013822a000244d3686"
        ),
    },
    Vector {
        name: "response/attestation_snp_evidence_only",
        value: || Envelope {
            request_id: 10,
            body: Response::Attestation(Attestation {
                protocol_version: 1,
                enclave_pub: None,
                signing_pub: Bytes(SIGNING_PUB),
                k3_fingerprint: Bytes([0; 32]),
                evidence: Evidence {
                    platform: Platform::Snp,
                    document: DOCUMENT.to_vec(),
                    certificates: vec![CERT.to_vec(), CERT.to_vec()],
                },
            }),
        },
        frame: &hex!(
            "53474c0100000000580a070100d75a980182b10ab7d54bfed3c964073a0ee172"
            "f3daa62325af021a68f707511a00000000000000000000000000000000000000"
            "0000000000000000000000000001078444a1013822a002043082054004308205"
            "40f8f0fe19"
        ),
    },
    Vector {
        name: "response/sealed",
        value: || Envelope { request_id: 11, body: Response::Sealed(sealed_record()) },
        frame: &hex!(
            "53474c0100000000440b080f1e2d3c4b5a69788796a5b4c3d2e1f00330bda59e"
            "36d9ad1710f0646131d40907532bc9f59e5f251d7b829dfb7ffc7581a602e839"
            "c52b462f8300656c0436c9329fda6826d0"
        ),
    },
    Vector {
        name: "response/dev_response",
        value: || Envelope {
            request_id: 12,
            body: Response::DevResponse(DevResponse {
                status: 200,
                body: DEV_ANSWER.to_vec(),
                signature: Bytes(DEV_SIGNATURE),
            }),
        },
        frame: &hex!(
            "53474c01000000008d0c09c801487b2261646472657373223a22307833626637"
            "3334663133623336323630333132623834343733346139306266303233653662"
            "61363338222c226b65795f76657273696f6e223a317de5564300c360ac729086"
            "e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
            "39701cf9b46bd25bf5f0595bbe24655141438e7a100b19a3e111"
        ),
    },
    Vector {
        name: "response/error_session_integrity",
        value: || error(11, ErrorCode::SessionIntegrity, "session closed: sealed record failed authentication"),
        frame: &hex!(
            "53474c0100000000370b00143373657373696f6e20636c6f7365643a20736561"
            "6c6564207265636f7264206661696c65642061757468656e7469636174696f6e"
            "8b6f35ba"
        ),
    },
    Vector {
        name: "response/custody_status",
        value: || Envelope {
            request_id: 13,
            body: Response::CustodyStatus(CustodyStatus {
                boot_id: Bytes(BOOT_ID),
                current_key_version: Some(1),
                epochs: vec![
                    EpochState { epoch: Epoch { key_version: 1, k3_fingerprint: Bytes(FP_1) }, durable: true },
                    EpochState { epoch: Epoch { key_version: 2, k3_fingerprint: Bytes(FP_2) }, durable: false },
                ],
                sealer: Some(Platform::Nitro),
                needs_seal: true,
                reprovision: None,
            }),
        },
        frame: &hex!(
            "53474c01000000005d0d0ab007b007b007b007b007b007b007b00701010201e1"
            "3c0682cc5f67424f8b3cd6ce42d589707abc8dff5fc605199a87cf518098df01"
            "026a9e1828d0120ccaafa66c1388335aea859b6bc7a7c29b4daeb858f1622177"
            "7e00010001008b118da2"
        ),
    },
    Vector {
        name: "response/custody_status_reprovision",
        value: || Envelope {
            request_id: 16,
            body: Response::CustodyStatus(CustodyStatus {
                boot_id: Bytes(BOOT_ID),
                current_key_version: None,
                epochs: Vec::new(),
                sealer: None,
                needs_seal: false,
                reprovision: Some("sealed blob failed authentication".into()),
            }),
        },
        frame: &hex!(
            "53474c010000000039100ab007b007b007b007b007b007b007b0070000000001"
            "217365616c656420626c6f62206661696c65642061757468656e746963617469"
            "6f6edef5f624"
        ),
    },
    Vector {
        name: "response/sealed_k3",
        value: || Envelope { request_id: 15, body: Response::SealedK3(SealedK3 { blob: BLOB.to_vec() }) },
        frame: &hex!("53474c0100000000130f0b1053474c4b01a5a5a5a5a5a5a5a5a5a5a567fe7cca"),
    },
    Vector {
        name: "response/peer_offer",
        value: || Envelope { request_id: 17, body: Response::PeerOffer(peer_offer()) },
        frame: &hex!(
            "53474c01000000004d110c010707070707070707070707070707070707070707"
            "07070707070707070707070700078444a1013822a0003c3c3c3c3c3c3c3c3c3c"
            "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c346695a6"
        ),
    },
    Vector {
        name: "response/peer_export",
        value: || Envelope { request_id: 18, body: Response::PeerExport(peer_export()) },
        frame: &hex!(
            "53474c0100000000bf120d070707070707070707070707070707070707070707"
            "07070707070707070707070101e13c0682cc5f67424f8b3cd6ce42d589707abc"
            "8dff5fc605199a87cf518098dfb9e8908262733630b1acc5186b544eea459cf3"
            "81b00a8b27117ab51092b5fa5430bda59e36d9ad1710f0646131d40907532bc9"
            "f59e5f251d7b829dfb7ffc7581a602e839c52b462f8300656c0436c9329f0207"
            "8444a1013822a0003c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c"
            "3c3c3c3c3c3c3c3c04e94237"
        ),
    },
    Vector {
        name: "response/error_reprovision_required",
        value: || error(16, ErrorCode::ReprovisionRequired, "sealed blob does not open here: provision K3 again"),
        frame: &hex!(
            "53474c010000000036100015327365616c656420626c6f6220646f6573206e6f"
            "74206f70656e20686572653a2070726f766973696f6e204b3320616761696e3c"
            "a16049"
        ),
    },
];

/// Number of `Request` / `Response` variants the tables must cover. Appending a variant makes
/// `first_unassigned_*_tag_is_rejected` fail until a row (and this number) is added.
const REQUEST_VARIANTS: u8 = 17;
const RESPONSE_VARIANTS: u8 = 14;

// ---- helpers ---------------------------------------------------------------------------------

fn check_table<T>(table: &[Vector<T>])
where
    T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug,
{
    for row in table {
        let value = (row.value)();
        let encoded = encode_message(&value).unwrap_or_else(|e| panic!("{}: encode_message failed: {e}", row.name));
        assert_eq!(
            hex::encode(&encoded),
            hex::encode(row.frame),
            "{}: encoding no longer matches the golden frame",
            row.name
        );
        let decoded: T =
            decode_message(row.frame).unwrap_or_else(|e| panic!("{}: golden frame no longer decodes: {e}", row.name));
        assert_eq!(decoded, value, "{}: golden frame decodes to a different value", row.name);
    }
}

/// The postcard payload of a golden frame.
fn payload(row_frame: &[u8]) -> Vec<u8> {
    frame::decode(row_frame).unwrap_or_else(|e| panic!("golden frame invalid: {e}")).payload.to_vec()
}

/// A valid version-1 frame around `payload`.
fn reframe(payload: &[u8]) -> Vec<u8> {
    reframe_with_version(PROTOCOL_VERSION, payload)
}

fn reframe_with_version(version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(version, 0, payload, &mut out).unwrap_or_else(|e| panic!("cannot frame payload: {e}"));
    out
}

/// The body's variant tag: the byte after the `request_id` varint (tags < 128 are one byte).
fn variant_tag(row_frame: &[u8]) -> u8 {
    let p = payload(row_frame);
    let id_len = p.iter().position(|b| b & 0x80 == 0).map_or(0, |i| i + 1);
    p[id_len]
}

fn all_frames() -> impl Iterator<Item = (&'static str, &'static [u8])> {
    REQUESTS.iter().map(|r| (r.name, r.frame)).chain(RESPONSES.iter().map(|r| (r.name, r.frame)))
}

// ---- golden vectors --------------------------------------------------------------------------

#[test]
fn request_golden_vectors_match_both_ways() {
    check_table(REQUESTS);
}

#[test]
fn response_golden_vectors_match_both_ways() {
    check_table(RESPONSES);
}

#[test]
fn golden_tables_cover_every_variant() {
    let mut tags: Vec<u8> = REQUESTS.iter().map(|r| variant_tag(r.frame)).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags, (0..REQUEST_VARIANTS).collect::<Vec<_>>(), "request tags");
    let mut tags: Vec<u8> = RESPONSES.iter().map(|r| variant_tag(r.frame)).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags, (0..RESPONSE_VARIANTS).collect::<Vec<_>>(), "response tags");
}

#[test]
fn first_unassigned_request_tag_is_rejected() {
    // request_id 1, tag REQUEST_VARIANTS, no body. Fails once a variant is appended: add its
    // golden vector and bump REQUEST_VARIANTS.
    let f = reframe(&[0x01, REQUEST_VARIANTS]);
    assert_eq!(decode_message::<Envelope<Request>>(&f), Err(DecodeError::Message));
}

#[test]
fn first_unassigned_response_tag_is_rejected() {
    let f = reframe(&[0x01, RESPONSE_VARIANTS]);
    assert_eq!(decode_message::<Envelope<Response>>(&f), Err(DecodeError::Message));
}

#[test]
fn derive_kek_aad_is_frozen() {
    let req = derive_kek();
    let aad = req.aad();
    assert_eq!(
        hex::encode(&aad),
        hex::encode(hex!(
            "736967696c2f6b656b2f6161642f763101caf843f7f6b17c15fb43e8f6b2ae2e"
            "850045497ba7fb6a58b9d930ba6c158824207661756c742e6167656e746b6579"
            "732e6578616d706c652f706f7374677265738520f0098930a754748b7ddcb43e"
            "f75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        )),
        "DeriveKek::aad changed: every sealed KEK would stop opening"
    );
    assert!(aad.starts_with(KEK_AAD_LABEL));
    // The token authorises but does not define the derivation: it is not in the aad.
    let mut other = derive_kek();
    other.subject.token = BrokerToken::new("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into());
    assert_eq!(other.aad(), aad);
    // Everything that defines the KEK is.
    let mut other = derive_kek();
    other.context.push(b'x');
    assert_ne!(other.aad(), aad);
    let mut other = derive_kek();
    other.subject.key_version = 2;
    assert_ne!(other.aad(), aad);
}

#[test]
fn peer_bindings_are_frozen() {
    // Expected values computed independently (python3 hashlib) from the documented layout:
    // offer  = SHA-512("sigil/peer-offer/v1" || "nitro" || lp(import_pub) || lp([1]) || lp(config)),
    // export = SHA-512("sigil/peer-export/v1" || "sim" || lp(offer binding for "sim") ||
    //          lp(enc) || lp(SHA-256(ciphertext)) || lp(postcard(epochs)) || lp(config)),
    // lp(x) = u32_be(len) || x.
    // Both are bound into attestation evidence: a change here breaks replication between peers.
    let offer = peer_offer();
    assert_eq!(
        hex::encode(offer.binding()),
        hex::encode(hex!(
            "4c9c69b93a3292dc7fc15fdfa1dc239b589147bf0c3a0124d53ab73b0afbb831"
            "aa7376bf74a92af2cc092600a611835b6283e3033998c1a422a5b7d064a1694b"
        )),
        "PeerOffer::binding changed"
    );
    assert_eq!(offer.binding(), offer_binding(Platform::Nitro, &IMPORT_PUB, 1, &CONFIG));
    assert_eq!(
        hex::encode(peer_export().binding(1)),
        hex::encode(hex!(
            "51b7e33addbb56dc9155292e50d850629952022e39ddaa0a061dcb06dce4f2c0"
            "b0d3cf698489ae6dbc3f04a051ba5ee4cb288b38ada221e661fe63793249e02b"
        )),
        "PeerExport::binding changed"
    );
}

#[test]
fn blob_header_aad_is_frozen() {
    // Regression freeze: the literal is `encode_aad`'s output, recorded once (and matching a
    // hand encoding of `"SGLK" || 01 || u32_be(len) || postcard(header)`). It is the AES-GCM AAD
    // of every sealed K3 blob on disk: if it changes, no stored blob opens again.
    let header = BlobHeader {
        platform: Platform::Nitro,
        measurement: vec![0x11; 48],
        epochs: vec![
            Epoch { key_version: 1, k3_fingerprint: Bytes(FP_1) },
            Epoch { key_version: 2, k3_fingerprint: Bytes(FP_2) },
        ],
        key_handle: vec![0x22; 16],
        nonce: Bytes([0x33; 12]),
    };
    let aad = header.encode_aad();
    assert_eq!(
        hex::encode(&aad),
        hex::encode(hex!(
            "53474c4b01000000920030111111111111111111111111111111111111111111"
            "1111111111111111111111111111111111111111111111111111110201e13c06"
            "82cc5f67424f8b3cd6ce42d589707abc8dff5fc605199a87cf518098df026a9e"
            "1828d0120ccaafa66c1388335aea859b6bc7a7c29b4daeb858f16221777e1022"
            "222222222222222222222222222222333333333333333333333333"
        )),
        "BlobHeader::encode_aad changed: every sealed blob would stop opening"
    );
    let (parsed, parts) = BlobHeader::parse(&aad).unwrap_or_else(|e| panic!("frozen aad does not parse: {e}"));
    assert_eq!(parsed, header);
    assert_eq!(parts.aad, &aad[..]);
    assert!(parts.ciphertext.is_empty());
}

// ---- must-fail cases -------------------------------------------------------------------------

#[test]
fn rejects_unknown_request_tag_200() {
    // request_id 1, tag 200 as a postcard varint (0xc8 0x01).
    let f = reframe(&hex!("01 c801"));
    let err = decode_message::<Envelope<Request>>(&f).unwrap_err();
    assert_eq!(err, DecodeError::Message);
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    // Same for a response.
    assert_eq!(decode_message::<Envelope<Response>>(&f), Err(DecodeError::Message));
}

#[test]
fn rejects_every_truncated_payload() {
    // Postcard is prefix-free: no proper prefix of a message is a message.
    for (name, f) in all_frames() {
        let p = payload(f);
        for cut in 0..p.len() {
            let g = reframe(&p[..cut]);
            let is_request = name.starts_with("request/");
            let got = if is_request {
                decode_message::<Envelope<Request>>(&g).map(drop)
            } else {
                decode_message::<Envelope<Response>>(&g).map(drop)
            };
            assert_eq!(got, Err(DecodeError::Message), "{name}: payload cut to {cut} bytes");
        }
    }
}

#[test]
fn rejects_payload_with_trailing_byte() {
    for row in REQUESTS {
        let mut p = payload(row.frame);
        p.push(0);
        assert_eq!(decode_message::<Envelope<Request>>(&reframe(&p)), Err(DecodeError::Message), "{}", row.name);
    }
    for row in RESPONSES {
        let mut p = payload(row.frame);
        p.push(0);
        assert_eq!(decode_message::<Envelope<Response>>(&reframe(&p)), Err(DecodeError::Message), "{}", row.name);
    }
}

#[test]
fn rejects_frame_version_2() {
    for (name, f) in all_frames() {
        // A well-formed version-2 frame (valid CRC) around a valid payload.
        let g = reframe_with_version(2, &payload(f));
        let err = decode_message::<Envelope<Request>>(&g).unwrap_err();
        assert_eq!(err, DecodeError::Frame(FrameError::UnsupportedVersion(2)), "{name}");
        assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
        // Version is checked before the checksum: patching the byte alone gives the same error.
        let mut g = f.to_vec();
        g[3] = 2;
        assert_eq!(
            decode_message::<Envelope<Response>>(&g),
            Err(DecodeError::Frame(FrameError::UnsupportedVersion(2))),
            "{name}"
        );
    }
}

#[test]
fn rejects_flipped_crc_and_flipped_payload_bit() {
    for (name, f) in all_frames() {
        let mut g = f.to_vec();
        let last = g.len() - 1;
        g[last] ^= 0x01;
        let err = decode_message::<Envelope<Request>>(&g).unwrap_err();
        assert_eq!(err, DecodeError::Frame(FrameError::BadChecksum), "{name}");
        assert_eq!(err.code(), ErrorCode::MalformedFrame);
        let mut g = f.to_vec();
        g[HEADER_LEN] ^= 0x40;
        assert_eq!(
            decode_message::<Envelope<Response>>(&g),
            Err(DecodeError::Frame(FrameError::BadChecksum)),
            "{name}"
        );
    }
}

#[test]
fn rejects_truncated_frame_and_trailing_frame_bytes() {
    let f = REQUESTS[2].frame;
    assert_eq!(decode_message::<Envelope<Request>>(&f[..f.len() - 1]), Err(DecodeError::Frame(FrameError::Truncated)));
    let mut g = f.to_vec();
    g.push(0);
    assert_eq!(decode_message::<Envelope<Request>>(&g), Err(DecodeError::Frame(FrameError::TrailingBytes)));
}

#[test]
fn status_request_is_not_misread_as_a_response() {
    // Request::Status (tag 1, no body) and Response::Hello (tag 1, 3 bytes) share a tag but
    // not a shape: the wrong type is refused rather than misread.
    assert_eq!(decode_message::<Envelope<Response>>(REQUESTS[1].frame), Err(DecodeError::Message));
}

// ---- generators (run by hand) ----------------------------------------------------------------

/// Prints every row's frame as a `hex!` literal. Use it to write the literal of a *new* row
/// once; never to refresh an existing one.
#[test]
#[ignore = "generator: cargo test -p sigil-protocol --test golden -- --ignored --nocapture"]
fn print_golden_frames() {
    fn print<T: Serialize>(table: &[Vector<T>]) {
        for row in table {
            let f = encode_message(&(row.value)()).unwrap();
            println!("// {}", row.name);
            println!("frame: &hex!(");
            for line in hex::encode(f).as_bytes().chunks(64) {
                println!("    \"{}\"", core::str::from_utf8(line).unwrap());
            }
            println!("),");
        }
    }
    print(REQUESTS);
    print(RESPONSES);
    let aad = derive_kek().aad();
    println!("// aad");
    for line in hex::encode(aad).as_bytes().chunks(64) {
        println!("    \"{}\"", core::str::from_utf8(line).unwrap());
    }
}

/// Writes the fuzz seed corpus `fuzz/seeds/frame_message/`: each golden frame, and a few
/// streams of several frames, each behind the control byte `frame_and_message` reads first
/// (it picks how the stream is cut into reads).
#[test]
#[ignore = "generator: cargo test -p sigil-protocol --test golden -- --ignored write_fuzz_seeds"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frame_message");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, control: u8, stream: &[u8]| {
        let mut data = vec![control];
        data.extend_from_slice(stream);
        std::fs::write(dir.join(name), data).unwrap();
    };
    for (i, (name, f)) in all_frames().enumerate() {
        let control = u8::try_from(i).unwrap().wrapping_mul(37);
        write(&name.replace('/', "_"), control, f);
    }
    let responses: Vec<u8> = RESPONSES.iter().flat_map(|r| r.frame.iter().copied()).collect();
    write("stream_all_responses", 0xbb, &responses);
    let requests = [REQUESTS[0].frame, REQUESTS[1].frame, REQUESTS[2].frame].concat();
    write("stream_hello_status_derive_address", 0x02, &requests);
    let mut cut = requests.clone();
    cut.truncate(requests.len() - 5);
    write("stream_truncated", 0x07, &cut);
}
