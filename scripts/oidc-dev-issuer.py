#!/usr/bin/env python3
"""A local OIDC issuer for trying Drydock's CI token exchange without a CI system.

  python3 scripts/oidc-dev-issuer.py 9400 &
  DRYDOCK_OIDC_ISSUERS=github=http://127.0.0.1:9400 drydock-server ...
  drydock projects trust add PROJECT --github acme/api --ref main
  # a GitHub Actions-like job: drydock asks this issuer for its ID token
  ACTIONS_ID_TOKEN_REQUEST_URL='http://127.0.0.1:9400/token?repository=acme/api&ref=refs/heads/main' \
  ACTIONS_ID_TOKEN_REQUEST_TOKEN=dev drydock whoami

Serves /.well-known/openid-configuration, /jwks (one RSA key) and /token, which answers
{"value": <RS256 ID token>} with iss, aud (the `audience` query parameter), iat/nbf/exp (5 min)
and every other query parameter as a claim, as GitHub Actions' token endpoint does for a job.
For local trials only: it signs whatever it is asked.
"""
import base64, json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qsl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9400
issuer = f"http://127.0.0.1:{port}"
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
numbers = key.public_key().public_numbers()

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def uint(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

jwks = {"keys": [{"kty": "RSA", "kid": "dev-1", "alg": "RS256", "use": "sig", "n": uint(numbers.n), "e": uint(numbers.e)}]}

def sign(claims: dict) -> str:
    head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "dev-1"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"

class Handler(BaseHTTPRequestHandler):
    def answer(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/.well-known/openid-configuration":
            self.answer({"issuer": issuer, "jwks_uri": issuer + "/jwks"})
        elif url.path == "/jwks":
            self.answer(jwks)
        elif url.path == "/token":
            now = int(time.time())
            claims = {"iss": issuer, "iat": now, "nbf": now, "exp": now + 300, "sub": "dev"}
            claims.update(dict(parse_qsl(url.query)))
            claims["aud"] = claims.pop("audience", "drydock")
            claims.pop("api-version", None)
            self.answer({"value": sign(claims)})
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass

print(f"OIDC dev issuer on {issuer}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
