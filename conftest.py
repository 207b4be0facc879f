"""Root conftest: the option that selects which array backends the suite runs on."""

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "dask", "tensorflow", "cupy",
            "torch_cuda")


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        default=None,
        help="run the suite on this backend only (repeatable); default: every installed one",
    )
