"""An S3 client as applications run it: boto3 uploading a file through the module to an S3
server, then (to the server directly) reading back what it stored.

    s3.py ENDPOINT DIRECT CA BUCKET KEY FILE MODE

MODE: put (put_object), multipart (upload_file with 5 MiB parts, two at once) or reversed (the
multipart API by hand, 5 MiB parts uploaded last first). Prints one JSON line:
{"uploaded": bool, "error": str|null, "stored_sha256": str|null, "sha256": str, "botocore": str}.
"""
import hashlib
import json
import sys

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def client(endpoint, ca):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        verify=ca if endpoint.startswith("https") else None,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def main():
    endpoint, direct, ca, bucket, key, path, mode = sys.argv[1:8]
    data = open(path, "rb").read()
    out = {"sha256": hashlib.sha256(data).hexdigest(), "botocore": botocore.__version__,
           "uploaded": False, "error": None, "stored_sha256": None}
    plain = client(direct, ca)
    try:
        plain.create_bucket(Bucket=bucket)
    except plain.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3 = client(endpoint, ca)
    try:
        if mode == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=open(path, "rb"))
        elif mode == "reversed":
            up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            size = 5 << 20
            chunks = [data[i:i + size] for i in range(0, len(data), size)]
            parts = []
            for n in reversed(range(len(chunks))):
                r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n + 1,
                                   Body=chunks[n])
                parts.append({"PartNumber": n + 1, "ETag": r["ETag"]})
            parts.sort(key=lambda p: p["PartNumber"])
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                         MultipartUpload={"Parts": parts})
        else:
            cfg = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20,
                                 max_concurrency=2)
            s3.upload_file(path, bucket, key, Config=cfg)
        out["uploaded"] = True
    except Exception as e:  # the module's refusal is an error to the client
        out["error"] = "%s: %s" % (type(e).__name__, str(e)[:300])
    try:
        got = plain.get_object(Bucket=bucket, Key=key)["Body"].read()
        out["stored_sha256"] = hashlib.sha256(got).hexdigest()
    except Exception:
        pass
    print(json.dumps(out))


main()
