"""A test OIDC issuer on loopback for the bridge's auth tests, with tokens minted by PyJWT.

Usage: issuer.py [--tls CERT KEY] [--key-token FILE]  — prints {"port": P} on its first stdout
line, then serves on 127.0.0.1:P. With --tls it serves HTTPS with that certificate and its
issuer is https://localhost:P (else http://127.0.0.1:P). With --key-token the OpenID
configuration and the JWKS answer 401 unless the request's bearer token is the file's content
as it is at that request (a projected service-account token, rewritten by the kubelet):

  GET  /.well-known/openid-configuration  issuer, jwks_uri, introspection_endpoint
  GET  /jwks                              the current public keys (RSA "rsa-<n>" and EC "ec-1")
  POST /rotate                            a new RSA key replaces the current one: {"kid": ...}
  POST /token   {"claims": {...}, "key": "rsa"|"ec"|"rogue"|"rogue-kid"|"none",
                 "opaque": bool, "active": bool}
                -> {"token": ...}. Claims default to iss, aud "mcp-test", sub "tester",
                   exp now+300; "exp_in"/"nbf_in" set exp/nbf relative to now; null removes.
                   "rogue" signs with a key the JWKS does not hold under the current kid;
                   "rogue-kid" under a kid nobody knows; "none" is an unsigned token.
  POST /introspect  RFC 7662 (Basic client:secret) for opaque tokens
  GET  /stats   {"jwks_fetches": n, "key_fetches_refused": n}
  POST /mcp     a tiny streamable-HTTP MCP backend that records the headers it got
  GET  /seen    the headers of every request /mcp got
  POST /exchange  RFC 8693 token exchange (Basic client:secret): the subject token's `sub`
                (read, not verified: this is the test's own issuer) names the answer,
                {"access_token": "xchg-<sub>-<n>", "expires_in": 300, ...}; sub "refused"
                gets 400 invalid_grant with a description that must never reach a client
  GET  /exchanges  every exchange request: its form fields and whether the client auth was right
"""

import argparse
import base64
import json
import secrets
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

LOCK = threading.Lock()
STATE = {
    "rsa": None,
    "rsa_kid": None,
    "generation": 0,
    "ec": ec.generate_private_key(ec.SECP256R1()),
    "rogue": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "opaque": {},
    "jwks_fetches": 0,
    "key_fetches_refused": 0,
    "seen": [],
    "exchanges": [],
}
# What the token endpoint says when it refuses: a client of the bridge must never see it.
REFUSAL_DETAIL = "endpoint-internal-detail-7f3a"

CLIENT = ("bridge", "s3cret")
# Set from the command line (see the usage above).
OPTIONS = argparse.Namespace(tls=None, key_token=None)


