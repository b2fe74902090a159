import kestrel.edge.http as package


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(package) if not name.startswith("_")}
    assert package.__all__ == sorted(package.__all__)
    assert set(package.__all__) == public
