"""backend/api/wire.py: strict integers of headers, query strings and JSON fields."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.api.wire import INT32_MAX, strict_int
from backend.errors import UserError


@given(st.integers(0, INT32_MAX))
def test_every_decimal_in_range_reads_back(n):
    assert strict_int(str(n), "X-Base-Revision") == n
    assert strict_int(n, "edit_count") == n


@given(st.text(max_size=12))
def test_any_text_is_an_integer_in_range_or_a_400_naming_the_field(text):
    try:
        n = strict_int(text, "X-Edit-Count")
    except UserError as exc:
        assert exc.status == 400 and exc.field == "X-Edit-Count" and "X-Edit-Count" in exc.message
    else:
        assert text.isascii() and text.isdigit() and str(n) == text.lstrip("0").rjust(1, "0") and 0 <= n <= INT32_MAX


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", "", " 1", "1 ", "+1", "1_0", "0x1", "1.0", "1e3", "-1",
                                   str(INT32_MAX + 1), "9" * 400, 1e20, 3.0, True, None, [1], INT32_MAX + 1, -1])
def test_what_is_refused(value):
    with pytest.raises(UserError) as info:
        strict_int(value, "edit_count")
    assert info.value.field == "edit_count"


def test_a_range_with_negatives():
    assert strict_int("-5", "offset", lo=-10, hi=10) == -5
    with pytest.raises(UserError, match="from -10 to 10"):
        strict_int("-11", "offset", lo=-10, hi=10)
