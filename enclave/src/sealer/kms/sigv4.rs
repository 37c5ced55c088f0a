//! AWS Signature Version 4 for the one kind of request the KMS sealer sends: a JSON `POST /`
//! to `kms.<region>.amazonaws.com` (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
//!
//! ```text
//! canonical = METHOD \n PATH \n (empty query) \n lower(name):value\n ... \n signed-names \n hex(SHA-256(body))
//! to_sign   = "AWS4-HMAC-SHA256" \n amz_date \n date/region/service/aws4_request \n hex(SHA-256(canonical))
//! key       = HMAC(HMAC(HMAC(HMAC("AWS4" || secret, date), region), service), "aws4_request")
//! ```
//!
//! The credentials are the parent instance's role (they authorise nothing the host could not
//! do itself); what keeps K3 in the enclave is the key policy's attestation condition, not
//! these secrets. They are zeroized anyway and never printed.
#![allow(clippy::std_instead_of_alloc, clippy::std_instead_of_core, reason = "std-only module")]

use core::fmt;
use std::borrow::ToOwned as _;
use std::format;
use std::string::String;
use std::vec::Vec;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Temporary AWS credentials (an instance role's, from IMDS).
#[derive(Clone)]
pub struct Credentials {
    /// `AccessKeyId` (not secret: it names the key, and appears in every request).
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: Zeroizing<String>,
    /// `Token` of temporary credentials (sent as `X-Amz-Security-Token`).
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The absolute path (already URI-encoded; KMS uses `/`).
    pub path: &'a str,
    /// The headers to sign, besides `host` and `x-amz-date` (and `x-amz-security-token`),
    /// which [`sign`] adds.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// Where and when: the scope of a signature.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `Host` header value.
    pub host: &'a str,
    /// `us-east-1`, ...
    pub region: &'a str,
    /// `kms`.
    pub service: &'a str,
    /// Seconds since the Unix epoch.
    pub unix_time: u64,
}

/// Signs `request`: returns every header to send with it (the caller's, `host`,
/// `x-amz-date`, `x-amz-security-token` if any, and `authorization`), names lower-case.
#[must_use]
pub fn sign(credentials: &Credentials, scope: &Scope<'_>, request: &Request<'_>) -> Vec<(String, String)> {
    let amz_date = amz_date(scope.unix_time);
    let date = amz_date.get(..8).unwrap_or_default().to_owned();
    let mut headers: Vec<(String, String)> =
        request.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned())).collect();
    headers.push(("host".into(), scope.host.to_owned()));
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.as_str().to_owned()));
    }
    headers.sort();

    let signed_names = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let mut canonical = format!("{}\n{}\n\n", request.method, request.path);
    for (name, value) in &headers {
        canonical.push_str(&format!("{name}:{value}\n"));
    }
    canonical.push_str(&format!("\n{signed_names}\n{}", hex::encode(Sha256::digest(request.body))));

    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = Zeroizing::new(format!("AWS4{}", credentials.secret_access_key.as_str()).into_bytes());
    for part in [date.as_str(), scope.region, scope.service, "aws4_request"] {
        *key = hmac(&key, part.as_bytes()).to_vec();
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_names}, Signature={signature}",
            credentials.access_key_id
        ),
    ));
    headers
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for a Unix time.
#[must_use]
pub fn amz_date(unix_time: u64) -> String {
    let days = unix_time / 86_400;
    let secs = unix_time % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
const fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(4_102_444_799), "20991231T235959Z");
    }

    fn example_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| Zeroizing::new(t.into())),
        }
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        &headers.iter().find(|(n, _)| n == "authorization").unwrap().1
    }

    /// AWS's SigV4 test suite, `get-vanilla` (2015-08-30T12:36:00Z, us-east-1, service
    /// `service`, host `example.amazonaws.com`).
    #[test]
    fn aws_test_suite_get_vanilla() {
        let scope =
            Scope { host: "example.amazonaws.com", region: "us-east-1", service: "service", unix_time: 1_440_938_160 };
        let request = Request { method: "GET", path: "/", headers: &[], body: b"" };
        let headers = sign(&example_credentials(None), &scope, &request);
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// A KMS `Decrypt` with a session token, signed by botocore 1.x (`SigV4Auth`) with the
    /// same inputs: see `testdata/kms/sigv4-botocore.py`, which printed this signature.
    #[test]
    fn kms_request_matches_botocore() {
        let scope = Scope {
            host: "kms.eu-west-1.amazonaws.com",
            region: "eu-west-1",
            service: "kms",
            unix_time: 1_795_000_000,
        };
        let body = br#"{"CiphertextBlob":"AQID","KeyId":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}"#;
        let request = Request {
            method: "POST",
            path: "/",
            headers: &[("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "TrentService.Decrypt")],
            body,
        };
        let headers = sign(&example_credentials(Some("IQoJb3JpZ2luX2VjEXAMPLETOKEN")), &scope, &request);
        assert_eq!(authorization(&headers), include_str!("../../../testdata/kms/sigv4-botocore.txt").trim());
    }
}
