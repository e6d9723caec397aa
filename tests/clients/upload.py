"""Python requests uploading a file as a raw body, chunked (a generator body): prints the
status. upload.py URL FILE"""
import sys

import requests

url, path = sys.argv[1:3]


def pieces():
    with open(path, "rb") as f:
        while True:
            b = f.read(256 * 1024)
            if not b:
                return
            yield b


r = requests.post(url, data=pieces(), headers={"Content-Type": "application/octet-stream"})
print(r.status_code)
