import warnings

import pytest

# copier notes that the template checkout has uncommitted changes; that is expected while developing.
warnings.filterwarnings("ignore", message=".*Dirty template changes.*")


@pytest.fixture
def render(tmp_path):
    """Render the template with these answers (as `copier copy --defaults`, no --trust)."""
    from tests.flow import render as _render

    counter = iter(range(1000))

    def _do(**answers):
        return _render(tmp_path / f"project{next(counter)}", **answers)

    return _do
