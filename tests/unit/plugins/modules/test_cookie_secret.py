# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.cookie_secret.

The module runs for real (its main()); only its input is patched, the way
ansible-core's own ``patch_module_args`` does it, and the JSON it prints on
exit is what the tests assert on - the same JSON Ansible would receive.
"""

from __future__ import annotations

import base64
import json
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _cookie_secret as rules
from ansible_collections.zerotrust.aks.plugins.modules import cookie_secret
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils

VALID_COMBINATIONS = [(16, "base64url"), (24, "base64url"), (32, "base64url"), (16, "hex")]


def run_module(capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    result: dict[str, t.Any] = utils.run_module(cookie_secret.main, capsys, **args)
    return result


def fields_without_secret(result: dict[str, t.Any]) -> str:
    return json.dumps({key: value for key, value in result.items() if key != "secret"})


# --- the validation rule, against oauth2-proxy's SecretBytes --------------------------------


@pytest.mark.parametrize(
    ("value", "length", "decoded"),
    [
        pytest.param("A" * 22, 16, True, id="22 base64url chars decode to 16 bytes"),
        pytest.param("A" * 22 + "==", 16, True, id="padded base64url is accepted"),
        pytest.param("A" * 32, 24, True, id="32 chars decode to 24 bytes"),
        pytest.param("0123456789abcdef" * 2, 24, True, id="openssl rand -hex 16 is a 24-byte key"),
        pytest.param("A" * 43, 32, True, id="43 base64url chars decode to 32 bytes"),
        pytest.param("A" * 44, 44, False, id="44 chars decode to 33 bytes, so raw 44: invalid"),
        pytest.param("!" * 16, 16, False, id="16 raw bytes are used raw"),
        pytest.param("+" * 24, 24, False, id="standard base64 alphabet is not base64url"),
        pytest.param("0123456789abcdef" * 3, 48, False, id="48 hex chars are invalid"),
        pytest.param("A" * 21, 21, False, id="21 chars: 15 bytes decoded, 21 raw"),
        pytest.param("A" * 17, 17, False, id="length % 4 == 1 does not decode"),
        pytest.param("é" * 8, 16, False, id="raw length counts UTF-8 bytes"),
        pytest.param("A" * 22 + "\n", 16, True, id="newlines are skipped like Go does"),
    ],
)
def test_key_length_follows_oauth2_proxy(value: str, length: int, decoded: bool) -> None:
    assert rules.key_length(value) == (length, decoded)


@pytest.mark.parametrize(("size", "encoding"), VALID_COMBINATIONS)
def test_every_generated_value_is_valid(size: int, encoding: str) -> None:
    for _attempt in range(200):
        value = rules.generate(size, encoding)
        assert rules.is_valid(value)
        if encoding == "base64url":
            assert rules.key_length(value) == (size, True)
            assert len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == size
        else:
            assert len(value) == 2 * size
            int(value, 16)


@pytest.mark.parametrize(("size", "encoding"), VALID_COMBINATIONS)
def test_thousand_generated_values_are_distinct(size: int, encoding: str) -> None:
    values = {rules.generate(size, encoding) for _attempt in range(1000)}
    assert len(values) == 1000


@pytest.mark.parametrize("size", [24, 32])
def test_hex_of_more_than_16_bytes_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="only valid with size=16"):
        rules.generate(size, "hex")


# --- the module ---------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "encoding"), VALID_COMBINATIONS)
def test_generates_when_nothing_exists(capsys: pytest.CaptureFixture[str], size: int, encoding: str) -> None:
    result = run_module(capsys, size=size, encoding=encoding)
    assert result["rc"] == 0
    assert result["changed"] is True
    assert result["encoding"] == encoding
    assert rules.is_valid(result["secret"])
    assert result["key_length"] == rules.key_length(result["secret"])[0]
    assert result["fingerprint"] == rules.fingerprint(result["secret"])
    assert result["reason"] == "no existing secret"
    assert result["secret"] not in fields_without_secret(result)


def test_default_is_32_bytes_base64url(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(capsys)
    assert (result["key_length"], result["encoding"], len(result["secret"])) == (32, "base64url", 43)


def test_empty_existing_counts_as_none(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(capsys, existing="")
    assert result["changed"] is True
    assert result["reason"] == "no existing secret"


@pytest.mark.parametrize(
    "existing",
    [rules.generate(32, "base64url"), rules.generate(16, "hex"), "!" * 24],
    ids=["base64url", "hex", "raw"],
)
def test_keeps_a_valid_existing_value(capsys: pytest.CaptureFixture[str], existing: str) -> None:
    result = run_module(capsys, existing=existing, size=16)
    assert result["rc"] == 0
    assert result["changed"] is False
    # Returned as is, not masked as VALUE_SPECIFIED_IN_NO_LOG_PARAMETER.
    assert result["secret"] == existing
    assert result["fingerprint"] == rules.fingerprint(existing)
    assert result["key_length"] == rules.key_length(existing)[0]
    assert existing not in fields_without_secret(result)
    assert result["invocation"]["module_args"]["existing"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_reports_existing_encoding(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_module(capsys, existing="0123456789abcdef" * 2)["encoding"] == "hex"
    assert run_module(capsys, existing="!" * 32)["encoding"] == "raw"
    assert run_module(capsys, existing="A" * 43)["encoding"] == "base64url"


def test_rotate_always_makes_a_new_value(capsys: pytest.CaptureFixture[str]) -> None:
    existing = rules.generate(32, "base64url")
    result = run_module(capsys, existing=existing, rotate=True)
    assert result["changed"] is True
    assert result["secret"] != existing
    assert rules.is_valid(result["secret"])
    assert result["reason"] == "rotation was requested"
    assert existing not in json.dumps(result)


@pytest.mark.parametrize(
    ("existing", "explanation"),
    [
        ("0123456789abcdef" * 3, "as base64url it decodes to 36 bytes and its raw length is 48 bytes"),
        ("short1", "as base64url it decodes to 4 bytes and its raw length is 6 bytes"),
        ("not base64url!", "it is not unpadded base64url and its raw length is 14 bytes"),
        ("x" * 100, "as base64url it decodes to 75 bytes and its raw length is 100 bytes"),
    ],
    ids=["hex-24", "short", "punctuation", "long"],
)
def test_invalid_existing_fails_without_echoing(
    capsys: pytest.CaptureFixture[str], existing: str, explanation: str
) -> None:
    result = run_module(capsys, existing=existing)
    assert result["rc"] == 1
    assert result["failed"] is True
    assert explanation in result["msg"]
    assert "16, 24 or 32 bytes" in result["msg"]
    assert "replace_invalid=true" in result["msg"]
    assert existing not in json.dumps(result)


def test_invalid_existing_is_replaced_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    existing = "0123456789abcdef" * 4
    result = run_module(capsys, existing=existing, replace_invalid=True)
    assert result["rc"] == 0
    assert result["changed"] is True
    assert rules.is_valid(result["secret"])
    assert "was invalid" in result["reason"]
    assert existing not in fields_without_secret(result)


@pytest.mark.parametrize("size", [24, 32])
def test_module_refuses_hex_above_16_bytes(capsys: pytest.CaptureFixture[str], size: int) -> None:
    result = run_module(capsys, size=size, encoding="hex")
    assert result["rc"] == 1
    assert "encoding=hex is only valid with size=16" in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"size": 20}, "value of size must be one of: 16, 24, 32"),
        ({"encoding": "base64"}, "value of encoding must be one of: base64url, hex"),
        ({"rotate": "maybe"}, "rotate"),
        ({"unknown": 1}, "Unsupported parameters"),
    ],
)
def test_bad_arguments_name_the_option(
    capsys: pytest.CaptureFixture[str], args: dict[str, t.Any], message: str
) -> None:
    result = run_module(capsys, **args)
    assert result["rc"] == 1
    assert message in result["msg"]


def test_check_mode_and_diff_show_fingerprints_only(capsys: pytest.CaptureFixture[str]) -> None:
    existing = rules.generate(32, "base64url")
    result = run_module(capsys, existing=existing, rotate=True, _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] is True
    assert result["diff"] == {
        "before": f"fingerprint: {rules.fingerprint(existing)}\n",
        "after": "fingerprint: {}\n".format(result["fingerprint"]),
    }
    assert existing not in json.dumps(result)
    assert result["secret"] not in json.dumps(result["diff"])


def test_no_diff_when_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    existing = rules.generate(24, "base64url")
    result = run_module(capsys, existing=existing, _ansible_diff=True)
    assert result["changed"] is False
    assert "diff" not in result


def test_fingerprint_is_short_and_stable() -> None:
    assert rules.fingerprint("A" * 43) == rules.fingerprint("A" * 43)
    assert rules.fingerprint("A" * 43) != rules.fingerprint("B" * 43)
    assert len(rules.fingerprint("A" * 43)) == len("sha256:") + 12
