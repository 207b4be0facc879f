"""Chunked readers for the command line: .npy (memory-mapped per chunk), .npz, .parquet.

Every error is a :class:`InputError` whose message names the file and the problem;
the command line turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import math
import threading
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np


class InputError(Exception):
    """Bad input: the message is shown to the user as it is."""


def show_names(names: list[str], most: int = 10) -> str:
    """Names read from a file, safe for a terminal: control characters and escape
    sequences shown escaped, and a long list shortened."""
    shown = [n.encode("unicode_escape").decode("ascii") for n in names[:most]]
    more = f", ... ({len(names) - most} more)" if len(names) > most else ""
    return ", ".join(shown) + more


def _read_header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """``(shape, fortran_order, dtype)`` from an open ``.npy`` stream's header."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        return fmt.read_array_header_1_0(fh)
    return fmt.read_array_header_2_0(fh)


def _close(st: Any) -> None:
    for f in (st.stream, st.zip):
        if f is not None and hasattr(f, "close"):
            with contextlib.suppress(Exception):
                f.close()
    st.stream = st.zip = st.pending = None


def _split_spec(spec: str) -> tuple[Path, str | None]:
    """``file.npz:name`` → (file.npz, name); other paths have no name."""
    for suffix in (".npz:", ".parquet:"):
        if suffix in spec:
            i = spec.index(suffix) + len(suffix) - 1
            return Path(spec[:i]), spec[i + 1:] or None
    return Path(spec), None


