"""Signs the KMS request of `sealer::kms::sigv4::tests::kms_request_matches_botocore` with
botocore (an independent SigV4 implementation) and prints its Authorization header.

    pip install botocore && python3 sigv4-botocore.py > sigv4-botocore.txt
"""
import datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

body = b'{"CiphertextBlob":"AQID","KeyId":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}'
request = AWSRequest(
    method="POST",
    url="https://kms.eu-west-1.amazonaws.com/",
    data=body,
    headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Decrypt"},
)
credentials = Credentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "IQoJb3JpZ2luX2VjEXAMPLETOKEN"
)
now = datetime.datetime.fromtimestamp(1_795_000_000, tz=datetime.timezone.utc).replace(tzinfo=None)
with mock.patch("botocore.auth.get_current_datetime", return_value=now):
    SigV4Auth(credentials, "kms", "eu-west-1").add_auth(request)
print(request.headers["Authorization"])
