"""fake_oidc.py - a fake OpenID Connect provider for the sign-in tests
(issue 10): Python's http.server on 127.0.0.1 with its own RSA key pair,
made at start by Debian's python3-cryptography.

It speaks the parts of Google's protocol Echo uses: /auth (consent: answers
at once with a redirect to the client's redirect_uri carrying a code and the
state), /token (client_secret_post, PKCE S256 checked, codes usable once,
an RS256 ID token), /jwks (with Cache-Control max-age), /userinfo (bearer).

`misbehave` switches one answer to a misbehaviour, for the next sign-ins
until reset():
  deny            /auth redirects with error=access_denied
  wrong_state     /auth sends a state that is not the one it got
  replay_code     /auth hands out the previous (already used) code again
  hang            /token sleeps `hang_seconds` before answering
  oversized       /token answers 200 KB
  oversized_jwks  /jwks answers 200 KB
  malformed       /token answers a body that is not JSON
  bad_signature   the ID token's signature is changed
  alg_none        the ID token is unsigned ("alg": "none")
  hs256           the ID token is HMAC-signed with the client secret
  expired         exp lies an hour in the past
  wrong_aud       aud is another client
  wrong_iss       iss is another issuer
  wrong_nonce     nonce is another one
  unverified      email_verified is false
  unknown_kid     the token is signed by a key the JWKS never lists
and rotate() makes a new key (new kid) that signs from then on and that the
JWKS lists instead of the old one.
"""
import base64
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_int(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Key:
    def __init__(self, bits=2048):
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        self.kid = "k" + secrets.token_hex(6)

    def jwk(self):
        pub = self.private.public_key().public_numbers()
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                "n": b64url_int(pub.n), "e": b64url_int(pub.e)}

    def sign(self, data):
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


