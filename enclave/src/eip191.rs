//! EIP-191 `personal_sign` digests:
//! `keccak256("\x19Ethereum Signed Message:\n" || decimal(len(msg)) || msg)`.

use sha3::{Digest, Keccak256};

/// The fixed EIP-191 version-0x45 prefix.
pub const PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

/// The digest an EIP-191 signature over `message` signs.
#[must_use]
pub fn digest(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(PREFIX);
    h.update(decimal(message.len()).as_bytes());
    h.update(message);
    h.finalize().into()
}

/// `n` in decimal without allocating (usize has at most 20 digits).
struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

fn decimal(mut n: usize) -> Decimal {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        if let Some(slot) = buf.get_mut(start) {
            // n % 10 < 10, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let d = (n % 10) as u8;
            *slot = b'0' + d;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    Decimal { buf, start }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn decimal_matches_to_string() {
        for n in [0usize, 1, 9, 10, 99, 100, 65536, usize::MAX] {
            assert_eq!(decimal(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn hello_digest_matches_ethereum() {
        // keccak256("\x19Ethereum Signed Message:\n5hello"), as computed by ethers/web3 hashMessage("hello").
        assert_eq!(hex::encode(digest(b"hello")), "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750");
    }
}