class ArrayReader:
    """Rows ``[i0, i1)`` of a 1-D or 2-D numeric array stored in a file.

    ``.npy`` files are memory-mapped anew for every chunk and the chunk is copied out,
    so the mapping (and the pages it made resident) is released after each chunk and
    the process's memory stays bounded by the chunk size, not the file size.
    ``.npz`` members (stored or deflated) are decompressed as a stream, row chunk by row
    chunk, after their header alone was checked; ``.parquet`` files are read as record
    batches (a Parquet file's columns are its classes).
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    def __init__(self, spec: str, role: str) -> None:
        self.spec = spec
        self.role = role
        self.path, self.name = _split_spec(spec)
        self._whole: np.ndarray | None = None
        self._lock = threading.Lock()
        self._local: Any = None  # per-thread streams of .npz and .parquet (_streams)
        label = f"{role} file '{spec}'"
        self.label = label
        if not self.path.exists():
            raise InputError(f"{label}: no such file")
        if not self.path.is_file():
            raise InputError(f"{label}: not a regular file")
        try:
            with open(self.path, "rb"):
                pass
        except OSError as exc:
            raise InputError(f"{label}: cannot be read ({exc.strerror or exc})") from None
        suffix = self.path.suffix.lower()
        if suffix == ".npy":
            self._probe_npy()
        elif suffix == ".npz":
            self._probe_npz()
        elif suffix == ".parquet":
            self._probe_parquet()
        else:
            raise InputError(f"{label}: unknown file type (expected .npy, .npz or .parquet)")
        if self._whole is not None:
            self.shape = tuple(self._whole.shape)
            self.dtype = self._whole.dtype
        self._check_dtype()
        if len(self.shape) not in (1, 2):
            raise InputError(f"{label}: expected shape (N,) or (N, C), got {self.shape}")
        if self.shape[0] == 0:
            raise InputError(f"{label}: no rows (shape {self.shape})")
        if len(self.shape) == 2 and self.shape[1] == 0:
            raise InputError(f"{label}: no classes (shape {self.shape})")

    def _probe_npy(self) -> None:
        with contextlib.suppress(OSError), open(self.path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise InputError(
                    f"{self.label}: '{self.path}' is not a .npy file (NumPy's binary "
                    "format, which starts with \\x93NUMPY); write the array with "
                    "numpy.save(path, array), or give a .npz or .parquet file")
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError, OverflowError) as exc:
            # a header whose shape cannot fit the file is refused here, from the header
            # alone: the file is mapped, nothing is allocated
            raise InputError(f"{self.label}: not a valid .npy file ({exc})") from None
        self.shape = tuple(arr.shape)
        self.dtype = arr.dtype
        del arr

    def _probe_npz(self) -> None:
        """Choose the member and read its ``.npy`` header only: nothing is decompressed
        beyond the header until rows are read (so a small file that inflates to
        gigabytes is refused by the row and shape checks before it costs memory)."""
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
                if self.name is None:
                    if len(names) != 1:
                        raise InputError(
                            f"{self.label}: holds {len(names)} arrays ({show_names(names)}); "
                            f"name one as '{self.path}:NAME'")
                    key = names[0]
                elif self.name not in names:
                    raise InputError(f"{self.label}: no array named '{show_names([self.name])}' "
                                     f"(it holds: {show_names(names) or 'nothing'})")
                else:
                    key = self.name
                self._member = key + ".npy"
                info = zf.getinfo(self._member)
                with zf.open(info) as fh:
                    shape, fortran, dtype = _read_header(fh)
                    self._offset = fh.tell()
        except InputError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError,
                OverflowError, RuntimeError, zlib.error) as exc:
            raise InputError(f"{self.label}: not a valid .npz file ({exc})") from None
        if dtype.hasobject:
            raise InputError(f"{self.label}: holds Python objects (not numbers)")
        need = math.prod(shape) * dtype.itemsize
        if need != info.file_size - self._offset:
            raise InputError(f"{self.label}: member '{show_names([key])}' declares shape "
                             f"{shape} ({need:,} bytes) but holds "
                             f"{info.file_size - self._offset:,} bytes")
        self.shape, self.dtype = tuple(shape), dtype
        self._fortran = fortran and len(shape) > 1

    def _streams(self) -> Any:
        """This thread's open stream of the member: Dask's threaded scheduler reads
        chunks of one reader from several threads at once."""
        if self._local is None:
            self._local = threading.local()
        local = self._local
        if not hasattr(local, "row"):
            local.zip = local.stream = local.pending = None
            local.row = 0
        return local

    def _read_npz(self, i0: int, i1: int) -> np.ndarray:
        """Rows [i0, i1) of the member, decompressed as a stream: ascending reads (the
        chunk loop's order) cost one pass over the member in all; memory is one chunk."""
        if self._fortran:  # column-major members cannot be read by rows: whole, once
            with self._lock:
                if self._whole is None:
                    with np.load(self.path, allow_pickle=False) as z:
                        self._whole = np.asarray(z[self._member[:-4]])
            return self._whole[i0:i1]
        row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        st = self._streams()
        if st.stream is None or st.row > i0:
            _close(st)
            st.zip = zipfile.ZipFile(self.path)
            st.stream = st.zip.open(self._member)
            st.stream.read(self._offset)
            st.row = 0
        skip = (i0 - st.row) * row_bytes
        while skip:
            got = len(st.stream.read(min(skip, 1 << 24)))
            if not got:
                raise InputError(f"{self.label}: member ends early at row {st.row}")
            skip -= got
        data = st.stream.read((i1 - i0) * row_bytes)
        if len(data) != (i1 - i0) * row_bytes:
            raise InputError(f"{self.label}: member ends early at row {i0}")
        st.row = i1
        rows: np.ndarray = np.frombuffer(data, dtype=self.dtype)
        out: np.ndarray = rows.reshape((i1 - i0, *self.shape[1:])).copy()
        return out

    def __getstate__(self) -> dict[str, Any]:
        # a Dask task carries the file's name, never its data or an open stream
        state = dict(self.__dict__)
        state["_local"] = None
        state.pop("_lock", None)
        if state.get("_fortran") is False:
            state["_whole"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _probe_parquet(self) -> None:
        """The columns (the classes), their common dtype and the row count, from the
        file's metadata: no data is read until rows are."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(f"{self.label}: reading Parquet needs pyarrow "
                             "(pip install 'wce_xp[parquet]')") from None
        try:
            pf = pq.ParquetFile(self.path)
            schema = pf.schema_arrow
            rows = pf.metadata.num_rows
        except Exception as exc:
            raise InputError(f"{self.label}: not a valid Parquet file ({exc})") from None
        cols = list(schema.names)
        if not cols:
            raise InputError(f"{self.label}: has no columns")
        if self.name is not None:
            want = self.name.split(",")
            missing = [c for c in want if c not in cols]
            if missing:
                raise InputError(f"{self.label}: no column(s) {show_names(missing)} "
                                 f"(it has: {show_names(cols)})")
            cols = want
        dtypes = []
        for c in cols:
            t = schema.field(c).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                raise InputError(f"{self.label}: column '{show_names([c])}' is {t}, not numeric")
            dtypes.append(np.dtype(t.to_pandas_dtype()))
        self._cols = cols
        self.dtype = np.result_type(*dtypes)
        self.shape = (rows,) if len(cols) == 1 else (rows, len(cols))

    def _batch_array(self, batch: Any) -> np.ndarray:
        parts = []
        for c in self._cols:
            col = batch.column(c)
            if col.null_count and self.dtype.kind != "f":
                raise InputError(f"{self.label}: column '{show_names([c])}' has missing "
                                 "values (nulls); store it as floating point (nulls become "
                                 "NaN) and pass --mask")
            parts.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=self.dtype))
        return parts[0] if len(parts) == 1 else np.stack(parts, axis=1)

    def _read_parquet(self, i0: int, i1: int) -> np.ndarray:
        """Rows [i0, i1), read as record batches: ascending reads (the chunk loop's
        order) pass over the file once; memory is one batch and one chunk."""
        import pyarrow.parquet as pq

        st = self._streams()
        if st.stream is None or st.row > i0:
            _close(st)
            # no read-ahead: pyarrow's threads would decode every row group at once
            st.zip = pq.ParquetFile(self.path, pre_buffer=False)
            st.stream = st.zip.iter_batches(batch_size=max(1024, min(i1 - i0, 1 << 16)),
                                            columns=self._cols, use_threads=False)
            st.row, st.pending = 0, None
        out = []
        while st.row < i1:
            if st.pending is not None:
                a, st.pending = st.pending, None
            else:
                try:
                    a = self._batch_array(next(st.stream))
                except StopIteration:
                    raise InputError(f"{self.label}: ends early at row {st.row}") from None
            start, end = st.row, st.row + len(a)
            if end <= i0:
                st.row = end
                continue
            lo, hi = max(i0 - start, 0), min(i1 - start, len(a))
            out.append(a[lo:hi])
            if hi < len(a):
                st.pending = a[hi:]
            st.row = start + hi
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _check_dtype(self) -> None:
        if self.dtype.kind not in "biuf":
            raise InputError(f"{self.label}: dtype {self.dtype} is not numeric "
                             "(expected bool, integer or floating)")

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    @property
    def classes(self) -> int:
        return int(self.shape[1]) if len(self.shape) == 2 else 1

    def read(self, i0: int, i1: int) -> np.ndarray:
        """A NumPy copy of rows [i0, i1)."""
        suffix = self.path.suffix.lower()
        if suffix in (".npz", ".parquet"):
            try:
                return self._read_npz(i0, i1) if suffix == ".npz" else self._read_parquet(i0, i1)
            except InputError:
                raise
            except Exception as exc:  # zlib, zipfile and pyarrow errors alike
                raise InputError(f"{self.label}: read failed at rows {i0}..{i1} "
                                 f"({exc})") from None
        if self._whole is not None:
            return self._whole[i0:i1]
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
            out = np.array(arr[i0:i1])
            del arr  # unmaps: the pages this chunk touched leave the process
            return out
        except (ValueError, OSError) as exc:
            raise InputError(f"{self.label}: read failed at rows {i0}..{i1} ({exc})") from None


def parse_pos_weight(value: str, classes: int) -> Any:
    """``--pos-weight``: a number, a comma list (one per class), a .npy file, or 'auto'."""
    if value == "auto":
        return "auto"
    path = Path(value)
    if value.endswith(".npy"):
        reader = ArrayReader(value, "--pos-weight")
        q = reader.read(0, reader.rows).astype(np.float64).reshape(-1)
    else:
        try:
            q = np.array([float(v) for v in value.split(",")], dtype=np.float64)
        except ValueError:
            hint = " (no such file)" if path.suffix else ""
            raise InputError(f"--pos-weight: expected a number, a comma-separated list, "
                             f"a .npy file or 'auto', got '{value}'{hint}") from None
    if q.size not in (1, classes):
        raise InputError(f"--pos-weight: {q.size} values for {classes} classes")
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise InputError("--pos-weight: values must be finite non-negative numbers")
    return q if q.size > 1 else float(q[0])
