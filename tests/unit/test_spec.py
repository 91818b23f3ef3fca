import pytest

from pruning_core import Pattern, PruneSpec, SpecError


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_sparsity_range(bad):
    with pytest.raises(SpecError, match="sparsity"):
        PruneSpec("wanda", sparsity=bad)


@pytest.mark.parametrize("text", ["4:4", "5:4", "0:4", "2-4", "a:b"])
def test_bad_patterns(text):
    with pytest.raises(SpecError):
        Pattern.parse(text)


def test_nm_sets_sparsity_and_a_contradicting_sparsity_is_an_error():
    spec = PruneSpec("sparsegpt", pattern=Pattern.parse("2:8"))
    assert spec.sparsity == pytest.approx(0.75)
    assert str(spec.pattern) == "2:8"
    assert PruneSpec("sparsegpt", sparsity=0.75, pattern="2:8").sparsity == pytest.approx(0.75)
    with pytest.raises(SpecError, match="contradicts pattern 2:8") as err:
        PruneSpec("sparsegpt", sparsity=0.9, pattern=Pattern.parse("2:8"))
    assert err.value.param == "sparsity"


def test_unknown_method_and_option():
    with pytest.raises(SpecError, match="unknown method"):
        PruneSpec("nope")
    with pytest.raises(SpecError, match="has no option"):
        PruneSpec("sparsegpt", options={"blocksiz": 64})
    with pytest.raises(SpecError, match="blocksize"):
        PruneSpec("sparsegpt", options={"blocksize": 0})


def test_to_dict_has_defaults():
    d = PruneSpec("sparsegpt", options={"blocksize": 64}).to_dict()
    assert d["options"] == {"blocksize": 64, "percdamp": 0.01}
