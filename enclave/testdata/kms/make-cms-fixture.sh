#!/bin/sh
# Builds the CMS fixture of `sealer::kms::cms` tests with OpenSSL, an implementation
# independent of ours, shaped like KMS's CiphertextForRecipient: EnvelopedData, one
# KeyTransRecipientInfo (RSAES-OAEP, SHA-256, MGF1-SHA-256), AES-256-CBC content, BER with
# indefinite lengths (-stream). Run from this directory; the outputs are committed.
set -eu
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out cms-recipient.pem.key
openssl pkcs8 -topk8 -nocrypt -in cms-recipient.pem.key -outform DER -out cms-recipient.p8.der
openssl req -new -x509 -key cms-recipient.pem.key -subj /CN=sigil-test-recipient -days 1 -out cms-recipient.pem
head -c 32 /dev/urandom > cms-plaintext.bin
openssl cms -encrypt -aes256 -binary -stream -outform DER -in cms-plaintext.bin -recip cms-recipient.pem \
    -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256 -out cms-openssl.ber
rm cms-recipient.pem cms-recipient.pem.key