def rotate():
    with LOCK:
        STATE["generation"] += 1
        STATE["rsa"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        STATE["rsa_kid"] = f"rsa-{STATE['generation']}"
        return STATE["rsa_kid"]


rotate()


def jwk(public_key, algorithm, kid, alg):
    key = json.loads(algorithm.to_jwk(public_key))
    key.update({"kid": kid, "alg": alg, "use": "sig"})
    return key


def jwks():
    with LOCK:
        return {
            "keys": [
                jwk(STATE["rsa"].public_key(), RSAAlgorithm, STATE["rsa_kid"], "RS256"),
                jwk(STATE["ec"].public_key(), ECAlgorithm, "ec-1", "ES256"),
            ]
        }


def mint(issuer, spec):
    now = int(time.time())
    claims = {"iss": issuer, "aud": "mcp-test", "sub": "tester", "iat": now, "exp": now + 300}
    for k, v in (spec.get("claims") or {}).items():
        if k == "exp_in":
            claims["exp"] = now + v
        elif k == "nbf_in":
            claims["nbf"] = now + v
        elif v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    if spec.get("opaque"):
        token = secrets.token_urlsafe(24)
        with LOCK:
            STATE["opaque"][token] = dict(claims, active=spec.get("active", True))
        return token
    key = spec.get("key", "rsa")
    with LOCK:
        if key == "rsa":
            return jwt.encode(claims, STATE["rsa"], "RS256", headers={"kid": STATE["rsa_kid"]})
        if key == "ec":
            return jwt.encode(claims, STATE["ec"], "ES256", headers={"kid": "ec-1"})
        if key == "rogue":
            return jwt.encode(claims, STATE["rogue"], "RS256", headers={"kid": STATE["rsa_kid"]})
        if key == "rogue-kid":
            kid = "unknown-" + secrets.token_hex(4)
            return jwt.encode(claims, STATE["rogue"], "RS256", headers={"kid": kid})
        if key == "none":
            return jwt.encode(claims, None, algorithm="none")
    raise ValueError(f"unknown key {key}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def issuer(self):
        port = self.server.server_address[1]
        return f"https://localhost:{port}" if OPTIONS.tls else f"http://127.0.0.1:{port}"

    def key_fetch_refused(self):
        """With --key-token: answers 401 (and counts it) unless the bearer is the file's
        current content."""
        if not OPTIONS.key_token:
            return False
        try:
            with open(OPTIONS.key_token) as f:
                want = "Bearer " + f.read().strip()
        except OSError:
            want = None
        if want and self.headers.get("authorization") == want:
            return False
        with LOCK:
            STATE["key_fetches_refused"] += 1
        self.reply(401, {"error": "unauthorized"})
        return True

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path in ("/.well-known/openid-configuration", "/jwks") and self.key_fetch_refused():
            return
        if self.path == "/.well-known/openid-configuration":
            iss = self.issuer()
            return self.reply(200, {"issuer": iss, "jwks_uri": iss + "/jwks",
                                    "introspection_endpoint": iss + "/introspect"})
        if self.path == "/jwks":
            with LOCK:
                STATE["jwks_fetches"] += 1
            return self.reply(200, jwks())
        if self.path == "/stats":
            with LOCK:
                return self.reply(200, {"jwks_fetches": STATE["jwks_fetches"],
                                        "key_fetches_refused": STATE["key_fetches_refused"]})
        if self.path == "/seen":
            with LOCK:
                return self.reply(200, STATE["seen"])
        if self.path == "/exchanges":
            with LOCK:
                return self.reply(200, STATE["exchanges"])
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        raw = self.body()
        if self.path == "/rotate":
            return self.reply(200, {"kid": rotate()})
        if self.path == "/token":
            return self.reply(200, {"token": mint(self.issuer(), json.loads(raw or b"{}"))})
        if self.path == "/introspect":
            return self.introspect(raw)
        if self.path == "/mcp":
            return self.backend(raw)
        if self.path == "/exchange":
            return self.exchange(raw)
        self.reply(404, {"error": "not found"})

    def do_DELETE(self):
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def introspect(self, raw):
        want = "Basic " + base64.b64encode(f"{CLIENT[0]}:{CLIENT[1]}".encode()).decode()
        if self.headers.get("authorization") != want:
            return self.reply(401, {"error": "invalid_client"})
        token = parse_qs(raw.decode()).get("token", [""])[0]
        with LOCK:
            claims = STATE["opaque"].get(token)
        if not claims or not claims.get("active"):
            return self.reply(200, {"active": False})
        return self.reply(200, claims)

    def exchange(self, raw):
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        want = "Basic " + base64.b64encode(f"{CLIENT[0]}:{CLIENT[1]}".encode()).decode()
        client_ok = self.headers.get("authorization") == want
        with LOCK:
            STATE["exchanges"].append({"form": form, "client_ok": client_ok,
                                       "content_type": self.headers.get("content-type")})
            n = len(STATE["exchanges"])
        if not client_ok:
            return self.reply(401, {"error": "invalid_client"})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return self.reply(400, {"error": "unsupported_grant_type"})
        try:
            sub = jwt.decode(form.get("subject_token", ""), options={"verify_signature": False})["sub"]
        except Exception:
            return self.reply(400, {"error": "invalid_request"})
        if sub == "refused":
            return self.reply(400, {"error": "invalid_grant", "error_description": REFUSAL_DETAIL})
        return self.reply(200, {"access_token": f"xchg-{sub}-{n}", "expires_in": 300,
                                "token_type": "Bearer",
                                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})

    def backend(self, raw):
        with LOCK:
            STATE["seen"].append({k.lower(): v for k, v in self.headers.items()})
        msg = json.loads(raw or b"{}")
        if "id" not in msg:
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        method = msg.get("method")
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "issuer-backend", "version": "0"}}
            return self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result},
                              {"mcp-session-id": "s1"})
        if method == "tools/list":
            tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("echo", "get-env")]
            result = {"tools": tools}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "called " + msg["params"]["name"]}]}
        else:
            result = {}
        self.reply(200, {"jsonrpc": "2.0", "id": msg["id"], "result": result})


def main():
    global OPTIONS
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--key-token", metavar="FILE")
    OPTIONS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if OPTIONS.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*OPTIONS.tls)
        # A client that gives up on the handshake (an untrusted certificate) costs an OSError
        # in accept, which the server ignores.
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
