"""The fault-injection suite shares the host_tools tests' tiny model and firmware package."""

from tests.host_tools.conftest import tiny  # noqa: F401 (a session fixture, used by name)
