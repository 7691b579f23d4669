"""What the tests of the exercise checks share: an unfinished answer, and "this mistake is named"."""

import pytest

from lvmlib.checks import ExerciseError, ExerciseNotDone


def stub(*args, **kwargs):
    """A learner's function before the exercise is done (nbgrader's placeholder)."""
    raise NotImplementedError()


def named(check, wrong, fragment):
    """The check rejects ``wrong`` (not as "not done yet") with a message containing ``fragment``."""
    with pytest.raises(ExerciseError) as info:
        check(wrong)
    assert not isinstance(info.value, ExerciseNotDone)
    assert fragment in str(info.value), str(info.value)


def not_done(check, unfinished=stub):
    """An unfinished answer: the check carries on with the reference, and strict mode refuses both."""
    fallback = check(unfinished)
    assert fallback is not unfinished and getattr(fallback, "_lvmlib_substitute_for", None)
    with pytest.raises(ExerciseNotDone):
        check(unfinished, strict=True)
    with pytest.raises(ExerciseNotDone):
        check(fallback, strict=True)
    return fallback
