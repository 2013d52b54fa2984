"""API tokens from settings and a token file: parsing, roles, refusals that never echo a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from festmon_tui.api.auth import Role, TokenError, bearer, load_tokens
from festmon_tui.api.config import ApiConfigError, parse_address, parse_origins
from festmon_tui.settings import load_settings

READ = "r" * 20
OPERATOR = "o" * 20


def test_tokens_from_settings_and_a_file_each_carry_their_name_and_role(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# comment\n\nread:uptime={'u' * 16}\noperator:admin-tab={'a' * 32}\n")
    tokens = load_tokens(
        load_settings(
            {
                "monitoring_api_read_tokens": f"grafana={READ}",
                "monitoring_api_operator_tokens": f" alice = {OPERATOR} ,",
                "monitoring_api_token_file": str(token_file),
            },
            env_file=None,
        )
    )

    assert len(tokens) == 4
    found = [tokens.find(t) for t in (READ, OPERATOR, "u" * 16, "a" * 32)]
    assert [(c.name, c.role) for c in found if c] == [
        ("grafana", Role.READ),
        ("alice", Role.OPERATOR),
        ("uptime", Role.READ),
        ("admin-tab", Role.OPERATOR),
    ]
    assert tokens.find("r" * 19) is None
    assert tokens.find(READ + "x") is None
    assert tokens.find("") is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"monitoring_api_read_tokens": "justatoken-without-a-name"}, "MONITORING_API_READ_TOKENS"),
        ({"monitoring_api_read_tokens": "grafana=tooshort"}, "shorter than 16"),
        ({"monitoring_api_operator_tokens": f"a b={OPERATOR}"}, "OPERATOR_TOKENS"),
        (
            {
                "monitoring_api_read_tokens": f"grafana={READ}",
                "monitoring_api_operator_tokens": f"alice={READ}",
            },
            "also given to another name",
        ),
        (
            {
                "monitoring_api_read_tokens": f"alice={READ}",
                "monitoring_api_operator_tokens": f"alice={OPERATOR}",
            },
            "both a read and an operator name",
        ),
    ],
)
def test_a_malformed_token_setting_names_it_without_the_token(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(TokenError) as refused:
        load_tokens(load_settings(values, env_file=None))
    assert named in str(refused.value)
    assert READ not in str(refused.value) and OPERATOR not in str(refused.value)


def test_a_token_file_line_without_a_role_is_refused_by_line_number(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text(f"read:grafana={READ}\nadmin:root={OPERATOR}\n")
    with pytest.raises(TokenError, match="line 2 must be read:name=token"):
        load_tokens(load_settings({"monitoring_api_token_file": str(token_file)}, env_file=None))


def test_token_settings_never_show_themselves() -> None:
    loaded = load_settings({"monitoring_api_read_tokens": f"grafana={READ}"}, env_file=None)
    assert READ not in repr(loaded) and READ not in str(loaded)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {READ}", READ),
        (f"bearer   {READ}  ", READ),
        (f"Basic {READ}", None),
        ("Bearer", None),
        ("Bearer ", None),
        (None, None),
    ],
)
def test_only_a_bearer_header_carries_a_token(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        (":8080", "127.0.0.1", 8080),
        ("8080", "127.0.0.1", 8080),
        ("[::1]:9000", "::1", 9000),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("localhost:80", "localhost", 80),
    ],
)
def test_http_addresses_default_to_the_loopback(text: str, host: str, port: int) -> None:
    address = parse_address(text)
    assert (address.host, address.port) == (host, port)


@pytest.mark.parametrize("text", ["", "host:", "host:port", "1:2:3", "[::1]", "h:70000", "-1"])
def test_a_bad_http_address_is_refused(text: str) -> None:
    with pytest.raises(ApiConfigError, match="--http"):
        parse_address(text)


def test_cors_origins_are_scheme_and_host_only() -> None:
    assert parse_origins(" https://a.example, http://b.example:8080 ,") == [
        "https://a.example",
        "http://b.example:8080",
    ]
    assert parse_origins("*") == ["*"]
    with pytest.raises(ApiConfigError, match="MONITORING_API_CORS_ORIGINS"):
        parse_origins("https://a.example/path")
