"""The ``modal_emulator`` fixture, as a project that installed modal-emu uses it: pytest finds
the plugin through its entry point (the test projects run in a subprocess, like a user's)."""

from __future__ import annotations

import textwrap

pytest_plugins = ["pytester"]

TINY_APP = textwrap.dedent(
    """
    import modal

    app = modal.App("plugin-tiny")


    @app.function()
    def square(x):
        return x * x
    """
)


def clean_environment(monkeypatch):
    for key in ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_CONFIG_PATH"):
        monkeypatch.delenv(key, raising=False)


def test_a_project_deploys_and_calls_its_app_through_the_fixture(pytester, monkeypatch):
    clean_environment(monkeypatch)
    pytester.makepyfile(tiny_app=TINY_APP)
    pytester.makeconftest(
        """
        import os
        import pytest

        @pytest.fixture(scope="session")
        def modal_emulator_args():
            return ["--concurrency", "2"]

        def pytest_sessionfinish(session):  # after the session fixtures are torn down
            with open("after-session.txt", "w") as f:
                f.write(os.environ.get("MODAL_SERVER_URL", "<unset>"))
        """
    )
    pytester.makepyfile(
        test_uses_modal=textwrap.dedent(
            """
            import json, os
            import modal

            def test_remote(modal_emulator):
                assert os.environ["MODAL_SERVER_URL"] == modal_emulator.url
                assert modal_emulator.url.startswith("http://127.0.0.1:")
                assert modal_emulator.options == ("--concurrency", "2")
                modal_emulator.deploy("tiny_app.py")
                assert modal.Function.from_name("plugin-tiny", "square").remote(7) == 49
                assert "listening on " + modal_emulator.url in modal_emulator.server_log()

            def test_same_emulator_for_the_session(modal_emulator):
                listed = json.loads(modal_emulator.modal("app", "list", "--json").stdout)
                assert "plugin-tiny" in [app["description"] for app in listed]
                assert modal_emulator.env()["MODAL_SERVER_URL"] == modal_emulator.url
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "after-session.txt").read_text() == "<unset>", "the environment was not restored"
    state_dirs = {path.resolve() for path in pytester.path.glob("**/modal-emu*/state.sqlite3")}
    assert len(state_dirs) == 1
    assert not (state_dirs.pop().parent / "server.pid").exists(), "the emulator was not stopped"


def test_no_side_effects_for_projects_that_do_not_use_it(pytester, monkeypatch):
    clean_environment(monkeypatch)
    pytester.makepyfile(
        """
        import os, sys

        def test_untouched(request):
            assert request.config.pluginmanager.has_plugin("modal_emu")  # installed, hence loaded
            assert "MODAL_SERVER_URL" not in os.environ
            assert "modal" not in sys.modules and "modal_emu.local" not in sys.modules
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q").assert_outcomes(passed=1)
