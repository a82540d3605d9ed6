import pytest

from kbuildguard.errors import ConfigError
from kbuildguard.project import Project, Settings, settings


def _project(**kw):
    return Project("/r", "/r/kbuildguard.toml", (), Settings(**kw))


def test_precedence_cli_env_file_default():
    proj = _project(match="minor")
    assert settings({}, {}, _project()).match == "version"
    assert settings({}, {}, proj).match == "minor"
    assert settings({}, {"KBUILDGUARD_MATCH": "exact"}, proj).match == "exact"
    assert settings({"match": "major"}, {"KBUILDGUARD_MATCH": "exact"}, proj).match == "major"


def test_unknown_environment_setting_is_an_error():
    with pytest.raises(ConfigError):
        settings({}, {"KBUILDGUARD_MATHC": "exact"}, _project())
