"""Root conftest: the option that selects which array backends the suite runs on, and
Triton's interpreter where there is no GPU."""

import os

# Without an NVIDIA GPU, tests/test_triton.py runs the Triton kernels through Triton's
# interpreter on the CPU. Triton reads this when it is imported (its own library of
# jit functions is defined then), so it is set before anything imports it.
if "TRITON_INTERPRET" not in os.environ and not os.path.exists("/dev/nvidiactl"):
    os.environ["TRITON_INTERPRET"] = "1"

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
