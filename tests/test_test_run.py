"""How the test run itself copes (conftest.py): a notebook's kernel that dies as it starts is started again."""

import warnings

import nbval.kernel
import nbval.plugin
import pytest

DIED = "Kernel died before replying to kernel_info"


class _Starts:
    """Stands in for jupyter_client's start_new_kernel: the first ``failures`` starts die."""

    def __init__(self, failures: int, error: str = DIED):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(self.error)
        return "km", "kc"


@pytest.fixture
def starts(monkeypatch):
    def install(failures: int, error: str = DIED) -> _Starts:
        fake = _Starts(failures, error)
        monkeypatch.setattr(nbval.kernel, "start_new_kernel", fake)
        monkeypatch.setattr(nbval.kernel.RunningKernel, "_ensure_iopub_up", lambda self: None)
        return fake
    return install


def test_a_kernel_that_dies_as_it_starts_is_started_again_with_a_warning(starts):
    fake = starts(failures=2)
    with pytest.warns(UserWarning, match="died as it started") as caught:
        kernel = nbval.plugin.RunningKernel("python3")
    assert fake.calls == 3 and (kernel.km, kernel.kc) == ("km", "kc")
    retries = [str(w.message) for w in caught if "died as it started" in str(w.message)]
    assert len(retries) == 2 and "try 3 of 3" in retries[-1]


def test_a_kernel_that_never_starts_still_fails(starts):
    fake = starts(failures=3)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="died before replying"):
        nbval.plugin.RunningKernel("python3")
    assert fake.calls == 3


def test_other_start_errors_are_not_retried(starts):
    fake = starts(failures=1, error="Kernel didn't respond in 60 seconds")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="didn't respond"):
            nbval.plugin.RunningKernel("python3")
    assert fake.calls == 1 and not any("died as it started" in str(w.message) for w in caught)
