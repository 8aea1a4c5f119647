"""The edge's fixtures (a stand-in origin and a real edge) for the fault tests."""

from tests.edge.conftest import edge_factory, origin  # noqa: F401 - pytest fixtures
