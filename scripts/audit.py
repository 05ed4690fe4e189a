#!/usr/bin/env python3
"""Fires bad input at every route of a running gradsign and counts what falls short.

Usage: GRADSIGN_JWT_SECRET=… python3 scripts/audit.py http://127.0.0.1:8080

It syncs a school, students and employers, takes one online case to approval (so real
ids exist: a case, its documents, a mail, an agreement number), then sends, for every
route: a NUL and control characters in every path parameter, query parameter and JSON
field; wrong types, huge and deeply nested bodies, invalid JSON; wrong methods and
content types; bad tokens of many kinds; and raw requests no HTTP library would send
(NUL in the request line, oversized and countless headers, headers that never end).

A response fails when it is a 5xx, or when it is an error that is not
application/problem+json, or when it lacks `X-Content-Type-Options: nosniff` or the
Content-Security-Policy. Prints the counts and up to 20 failures; exits 1 on any.
Standard library only.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
SECRET = os.environ["GRADSIGN_JWT_SECRET"]
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port or 80
API = "/api/v1"

stats = {"requests": 0, "5xx": 0, "contract": 0}
kinds = {}
failures = []


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret=SECRET, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def token(role, party=None, school=None, **extra):
    now = int(time.time())
    claims = {"role": role, "iat": now, "exp": now + 3600, **extra}
    if party:
        claims["party"] = party
    if school:
        claims["school"] = school
    return jwt(claims)


ADMIN = token("platform_admin")
S1 = token("student", "S1", "10212")
E1 = token("employer", "E1")
REVIEWER = token("school_reviewer", school="10212")


def check(what, status, headers, body):
    stats["requests"] += 1
    lower = {k.lower(): v for k, v in headers}
    problems = []
    if status >= 500:
        stats["5xx"] += 1
        problems.append("5xx")
    if status >= 400 and not lower.get("content-type", "").startswith("application/problem+json"):
        problems.append("error not problem+json")
    if status >= 400:
        try:
            doc = json.loads(body)
            if doc.get("status") != status or not str(doc.get("type", "")).startswith("urn:gradsign:"):
                problems.append("problem body does not match")
        except ValueError:
            problems.append("problem body is not JSON")
    if lower.get("x-content-type-options") != "nosniff" or "default-src 'none'" not in lower.get(
        "content-security-policy", ""
    ):
        problems.append("security headers missing")
    if problems:
        if problems != ["5xx"]:
            stats["contract"] += 1
        for p in problems:
            kinds[p] = kinds.get(p, 0) + 1
        failures.append(f"{what} -> {status} {', '.join(problems)}: {body[:200]!r}")


def send(method, path, body=None, headers=None, token_=ADMIN, raw_body=None):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    h = dict(headers or {})
    if token_ is not None:
        h.setdefault("Authorization", f"Bearer {token_}")
    data = raw_body
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        check(f"{method} {path[:120]}", resp.status, resp.getheaders(), text)
        return resp.status, text
    except (OSError, http.client.HTTPException) as e:
        stats["requests"] += 1
        stats["contract"] += 1
        kinds["no answer"] = kinds.get("no answer", 0) + 1
        failures.append(f"{method} {path[:120]} -> no answer: {e}")
        return 0, ""
    finally:
        conn.close()


def raw(what, data, expect_close=False, wait=30):
    """Sends bytes on a fresh connection; reads until the server closes it."""
    s = socket.create_connection((HOST, PORT), timeout=wait)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                stats["requests"] += 1
                stats["contract"] += 1
                failures.append(f"{what} -> connection still open after {wait} s")
                return
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        answer = b"".join(chunks).decode("utf-8", "replace")
    finally:
        s.close()
    if expect_close and not answer:
        stats["requests"] += 1
        return
    head, _, body = answer.partition("\r\n\r\n")
    try:
        status = int(head.split(" ", 2)[1])
    except (IndexError, ValueError):
        stats["requests"] += 1
        stats["contract"] += 1
        failures.append(f"{what} -> no HTTP answer: {answer[:200]!r}")
        return
    headers = [tuple(line.split(": ", 1)) for line in head.split("\r\n")[1:] if ": " in line]
    check(what, status, headers, body)


def seed():
    send("PUT", f"{API}/schools/10212", {"name": "北方理工大学", "reviewer_email": "r@nit.example.edu.cn"})
    for sid in ["S1", "S2"]:
        send("PUT", f"{API}/students/{sid}", {"school": "10212", "name": "李明", "email": f"{sid}@x.example.cn"})
    employer = {"name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": True, "receives_hukou": True}
    send("PUT", f"{API}/employers/E1", employer)
    status, text = send("POST", f"{API}/cases", {"workflow": "online_signing", "student": "S1", "input": {"terms": {"position": "工程师"}}}, token_=E1)
    case = json.loads(text)["id"]
    for step, who in [("view", S1), ("accept", S1), ("confirm", S1), ("approve", REVIEWER)]:
        send("POST", f"{API}/cases/{case}/transitions/{step}", token_=who)
    for _ in range(300):
        _, text = send("GET", f"{API}/cases/{case}/documents")
        docs = [d for d in json.loads(text)["documents"] if d["slot"] == "agreement"]
        if docs:
            break
        time.sleep(0.1)
    _, text = send("GET", f"{API}/cases/{case}")
    number = json.loads(text)["data"]["agreement"]["number"]
    _, text = send("GET", f"{API}/emails")
    email = json.loads(text)[0]["id"]
    return {"case": case, "document": docs[0]["id"], "email": email, "number": number}


BAD_STRINGS = ["\u0000", "a\u0000b", "\u0007", "\u001b[2J", "\u202e", "\ud7ff\ufffe", "x" * 100_000, "'; DROP TABLE cases; --", "%00", "../../etc/passwd"]


def routes(ids):
    """(method, path template, params, sample body)."""
    return [
        ("POST", "/cases", {}, {"workflow": "online_signing", "student": "S2", "employer": "E1", "input": {"terms": {"position": "工程师"}}}),
        ("GET", "/cases", {"workflow": "online_signing", "state": "invited", "student": "S1", "employer": "E1", "school": "10212", "limit": "5", "cursor": ids["case"]}, None),
        ("GET", "/cases/{id}", {}, None),
        ("POST", "/cases/{id}/transitions/{name}", {}, {"input": {"terms": {"position": "工程师"}}}),
        ("PUT", "/schools/{id}", {}, {"name": "北方理工大学", "office": "就业指导中心", "phone": "0451-86412114"}),
        ("PUT", "/students/{id}", {}, {"school": "10212", "name": "王芳", "gender": "女", "major": "数学"}),
        ("PUT", "/employers/{id}", {}, {"name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": True, "receives_hukou": True}),
        ("GET", "/students/{id}/destination", {}, None),
        ("GET", "/cases/{id}/documents", {}, None),
        ("POST", "/cases/{id}/documents", {}, None),
        ("GET", "/documents/{id}", {}, None),
        ("GET", "/verify/{number}", {"code": "ABCDEFGH"}, None),
        ("GET", "/emails", {"status": "failed", "case": ids["case"]}, None),
        ("POST", "/emails/{id}/resend", {}, None),
        ("GET", "/reviews/overdue", {}, None),
        ("GET", "/reference/destination-categories", {}, None),
    ]


def fill(template, ids, override=None):
    values = {"id": ids["case"], "name": "amend", "number": ids["number"]}
    if "/documents/{id}" in template and not template.startswith("/cases"):
        values["id"] = ids["document"]
    if template.startswith("/emails"):
        values["id"] = ids["email"]
    if template.startswith(("/schools", "/students", "/employers")):
        values["id"] = {"/schools": "10212", "/students": "S1", "/employers": "E1"}[template[: template.index("/", 1)]]
    for key, value in (override or {}).items():
        values[key] = value
    return API + template.format(**{k: urllib.parse.quote(str(v), safe="") for k, v in values.items()})


def mutations(value, at=""):
    """Yields (where, mutated copy) for every string and key in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            for bad in ["\u0000", "\u0007"]:
                copy = dict(value)
                copy[k + bad] = copy.pop(k)
                yield f"{at}{k}(key)", copy
            for where, sub in mutations(v, f"{at}{k}."):
                copy = dict(value)
                copy[k] = sub
                yield where, copy
    elif isinstance(value, str):
        for bad in BAD_STRINGS:
            yield at, value[:2] + bad
        yield at, 12345
        yield at, None
        yield at, ["list"]
    elif isinstance(value, bool):
        yield at, "maybe"


