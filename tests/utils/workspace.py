"""Signing in to the agent workspace (/app) over plain HTTP, as its sign-in form does."""

import re

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client, key: str) -> str:
    """Signs `client` (an httpx or Starlette test client) in with `key`, checking the cookie's
    attributes; the CSRF token its pages carry."""
    (login_token,) = CSRF_FIELD.findall(client.get("/app/login").text)
    signed = client.post(
        "/app/login", data={"api_key": key, "csrf_token": login_token}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/app", signed.text
    cookie = signed.headers["set-cookie"].lower()
    for attribute in ("support_session=", "httponly", "samesite=strict", "path=/app"):
        assert attribute in cookie, cookie
    assert "secure" not in cookie  # plain HTTP here; HTTPS or the setting adds it
    queue = client.get("/app")
    assert queue.status_code == 200
    assert queue.headers["content-security-policy"].startswith("default-src 'self'")
    return CSRF_FIELD.findall(queue.text)[0]