def make_jwt(header, claims, key=None, secret=None):
    """A compact JWS; RS256 with key, HS256 with secret, or unsigned."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    signing_input = (head + "." + body).encode()
    if header.get("alg") == "RS256":
        sig = key.sign(signing_input)
    elif header.get("alg") == "HS256":
        sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    else:
        sig = b""
    return head + "." + body + "." + b64url(sig)


class FakeProvider:
    def __init__(self, client_id="echo-test-client", client_secret="GOCSPX-echo-test-secret-0123456789abcdef"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = Key()
        self.stray_key = None
        self.lock = threading.Lock()
        self.codes = {}        # code -> grant (client, redirect, challenge, nonce, used)
        self.last_code = None
        self.access = {}       # access token -> claims
        self.requests = []     # (method, path) of every request
        self.stopping = threading.Event()
        self.reset()
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        self.misbehave = None
        self.hang_seconds = 6
        self.jwks_max_age = 3600
        self.user = {"sub": "1000001", "email": "ada@example.com", "email_verified": True,
                     "name": "Ada Lovelace"}
        self.userinfo_name = None

    def rotate(self):
        with self.lock:
            self.key = Key()

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def env(self, **extra):
        env = {"GOOGLE_CLIENT_ID": self.client_id, "GOOGLE_CLIENT_SECRET": self.client_secret,
               "GOOGLE_AUTH_URL": self.base + "/auth", "GOOGLE_TOKEN_URL": self.base + "/token",
               "GOOGLE_USERINFO_URL": self.base + "/userinfo",
               "GOOGLE_JWKS_URL": self.base + "/jwks", "GOOGLE_ISSUER": self.base,
               "GOOGLE_TIMEOUT": "2"}
        env.update(extra)
        return env

    def count(self, path):
        return sum(1 for _, p in self.requests if p == path)

    # ---- the ID token ----
    def id_token(self, nonce):
        now = int(time.time())
        claims = {"iss": self.base, "aud": self.client_id, "azp": self.client_id,
                  "iat": now, "exp": now + 3600, "nonce": nonce, **self.user}
        claims = {k: v for k, v in claims.items() if v is not None}
        m = self.misbehave
        if m == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif m == "wrong_aud":
            claims["aud"] = claims["azp"] = "someone-else"
        elif m == "wrong_iss":
            claims["iss"] = "https://evil.example"
        elif m == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        elif m == "unverified":
            claims["email_verified"] = False
        key = self.key
        if m == "unknown_kid":
            self.stray_key = self.stray_key or Key()
            key = self.stray_key
        if m == "alg_none":
            return make_jwt({"alg": "none", "typ": "JWT"}, claims)
        if m == "hs256":
            return make_jwt({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims,
                            secret=self.client_secret)
        token = make_jwt({"alg": "RS256", "typ": "JWT", "kid": key.kid}, claims, key=key)
        if m == "bad_signature":
            head, body, sig = token.split(".")
            raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
            raw[10] ^= 0x01
            token = head + "." + body + "." + b64url(bytes(raw))
        return token

    # ---- HTTP ----
    def _handler(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body, ctype="application/json", headers=None):
                if isinstance(body, (dict, list)):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                fake.requests.append(("GET", url.path))
                if url.path == "/auth":
                    return self.auth(q)
                if url.path == "/jwks":
                    if fake.misbehave == "oversized_jwks":
                        return self.send(200, json.dumps({"keys": [], "pad": "x" * 200000}))
                    with fake.lock:
                        keys = [fake.key.jwk()]
                    return self.send(200, {"keys": keys}, headers={
                        "Cache-Control": f"public, max-age={fake.jwks_max_age}, must-revalidate"})
                if url.path == "/userinfo":
                    auth = self.headers.get("Authorization", "")
                    claims = fake.access.get(auth[len("Bearer "):]) if auth.startswith(
                        "Bearer ") else None
                    if not claims:
                        return self.send(401, {"error": "invalid_token"})
                    return self.send(200, {"sub": claims["sub"], "name": fake.userinfo_name,
                                           "email": claims.get("email")})
                self.send(404, {"error": "not_found"})

            def auth(self, q):
                for k in ("client_id", "redirect_uri", "state", "nonce", "code_challenge"):
                    if not q.get(k):
                        return self.send(400, {"error": "invalid_request", "missing": k})
                if (q["client_id"] != fake.client_id or q.get("response_type") != "code"
                        or q.get("code_challenge_method") != "S256"
                        or set(q.get("scope", "").split()) != {"openid", "email", "profile"}):
                    return self.send(400, {"error": "invalid_request"})
                state = q["state"]
                if fake.misbehave == "deny":
                    params = {"error": "access_denied", "state": state}
                else:
                    if fake.misbehave == "wrong_state":
                        state = secrets.token_urlsafe(32)
                    if fake.misbehave == "replay_code" and fake.last_code:
                        code = fake.last_code
                    else:
                        code = secrets.token_urlsafe(24)
                        fake.codes[code] = {"redirect_uri": q["redirect_uri"],
                                            "challenge": q["code_challenge"],
                                            "nonce": q["nonce"], "used": False}
                    fake.last_code = code
                    params = {"code": code, "state": state}
                sep = "&" if "?" in q["redirect_uri"] else "?"
                location = q["redirect_uri"] + sep + urllib.parse.urlencode(params)
                self.send(302, b"", "text/plain", headers={"Location": location})

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                fake.requests.append(("POST", url.path))
                n = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                if url.path != "/token":
                    return self.send(404, {"error": "not_found"})
                m = fake.misbehave
                if m == "hang":
                    fake.stopping.wait(fake.hang_seconds)
                    return self.send(500, {"error": "server_error"})
                if m == "oversized":
                    return self.send(200, json.dumps({"pad": "x" * 200000}))
                if m == "malformed":
                    return self.send(200, '{"id_token": "abc", "access_token": ')
                if (form.get("grant_type") != "authorization_code"
                        or form.get("client_id") != fake.client_id
                        or form.get("client_secret") != fake.client_secret):
                    return self.send(401, {"error": "invalid_client"})
                grant = fake.codes.get(form.get("code", ""))
                if not grant or grant["used"] or grant["redirect_uri"] != form.get("redirect_uri"):
                    return self.send(400, {"error": "invalid_grant"})
                grant["used"] = True
                verifier = form.get("code_verifier", "")
                if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
                    return self.send(400, {"error": "invalid_grant",
                                           "error_description": "PKCE"})
                access = secrets.token_urlsafe(24)
                fake.access[access] = dict(fake.user)
                self.send(200, {"access_token": access, "token_type": "Bearer",
                                "expires_in": 3599, "scope": "openid email profile",
                                "id_token": fake.id_token(grant["nonce"])},
                          headers={"Cache-Control": "no-store"})

        return Handler
