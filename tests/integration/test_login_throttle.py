"""Failed logins (form and HTTP Basic) are throttled per name and per address; refusals take
the same time whether the user exists or not."""

import statistics
import time
import uuid

import pytest

from backend.services.login_throttle import LoginThrottle, MemoryCounters, RedisCounters, ThrottleLimits
from tests.conftest import ADMIN_PASSWORD, REVIEWER_PASSWORD, basic_auth
from tests.integration.test_auth import login


def form_login(app, username, password, address="10.0.0.1"):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return login(c, username, password)


def basic_get(app, username, password, address="10.0.0.1"):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c.get("/api/me", headers={"Authorization": basic_auth(username, password)})


@pytest.fixture
def app_with(runtime):
    """``app_with(**settings)``: an app on the test runtime with some settings overridden."""
    from backend.app import build_app

    def build(**overrides):
        runtime.settings = runtime.settings.with_overrides(**overrides)
        application = build_app(runtime=runtime)
        application.config["TESTING"] = True
        return application

    return build


def test_the_21st_wrong_form_login_for_a_name_is_429_with_retry_after(app, users):
    for _ in range(20):
        assert form_login(app, "admin", "wrong-password").status_code == 401
    r = form_login(app, "admin", "wrong-password", address="10.0.0.2")  # another address: same name
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert b"Too many failed logins" in r.data
    # While the name is throttled even its right password is refused (else guessing goes on) ...
    assert form_login(app, "admin", ADMIN_PASSWORD, address="10.0.0.3").status_code == 429
    # ... but other names, from the same address, are not.
    assert form_login(app, "reviewer", REVIEWER_PASSWORD).status_code == 302


def test_the_21st_wrong_basic_attempt_for_a_name_is_429_with_retry_after(app, users):
    for _ in range(20):
        assert basic_get(app, "reviewer", "wrong-password").status_code == 401
    r = basic_get(app, "reviewer", "wrong-password")
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json["retry_after_s"] == int(r.headers["Retry-After"]) and "try again" in r.json["error"]
    assert basic_get(app, "admin", ADMIN_PASSWORD).status_code == 200


def test_form_and_basic_failures_count_together(app, users):
    for _ in range(10):
        assert form_login(app, "admin", "wrong-password").status_code == 401
        assert basic_get(app, "admin", "wrong-password").status_code == 401
    assert basic_get(app, "admin", "wrong-password").status_code == 429
    assert form_login(app, "admin", "wrong-password").status_code == 429


def test_an_address_over_its_limit_is_refused_and_other_addresses_are_not(app_with, users):
    app = app_with(login_failures_per_address=25)
    for i in range(25):  # many names, each under the per-name limit
        assert form_login(app, f"guess{i % 5}", "wrong-password", address="10.0.0.66").status_code == 401
    assert form_login(app, "admin", ADMIN_PASSWORD, address="10.0.0.66").status_code == 429
    assert basic_get(app, "admin", ADMIN_PASSWORD, address="10.0.0.66").status_code == 429
    # Someone else's correct login, from another address, goes through.
    assert form_login(app, "admin", ADMIN_PASSWORD, address="10.0.0.7").status_code == 302
    assert basic_get(app, "reviewer", REVIEWER_PASSWORD, address="10.0.0.7").status_code == 200


def test_failures_for_a_name_below_its_limit_do_not_stop_its_correct_login(app, users):
    for _ in range(19):
        assert form_login(app, "admin", "wrong-password", address="10.0.0.66").status_code == 401
    assert form_login(app, "admin", ADMIN_PASSWORD, address="10.0.0.7").status_code == 302


def test_successful_logins_are_never_counted(app_with, users):
    app = app_with(login_failures_per_name=2, login_failures_per_address=2)
    for _ in range(5):
        assert form_login(app, "admin", ADMIN_PASSWORD).status_code == 302


def test_behind_a_trusted_proxy_the_client_address_is_the_one_it_saw(app_with, users):
    app = app_with(trusted_proxy_hops=1, login_failures_per_address=3)

    def via_proxy(client_says):
        c = app.test_client()
        c.environ_base["REMOTE_ADDR"] = "10.1.1.1"  # the proxy
        c.environ_base["HTTP_X_FORWARDED_FOR"] = f"{client_says}, 198.51.100.7"
        return login(c, "admin", "wrong-password")

    for spoofed in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):  # what the client wrote changes nothing
        assert via_proxy(spoofed).status_code == 401
    assert via_proxy("4.4.4.4").status_code == 429  # 198.51.100.7 is over its limit
    assert form_login(app, "admin", ADMIN_PASSWORD, address="10.1.1.1").status_code == 302


def test_a_refusal_takes_as_long_for_an_unknown_user_as_for_a_known_one(app, users):
    def refusal_s(username):
        c = app.test_client()
        start = time.perf_counter()
        r = c.get("/api/me", headers={"Authorization": basic_auth(username, "wrong-password")})
        elapsed = time.perf_counter() - start
        assert r.status_code == 401
        return elapsed

    refusal_s("admin"), refusal_s("nobody-here")  # warm up (the unknown-user hash is made once)
    known, unknown = [], []
    for _ in range(5):
        known.append(refusal_s("admin"))
        unknown.append(refusal_s("nobody-here"))
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.5 < ratio < 2, (known, unknown)


# --- the counters themselves ------------------------------------------------------------------
def test_memory_counters_forget_failures_when_the_window_ends():
    throttle = LoginThrottle(ThrottleLimits(per_name=2, per_address=10, window_s=1), MemoryCounters())
    throttle.record_failure("ann", "10.0.0.1")
    throttle.record_failure("ann", "10.0.0.2")
    from backend.services.login_throttle import TooManyLoginFailuresError

    with pytest.raises(TooManyLoginFailuresError) as refused:
        throttle.check("ann", "10.0.0.3")
    assert refused.value.status == 429 and refused.value.retry_after_s == 1
    throttle.check("bob", "10.0.0.1")
    time.sleep(1.1)
    throttle.check("ann", "10.0.0.3")


def test_redis_counters_are_shared_between_processes(redis_url):
    """Two throttles on one Redis (two web processes) see each other's failures."""
    from backend.services.login_throttle import TooManyLoginFailuresError

    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    limits = ThrottleLimits(per_name=3, per_address=100, window_s=30)
    first = LoginThrottle(limits, RedisCounters(redis_url, prefix=prefix))
    second = LoginThrottle(limits, RedisCounters(redis_url, prefix=prefix))
    try:
        for throttle in (first, second, first):
            throttle.check("ann", "10.0.0.1")
            throttle.record_failure("ann", "10.0.0.1")
        with pytest.raises(TooManyLoginFailuresError) as refused:
            second.check("ann", "10.0.0.9")
        assert 1 <= refused.value.retry_after_s <= 30
        second.check("bob", "10.0.0.9")
    finally:
        keys = list(first.counters.connection.scan_iter(match=prefix + "*"))
        if keys:
            first.counters.connection.delete(*keys)
        first.counters.connection.close()
        second.counters.connection.close()


def test_an_app_with_redis_throttles_in_redis(settings, redis_url, tmp_path):
    from backend.app import build_app
    from backend.runtime import Runtime

    rt = Runtime(settings.with_overrides(redis_url=redis_url, queue_prefix=f"test-{uuid.uuid4().hex[:8]}:"))
    try:
        app = build_app(runtime=rt)
        counters = app.extensions["looplabel_login_throttle"].counters
        assert isinstance(counters, RedisCounters)
        assert counters.prefix.startswith(rt.settings.queue_prefix)
    finally:
        rt.close()
