"""leofs.config: the sample file covers every option; file, environment and flags in their order;
errors name the key; `leofs config check` prints the effective values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from leofs import config
from leofs.config import ConfigError, LeofsConfig, read_file, resolve

SAMPLE = Path(__file__).resolve().parents[2] / "leofs.sample.toml"
#: an option line of the sample, set or commented out: "key = value" or "# key = value"
_OPTION = re.compile(r"^(#\s*)?([a-z_]+)\s*=")


def _sample_options() -> dict[str, dict[str, bool]]:
    """section -> option -> whether the sample sets it (False: commented out)."""
    sections: dict[str, dict[str, bool]] = {}
    current: dict[str, bool] | None = None
    for line in SAMPLE.read_text().splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[] "), {})
        elif current is not None and (m := _OPTION.match(line)):
            assert m[2] not in current, f"{m[2]} twice in one section"
            current[m[2]] = m[1] is None
    return sections


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leofs.toml"
    path.write_text(text)
    return path


def test_the_sample_names_every_option_of_every_section() -> None:
    documented = {section: set(options) for section, options in _sample_options().items()}
    assert documented == {name: set(cls.__struct_fields__) for name, cls in config.SECTIONS.items()}


def test_the_sample_gives_the_defaults() -> None:
    # what the sample sets is the default; what it comments out has no default (None)
    loaded = msgspec.to_builtins(read_file(SAMPLE))
    defaults = msgspec.to_builtins(LeofsConfig())
    assert loaded == defaults
    for section, options in _sample_options().items():
        unset = {name for name, is_set in options.items() if not is_set}
        assert unset == {name for name, value in defaults[section].items() if value is None}, section


def test_the_sample_with_every_option_set_is_valid(tmp_path: Path) -> None:
    text = re.sub(r"^#\s*([a-z_]+\s*=)", r"\1", SAMPLE.read_text(), flags=re.M)
    loaded = read_file(_write(tmp_path, text))
    assert loaded.storage.name == "node1" and loaded.server.workers == 1 and loaded.gateway.name == "gateway1"


@pytest.mark.parametrize(("text", "named"), [
    ("[gatway]\n", "`gatway`"),
    ("[gateway]\nchunk_sise = 5\n", "`chunk_sise`"),
    ("[gateway]\nchunk_size = \"5 MiB\"\n", "`gateway.chunk_size`"),
    ("[gateway]\nmax_connections = 0\n", "`gateway.max_connections`"),
    ("[server]\nsync = \"no\"\n", "`server.sync`"),
    ("[server]\naddress = \"localhost\"\n", "`server.address`"),
    ("[storage]\nvnodes = 1.5\n", "`storage.vnodes`"),
    ("[manager]\nreplicas = 2\nwrite = 3\n", "replicas"),
    ("gateway = 3\n", "`gateway`"),
])
def test_a_bad_file_is_an_error_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_file(_write(tmp_path, text))
    assert named in str(err.value) and "leofs.toml" in str(err.value)


def test_not_toml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not TOML"):
        read_file(_write(tmp_path, "[gateway\n"))


# one option per role, as (section, option, file value, environment value, flag value)
PRECEDENCE = [
    ("server", "containers", 3, "4", 5),
    ("manager", "replicas", 3, "4", 5),
    ("storage", "vnodes", 10, "20", 30),
    ("gateway", "max_connections", 10, "20", 30),
    ("gateway", "free_grace", 1.5, "2.5", 3.5),
]


@pytest.mark.parametrize(("section", "option", "in_file", "in_env", "flag"), PRECEDENCE)
def test_defaults_then_file_then_environment_then_flags(tmp_path: Path, section: str, option: str, in_file: Any,
                                                         in_env: str, flag: Any) -> None:
    path = _write(tmp_path, f"[{section}]\n{option} = {in_file}\n")
    env = {config.env_name(section, option): in_env}
    default = getattr(resolve(section, None, {}, {}), option)
    assert default == getattr(config.SECTIONS[section](), option) and default != in_file
    assert getattr(resolve(section, path, {}, {}), option) == in_file
    assert getattr(resolve(section, path, env, {}), option) == type(in_file)(in_env)
    assert getattr(resolve(section, path, env, {option: flag}), option) == flag
    assert getattr(resolve(section, None, env, {}), option) == type(in_file)(in_env)


def test_environment_values_are_typed() -> None:
    got = resolve("server", None, {"LEOFS_SERVER_SYNC": "false", "LEOFS_SERVER_WORKERS": "3"}, {})
    assert got.sync is False and got.workers == 3


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LEOFS_GATEWAY_CHUNK_SIZE"):
        resolve("gateway", None, {"LEOFS_GATEWAY_CHUNK_SIZE": "big"}, {})


def test_other_sections_and_unknown_variables_do_not_matter() -> None:
    env = {"LEOFS_STORAGE_VNODES": "1", "LEOFS_GATEWAY_NO_SUCH_OPTION": "1", "LEOFS_ROOT_ACCESS_KEY": "x"}
    assert resolve("gateway", None, env, {}) == config.GatewaySection()


def test_the_cluster_secret_variable_serves_every_role_and_the_role_variable_wins() -> None:
    shared = {"LEOFS_CLUSTER_SECRET": "shared-secret-0123456789"}
    for section in ("manager", "storage", "gateway"):
        assert resolve(section, None, shared, {}).cluster_secret == "shared-secret-0123456789"
    own = dict(shared, LEOFS_STORAGE_CLUSTER_SECRET="storage-secret-0123456789")
    assert resolve("storage", None, own, {}).cluster_secret == "storage-secret-0123456789"


def test_a_flag_that_breaks_a_rule_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "[manager]\nreplicas = 3\nwrite = 3\n")
    with pytest.raises(ConfigError, match="replicas"):
        resolve("manager", path, {}, {"replicas": 2})


def test_gateway_settings_are_the_shared_part() -> None:
    section = resolve("gateway", None, {"LEOFS_GATEWAY_CHUNK_SIZE": "1024"}, {"manager": "127.0.0.1:1"})
    settings = section.settings()
    assert type(settings) is config.GatewayConfig and settings.chunk_size == 1024


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leofs", "config", "check", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_config_check_prints_the_effective_values(tmp_path: Path) -> None:
    path = _write(tmp_path, '[gateway]\nchunk_size = 1048576\ncluster_secret = "secret-secret-secret"\n'
                            '[storage]\nname = "n1"\n')
    env = {"PATH": "/usr/bin:/bin", "LEOFS_GATEWAY_MAX_CONNECTIONS": "77"}
    human = _check(str(path), env=env)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == "[server]"
    for expected in ("chunk_size = 1048576", "max_connections = 77", 'name = "n1"', "vnodes = 168",
                     'cluster_secret = "(set)"', "# rack (not set)"):
        assert expected in lines
    assert "secret-secret-secret" not in human.stdout
    as_json = _check("--json", str(path), env=env)
    assert as_json.returncode == 0, as_json.stderr
    values = json.loads(as_json.stdout)
    assert values["gateway"]["chunk_size"] == 1048576 and values["gateway"]["max_connections"] == 77
    assert values["storage"]["rack"] is None and values["manager"]["replicas"] == 1
    assert values["gateway"]["cluster_secret"] == "(set)" and values["manager"]["cluster_secret"] is None


def test_config_check_refuses_a_bad_file(tmp_path: Path) -> None:
    out = _check(str(_write(tmp_path, "[gateway]\nchunk_sise = 5\n")))
    assert out.returncode == 1 and "chunk_sise" in out.stderr and out.stdout == ""
    missing = _check(str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and "nope.toml" in missing.stderr
