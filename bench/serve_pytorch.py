#!/usr/bin/python3
"""The PyTorch reference for bench/serve_load: the explorer's POST /api/decode in Python.

The same checkpoint (weights loaded by state-dict name, tests/cli/pytorch_interop.py), the same
request and reply ({"z": [[...]]} -> {"images": {"shape", "pixels": base64 uint8}}), served the way a
Python user would write it without extra packages: http.server's ThreadingHTTPServer, HTTP/1.1
keep-alive, torch.inference_mode, one intra-op thread per request.

    /usr/bin/python3 bench/serve_pytorch.py CHECKPOINT --port 8091
"""
import argparse
import base64
import json
import math
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cli"))
from pytorch_interop import load_safetensors, mlp_vae  # noqa: E402


def make_handler(model, latent, shape):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/api/info":
                self.reply(200, {"latent": latent})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/api/decode":
                return self.reply(404, {"error": "not found"})
            try:
                z = json.loads(body)["z"]
                if not z or any(len(row) != latent or not all(math.isfinite(v) for v in row) for row in z):
                    raise ValueError("bad codes")
                with torch.inference_mode():
                    mean = torch.sigmoid(model.decoder(torch.tensor(z, dtype=torch.float32)))
                    pixels = mean.mul(255).round().to(torch.uint8)
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"error": str(e)})
            self.reply(200, {"count": len(z), "images": {"shape": [len(z)] + shape,
                                                          "pixels": base64.b64encode(pixels.numpy().tobytes()).decode()}})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--port", type=int, default=8091)
    a = p.parse_args()
    torch.set_num_threads(1)
    tensors, meta = load_safetensors(a.checkpoint)
    config = json.loads(meta["model"])
    shape = json.loads(meta["data_shape"])
    model = mlp_vae(config, math.prod(shape))
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "data."))}, strict=True)
    model.eval()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(model, config["latent"], shape))
    print(f"pytorch reference: http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
