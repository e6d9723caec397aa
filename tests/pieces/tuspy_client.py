"""tuspy uploading FILE to ENDPOINT in pieces of CHUNK bytes; prints "success URL" or
"error STATUS URL". Usage: tuspy_client.py ENDPOINT FILE CHUNK"""
import sys

from tusclient import client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

endpoint, path, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
uploader = client.TusClient(endpoint).uploader(path, chunk_size=chunk, retries=0, metadata={"filename": "x.bin"})
try:
    uploader.upload()
    print("success", uploader.url)
except (TusCommunicationError, TusUploadFailed) as e:
    print("error", e.status_code, uploader.url or "")
