"""A gRPC server and client for tests/streaming.rs (grpcio, raw bytes, no generated code).

server PORT LOG         echo service: /t.Echo/Unary answers each message with itself,
                        /t.Echo/Chat answers every message of a stream as it comes; each
                        message received is appended to LOG as hex. Prints "ready".
unary PORT HEX [gzip]   one unary call through nginx (its message compressed); prints "ok HEX"
                        or "error CODE".
chat PORT N SECONDS     a bidirectional call that sends a message only after the answer to
                        the previous one (a conversation); prints "ok N" or "error CODE".
"""
import queue
import sys
import threading
from concurrent import futures

import grpc


def server(port, log):
    lock = threading.Lock()

    def record(msg):
        with lock, open(log, "a") as f:
            f.write(msg.hex() + "\n")

    def unary(req, ctx):
        record(req)
        return req

    def chat(reqs, ctx):
        for r in reqs:
            record(r)
            yield r

    handler = grpc.method_handlers_generic_handler(
        "t.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        },
    )
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((handler,))
    s.add_insecure_port(f"127.0.0.1:{port}")
    s.start()
    print("ready", flush=True)
    s.wait_for_termination()


def unary(port, hexmsg, compression=None):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary("/t.Echo/Unary")
        gz = grpc.Compression.Gzip if compression == "gzip" else None
        try:
            print("ok", call(bytes.fromhex(hexmsg), timeout=20, compression=gz).hex())
        except grpc.RpcError as e:
            print("error", e.code().name)


def chat(port, n, seconds):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.stream_stream("/t.Echo/Chat")
        out = queue.Queue()

        def requests():
            for i in range(n):
                yield f"message {i}".encode()
                if out.get() is None:
                    return

        got = 0
        try:
            for answer in call(requests(), timeout=seconds):
                got += 1
                out.put(answer)
                if got == n:
                    break
            print("ok", got)
        except grpc.RpcError as e:
            print("error", e.code().name)
        finally:
            out.put(None)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        server(int(sys.argv[2]), sys.argv[3])
    elif mode == "unary":
        unary(int(sys.argv[2]), sys.argv[3], *sys.argv[4:5])
    else:
        chat(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
