import pytest

from tests.workspace import builders


@pytest.fixture
def history(world):
    """Clinic A's patient with four analysed visits; clinic B's patient with two."""
    world.visits = builders.build_history(world.patient_a, visits=4, with_files=True, not_comparable_last=True)
    world.b_visits = builders.build_history(world.patient_b, visits=2, views=["crown"])
    return world