def audit_route(method, template, params, body, ids):
    path = fill(template, ids)
    query = urllib.parse.urlencode(params)
    full = f"{path}?{query}" if query else path
    send(method, full, body)
    # Path parameters.
    for name in [p[1:-1] for p in template.split("/") if p.startswith("{")]:
        for bad in BAD_STRINGS[:6] + ["", "x" * 5000]:
            send(method, fill(template, ids, {name: bad}) + (f"?{query}" if query else ""), body)
    # Query parameters.
    for name in params:
        for bad in BAD_STRINGS[:6] + ["-1", "999999999999999999999", "1e9"]:
            send(method, f"{path}?{urllib.parse.urlencode({**params, name: bad})}", body)
        send(method, f"{path}?{query}&{name}=%FF%FE", body)
    send(method, f"{full}{'&' if query else '?'}unexpected=1", body)
    # Bodies.
    if body is not None:
        for _, mutated in mutations(body):
            send(method, full, mutated)
        for raw_body in [b"", b"{", b"[]", b"null", b"\"x\"", b"1e400", b"{\"a\":" * 3000, b"\xff\xfe", json.dumps({"x": "y" * 2_000_000}).encode()]:
            send(method, full, raw_body=raw_body, headers={"Content-Type": "application/json"})
        send(method, full, raw_body=b"workflow=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    # Headers.
    for header, bad in [("If-Match", "*"), ("If-Match", "\"abc\""), ("If-Match", "9" * 40), ("Idempotency-Key", ""), ("Idempotency-Key", "k" * 300),
                        ("If-None-Match", "\"x\""), ("Content-Type", "application/json; charset=latin1"), ("X-Request-Id", "x" * 200)]:
        send(method, full, body, headers={header: bad})
    # Methods.
    for other in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]:
        if other != method and other != "HEAD":
            send(other, full, body if other in ("POST", "PUT", "PATCH") else None)
    # Tokens.
    now = int(time.time())
    for bad in [None, "", "garbage", "a.b.c", jwt({"role": "platform_admin", "exp": now + 60}, secret="another-secret-another-secret-another"),
                jwt({"role": "platform_admin", "exp": now - 60}), jwt({"role": "platform_admin", "exp": now + 60, "nbf": now + 60}),
                jwt({"role": "platform_admin", "exp": now + 60}, alg="none"), jwt({"role": "system", "exp": now + 60}),
                jwt({"role": "student", "exp": now + 60}), jwt({"role": "dean", "exp": now + 60}), jwt({"role": "platform_admin"}),
                jwt({"role": "platform_admin", "exp": "soon"}), jwt({"role": ["platform_admin"], "exp": now + 60})]:
        send(method, full, body, token_=bad if bad is not None else None, headers={} if bad is not None else None)
        if bad is not None:
            send(method, full, body, token_=None, headers={"Authorization": bad})


