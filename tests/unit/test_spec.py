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


@pytest.mark.parametrize("method,value,message", [
    ("sparsegpt", 1.5, "in \\[0, 1\\]"), ("alps", -0.1, "in \\[0, 1\\]"), ("alps", "0.3", "in \\[0, 1\\]"),
    ("wanda", 0.3, "needs a method that reads H"), ("magnitude", 1.0, "needs a method that reads H"),
])
def test_a_bad_dense_target_names_its_field(method, value, message):
    from pruning_core.spec import JobSpec

    with pytest.raises(SpecError, match=message) as err:
        JobSpec.from_dict({"model": "smollm2-135m", "method": method, "dense_target": value})
    assert [e.param for e in err.value.all()] == ["dense_target"]


def test_the_dense_target_round_trips_and_defaults_to_the_papers_target():
    from pruning_core.spec import JobSpec

    job = JobSpec.from_dict({"model": "smollm2-135m", "method": "pgz", "dense_target": 0.25})
    assert job.spec.dense_target == 0.25 and JobSpec.from_dict(job.to_dict()) == job
    assert JobSpec.from_dict({"model": "smollm2-135m", "method": "wanda"}).to_dict()["dense_target"] == 0.0
    assert PruneSpec("wanda", dense_target=0).dense_target == 0.0  # 0 is the default for every method
