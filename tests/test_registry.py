import pytest

from hybridunet.registry import Registry, UnknownNameError


@pytest.fixture
def parts() -> Registry:
    parts = Registry("part")

    @parts.register("double_conv")
    def double_conv(channels: int, dilation: int = 1) -> tuple:
        return ("double_conv", channels, dilation)

    parts.register("residual", lambda channels: ("residual", channels))
    parts.register("residual_se", lambda channels: ("residual_se", channels))
    return parts


def test_build_calls_the_registered_builder_with_keywords(parts):
    assert parts.build("double_conv", channels=8, dilation=2) == ("double_conv", 8, 2)


def test_names_are_sorted_and_filtered_by_glob(parts):
    assert parts.names() == ["double_conv", "residual", "residual_se"]
    assert parts.names("residual*") == ["residual", "residual_se"]
    assert list(parts) == parts.names() and len(parts) == 3 and "residual" in parts


def test_unknown_name_lists_known_names_and_suggests_the_closest(parts):
    with pytest.raises(UnknownNameError) as info:
        parts.build("residual_sе2", channels=8)
    message = str(info.value)
    assert "unknown part 'residual_sе2'" in message
    assert "Did you mean 'residual_se'?" in message
    assert "double_conv, residual, residual_se" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_unknown_keyword_fails_before_building_and_lists_accepted_ones(parts):
    with pytest.raises(TypeError, match=r"part 'double_conv'.*'dilaton'.*Accepted keywords: channels, dilation"):
        parts.build("double_conv", channels=8, dilaton=2)


def test_registering_a_name_twice_is_refused(parts):
    with pytest.raises(ValueError, match="'residual' is already registered"):
        parts.register("residual", lambda channels: None)