def audit_uploads(ids):
    boundary = "auditboundary"
    path = fill("/cases/{id}/documents", ids)
    parts = [
        ("slot", None, None, b"stamped\x00agreement"),
        ("file", "a\x00.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"),
        ("file", "a.pdf", "image/png", b"%PDF-1.4\n%%EOF\n"),
        ("file", "a.pdf", "application/pdf", b"%PDF-1.4\n<html><script>x</script>\n%%EOF\n"),
        ("fi\x00le", "a.pdf", "application/pdf", b"x"),
    ]
    for name, filename, ctype, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            body += f"Content-Type: {ctype}\r\n".encode()
        body += b"\r\n" + content + f"\r\n--{boundary}--\r\n".encode()
        for who in [ADMIN, S1, E1]:
            send("POST", path, raw_body=body, token_=who, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    send("POST", path, raw_body=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"})
    send("POST", path, raw_body=b"hello", headers={"Content-Type": "multipart/form-data"})


def audit_raw():
    many = "".join(f"x-h{i}: v\r\n" for i in range(200))
    for what, data in [
        ("NUL in the request line", b"GET /api/v1/cases/\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space in the path", b"GET /api/v1/ca ses HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("NUL in a header value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
        ("control character in a header name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX\x07A: b\r\n\r\n"),
        ("200 headers", f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()),
        ("a 100 KiB header", f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 100_000}\r\n\r\n".encode()),
        ("a 70 KiB address", f"GET /api/v1/cases?x={'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
        ("a 20 KiB address", f"GET /api/v1/cases?x={'a' * 20_000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        ("HTTP/0.9", b"GET /\r\n\r\n"),
        ("bad content-length", b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        ("two content-lengths", b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("bad chunk", b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ]:
        raw(what, data)
    wait = int(os.environ.get("AUDIT_HEADER_TIMEOUT", "15")) + 10
    raw("headers that never end", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", expect_close=True, wait=wait)


def main():
    started = time.time()
    ids = seed()
    for method, template, params, body in routes(ids):
        audit_route(method, template, params, body, ids)
    audit_uploads(ids)
    audit_raw()
    print(f"audit of {BASE}: {stats['requests']} requests in {time.time() - started:.0f} s, "
          f"{stats['5xx']} 5xx, {stats['contract']} contract failures")
    for kind, count in sorted(kinds.items()):
        print(f"  {count:6} {kind}")
    shown = set()
    for line in failures:
        key = line.split(" -> ")[1][:60] if " -> " in line else line
        if key not in shown and len(shown) < 20:
            shown.add(key)
            print("  " + line)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
