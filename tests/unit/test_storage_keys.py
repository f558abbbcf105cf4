"""Key and prefix validation of backend.storage (no network, temporary folders only)."""

import os
import posixpath
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.storage import (
    MAX_KEY_LENGTH,
    InvalidKeyError,
    LocalStore,
    StorageError,
    validate_key,
    validate_prefix,
)

SAFE_CHARS = set(string.ascii_letters + string.digits + "._-/")

GOOD_KEYS = [
    "a",
    "raw.npy",
    "images/1/raw.npy",
    "labels/12/r0.npz",
    "models/v3/weights-best_0.keras",
    ".hidden",
    "...",
    "..a",
    "a..b/c..",
    "A-Z_0-9",
    "/".join(["x" * 200] * 5) + "/" + "y" * 19,  # exactly MAX_KEY_LENGTH
    "/".join(["p"] * 512)[: MAX_KEY_LENGTH - 1],
    "z" * 255,
]

HOSTILE_KEYS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a//b",
    "C:\\x",
    "a\x00b",
    "",
    ".",
    "..",
    "a/..",
    "./a",
    "a/./b",
    "a/",
    "/",
    "a\\b",
    "C:x",
    "c:/windows",
    "a\nb",
    "a\tb",
    "a\x7fb",
    "a b",
    "a:b",
    "~/x",
    "%2e%2e/x",
    "caf\u00e9",
    "a\u2028b",
    "/".join(["x" * 200] * 5) + "/" + "y" * 20,  # one character too long
    "a/" + "y" * 256,
]


def _short_id(key):
    return repr(key)[:24]


@pytest.mark.parametrize("key", GOOD_KEYS, ids=_short_id)
def test_safe_keys_are_accepted_unchanged(key):
    assert len(key) <= MAX_KEY_LENGTH
    assert validate_key(key) is key


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=_short_id)
def test_hostile_keys_raise_invalid_key_error_naming_the_key(key):
    with pytest.raises(InvalidKeyError) as info:
        validate_key(key)
    error = info.value
    assert isinstance(error, StorageError) and isinstance(error, ValueError)
    assert str(error).startswith("invalid storage key ")
    assert repr(key)[:40] in str(error)


@pytest.mark.parametrize("key", [None, b"a/b", 5, Path("a/b")])
def test_non_string_keys_are_rejected(key):
    with pytest.raises(InvalidKeyError, match="strings"):
        validate_key(key)


@pytest.mark.parametrize("prefix", ["", "images/", "images/1/", "images/1", "a"])
def test_listing_prefixes_may_be_empty_or_end_with_a_slash(prefix):
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "//", "a//", "../", "a/../", "/etc/", "..", "a\\", "./"])
def test_hostile_prefixes_are_rejected(prefix):
    with pytest.raises(InvalidKeyError):
        validate_prefix(prefix)


def _joins_inside(root: str, key: str) -> bool:
    joined = posixpath.normpath(posixpath.join(root, key))
    return joined.startswith(root + "/")


# Alphabet mixing safe characters with every kind of troublemaker.
_MIXED_CHARS = st.sampled_from(list("ab.Z9_-/") + ["..", "\\", ":", "\x00", "\n", " ", "~", "é"])


@given(st.lists(_MIXED_CHARS, max_size=30).map("".join))
def test_any_string_is_either_rejected_or_provably_safe(key):
    try:
        validate_key(key)
    except InvalidKeyError:
        return
    parts = key.split("/")
    assert set(key) <= SAFE_CHARS
    assert 0 < len(key) <= MAX_KEY_LENGTH
    assert all(part not in ("", ".", "..") for part in parts)
    assert not posixpath.isabs(key)
    assert _joins_inside("/srv/store", key)


_PART = st.text(alphabet=sorted(SAFE_CHARS - {"/"}), min_size=1, max_size=20).filter(
    lambda part: part not in (".", "..")
)
_VALID_KEY = st.lists(_PART, min_size=1, max_size=6).map("/".join)


@given(_VALID_KEY)
def test_keys_built_from_safe_parts_are_accepted(key):
    assert validate_key(key) == key
    assert validate_prefix(key + "/") == key + "/"


@given(_VALID_KEY, st.integers(min_value=0, max_value=6), st.sampled_from(["..", ".", ""]))
def test_a_dot_dot_dot_or_empty_part_anywhere_is_rejected(key, position, bad_part):
    parts = key.split("/")
    parts.insert(min(position, len(parts)), bad_part)
    with pytest.raises(InvalidKeyError):
        validate_key("/".join(parts))


@settings(max_examples=40, deadline=None)
@given(_VALID_KEY, st.binary(max_size=64))
def test_local_store_keeps_every_valid_key_inside_its_root(key, data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        store = LocalStore(root)
        store.put_bytes(key, data)
        files = [Path(d) / f for d, _, names in os.walk(folder) for f in names]
        assert files == [root.resolve().joinpath(*key.split("/"))]
        assert store.get_bytes(key) == data
        assert store.list() == [key]
        store.delete(key)
        assert list(root.iterdir()) == []
