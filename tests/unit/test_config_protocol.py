"""``protocol`` and ``rest_address``: what a gateway's listeners serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from leofs import config


def test_one_protocol_on_the_address() -> None:
    assert config.listeners("s3", "127.0.0.1:8080", None) == ("s3", None)
    assert config.listeners("rest", "127.0.0.1:8080", None) == ("rest", None)


def test_both_need_a_rest_address_of_their_own() -> None:
    assert config.listeners("s3,rest", "127.0.0.1:8080", "127.0.0.1:8081") == ("s3", "127.0.0.1:8081")
    with pytest.raises(config.ConfigError, match="needs rest_address"):
        config.listeners("s3,rest", "127.0.0.1:8080", None)
    with pytest.raises(config.ConfigError, match="must differ"):
        config.listeners("s3,rest", "127.0.0.1:8080", ":8080")


@pytest.mark.parametrize("protocol", ["s3", "rest"])
def test_a_rest_address_without_both_is_refused(protocol: str) -> None:
    with pytest.raises(config.ConfigError, match="rest_address is for protocol s3,rest"):
        config.listeners(protocol, "127.0.0.1:8080", "127.0.0.1:8081")


def test_the_environment_takes_them() -> None:
    merged = config.resolve("gateway", None, {"LEOFS_GATEWAY_PROTOCOL": "s3,rest",
                                              "LEOFS_GATEWAY_REST_ADDRESS": ":8081"}, {})
    assert (merged.protocol, merged.rest_address) == ("s3,rest", ":8081")
    with pytest.raises(config.ConfigError, match="PROTOCOL"):
        config.resolve("server", None, {"LEOFS_SERVER_PROTOCOL": "nfs"}, {})


def test_config_check_judges_protocol_and_the_headers_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from leofs.cli.main import cli

    conf = tmp_path / "leofs.toml"
    conf.write_text('[server]\nprotocol = "s3,rest"\n')
    result = CliRunner().invoke(cli, ["config", "check", str(conf)])
    assert result.exit_code != 0 and "[server] protocol s3,rest needs rest_address" in result.output
    headers = tmp_path / "h.conf"
    headers.write_text("location a { expires never; }")
    conf.write_text(f'[server]\nprotocol = "s3,rest"\nrest_address = ":8081"\n'
                    f'[gateway]\nheaders_config_file = "{headers}"\n')
    result = CliRunner().invoke(cli, ["config", "check", str(conf)])
    assert result.exit_code != 0 and "h.conf:1: expires" in result.output
    headers.write_text("location a { expires 1h; }")
    result = CliRunner().invoke(cli, ["config", "check", str(conf)])
    assert result.exit_code == 0, result.output
    assert 'rest_address = ":8081"' in result.output
